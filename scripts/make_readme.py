"""Regenerate every figure the README shows, from the code, so text and code cannot drift.

The README marks each generated part with ``<!-- gen:NAME -->...<!-- /gen:NAME -->`` (a block
or a few words inside a sentence); this script runs the commands behind each NAME and rewrites
what is between the marks. It also redraws docs/compare.png and docs/sweep.png. Speed figures
come from docs/bench.json, which ``python scripts/bench.py --json docs/bench.json`` writes.

    python scripts/make_readme.py           # rewrite README.md and the plots
    python scripts/make_readme.py --check   # exit 1, naming the parts, if README.md is stale
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from moebench.cli import app
from moebench.commands.shared.plan_text import plan_text
from moebench.commands.validation.measured_runs import load_runs
from moebench.commands.validation.ranking import sweep_stats
from moebench.commands.validation.report import first_predictions
from moebench.inputs.hardware import load_chip

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARK = re.compile(r"<!-- gen:([\w-]+) -->(.*?)<!-- /gen:\1 -->", re.S)
# Published figures the README compares with (sources in ../shared/reference and the README).
ANT_H800_PER_1T_CNY = 6.35e6  # Ling report (arXiv 2503.05139), device D
ANT_LOW_SPEC_PER_1T_CNY = 5.08e6
DSV3_PRETRAIN_H800_HOURS = 2.664e6  # DeepSeek-V3 report (arXiv 2412.19437), table 1
DSV3_PRETRAIN_USD = 5.328e6
DSV2_H800_HOURS_PER_1T = 172.8e3  # DeepSeek-V2 report (arXiv 2405.04434), section 3.2.3
DSLLM67B_H800_HOURS_PER_1T = 300.6e3
LING_DEVICES = ("ascend-910b", "t-head-ppu", "h20", "a100")
MIX = "h800:512+ascend-910b:1024"  # the worked example: the question
POOLED = "h800:16+a100:16"  # a mix whose pipeline pools memory (Mixtral 8x7B)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    if result.exit_code not in (0, 1):
        raise SystemExit(f"make_readme: moebench {' '.join(args)} exited {result.exit_code}:\n"
                         f"{result.output}")
    return result.output


def cli_json(*args: str) -> Any:
    return json.loads(cli(*args, "--format", "json"))


def _m(x: float) -> str:
    return f"{x / 1e6:.2f}M"


def _pct(x: float, signed: bool = True) -> str:
    return f"{100 * x:+.0f}%" if signed else f"{100 * x:.1f}%"


# The 910B under its 2024 and 2025 software, and DeepSeek-V3's row on its own stack.
ASCEND_2024 = "mindspeed-llm@1.0.rc3"
ASCEND_2025 = "mindspeed-llm@2.1.0"
DSV3_ENTRY = "h800:hai-llm"


class Facts:
    """Every command the README quotes, run once."""

    def __init__(self) -> None:
        self.compare_md = cli("compare", "--uncertainty", "500", "--format", "markdown")
        self.compare = cli_json("compare", "--uncertainty", "500")
        limit = ",".join(f"{c}:hardware-limit" for c in ("h800", *LING_DEVICES))
        self.limit = cli_json("compare", "--chips", limit)
        self.generations = cli_json("compare", "--chips",
                                    f"h800,ascend-910b:{ASCEND_2024},ascend-910b:{ASCEND_2025}")
        self.dsv3 = cli_json("compare", "--scenario", "deepseek-v3-14.8t")
        self.dsv3_published = cli_json("estimate", "--scenario", "deepseek-v3-14.8t", "--chip",
                                       "h800", "--stack", "hai-llm")
        self.moe_dense = cli_json("compare", "--model", "deepseek-v2,deepseek-llm-67b",
                                  "--chips", "h800", "--num-chips", "1024",
                                  "--global-batch", "4608")
        self.validate = cli_json("validate")
        self.explain = cli_json("explain", "--scenario", "ling-plus-1t", "--chip", "h800")
        self.mix_md = cli("estimate", "--model", "ling-plus", "--mix", MIX, "--format",
                          "markdown")
        self.mix = cli_json("estimate", "--model", "ling-plus", "--mix", MIX)
        self.mix_far = cli_json("estimate", "--model", "ling-plus", "--mix", MIX,
                                "--placement", "separate-sites")
        # Like for like: the heterogeneous pipeline does not model optimizer offload, so the
        # types apart are held to none either (offload is the other way to buy memory).
        self.pooled = cli_json("estimate", "--model", "mixtral-8x7b", "--mix", POOLED,
                               "--optimizer-offload", "0", "--offload-modules", "none")
        bench = ROOT / "docs" / "bench.json"
        self.bench = json.loads(bench.read_text()) if bench.exists() else None

    def row(self, table: dict[str, Any], entry: str, model: str | None = None) -> dict:
        return next(r for r in table["rows"] if r["entry"] == entry
                    and (model is None or r["model"] == model))


def compare_table(f: Facts) -> str:
    return f"\n{f.compare_md.rstrip()}\n"


def ling_h800(f: Facts) -> str:
    h = f.row(f.compare, "h800")
    return f"{_m(h['cost'])} CNY"


def ling_h800_gap(f: Facts) -> str:
    h = f.row(f.compare, "h800")
    return _pct(h["cost"] / ANT_H800_PER_1T_CNY - 1)


def ling_implied(f: Facts) -> str:
    h = f.row(f.compare, "h800")
    hours = ANT_H800_PER_1T_CNY / h["price_per_chip_hour"]
    tps = 1e12 / (hours * 3600)
    return (f"{hours / 1e3:.1f}K H800-hours per trillion tokens, about {tps:,.0f} tokens/s per "
            f"chip; moebench's plan reaches {h['tokens_per_s_per_chip']:,.0f} tokens/s at MFU "
            f"{h['mfu']:.2f}")


def ling_ratios(f: Facts) -> str:
    lines = ["", "| Ling device | chip profile | cost ratio, calibrated stack (90% interval) | "
                 "cost ratio, hardware limit | days, calibrated |", "|---|---|---|---|---|"]
    for entry in LING_DEVICES:
        r = f.row(f.compare, entry)
        lim = f.row(f.limit, f"{entry}:hardware-limit")
        lo, hi = r["intervals"].get("cost_ratio", (r["cost_ratio"], r["cost_ratio"]))
        dev = r["price_source"].split("device ")[1][0] if "device " in r["price_source"] else "-"
        lines.append(f"| {dev} | {entry} ({r['stack']}) | {r['cost_ratio']:.2f} "
                     f"({lo:.2f}-{hi:.2f}) | {lim['cost_ratio']:.2f} | {r['days']:.1f} |")
    return "\n".join(lines) + "\n"


def ascend_generations(f: Facts) -> str:
    old = f.row(f.generations, f"ascend-910b:{ASCEND_2024}")
    new = f.row(f.generations, f"ascend-910b:{ASCEND_2025}")
    ant = ANT_LOW_SPEC_PER_1T_CNY / ANT_H800_PER_1T_CNY
    lo, hi = sorted((old["cost_ratio"], new["cost_ratio"]))
    where = ("between the two" if lo <= ant <= hi else
             "above both: moebench finds the 910B cheaper than Ant's figure under either"
             if ant > hi else "below both: moebench finds the 910B dearer than Ant's figure")
    return (f"{old['cost_ratio']:.2f} of the H800's cost with the 2024 stack "
            f"({old['tokens_per_s_per_chip']:,.0f} tokens/s per chip, ModelLink 1.0.RC3) and "
            f"{new['cost_ratio']:.2f} with the 2025 one, MindSpeed-LLM 2.1.0 "
            f"({new['tokens_per_s_per_chip']:,.0f}); Ant's ratio of {ant:.2f} lies {where}")


def dsv3(f: Facts) -> str:
    r = f.row(f.dsv3, DSV3_ENTRY)
    hours = r["chip_hours"]
    return (f"{hours / 1e6:.2f}M H800-hours, {r['days']:.1f} days, USD {_m(r['cost'])} "
            f"({_pct(hours / DSV3_PRETRAIN_H800_HOURS - 1)} against the published "
            f"{DSV3_PRETRAIN_H800_HOURS / 1e6:.3f}M hours; goodput {r['goodput']:.3f}, "
            f"MFU {r['mfu']:.2f})")


def dsv3_plan(f: Facts) -> str:
    return f"`{plan_text(f.row(f.dsv3, DSV3_ENTRY)['plan'])}`"


def dsv3_published(f: Facts) -> str:
    e = f.dsv3_published
    m = e["memory_gib"]
    live = sum(m[k] for k in ("weights", "gradients", "optimizer", "activations", "logits"))
    return (f"{live:.1f} GiB of live tensors on the fullest rank (weights {m['weights']:.1f}, "
            f"FP32 gradients {m['gradients']:.1f}, optimizer shard {m['optimizer']:.1f}, "
            f"activations {m['activations']:.1f}, logits {m['logits']:.1f}), "
            f"{e['memory_gib_per_chip']:.1f} of {e['memory_capacity_gib']:.1f} GiB with the "
            f"allocator's hold ({m['fragmentation']:.1f}) and the runtime's reserve "
            f"({m['reserve']:.1f})" + ("" if e["keeps_headroom"] else
                                       f"; tight: {e['memory_gib_high_hold']:.1f} GiB at the "
                                       "top of the stack's allocator range"))


def _stack_fig(name: str, dotted: str) -> float:
    from moebench.inputs.stack import load_stack_spec

    section, field = dotted.split(".")
    return float(getattr(getattr(load_stack_spec(name), section), field).value)


def ascend_fit(f: Facts) -> str:
    gemm = _stack_fig("mindspeed-llm", "kernels.gemm_fraction")
    att = _stack_fig("mindspeed-llm", "kernels.attention_fraction")
    coll = _stack_fig("mindspeed-llm", "collectives.bandwidth_fraction")
    from moebench.inputs.stack import load_stack_spec

    refits = [f"{r.name}'s {name.replace('_fraction', 's')} at {100 * fig.value:.0f}%"
              for r in load_stack_spec("mindspeed-llm").releases
              for name, fig in r.refit.items()]
    where = (f"one fit across the MindSpeed-LLM releases but {', '.join(refits)} (refitted on "
             "its own runs)" if refits else "one fit across the MindSpeed-LLM releases")
    return (f"GEMMs at {100 * gemm:.0f}% and attention at {100 * att:.0f}% of the chip's "
            f"measured matmul rate and collectives at {100 * coll:.0f}% of the HCCS bus "
            f"bandwidth, {where}")


def _group(f: Facts, name: str) -> dict[str, Any]:
    return next(s for s in f.validate["summary"] if s["group"] == name)


def vendor_error(name: str) -> Callable[[Facts], str]:
    def words(f: Facts) -> str:
        s = _group(f, name)
        return (f"{s['runs']} runs from {s['sources']} sources, {_pct(s['loso_mae'], False)} "
                f"leave-one-source-out")
    return words


def savings(f: Facts) -> str:
    """Which Ling devices come out cheaper than the H800 at Ant's prices, and by how much."""
    ratios = {e: f.row(f.compare, e)["cost_ratio"] for e in LING_DEVICES}
    cheaper = {e: r for e, r in ratios.items() if r < 1}
    dearer = {e: r for e, r in ratios.items() if r >= 1}
    words = ("none", "one", "two", "three", "four")
    text = (f"{words[len(cheaper)]} of the {words[len(ratios)]} Ling devices come out cheaper "
            f"than the H800, by {100 * (1 - max(cheaper.values())):.0f}-"
            f"{100 * (1 - min(cheaper.values())):.0f}% ({', '.join(cheaper)})")
    if dearer:
        text += "; " + ", ".join(f"{e} {100 * (r - 1):.0f}% dearer" for e, r in dearer.items())
    return text


def ascend_break_even(f: Facts) -> str:
    """The 910B's break-even price ratio against the H800 and what each basis prices it at."""
    b, h = f.row(f.compare, "ascend-910b"), f.row(f.compare, "h800")
    lo, hi = b["intervals"]["break_even_price_ratio"]
    priced = ", ".join(f"{basis} {h['price_by_basis'][basis] / p:.1f}x"
                       for basis, p in b["price_by_basis"].items()
                       if p and h["price_by_basis"].get(basis))
    flips = {basis: r < 1 for basis, r in b["cost_ratio_by_basis"].items() if r is not None}
    holds = "holds on every basis" if len(set(flips.values())) == 1 else (
        "flips with the basis: cheaper on " + ", ".join(k for k, v in flips.items() if v)
        + ", dearer on " + ", ".join(k for k, v in flips.items() if not v))
    return (f"the 910B wins while one H800 hour costs more than "
            f"{b['break_even_price_ratio']:.2f}x ({lo:.2f}-{hi:.2f}) one 910B hour; the bases "
            f"price it at {priced}, so its verdict {holds}")


def physics_range(f: Facts) -> str:
    vals = [s["physics_mae"] for s in f.validate["summary"] if s["group"].startswith("vendor")]
    return f"{100 * min(vals):.0f}-{100 * max(vals):.0f}%"


def moe_dense(f: Facts) -> str:
    v2 = f.row(f.moe_dense, "h800", "deepseek-v2")
    dense = f.row(f.moe_dense, "h800", "deepseek-llm-67b")
    saving = 1 - v2["chip_hours"] / dense["chip_hours"]
    return (f"{v2['chip_hours'] / 1e3:.1f}K against {dense['chip_hours'] / 1e3:.1f}K chip-hours "
            f"per trillion tokens, a {100 * saving:.0f}% saving (published "
            f"{DSV2_H800_HOURS_PER_1T / 1e3:.1f}K against {DSLLM67B_H800_HOURS_PER_1T / 1e3:.1f}K, "
            f"{100 * (1 - DSV2_H800_HOURS_PER_1T / DSLLM67B_H800_HOURS_PER_1T):.1f}%)")


def memory_validation(f: Facts) -> str:
    m = f.validate["memory"]
    if not m["runs"]:
        return "no run publishes its peak memory yet."
    vendors = ", ".join(f"{v} {100 * e:.1f}%" for v, e in m["by_vendor"].items())
    kinds = ", ".join(f"{n} {k}" for k, n in m["by_kind"].items())
    fits = ("every measured run in the set fits" if not m["not_fitting"] else
            f"{len(m['not_fitting'])} measured runs are predicted not to fit")
    fits += (f", {m['tight']} of all {m['all_runs']} only at the typical allocator hold "
             "(tight, and they ran)")
    return (f"{m['runs']} runs from {m['sources']} sources ({kinds}), mean absolute memory "
            f"error **{100 * m['mae']:.1f}%** ({vendors}), mean {_pct(m['bias'])}; "
            f"{m['beyond']} beyond ±20%, worst {m['worst']} ({_pct(m['worst_error'])}); "
            f"{fits}.")


def memory_targets(f: Facts) -> str:
    """The bars of issue 22 (memory as measured), each against today's figure."""
    m = f.validate["memory"]
    share = {r["chip"]: r["memory_gib_per_chip"] / (load_chip(r["chip"]).hbm_bytes / 2**30)
             for r in f.compare["rows"] if r.get("plan")}
    top = max(share, key=share.__getitem__)
    e = f.dsv3_published
    hours = f.row(f.dsv3, DSV3_ENTRY)["chip_hours"] / DSV3_PRETRAIN_H800_HOURS - 1

    def row(what: str, now: str, ok: bool) -> str:
        return f"| {what} | {now} | {'met' if ok else '**missed**'} |"
    return "\n".join([
        "", "| target | today | |", "|---|---|---|",
        row(">= 25 runs with published memory, mean error <= 10%",
            f"{m['runs']} runs, {100 * m['mae']:.1f}%", m["runs"] >= 25 and m["mae"] <= 0.10),
        row("no memory error beyond +-20%", f"{m['beyond']} runs", m["beyond"] == 0),
        row("no measured run predicted not to fit", f"{len(m['not_fitting'])} runs",
            not m["not_fitting"]),
        row("default table: no plan above ~95% of capacity",
            f"highest {100 * share[top]:.1f}% ({top})", share[top] <= 0.95),
        row("DeepSeek-V3's published plan fits 2,048 H800s",
            f"{e['memory_gib_per_chip']:.1f} of {e['memory_capacity_gib']:.1f} GiB",
            bool(e["fits_memory"])),
        row("DeepSeek-V3 within 10% of 2.664M H800-hours", _pct(hours), abs(hours) <= 0.10),
    ]) + "\n"


def validation_summary(f: Facts) -> str:
    lines = ["", "| runs | count | sources | **leave-one-source-out** | given only the plan "
                 "(out of source) | time split (later runs) | leave-one-out | calibrated (in "
                 "sample) | physics only | worst out of source |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in f.validate["summary"]:
        split = "-" if s["split_mae"] is None else \
            f"{_pct(s['split_mae'], False)} ({s['split_runs']})"
        lines.append(f"| {s['group']} | {s['runs']} | {s['sources']} | "
                     f"**{_pct(s['loso_mae'], False)}** | {_pct(s['published_mae'], False)} | "
                     f"{split} | "
                     f"{_pct(s['loo_mae'], False)} | {_pct(s['calibrated_mae'], False)} | "
                     f"{_pct(s['physics_mae'], False)} | "
                     f"{s['worst_loso']} {_pct(s['worst_loso_error'])} |")
    return "\n".join(lines) + "\n"


def first_prediction_table(f: Facts) -> str:
    """Each source added since first predictions were recorded: how the model predicted it
    before it joined the fit, and out of source now."""
    rows = first_predictions({r["id"]: r["loso_error"] for r in f.validate["runs"]})
    lines = ["", "| source | runs | stack | recorded | first prediction | the same, given only "
                 "the plan | leave-one-source-out now |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        bare = "-" if r["first_plan_only_mae"] is None else _pct(r["first_plan_only_mae"], False)
        lines.append(f"| {r['source_id']} | {r['runs']} | {r['stack']} | {r['recorded']} | "
                     f"{_pct(r['first_mae'], False)} | {bare} | {_pct(r['loso_mae'], False)} |")
    n = sum(r["runs"] for r in rows)
    first = sum(r["first_mae"] * r["runs"] for r in rows) / n
    now = sum(r["loso_mae"] * r["runs"] for r in rows) / n
    lines.append(f"| **all {len(rows)} sources** | {n} | | | **{_pct(first, False)}** | | "
                 f"{_pct(now, False)} |")
    return "\n".join(lines) + "\n"


def automodel_now(f: Facts) -> str:
    """NeMo AutoModel's four runs out of source now, in the order its summary lists them."""
    order = ("automodel-2510-deepseek-v3-h100-1024", "automodel-2510-deepseek-v3-h100-256",
             "automodel-2510-kimi-k2-h100-256", "automodel-2510-qwen3-30b-a3b-h100-8")
    err = {r["id"]: r["loso_error"] for r in f.validate["runs"]}
    parts = [_pct(err[i]) for i in order]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def gptoss_runs(f: Facts) -> str:
    """The gpt-oss runs by chip, as first predicted (before they joined the fit) and out of
    source now: mean absolute error and the range of signed errors."""
    import csv

    from moebench.commands.validation.report import first_predictions_path

    runs = {r.id: r for r in load_runs()}
    with first_predictions_path().open(encoding="utf-8") as fh:
        first = {r["id"]: float(r["predicted_error"]) for r in csv.DictReader(fh)
                 if r["id"] in runs and runs[r["id"]].model.startswith("gpt-oss")}
    now = {r["id"]: r["loso_error"] for r in f.validate["runs"] if r["id"] in first}

    def group(run_id: str) -> str:
        run = runs[run_id]
        return "AutoModel H100" if run.stack and run.stack.startswith("nemo-automodel") \
            else run.chip.upper()

    def summary(errs: dict[str, float]) -> str:
        mean = sum(abs(e) for e in errs.values()) / len(errs)
        parts = []
        for name in dict.fromkeys(group(i) for i in errs):
            e = sorted(v for i, v in errs.items() if group(i) == name)
            span = _pct(e[0]) if len(e) == 1 else f"{_pct(e[0])} to {_pct(e[-1])}"
            parts.append(f"{name} {span}")
        return f"{_pct(mean, False)} ({'; '.join(parts)})"

    return (f"{len(first)} runs, first predicted at {summary(first)}; out of source now "
            f"{summary(now)}")


def sweep_table(f: Facts) -> str:
    lines = ["", "| sweep | plans | chips | stack | Spearman | regret |",
             "|---|---|---|---|---|---|"]
    for s in f.validate["sweeps"]:
        lines.append(f"| {s['sweep']} | {s['runs']} | {s['num_chips']} {s['chip']} | "
                     f"{s['stack']} | {s['spearman']:.2f} | {_pct(s['regret'], False)} |")
    return "\n".join(lines) + "\n"


def sweep_summary(f: Facts) -> str:
    sweeps = f.validate["sweeps"]
    a = sweep_stats(sweeps)
    m = sweep_stats([s for s in sweeps if not s["stack"].startswith("megatron-deepspeed@")])
    return (f"over all {a['sweeps']} sweeps, mean Spearman {a['spearman']:.2f}, mean regret "
            f"{_pct(a['regret'], False)}, worst {_pct(a['worst_regret'], False)}; without the "
            f"{a['sweeps'] - m['sweeps']} Megatron-DeepSpeed sweeps of 2022, {m['sweeps']} "
            f"sweeps, {m['spearman']:.2f}, {_pct(m['regret'], False)} and "
            f"{_pct(m['worst_regret'], False)}")


def coverage_line(f: Facts) -> str:
    return f"{100 * f.validate['coverage_80']:.0f}%"


def targets(f: Facts) -> str:
    """The issue's bars (issue 21), each against today's figure."""
    g = {s["group"]: s for s in f.validate["summary"]}
    st = sweep_stats(f.validate["sweeps"])
    n, rho, regret, worst = st["sweeps"], st["spearman"], st["regret"], st["worst_regret"]
    far = [r for r in f.validate["runs"] if abs(r["loso_error"]) > 0.4]
    cov = f.validate["coverage_80"]

    def row(what: str, now: str, ok: bool) -> str:
        return f"| {what} | {now} | {'met' if ok else '**missed**'} |"
    lines = ["", "| target | today | |", "|---|---|---|",
             row("leave-one-source-out <= 15% over all runs", _pct(g["all"]["loso_mae"], False),
                 g["all"]["loso_mae"] <= 0.15)]
    for v in ("NVIDIA", "AMD", "Huawei"):
        s = g[f"vendor {v}"]
        # Two decimals where one would print the bar itself (20.0% that misses it).
        near = round(s["loso_mae"], 3) == 0.20
        now = f"{100 * s['loso_mae']:.2f}%" if near else _pct(s["loso_mae"], False)
        lines.append(row(f"<= 20% on {v}", now, s["loso_mae"] <= 0.20))
    lines += [row("no run beyond +-40% out of source", f"{len(far)} runs", not far),
              row(">= 12 sweeps of >= 3 plans, >= 2 on Ascend and on AMD", f"{n} sweeps",
                  n >= 12),
              row("mean Spearman >= 0.8", f"{rho:.2f}", rho >= 0.8),
              row("mean regret <= 5%, none above 15%",
                  f"{_pct(regret, False)}, worst {_pct(worst, False)}",
                  regret <= 0.05 and worst <= 0.15),
              row("80% intervals hold 75-85% of runs", f"{100 * cov:.0f}%", 0.75 <= cov <= 0.85)]
    return "\n".join(lines) + "\n"


def validation_outliers(f: Facts) -> str:
    far = sorted((r for r in f.validate["runs"] if abs(r["loso_error"]) > 0.4),
                 key=lambda r: -abs(r["loso_error"]))
    if not far:
        return "none"
    return "; ".join(f"{r['id']} ({_pct(r['loso_error'])})" for r in far)


def validation_bounds(f: Facts) -> str:
    """The error bounds tests/test_validation.py enforces, read from the test itself."""
    text = (ROOT / "tests" / "test_validation.py").read_text(encoding="utf-8")
    found = re.findall(r"^MAX_LOSO_(\w+) = ([\d.]+)", text, re.MULTILINE)
    b = {k: f"{100 * float(v):.0f}%" for k, v in found}
    return (f"{b['ALL']} over all runs, {b['NVIDIA']} on NVIDIA, {b['AMD']} on AMD or "
            f"{b['HUAWEI']} on Huawei")


def baseline_now(f: Facts) -> str:
    """The baseline's runs (commit 3743958) as validate reads them now, leave-one-out."""
    from moebench.commands.validation.validation import BASELINE_RUNS

    runs = [r for r in f.validate["runs"] if r["id"] in BASELINE_RUNS]

    def mae(rs: list[dict[str, Any]]) -> str:
        return _pct(sum(abs(r["loo_error"]) for r in rs) / len(rs), signed=False)
    moe_nv = [r for r in runs if r["moe"] and r["vendor"] == "NVIDIA"]
    added = [r for r in f.validate["runs"] if not r["moe"] and r["id"] not in BASELINE_RUNS]
    return (f"{mae(runs)} ({mae([r for r in runs if not r['moe']])} dense, "
            f"{mae(moe_nv)} NVIDIA MoE, {mae([r for r in runs if r['vendor'] == 'Huawei'])} "
            f"on Ascend) leave-one-out; the {len(added)} dense runs added since read "
            f"{mae(added)}")


def loss_fusion(f: Facts) -> str:
    """Eager against Triton cross-entropy on AMD's DeepSeek-V2-Lite run, as the model sees it."""
    from dataclasses import replace

    from moebench.commands.validation.fitting import prepare
    from moebench.engine.step import evaluate
    from moebench.inputs.stack import load_stack_spec, stack_from_spec

    run = next(r for r in load_runs() if r.id == "primus-dsv2lite-mi355x-8-mbs12-baseline")
    p, spec = prepare(run, "measured-runs.csv"), load_stack_spec("primus-amd")
    step = {ce: float(evaluate(p.arch, p.chip, stack_from_spec(
        spec, replace(run.options, cross_entropy=ce)), p.config, p.plan).step_time[0])
        for ce in ("unfused", "te")}
    return _pct(step["unfused"] / step["te"] - 1, signed=False)


def megatron_table(f: Facts) -> str:
    """How the nine runs of Megatron-Core r0.8.0's weak-scaling table read, leave-one-out."""
    errs = [r["loo_error"] for r in f.validate["runs"] if r["model"].startswith("megatron-gpt-")]
    mean = sum(errs) / len(errs)
    return (f"{_pct(mean)} on average over its {len(errs)} runs "
            f"({_pct(min(errs))} to {_pct(max(errs))})")


def layouts_given(f: Facts) -> str:
    """How many runs with pipeline stages give their published layout."""
    staged = [r for r in load_runs() if (r.plan.pp or 1) > 1]
    missing = sum(r.plan.pipeline_layout is None for r in staged)
    return (f"for {len(staged) - missing} of the {len(staged)} runs with pp > 1; the other "
            f"{missing} use `balanced`")


def validation_count(f: Facts) -> str:
    runs = f.validate["runs"]
    vendors: dict[str, int] = {}
    for s in f.validate["summary"]:
        if s["group"].startswith("vendor "):
            vendors[s["group"][7:]] = s["runs"]
    return f"{len(runs)} published measured runs (" + ", ".join(
        f"{n} {v}" for v, n in sorted(vendors.items(), key=lambda kv: -kv[1])) + ")"


def plan_only(f: Facts) -> str:
    """Every validation run given only its published plan, out of source (validate's
    published column), by vendor, beside leave-one-source-out with its settings columns."""
    g = {s["group"]: s for s in f.validate["summary"]}
    vendors = ", ".join(f"{k[7:]} {_pct(v['published_mae'], False)}" for k, v in g.items()
                        if k.startswith("vendor "))
    far = sum(abs(r["published_error"]) > 0.4 for r in f.validate["runs"])
    return (f"{_pct(g['all']['published_mae'], False)} over the {g['all']['runs']} runs "
            f"({vendors}; {far} beyond 40%), against {_pct(g['all']['loso_mae'], False)} with "
            "their settings columns")


def stacks_table(f: Facts) -> str:
    from moebench.inputs.stack import load_stack_spec

    lines = ["", "| stack family | chips | releases | fitted on | fitted parameters (90% "
                 "interval) | leave-one-source-out error |", "|---|---|---|---|---|---|"]
    fields = {"kernels.gemm_fraction": "GEMM", "kernels.attention_fraction": "attention",
              "host.op_us": "host µs/op", "collectives.bandwidth_fraction": "collectives"}
    params = {"gemm_fraction": "GEMM", "attention_fraction": "attention",
              "host_op_us": "host µs/op", "collective_fraction": "collectives"}
    for name in ("megatron-core-nvidia", "hai-llm", "meta-llama3", "megatron-deepspeed",
                 "mindspeed-llm", "primus-amd", "generic", "hardware-limit"):
        spec = load_stack_spec(name)
        fitted = []
        for dotted, label in fields.items():
            section, field = dotted.split(".")
            fig = getattr(getattr(spec, section), field)
            if fig.kind == "calibrated":
                fitted.append(f"{label} {fig.value:.3g} ({fig.low:.3g}-{fig.high:.3g})")
            elif "inherited" in fig.source:
                fitted.append(f"{label} {fig.value:.3g} inherited")
        for release in spec.releases_resolved.values():
            for param, fig in release.refit.items():
                fitted.append(f"{params.get(param, param)} {fig.value:.3g} "
                              f"({fig.low:.3g}-{fig.high:.3g}) for {release.name}")
        v = spec.validation
        runs = f"{v.runs} runs, {v.sources} sources" if v and v.runs else "no runs"
        err = (f"{100 * v.loso_mean_abs_error:.1f}% (target {100 * v.target:.0f}%)"
               if v and v.loso_mean_abs_error is not None else "-")
        rel = spec.releases_resolved
        span = (f"{len(rel)}: {next(iter(rel))} to {spec.release.name}" if len(rel) > 1
                else spec.release.name)
        lines.append(f"| {name} | {spec.vendor} | {span} | {runs} | "
                     f"{'; '.join(fitted) or 'none'} | {err} |")
    return "\n".join(lines) + "\n"


def sensitivity(f: Facts) -> str:
    parts = [f"{s['figure']} {100 * s['step_time_change']:+.1f}%"
             for s in f.explain["sensitivities"] if s["step_time_change"] is not None]
    return ", ".join(parts)


def explain_plan(f: Facts) -> str:
    from moebench.commands.shared.plan_text import plan_text

    e = f.explain["estimate"]
    return f"{plan_text(e['plan'])}, {e['step_time_s']:.1f} s per step"


def _outcome(est: dict[str, Any], name: str) -> dict[str, Any]:
    return next(o for o in [*est["strategies"], *est["alone"], est["apart"]]
                if o["configuration"] == name)


def mix_example(f: Facts) -> str:
    return (f"\n```bash\nmoebench estimate --model ling-plus --mix {MIX} --format markdown\n```"
            f"\n\n{f.mix_md.rstrip()}\n")


def mix_verdict(f: Facts) -> str:
    m = f.mix
    c = _outcome(m, m["chosen"])
    h, a, apart = (_outcome(m, "h800 alone"), _outcome(m, "ascend-910b alone"),
                   _outcome(m, "apart"))
    v = m["verdict"]
    fewer = 100 * (1 - v["days_vs_fastest_alone"])
    return (f"Mixed ({m['chosen']}), the 1,536 chips train the trillion tokens in "
            f"**{c['days']:.1f} days for {_m(c['cost'])} CNY**, against {h['days']:.1f} days "
            f"and {_m(h['cost'])} on the 512 H800s alone and {a['days']:.1f} days and "
            f"{_m(a['cost'])} on the 1,024 Ascend cards alone: {fewer:.0f}% "
            f"fewer days than the faster alone, at {v['cost_vs_cheapest_alone']:.2f}x the cost "
            f"of the cheaper alone. Run apart (two jobs sharing the tokens) the same chips "
            f"finish in {apart['days']:.1f} days for {_m(apart['cost'])}: the mix reaches "
            f"{100 * v['throughput_vs_apart']:.1f}% of that throughput and costs "
            f"{100 * (v['cost_vs_apart'] - 1):.0f}% more")


def mix_strategies(f: Facts) -> str:
    parts = []
    for o in f.mix["strategies"]:
        x = o["cross_type"]
        cross = (f"outer sync {x['outer_sync_s']:.0f} s every {x['sync_every_steps']} steps"
                 if o["configuration"] == "local-sgd"
                 else f"{x['exposed_s_per_step']:.2f} s of cross-type traffic per step")
        parts.append(f"{o['configuration']} {o['step_time_s']:.1f} s per step ({cross})")
    return "; ".join(parts)


def mix_sites(f: Facts) -> str:
    far = f.mix_far
    dp, ls = _outcome(far, "hetero-dp"), _outcome(far, "local-sgd")
    idle = [p["chip"] for p in dp["parts"] if p["idle"]]
    pp = _outcome(far, "hetero-pipeline")
    working = " and ".join(p["chip"] for p in dp["parts"] if not p["idle"])
    return (f"hetero-dp falls back to {working}"
            f" alone ({', '.join(idle)} idle: an FP32 gradient all-reduce over the WAN every "
            f"step costs more than {', '.join(idle)} adds), {dp['days']:.1f} days; the pipeline "
            f"takes {pp['days']:.1f} days; local SGD, synchronizing every "
            f"{ls['cross_type']['sync_every_steps']} steps, takes {ls['days']:.1f} days")


def h800_scaling(f: Facts) -> str:
    big = f.row(f.compare, "h800")
    small = _outcome(f.mix, "h800 alone")
    ratio = big["tokens_per_s_per_chip"] * big["num_chips"] / small["tokens_per_s"]
    return (f"{big['num_chips']:,} H800s {ratio:.2f}x as fast as {small['num_chips']} on "
            "Ling-Plus")


def pooled_memory(f: Facts) -> str:
    p = f.pooled
    pipe, apart = _outcome(p, "hetero-pipeline"), _outcome(p, "apart")
    h = _outcome(p, "h800 alone")["parts"][0]["plan"]
    part = next(x for x in pipe["parts"] if x["chip"] == "h800")["plan"]
    return (f"Mixtral 8x7B on {POOLED.replace('+', ' + ').replace(':', ' x ')}, without optimizer "
            f"or activation offload (which the pipeline does not model, and which buy memory "
            f"too): its "
            f"pipeline runs "
            f"{100 * (pipe['tokens_per_s'] / apart['tokens_per_s'] - 1):.1f}% above the types "
            f"apart: alone the H800s run {plan_text(h)}; beside the A100s they hold "
            f"{part['layers_per_stage']} layers per stage and run {plan_text(part)}")


def _missed(value: float, target: float) -> str:
    return f": **missed** by {100 * (value / target - 1):.0f}%" if value > target else ""


def speed(f: Facts) -> str:
    b = f.bench
    if b is None:
        return "\n(run `python scripts/bench.py --json docs/bench.json` first)\n"
    rss = b.get("rss_mib", {})
    return (f"\n- full DeepSeek-V3 search on 2,048 H800s: {b['candidates']:,} candidate plans, "
            f"{b['timed']:,} timed after exact pruning, **{b['search_ms']:.0f} ms**: "
            f"{b['candidates_per_s'] / 1e6:.2f} million candidates/s through the search; the "
            f"step model alone times {b['timed_plans_per_s'] / 1e6:.2f} million plans/s "
            f"(every candidate, unpruned)\n"
            f"- `moebench estimate` of that search, whole command with start-up, median of 5 runs: "
            f"**{b['estimate_cli_s']:.2f} s** with its modules' bytecode cached, as an installed "
            f"package runs after its first start (targets under 1 s"
            f"{_missed(b['estimate_cli_s'], 1)}, and under 2 s{_missed(b['estimate_cli_s'], 2)})"
            + (f"; {b['estimate_cli_nocache_s']:.2f} s where moebench's own modules are "
               f"compiled at every start (an editable install with PYTHONDONTWRITEBYTECODE set, "
               f"as on the machine measured)"
               if "estimate_cli_nocache_s" in b else "") + "\n"
            f"- `moebench compare` default scenario (6 chips), library call: "
            f"{b['compare_ms']:.0f} ms\n"
            f"- `moebench sweep` of {b['sweep_points']:,} points over 4 chips with `--workers 2`: "
            f"**{b['sweep_s']:.1f} s** (target under 30 s{_missed(b['sweep_s'], 30)})\n"
            + (f"- a two-type mix of {b['mix_chips']:,} chips (`estimate --model deepseek-v3 "
               f"--mix {b['mix']}`: every strategy, each type alone, apart), library call: "
               f"**{b['mix_s']:.2f} s** (target under 5 s{_missed(b['mix_s'], 5)}); whole command "
               f"{b['mix_cli_s']:.2f} s\n" if "mix_s" in b else "")
            + "- peak resident memory per command: "
            + ", ".join(f"{k} {v:.0f} MiB" for k, v in rss.items())
            + f" (target under 500 MiB{_missed(b['peak_mib'], 500)}); measured on a "
            f"{b['cpus']}-core {b['machine']} machine, Python {b['python']}\n")


GENERATORS: dict[str, Callable[[Facts], str]] = {
    "compare-table": compare_table, "ling-h800": ling_h800, "ling-h800-gap": ling_h800_gap,
    "ling-implied": ling_implied, "ling-ratios": ling_ratios, "dsv3": dsv3,
    "ascend-generations": ascend_generations,
    "moe-dense": moe_dense, "dsv3-published": dsv3_published,
    "dsv3-plan": dsv3_plan, "ascend-fit": ascend_fit,
    "nvidia-error": vendor_error("vendor NVIDIA"), "amd-error": vendor_error("vendor AMD"),
    "huawei-error": vendor_error("vendor Huawei"), "savings": savings,
    "ascend-break-even": ascend_break_even,
    "first-predictions": first_prediction_table, "sweep-table": sweep_table,
    "automodel-now": automodel_now, "gptoss-runs": gptoss_runs,
    "sweep-summary": sweep_summary, "coverage": coverage_line, "targets": targets,
    "physics-range": physics_range, "validation-summary": validation_summary,
    "memory-validation": memory_validation, "memory-targets": memory_targets,
    "validation-outliers": validation_outliers, "validation-count": validation_count,
    "validation-bounds": validation_bounds, "megatron-table": megatron_table,
    "baseline-now": baseline_now, "loss-fusion": loss_fusion,
    "layouts-given": layouts_given,
    "stacks-table": stacks_table, "sensitivity": sensitivity, "explain-plan": explain_plan,
    "speed": speed, "mix-example": mix_example, "mix-verdict": mix_verdict,
    "mix-strategies": mix_strategies, "mix-sites": mix_sites, "h800-scaling": h800_scaling,
    "pooled-memory": pooled_memory, "plan-only": plan_only,
}


def render(text: str, facts: Facts) -> str:
    unknown = {m.group(1) for m in MARK.finditer(text)} - set(GENERATORS)
    if unknown:
        raise SystemExit(f"make_readme: unknown generated parts {sorted(unknown)}")

    def fill(m: re.Match[str]) -> str:
        return f"<!-- gen:{m.group(1)} -->{GENERATORS[m.group(1)](facts)}<!-- /gen:{m.group(1)} -->"

    return MARK.sub(fill, text)


def plots() -> None:
    cli("compare", "--uncertainty", "500", "--plot", str(ROOT / "docs" / "compare.png"),
        "--output", "/dev/null")
    cli("sweep", "--chips", "h800,ascend-910b,mi300x,t-head-ppu,h20,a100", "--price-basis",
        "rental", "--vary", "num_chips=256,512,1024,2048,4096", "--vary", "seq_len=4096,8192",
        "--plot", str(ROOT / "docs" / "sweep.png"), "--output", "/dev/null")


def main() -> int:
    check = "--check" in sys.argv
    text = README.read_text(encoding="utf-8")
    new = render(text, Facts())
    if check:
        stale = [name for (name, old), (_, fresh) in zip(
            ((m.group(1), m.group(2)) for m in MARK.finditer(text)),
            ((m.group(1), m.group(2)) for m in MARK.finditer(new)), strict=True) if old != fresh]
        if stale:
            print(f"README.md is stale in: {', '.join(stale)}; run python scripts/make_readme.py")
            return 1
        print("README.md is up to date")
        return 0
    README.write_text(new, encoding="utf-8")
    plots()
    print("README.md and docs/*.png regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
