"""Issue 11: answers a reader can trust (one price basis, MFU against the precision used,
honest deadlines, distinct names, titles from the inputs) and errors a CI job can rely on."""

from __future__ import annotations

import io
import json
import re
import shutil
from csv import DictReader
from pathlib import Path

import pytest
from typer.testing import CliRunner

from moebench.cli import app
from moebench.commands.compare.deadline import SizedRun, octave_sizes, search_deadline
from moebench.inputs import catalog
from moebench.inputs.stack import load_stack_spec

H800_YAML = catalog.catalog_dir("hardware") / "h800.yaml"


def rows(cli, *args: str) -> list[dict]:
    result = cli("compare", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["rows"]


# --- one price basis per table ---------------------------------------------------------------

def test_ling_basis_leaves_a_chip_without_a_ling_price_unpriced_and_says_why(cli):
    out = {r["entry"]: r for r in rows(cli, "--chips", "h800,mi300x")}
    assert {r["price_basis"] for r in out.values()} == {"ling"}
    mi = out["mi300x"]
    assert mi["days"] is not None and mi["cost"] is None and mi["cost_ratio"] is None
    assert "Ling" in mi["price_source"] and "no price" in mi["status"]
    # The H800 keeps its Ling fair cost (27.5 CNY/h, Ling report table) and ratio 1.
    assert out["h800"]["price_per_chip_hour"] == 27.5 and out["h800"]["cost_ratio"] == 1.0


def test_rental_basis_prices_every_chip_from_its_own_profile(cli):
    out = {r["entry"]: r for r in rows(cli, "--chips", "h800,mi300x", "--price-basis", "rental",
                                       "--currency", "USD")}
    for r in out.values():
        assert r["price_basis"] == "rental" and r["cost"] is not None
    ratio = out["mi300x"]["cost"] / out["h800"]["cost"]
    assert out["mi300x"]["cost_ratio"] == pytest.approx(ratio)
    # Ling price is not used on the rental basis: H800's price is its rental, not 27.5 CNY.
    assert out["h800"]["price_per_chip_hour"] != pytest.approx(27.5 / 7.2)


def test_a_price_the_basis_never_reads_is_refused(cli):
    result = cli("compare", "--chips", "h800", "--set", "h800:price.rental_per_chip_hour=1")
    assert result.exit_code == 2
    assert "ling" in result.output and "--price-basis rental" in result.output


def test_a_copied_profile_warns_about_its_inherited_ling_price(cli, tmp_path):
    copy = tmp_path / "my-chip.yaml"
    copy.write_text(H800_YAML.read_text().replace("name: h800", "name: my-chip", 1))
    result = cli("profiles", "check", str(copy))
    assert result.exit_code == 0
    assert "ling_device" in result.output and "delete ling_device" in result.output
    assert cli("profiles", "check", "--strict", str(copy)).exit_code == 2
    warned = json.loads(cli("compare", "--chips", f"h800,{copy}", "-f", "json").output)
    assert any("ling_device" in w for w in warned["assumptions"]["warnings"])


def test_profiles_check_catches_a_unit_slip(cli, tmp_path):
    slip = tmp_path / "slip.yaml"
    text = H800_YAML.read_text().replace("name: h800", "name: slip", 1)
    text = text.replace("hbm_bandwidth_tb_per_s: {value: 3.35", "hbm_bandwidth_tb_per_s: "
                        "{value: 3350")
    slip.write_text(text)
    result = cli("profiles", "check", str(slip))
    assert "memory.hbm_bandwidth_tb_per_s: 3350 is outside the plausible 0.2-60 TB/s" in (
        result.output)
    assert cli("profiles", "check", "--strict").exit_code == 0  # shipped profiles are clean


# --- MFU against the precision used ------------------------------------------------------------

def test_mfu_is_against_the_peak_of_the_rows_precision(cli):
    out = {r["entry"]: r for r in rows(cli, "--chips", "h800,h20,a100", "--precision", "auto")}
    assert out["h20"]["precision"] == "fp8" and out["a100"]["precision"] == "bf16"
    for r in out.values():
        assert 0 < r["mfu"] <= 1
    # FP8 peak is twice the BF16 peak on Hopper (datasheets), so MFU is exactly half.
    assert out["h20"]["mfu_bf16"] == pytest.approx(2 * out["h20"]["mfu"])
    assert out["a100"]["mfu_bf16"] == pytest.approx(out["a100"]["mfu"])


# --- deadlines ---------------------------------------------------------------------------------

def _sized(days: dict[int, float], cost: dict[int, float]):
    def size_run(n: int) -> SizedRun | None:
        return SizedRun(n, None, days[n], cost[n]) if n in days else None  # type: ignore[arg-type]
    return size_run


def test_deadline_search_returns_the_cheapest_size_that_meets_it():
    sizes = octave_sizes(8, 1, 64)
    assert 8 * 3 in sizes and 8 * 6 in sizes  # not only powers of two
    days = {n: 1000 / n for n in sizes}
    cost = {n: 100 + n for n in sizes}
    best, met = search_deadline(8, 20, _sized(days, cost))
    # 1000/n <= 20 needs n >= 50: the smallest grid size above is 8*7=56 (quarter octave of 48).
    assert met and best.num_chips == min(n for n in days if days[n] <= 20)


def test_deadline_missed_returns_the_fastest_size_not_the_largest():
    sizes = octave_sizes(8, 1, 4096)
    # Goodput collapses at scale: days fall until 256 chips, then rise.
    days = {n: 10 + abs(n - 256) / 64 for n in sizes}
    best, met = search_deadline(8, 2, _sized(days, {n: float(n) for n in sizes}))
    assert not met and best.num_chips == 256


def test_compare_marks_a_missed_deadline_and_states_it(cli):
    result = cli("compare", "--chips", "h800,t-head-ppu", "--deadline-days", "2", "-f", "json")
    out = json.loads(result.output)
    assert out["assumptions"]["deadline_days"] == 2.0
    ppu = next(r for r in out["rows"] if r["entry"] == "t-head-ppu")
    assert ppu["days"] > 2 and ppu["status"].startswith("deadline missed")
    h800 = next(r for r in out["rows"] if r["entry"] == "h800")
    assert h800["days"] <= 2 and h800["status"] == "ok"
    assert "meeting 2 days" in out["title"]


# --- names, titles, scenario reproduction ------------------------------------------------------

def test_two_hf_configs_of_one_type_keep_their_own_names(cli, tmp_path):
    from test_hf_config import CONFIGS

    for name in ("alpha", "beta"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(CONFIGS["qwen2_moe"]))
    out = rows(cli, "--chips", "h800", "--num-chips", "64", "--model",
               f"{tmp_path / 'alpha' / 'config.json'},{tmp_path / 'beta' / 'config.json'}")
    assert sorted(r["model"] for r in out) == ["alpha", "beta"]
    # Each model's ratio is against its own baseline row.
    assert [r["cost_ratio"] for r in out] == [1.0, 1.0]


def test_a_multimodal_wrapper_config_reads_its_text_config(tmp_path):
    from test_hf_config import CONFIGS

    from moebench.inputs.model import load_model

    inner = load_model(str(_write_json(tmp_path / "a", CONFIGS["mixtral"]))).params.total
    wrapped = {"model_type": "llava", "text_config": CONFIGS["mixtral"]}
    assert load_model(str(_write_json(tmp_path / "b", wrapped))).params.total == inner


def _write_json(folder: Path, data: dict) -> Path:
    folder.mkdir()
    path = folder / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_two_hardware_files_with_one_name_are_refused(cli, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(H800_YAML, tmp_path / folder / "h800.yaml")
    result = cli("compare", "--chips", f"{tmp_path / 'a' / 'h800.yaml'},"
                 f"{tmp_path / 'b' / 'h800.yaml'}")
    assert result.exit_code == 2
    assert "distinct names" in result.output and len(result.output.strip().splitlines()) == 1


def test_title_follows_the_inputs(cli):
    result = cli("compare", "--model", "qwen3-30b-a3b", "--chips", "h800,a100", "--tokens",
                 "500B", "--price-basis", "rental", "--num-chips", "64", "-f", "json")
    title = json.loads(result.output)["title"]
    assert title.startswith("qwen3-30b-a3b on 500 billion tokens")
    assert "64 chips each" in title and "rental prices" in title and "Ling-Plus" not in title


def test_estimate_with_the_scenario_reproduces_the_compare_row(cli):
    row = rows(cli, "--chips", "ascend-910b")[0]
    est = json.loads(cli("estimate", "--scenario", "ling-plus-1t", "--chip", "ascend-910b",
                         "-f", "json").output)
    assert est["step_time_s"] == pytest.approx(row["step_time_s"], rel=1e-9)
    assert est["plan"]["pp"] == row["plan"]["pp"] and est["plan"]["ep"] == row["plan"]["ep"]


ASCEND = load_stack_spec("mindspeed-llm").label


def _ascend_stack_copy(tmp_path, name, *subs):
    """The shipped mindspeed-llm stack written to ``tmp_path/name`` with each regex
    substitution (pattern, replacement) applied once."""
    text = catalog.resolve("stacks", "mindspeed-llm", "--stack").read_text(encoding="utf-8")
    for pattern, replacement in subs:
        text, done = re.subn(pattern, replacement, text, count=1, flags=re.MULTILINE)
        assert done == 1, pattern
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_stack_above_its_validation_target_is_marked_in_the_table(cli, tmp_path):
    worse = _ascend_stack_copy(tmp_path, "worse.yaml",
                               (r"loso_mean_abs_error: [\d.]+", "loso_mean_abs_error: 0.25"))
    chips = f"h800,ascend-910b:{worse}"
    text = cli("compare", "--chips", chips, "-f", "markdown").output
    assert f"| ascend-910b:{worse}* |" in text
    assert f"* {ASCEND}: predictions are off by 25%" in text
    # The shipped stack is marked exactly when its out-of-source error is above its target.
    v = load_stack_spec("mindspeed-llm").validation
    marked = "ascend-910b*" in cli("compare", "--chips", "h800,ascend-910b").output
    assert marked == (v.loso_mean_abs_error > v.target)
    csv = cli("compare", "--chips", chips, "-f", "csv").output
    # The data keeps the chip's name clean and the caveat in its own column.
    rows = list(DictReader(io.StringIO(csv)))
    assert rows[1]["chip"] == f"ascend-910b:{worse}" and rows[1]["validation_caveat"] == "*"


def test_the_footer_gives_each_stacks_validation_error(cli, tmp_path):
    """Each row's stack is named with its leave-one-out error and run count, from the stack's
    validation summary (here a copy that says 12.3% over 7 runs), or 'no measured runs'."""
    mine = _ascend_stack_copy(tmp_path, "mine.yaml",
                              (r"loso_mean_abs_error: [\d.]+", "loso_mean_abs_error: 0.123"),
                              (r"validation: \{runs: \d+", "validation: {runs: 7"))
    out = cli("compare", "--chips", f"h800,ascend-910b:{mine},t-head-ppu", "-f", "markdown").output
    assert f"ascend-910b:{mine} {ASCEND} (12% mean error over 7 runs" in out
    # A fitted figure on a bound is named beside the error (the copy keeps the shipped list).
    pinned = load_stack_spec("mindspeed-llm").validation.pinned
    assert all(p in out for p in pinned)
    assert f"t-head-ppu {load_stack_spec('generic').label} (no measured runs)" in out


def test_compare_reads_the_caveat_of_a_stack_given_as_a_file(cli, tmp_path):
    """A stack file whose name the catalog does not know: its own validation summary decides
    the mark (this once failed at render time, looking the name up in the catalog)."""
    mine = _ascend_stack_copy(tmp_path, "mine.yaml",
                              (r"^name: mindspeed-llm$", "name: mine"))
    result = cli("compare", "--chips", f"h800,ascend-910b:{mine}", "-f", "csv")
    assert result.exit_code == 0, result.output
    assert f"\nascend-910b:{mine}," in result.output


# --- CI-grade errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ("compare", "--chips", "h800", "--set", "mi999:compute.bf16_dense_tflops=1"),
    ("sweep", "--chips", "h800", "--vary", "compute.bogus=1"),
    ("sweep", "--chips", "h800", "--vary", "expert_imbalance=0.5"),
    ("sweep", "--chips", "h800", "--vary", "num_chips=8", "--dask-scheduler", "garbage"),
    ("estimate", "-m", "ling-plus", "-c", "h800", "-n", "abc"),
    ("compare", "--format", "xml"),
    ("estimate", "-m", "ling-plus", "-c", "h800", "-n", "64", "--expert-imbalance", "100"),
])
def test_typos_and_bad_values_exit_2_on_one_line(cli, args):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output


def test_imbalance_message_says_what_is_allowed(cli):
    out = cli("estimate", "-m", "ling-plus", "-c", "h800", "-n", "64", "--expert-imbalance",
              "0.5").output
    assert "at least 1" in out or ">= 1" in out


def test_sweep_accepts_token_units(cli):
    out = json.loads(cli("sweep", "--chips", "h800", "--vary", "num_chips=256", "--vary",
                         "tokens=1T,500B", "-f", "json").output)
    assert out["varied"] == {"num_chips": [256], "tokens": [1e12, 5e11]}
    out = out["rows"]
    assert [r["tokens"] for r in out] == [1e12, 5e11]
    assert out[0]["days"] == pytest.approx(2 * out[1]["days"])


def test_no_plan_fits_names_the_need_and_a_cluster_that_fits(cli):
    result = cli("estimate", "-m", "deepseek-v3", "-c", "h800", "-n", "16")
    assert result.exit_code == 2
    line = result.output.strip()
    assert "GiB" in line and "chips" in line and "smallest" in line


# --- output that fits --------------------------------------------------------------------------

@pytest.mark.parametrize("suffix,check", [
    (".csv", lambda p: p.read_text().startswith("chip,num_chips,precision,plan")),
    (".json", lambda p: json.loads(p.read_text())["rows"][0]["num_chips"] == 64),
    (".md", lambda p: p.read_text().startswith("### ")),
    (".parquet", lambda p: __import__("pandas").read_parquet(p)["num_chips"].iloc[0] == 64),
])
def test_output_format_follows_the_extension(cli, tmp_path, suffix, check):
    path = tmp_path / f"out{suffix}"
    result = cli("compare", "--chips", "h800", "--num-chips", "64", "--output", str(path))
    assert result.exit_code == 0, result.output
    written = {".md": "markdown"}.get(suffix, suffix[1:])
    assert result.output.strip() == f"wrote {path}: 1 rows as {written}"
    assert check(path)


@pytest.mark.parametrize("args", [
    ("estimate", "-m", "qwen3-30b-a3b", "-c", "h800", "-n", "64"),
    ("sweep", "--chips", "h800", "--vary", "num_chips=64,128"),
    ("profiles", "list"),
    ("models", "list"),
])
def test_every_command_writes_by_extension_with_a_one_line_summary(cli, tmp_path, args):
    path = tmp_path / "out.json"
    result = cli(*args, "-o", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and result.output.startswith(f"wrote {path}")
    json.loads(path.read_text())


def test_json_and_csv_carry_numbers_as_numbers(cli):
    out = json.loads(cli("compare", "--chips", "h800", "--num-chips", "64", "-f", "json").output)
    a, r = out["assumptions"], out["rows"][0]
    assert isinstance(a["seq_len"], int) and isinstance(r["num_chips"], int)
    import io

    import pandas as pd

    sweep = pd.read_csv(io.StringIO(cli("sweep", "--chips", "h800", "--vary",
                                        "num_chips=64,128", "-f", "csv").output))
    compare = pd.read_csv(io.StringIO(cli("compare", "--chips", "h800", "--num-chips", "64",
                                          "-f", "csv").output))
    assert sweep["num_chips"].dtype.kind == "i" and compare["num_chips"].dtype.kind == "i"
    shared = {"chip", "num_chips", "plan", "step_time_s", "tokens_per_s_per_chip", "mfu",
              "memory_gib_per_chip", "days", "chip_hours", "goodput", "cost", "currency"}
    assert shared <= set(sweep.columns) and shared <= set(compare.columns)


def _narrow(*args: str, columns: int) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": str(columns)},
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_an_80_column_terminal_never_cuts_a_number(cli):
    data = rows(cli)
    text = _narrow("compare", columns=80)
    assert max(len(line) for line in text.splitlines()) <= 80
    for r in data:
        if r["cost"] is not None:
            assert f"{r['cost']:,.0f}" in text  # whole, on one line
    assert "left out for width" in text


def test_a_very_narrow_terminal_folds_to_a_vertical_layout(cli):
    cost = rows(cli, "--chips", "h800")[0]["cost"]
    text = _narrow("compare", "--chips", "h800", columns=40)
    assert max(len(line) for line in text.splitlines()) <= 40
    assert "cost CNY" in text and f"{cost:,.0f}" in text


def test_plots_draw_error_bars_and_small_multiples(tmp_path):
    pytest.importorskip("matplotlib")
    import pandas as pd

    from moebench.commands.shared.plots import MAX_SERIES_PER_PANEL, plot_comparison, plot_sweep

    rows_ = [{"model": "m", "entry": c, "cost": 2e6, "days": 10.0,
              "intervals": {"cost": (1.5e6, 3e6), "days": (8.0, 14.0)}} for c in "ab"]
    rows_.append({"model": "m", "entry": "c", "cost": None, "days": 5.0, "intervals": {}})
    fig = plot_comparison(rows_, "a", "CNY", "t", tmp_path / "c.png")
    cost_ax = fig.axes[0]
    assert len(cost_ax.containers) == 2  # the bars and their error bars
    assert any(t.get_text() == "no price" for t in cost_ax.texts)
    n = MAX_SERIES_PER_PANEL + 2
    df = pd.DataFrame([{"model": "m", "chip": f"chip{i}", "num_chips": k, "currency": "CNY",
                        "cost_per_1e12_tokens": 1e6 * (i + k / 64)}
                       for i in range(n) for k in (64, 128)])
    df.attrs["varied"] = ["num_chips"]
    fig = plot_sweep(df, "num_chips", "cost_per_1e12_tokens", "t", tmp_path / "s.png")
    assert sum(ax.get_visible() for ax in fig.axes) == n  # one panel per chip
    assert (tmp_path / "s.png").stat().st_size > 0


def test_explain_says_why_a_plan_departs_from_common_practice(cli):
    out = json.loads(cli("explain", "--model", "ling-plus", "--chip", "ascend-910b",
                         "--num-chips", "1024", "--global-batch", "8960", "--cp", "4",
                         "--format", "json").output)
    assert out["estimate"]["plan"]["cp"] == 4
    cp_note = next(u for u in out["unusual"] if u.startswith("context parallelism (CP4)"))
    # A fixed CP leaves no plan without CP in the search, and the note says so.
    assert "no valid plan without CP" in cp_note
