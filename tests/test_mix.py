"""Mixed-chip clusters: strategies, invariants against the homogeneous engine, links, inputs,
CLI and output shape."""

from __future__ import annotations

import functools
import json
from dataclasses import replace

import numpy as np
import pytest

from moebench.commands.compare.comparison import run_comparison
from moebench.commands.mix.cost import PaidType, mixed_economics
from moebench.commands.mix.estimate import estimate_mix
from moebench.commands.shared.options import apply_options
from moebench.commands.shared.pricing import economics
from moebench.engine.layout import EVEN
from moebench.engine.mix.links import COMMON, WAN, cross_link, group_allreduce_time
from moebench.engine.mix.search import search_mix
from moebench.engine.mix.shares import MixType, best_splits, share_curve
from moebench.engine.mix.stages import stage_table
from moebench.engine.plan import PlanRequest
from moebench.engine.search import TIE_BAND, search
from moebench.engine.step import memory_of
from moebench.errors import InputError
from moebench.inputs.catalog import catalog_dir
from moebench.inputs.fabric import load_fabric
from moebench.inputs.hardware import chip_with, load_chip, load_spec, nominal
from moebench.inputs.mix import parse_mix
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig
from moebench.inputs.scenario import load_scenario
from moebench.inputs.stack import load_stack_spec
from tests.conftest import stack_of

G = 8960
# The plan space every strategy shares: 1F1B, and any split of whole layers (a heterogeneous
# pipeline places layers by speed, so its types are compared on the same freedom).
REQUEST = PlanRequest(schedule="1f1b", pipeline_layout="balanced")
RUN = RunConfig(seq_len=4096, global_batch=G, expert_imbalance=1.15)


def mix_types(mix: str, run: RunConfig = RUN, **chip_changes) -> list[MixType]:
    """The engine's chip types of a mix string (not merged: a test may split one chip)."""
    out = []
    for part in mix.split("+"):
        name, count = part.split(":")
        chip = load_chip(name)
        if chip_changes:
            chip = chip_with(chip, **chip_changes)
        out.append(MixType(chip=chip, stack=stack_of(chip), count=int(count), run=run))
    return out


@functools.lru_cache(maxsize=16)
def searched(model: str, mix: str, big_memory: bool = False):
    changes = {"hbm_bytes": 1e15} if big_memory else {}
    return search_mix(load_model(model), mix_types(mix, **changes), REQUEST, load_fabric())


def scenario(**changes):
    return apply_options(load_scenario("ling-plus-1t"), **changes)


def tokens_per_s(step: float) -> float:
    return G * RUN.seq_len / step


def apart_tokens_per_s(found) -> float:
    return sum(tokens_per_s(float(a.steps.step_time[a.best])) for a in found.alone)


# --- a mix of one chip type is the homogeneous job --------------------------------------------


@pytest.mark.parametrize("mix", ["h800:1024", "h800:512+h800:512"])
def test_mix_of_one_chip_type_equals_the_homogeneous_result(mix):
    est = estimate_mix(scenario(), mix)
    row = next(r for r in run_comparison(scenario(chips=["h800"], num_chips=1024,
                                                  baseline="h800")).rows)
    chosen = est.chosen_outcome
    assert est.mix == "h800:1024" and est.chosen == "hetero-dp"
    assert chosen.num_chips == 1024
    assert chosen.step_time_s == row.step_time_s
    assert chosen.tokens_per_s_per_chip == pytest.approx(row.tokens_per_s_per_chip, rel=1e-12)
    for key in ("days", "chip_hours", "goodput", "cost", "energy_mwh", "mfu"):
        assert getattr(chosen, key) == pytest.approx(getattr(row, key), rel=1e-12), key
    assert chosen.parts[0]["plan"] == row.plan
    assert chosen.cross_type["exposed_s_per_step"] == 0.0
    assert {o.configuration: o.step_time_s for o in est.strategies}["hetero-pipeline"] is None


def test_mixed_economics_of_one_type_equals_the_single_chip_economics():
    sc = scenario()
    chip, spec = load_chip("ascend-910b"), load_spec(catalog_dir("hardware") / "ascend-910b.yaml")
    mixed = mixed_economics([PaidType(chip, spec, 1024, 3e10)], sc, 80.0)
    single = economics(chip, spec, sc, 1024, 80.0, 3e10, nominal)
    for key in ("days", "chip_hours", "goodput", "cost", "energy_mwh", "co2_tonnes"):
        assert mixed[key] == pytest.approx(float(single[key]), rel=1e-12), key


# --- a mix against its parts ------------------------------------------------------------------


@pytest.mark.parametrize(("model", "mix"), [
    ("ling-plus", "h800:512+ascend-910b:1024"), ("mixtral-8x7b", "h20:128+a100:64"),
    ("qwen3-30b-a3b", "h800:32+h20:64"), ("ling-plus", "h800:1024+t-head-ppu:256"),
])
def test_mix_never_exceeds_the_sum_of_its_parts(model, mix):
    found = searched(model, mix)
    apart = apart_tokens_per_s(found)
    for name, s in found.strategies.items():
        assert s.step_time_s is not None, name
        assert tokens_per_s(s.step_time_s) <= apart, name


@pytest.mark.parametrize(("model", "mix"), [
    ("qwen3-30b-a3b", "h800:8+a100:8"), ("ling-plus", "h800:512+ascend-910b:1024"),
    ("qwen3-30b-a3b", "h800:32+h20:64"), ("mixtral-8x7b", "h20:128+a100:64"),
])
def test_only_pooled_memory_lets_a_mix_beat_its_parts(model, mix):
    """With memory no constraint, no strategy beats the types apart (beyond the engine's tie
    band: a share of the batch can divide into micro-batches a little better than the whole
    batch). With real memory a pipeline may, by pooling memory; Qwen3-30B-A3B on 8 H800 + 8 A100
    does, by three quarters (alone, the H800s need four pipeline stages and the A100s eight at
    one or two sequences per micro-batch) when neither side offloads optimizer states or
    activations (the pipeline does not model offload, the other way to buy memory), and the
    output says why."""
    found = searched(model, mix, big_memory=True)
    apart = apart_tokens_per_s(found)
    for name, s in found.strategies.items():
        assert tokens_per_s(s.step_time_s) <= apart * (1 + TIE_BAND), name
    if mix == "h800:8+a100:8":
        real = search_mix(load_model(model), mix_types(mix),
                          replace(REQUEST, optimizer_offload=0.0, offload_modules=()),
                          load_fabric())
        assert tokens_per_s(real.strategies["hetero-pipeline"].step_time_s) > \
            apart_tokens_per_s(real)
        sc = scenario(models=[model])
        est = estimate_mix(sc.model_copy(update={"plan": sc.plan.model_copy(
            update={"optimizer_offload": 0.0, "offload_modules": []})}), mix)
        notes = est.outcome("hetero-pipeline").notes
        assert any("above the types apart: pooled memory" in n for n in notes)


def test_a_slower_type_never_lowers_data_parallel_throughput_below_the_faster_alone():
    # Eight Ascend cards cannot hold Ling-Plus at all: the split gives them no work.
    found = searched("ling-plus", "h800:1024+ascend-910b:8")
    dp, fast = found.strategies["hetero-dp"], found.alone[0]
    fast_step = float(fast.steps.step_time[fast.best])
    assert dp.step_time_s == fast_step
    assert [p.idle for p in dp.parts] == [False, True]
    assert dp.cross_s == 0.0
    # A slower type that can help gets work, and the step is shorter than the faster alone.
    for mix in ("h800:1024+t-head-ppu:256", "h800:512+ascend-910b:1024"):
        found = searched("ling-plus", mix)
        dp, fast = found.strategies["hetero-dp"], found.alone[0]
        assert dp.step_time_s < float(fast.steps.step_time[fast.best])
        assert all(p.sequences > 0 for p in dp.parts)
        assert sum(p.sequences for p in dp.parts) == G


def test_the_split_is_whole_micro_batches_and_balances_the_types():
    dp = searched("ling-plus", "h800:512+ascend-910b:1024").strategies["hetero-dp"]
    for p in dp.parts:
        assert p.sequences % (p.plan["dp"] * p.plan["micro_batch"]) == 0
        assert p.plan["num_micro_batches"] * p.plan["dp"] * p.plan["micro_batch"] == p.sequences
    steps = [p.step_time_s for p in dp.parts]
    # The faster type gets more of the batch, balanced within what whole micro-batches allow
    # (a part with 1,024-way data parallelism and micro-batch 4 moves 4,096 sequences at once,
    # and its plan can change with its share): no split nearby has a shorter slowest part.
    assert max(steps) / min(steps) < 1.10
    assert dp.parts[0].sequences > dp.parts[1].sequences  # H800s are faster in total
    from moebench.engine.mix.search import ExactShares

    types = mix_types("h800:512+ascend-910b:1024")
    exact = ExactShares(load_model("ling-plus"), types, REQUEST)
    g, chosen = types[0].run.global_batch, dp.parts[0].sequences
    for b in range(chosen - 256, chosen + 257, 16):
        s0, s1 = exact.step(0, b), exact.step(1, g - b)
        if s0 is not None and s1 is not None:
            assert max(s0, s1) >= max(steps) - 1e-9


# --- the share curves and the split -------------------------------------------------------------


@pytest.mark.parametrize("chip", ["h800", "ascend-910b"])
def test_share_curve_matches_the_engine_at_every_share_it_is_asked(chip):
    arch, t = load_model("ling-plus"), mix_types(f"{chip}:512")[0]
    curve = share_curve(arch, t, REQUEST, G)
    assert curve[0] == 0.0
    for b in (G, 5600, 4480, 2240, 1024):
        res = search(arch, t.chip, t.stack, RunConfig(seq_len=4096, global_batch=b,
                                                      expert_imbalance=1.15), 512, REQUEST)
        fastest = float(res.steps.step_time[res.steps.fits].min())
        assert curve[b] == pytest.approx(fastest, rel=1e-9), b


def test_best_split_of_two_linear_types():
    shares = np.arange(101, dtype=float)
    fast, slow = shares * 1.0, shares * 3.0  # seconds per sequence
    fast[0] = slow[0] = 0.0
    assert best_splits([fast, slow], 100, cross_s=0.0, limit=1) == [(75, 25)]
    three = best_splits([fast, slow, slow], 100, cross_s=0.0)
    assert three == [(60, 20, 20)]


# --- links: cross-type traffic never rides scale-up --------------------------------------------


def test_cross_type_traffic_never_rides_a_scale_up_link():
    fabric = load_fabric()
    chips = [load_chip("h800"), load_chip("ascend-910b")]
    faster_up = [chip_with(c, up_bw=c.up_bw * 100, up_latency=c.up_latency / 100,
                           up_domain=64) for c in chips]
    for wan in (False, True):
        assert cross_link(fabric, chips, wan) == cross_link(fabric, faster_up, wan)
    link = cross_link(fabric, chips, False)
    assert link.network == COMMON
    nic = min(c.out_bw for c in chips)  # 200GE on the Ascend side
    assert link.per_flow_bw == pytest.approx(min(nic, fabric.common_bw_per_chip)
                                             * fabric.common_eff)
    assert cross_link(fabric, chips, True).cap_bw == pytest.approx(fabric.wan_bw
                                                                   * fabric.wan_eff)
    # In a whole search: the cross-type all-reduce does not move when scale-up gets faster,
    # and every strategy names a cross-type network that is not a vendor link.
    arch = load_model("ling-plus")
    base = search_mix(arch, mix_types("h800:512+ascend-910b:1024"), REQUEST, fabric)
    fast = search_mix(arch, [MixType(chip=c, stack=t.stack, count=t.count, run=t.run)
                             for c, t in zip(faster_up, base.types, strict=True)],
                      REQUEST, fabric)
    assert base.strategies["hetero-dp"].cross_s == fast.strategies["hetero-dp"].cross_s
    assert {s.network for s in base.strategies.values()} == {COMMON, WAN}


def test_cross_type_reduction_follows_the_fabric():
    fabric = load_fabric()
    chips = [load_chip("h800"), load_chip("h100")]  # both 50 GB/s NICs
    link = cross_link(fabric, chips, False)
    t = group_allreduce_time(1e12, [512, 1024], link)
    # Two groups: each sends and receives the whole buffer over the smaller group's ports.
    expected = 1e12 / (512 * 50e9 * fabric.common_eff) + 2 * fabric.common_latency
    assert t == pytest.approx(expected)
    assert group_allreduce_time(1e12, [512], link) == 0.0


def test_separate_sites_put_synchronous_strategies_on_the_wan():
    arch = load_model("ling-plus")
    types = mix_types("h800:512+ascend-910b:1024")
    near = search_mix(arch, types, REQUEST, load_fabric())
    far = search_mix(arch, types, REQUEST, load_fabric(), placement="separate-sites")
    dp = far.strategies["hetero-dp"]
    assert dp.network == WAN
    # A 1.16 TB FP32 gradient over a 100 Gb/s WAN every step costs more than the Ascend cards
    # give: the split falls back to the H800s alone.
    wan_reduce = group_allreduce_time(1.16e12, [512, 1024], far.wan)
    assert wan_reduce > 50 * near.strategies["hetero-dp"].cross_s
    assert [p.idle for p in dp.parts] == [False, True]
    assert dp.step_time_s == float(far.alone[0].steps.step_time[far.alone[0].best])
    # Synchronising every 100 steps instead keeps both sites busy and wins.
    assert far.strategies["local-sgd"].step_time_s < dp.step_time_s
    assert far.strategies["hetero-pipeline"].network == WAN


# --- local SGD ----------------------------------------------------------------------------------


def test_local_sgd_moves_the_pseudo_gradient_every_h_steps():
    arch = load_model("ling-plus")
    types = mix_types("h800:512+ascend-910b:1024")
    fabric = load_fabric()
    every = {h: search_mix(arch, types, REQUEST, fabric, sync_every=h).strategies["local-sgd"]
             for h in (10, 100)}
    params = arch.params.total + arch.params.mtp
    assert every[100].cross_bytes == pytest.approx(params * fabric.sync_bytes_per_param / 100)
    assert every[10].cross_s == pytest.approx(10 * every[100].cross_s)
    assert every[10].step_time_s > every[100].step_time_s
    assert "outside the model" in every[100].details["convergence"]


# --- pipeline -----------------------------------------------------------------------------------


def test_pipeline_parts_fit_memory_and_hold_every_layer():
    found = searched("ling-plus", "h800:512+ascend-910b:1024")
    pp = found.strategies["hetero-pipeline"]
    assert sum(p.layers for p in pp.parts) == 88
    for p, t in zip(pp.parts, found.types, strict=True):
        assert 0 < p.memory_bytes <= t.chip.hbm_bytes
        assert p.plan["pp"] * p.plan["tp"] * p.plan["dp"] == t.count
        assert p.plan["layers_per_stage"] == -(-p.layers // p.plan["pp"])
    assert pp.parts[0].plan["dp"] == pp.parts[1].plan["dp"]  # one micro-batch flows through both
    assert pp.details["pipeline_stages"] == sum(p.plan["pp"] for p in pp.parts)


@pytest.mark.parametrize("model", ["ling-plus", "mixtral-8x7b"])
def test_stage_memory_rebuilds_the_engines_memory(model):
    arch, t = load_model(model), mix_types("h800:256")[0]
    table = stage_table(arch, t, REQUEST)
    # The mix places a part's layers evenly over its stages: the engine's even layout.
    even = replace(table.plans, layout=np.full(len(table.plans), EVEN))
    engine = memory_of(arch, t.chip, t.stack, t.run, even).total
    layers = table.plans.layers_per_stage(arch.spec.num_layers)
    pp = table.plans.pp.astype(float)
    flight = np.minimum(pp, table.micro_batches)
    per = layers * (table.state_per_layer + flight * table.act_per_layer) + table.working
    first = per + table.embed_state
    last = layers * (table.state_per_layer + table.act_per_layer) + table.working \
        + table.head_state + table.logits
    one = per + table.embed_state + table.head_state + table.logits
    mine = table.device_bytes(np.where(pp > 1, np.maximum(first, last), one))
    np.testing.assert_allclose(mine, engine, rtol=1e-9)


def test_plan_requests_reach_every_strategy_or_make_it_unavailable():
    """A sharding or virtual-stage request is honoured by the data-parallel parts; the
    pipeline, whose stage memory is ZeRO-1's and whose schedule is 1F1B, says it cannot rather
    than ignore it."""
    arch, types = load_model("ling-lite"), mix_types("h800:64+a100:64")
    zero3 = search_mix(arch, types, PlanRequest(sharding="zero-3"), load_fabric())
    assert {p.plan["sharding"] for p in zero3.strategies["hetero-dp"].parts} == {"zero-3"}
    assert "ZeRO-1" in zero3.strategies["hetero-pipeline"].reason
    vpp = search_mix(arch, types, PlanRequest(vpp=2), load_fabric())
    assert "1F1B with one virtual stage" in vpp.strategies["hetero-pipeline"].reason
    assert all(p.plan["vpp"] == 2 for p in vpp.strategies["hetero-dp"].parts)
    # A schedule the types' stack releases lack is refused in one line, not ignored.
    with pytest.raises(InputError, match="does not implement zb1p"):
        search_mix(arch, types, PlanRequest(schedule="zb1p"), load_fabric())


# --- inputs: precision, mix strings, scenarios --------------------------------------------------


def test_fp8_only_where_every_chip_type_has_it():
    assert estimate_mix(scenario(precision="auto"), "h800:64+h100:64").precision == "fp8"
    assert estimate_mix(scenario(precision="auto"), "h800:64+a100:64").precision == "bf16"
    with pytest.raises(InputError, match="ascend-910b has none"):
        estimate_mix(scenario(precision="fp8"), "h800:512+ascend-910b:1024")


def test_each_type_runs_its_own_default_stack():
    est = estimate_mix(scenario(), "h800:512+ascend-910b:1024")
    assert {t["chip"]: t["stack"] for t in est.types} == {
        "h800": load_stack_spec("megatron-core-nvidia").label,
        "ascend-910b": load_stack_spec("mindspeed-llm").label}


@pytest.mark.parametrize(("text", "message"), [
    ("h800:abc", "whole number"), ("h800:0", "at least 1"), ("h800", "CHIP:COUNT"),
    ("h800:8+", "CHIP:COUNT"), ("", "empty"),
])
def test_bad_mix_strings_are_refused(text, message):
    with pytest.raises(InputError, match=message):
        parse_mix(text)


@pytest.mark.parametrize("command", [["estimate", "--model", "ling-plus", "--chips"],
                                     ["estimate", "--model", "ling-plus", "--mix"],
                                     ["compare", "--mix"]])
@pytest.mark.parametrize("bad", ["h800:abc", "nochip:8", "h800:0"])
def test_bad_mix_is_one_line_and_exit_2(cli, command, bad):
    result = cli(*command, bad)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    assert ("nochip" in lines[0]) == (bad == "nochip:8")


def test_mix_refuses_options_it_cannot_honour(cli):
    for extra in (["--num-chips", "8"], ["--stack", "generic"], ["--optimizer-states", "bf16"]):
        r = cli("estimate", "--model", "ling-plus", "--mix", "h800:8+a100:8", *extra)
        assert r.exit_code == 2 and "mixed cluster" in r.output
    r = cli("estimate", "--model", "ling-plus", "--chip", "h800", "--fabric", "x")
    assert r.exit_code == 2 and "only with a mixed cluster" in r.output


def test_overrides_reach_the_mix_chip_they_name(cli):
    base = estimate_mix(scenario(), "h800:512+ascend-910b:1024")
    slower = estimate_mix(scenario(), "h800:512+ascend-910b:1024",
                          {"ascend-910b": {"compute.bf16_dense_tflops": "188"}})
    assert slower.outcome("hetero-dp").step_time_s > base.outcome("hetero-dp").step_time_s
    assert slower.alone[0].step_time_s == base.alone[0].step_time_s  # the H800s untouched
    r = cli("estimate", "--model", "ling-plus", "--mix", "h800:8+a100:8", "--set",
            "h20:scale_out.bandwidth_gb_per_s=100")
    assert r.exit_code == 2 and "not in the mix" in r.output
    r = cli("compare", "--chips", "h800,h20", "--mix", "h800:512+ascend-910b:1024", "--set",
            "h20:scale_out.bandwidth_gb_per_s=100", "--format", "csv")
    assert r.exit_code == 0, r.output


def test_scenario_mixes_are_validated_and_compared(tmp_path, cli):
    text = (catalog_dir("scenarios") / "ling-plus-1t.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "mixes: ['h800:lots']\n")
    r = cli("compare", "--scenario", str(bad))
    assert r.exit_code == 2 and "mixes" in r.output and "whole number" in r.output
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("chips: [h800, ascend-910b, mi300x, t-head-ppu, h20, a100]",
                                 "chips: [h800, ascend-910b]")
                    + "mixes: ['h800:512+ascend-910b:1024']\n"
                    + "mix_options: {sync_every_steps: 50}\n")
    r = cli("compare", "--scenario", str(good), "--format", "json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)["rows"]
    mixed = rows[-1]
    assert mixed["entry"] == "h800:512+ascend-910b:1024" and mixed["num_chips"] == 1536
    assert rows[0]["mix"] is None
    assert mixed["mix"]["strategy"] in ("hetero-dp", "hetero-pipeline")
    assert mixed["mix"]["assumptions"]["sync_every_steps"] == 50
    assert mixed["cost_ratio"] == pytest.approx(mixed["cost"] / rows[0]["cost"])
    assert mixed["stack"] == (f"{load_stack_spec('megatron-core-nvidia').label}+"
                              f"{load_stack_spec('mindspeed-llm').label}")


# --- output -------------------------------------------------------------------------------------


MIX_KEYS = {"mix", "model", "precision", "seq_len", "global_batch", "tokens", "currency",
            "price_basis", "types", "chosen", "choice", "strategies", "alone", "apart",
            "verdict", "assumptions", "search_seconds"}
OUTCOME_KEYS = {"configuration", "kind", "num_chips", "status", "step_time_s", "tokens_per_s",
                "tokens_per_s_per_chip", "mfu", "mfu_bf16", "days", "chip_hours", "goodput",
                "cost", "energy_mwh", "co2_tonnes", "parts", "cross_type", "notes"}


def test_estimate_mix_json_shape_and_verdict(cli):
    r = cli("estimate", "--model", "ling-plus", "--mix", "h800:512+ascend-910b:1024",
            "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out) == MIX_KEYS
    names = [s["configuration"] for s in out["strategies"]]
    assert names == ["hetero-dp", "hetero-pipeline", "local-sgd"]
    for o in [*out["strategies"], *out["alone"], out["apart"]]:
        assert set(o) == OUTCOME_KEYS
    chosen = next(s for s in out["strategies"] if s["configuration"] == out["chosen"])
    alone = {a["configuration"]: a for a in out["alone"]}
    v = out["verdict"]
    assert v["days_vs_fastest_alone"] == pytest.approx(
        chosen["days"] / alone["h800 alone"]["days"])
    assert v["throughput_vs_apart"] == pytest.approx(
        chosen["tokens_per_s"] / out["apart"]["tokens_per_s"])
    assert out["apart"]["tokens_per_s"] == pytest.approx(
        sum(a["tokens_per_s"] for a in out["alone"]))
    assert chosen["cost"] == pytest.approx(sum(
        p["count"] * {"h800": 27.5, "ascend-910b": 7.0}[p["chip"]] for p in chosen["parts"])
        * chosen["days"] * 24)
    # The same mix given as --chips gives the same answer.
    again = cli("estimate", "--model", "ling-plus", "--chips", "h800:512+ascend-910b:1024",
                "--format", "json")
    assert json.loads(again.output)["strategies"] == out["strategies"]


def test_estimate_mix_table_names_every_strategy(cli):
    r = cli("estimate", "--model", "ling-plus", "--mix", "h800:512+ascend-910b:1024",
            "--format", "markdown")
    assert r.exit_code == 0
    for word in ("hetero-dp", "hetero-pipeline", "local-sgd", "h800 alone",
                 "ascend-910b alone", "apart", "(chosen)", "verdict:", "outside the model",
                 "never scale-up links"):
        assert word in r.output, word



def test_chip_counts_print_whole_beside_unavailable_strategies(cli):
    """One chip type given twice merges (h800:16): the two-type strategies are unavailable,
    and the chips column still prints 16, right-aligned like the other numbers, not 16.0."""
    r = cli("estimate", "--model", "ling-lite", "--mix", "h800:8+h800:8")
    assert r.exit_code == 0, r.output
    rows = [ln for ln in r.output.splitlines() if ln.startswith("│")]
    chips = {ln.split("│")[1].strip(): ln.split("│")[2] for ln in rows}
    assert chips["hetero-dp (chosen)"].strip() == "16" and chips["h800 alone"].strip() == "16"
    assert chips["h800 alone"].endswith("16 ")  # right-aligned in its cell
    assert chips["hetero-pipeline"].strip() == "-"

def test_stage_headroom_by_hand():
    """An 80 GiB device, 3 GiB reserve, the allocator holding 5.7% over live tensors typically
    and 21.1% at the top of its measured range: 60 GiB of live tensors would take
    60 x 1.211 + 3 = 75.7 GiB at the top, and keep the headroom; 65 GiB fit (71.7 GiB at the
    typical hold) but would take 81.7 GiB at the top: tight."""
    gib = 2.0 ** 30
    table = replace(stage_table(load_model("mixtral-8x7b"), mix_types("h800:64")[0], REQUEST),
                    hbm=80 * gib, reserve=3 * gib, fragmentation=0.057,
                    fragmentation_high=0.211)
    assert table.keeps_headroom(60 * gib) and not table.keeps_headroom(65 * gib)
    assert table.device_bytes(65 * gib) / gib == pytest.approx(65 * 1.057 + 3)


def test_the_pipeline_keeps_the_headroom_where_a_split_does(monkeypatch):
    """Ling-Plus on 256 H800 + 256 H20: the fastest split fits its stages only at
    Megatron-Core's typical allocator hold; a slower one keeps the measured headroom on both
    types, and is taken, as the engine's search takes such a plan where it chooses the layout
    (a mix's split always is chosen). With the headroom test switched off, speed alone decides
    and the fastest split comes back."""
    from moebench.engine.mix.stages import StageTable

    def flags(s):  # the flag is the memory each part reports, at the high hold
        out = []
        for p, t in zip(s.parts, types, strict=True):
            live = (p.memory_bytes - float(t.stack.reserve_bytes)) / (1 + t.stack.fragmentation)
            high = live * (1 + t.stack.fragmentation_high) + float(t.stack.reserve_bytes)
            out.append(high <= t.chip.hbm_bytes)
        return out

    arch, types = load_model("ling-plus"), mix_types("h800:256+h20:256")
    chosen = search_mix(arch, types, REQUEST, load_fabric()).strategies["hetero-pipeline"]
    assert [p.keeps_headroom for p in chosen.parts] == flags(chosen) == [True, True]
    monkeypatch.setattr(StageTable, "keeps_headroom", lambda self, live: live == live)
    fastest = search_mix(arch, types, REQUEST, load_fabric()).strategies["hetero-pipeline"]
    assert not all(flags(fastest))
    assert fastest.step_time_s < chosen.step_time_s
