"""Optimizer-state CPU offload (Megatron-Core --optimizer-cpu-offload): host figures in the
hardware profiles, memory and host bytes, the step's host side against hand-computed cases, the
exact search bound against brute force, flags and bad input."""

import json
from dataclasses import replace

import numpy as np
import pytest

from moebench.engine.context import build_context
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.search import TIE_BAND, choose_plan, search
from moebench.engine.state import stage_params
from moebench.engine.step import evaluate, memory_of
from moebench.engine.terms.data_parallel import (
    OffloadTimes,
    offload_never_faster,
    optimizer_step_bytes,
)
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import chip_with, load_chip, load_spec
from moebench.inputs.model import load_model
from moebench.inputs.plausible import implausible_figures
from moebench.inputs.run import RunConfig
from moebench.inputs.stack import load_stack_spec
from tests.conftest import assert_search_equals_brute_force, stack_of

RUN = RunConfig(seq_len=128, global_batch=64)
ONE_PLAN = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute="none",
                schedule="1f1b", sharding="zero-1")


def _one(arch, chip, n, offload, run=RUN, **fixed):
    plans, _ = candidate_plans(arch, chip, run, n,
                               PlanRequest(**{**ONE_PLAN, **fixed}, optimizer_offload=offload))
    assert len(plans) == 1
    return plans


def test_h100_host_figures_in_base_units():
    chip = load_chip("h100")
    assert chip.host_bw == pytest.approx(64e9)  # PCIe Gen5 x16, one direction
    assert chip.host_link_eff == pytest.approx(0.8)
    assert chip.host_dram == pytest.approx(256e9)  # DGX H100: 2 TB / 8
    assert chip.host_adam == pytest.approx(1.4e9)
    assert load_chip("a100").host_bw == pytest.approx(32e9)  # PCIe Gen4 x16
    assert load_chip("gb200").host_bw == pytest.approx(225e9)  # NVLink-C2C share


def test_every_catalog_profile_has_a_sourced_host_section():
    for name in catalog.catalog_names("hardware"):
        spec = load_spec(catalog.resolve("hardware", name, "--chip"))
        assert spec.host is not None, name
        for field in ("link_bandwidth_gb_per_s", "link_efficiency", "dram_per_chip_gb",
                      "adam_gparams_per_s"):
            fig = getattr(spec.host, field)
            assert len(fig.source) > 20, (name, field)
            assert fig.kind == "datasheet" or fig.low is not None, (name, field)
        assert implausible_figures(spec, name) == []


def test_host_section_rejects_unknown_keys_and_bad_values(tmp_path, cli):
    text = (catalog.resolve("hardware", "h100", "--chip")).read_text()
    bad = tmp_path / "typo.yaml"
    bad.write_text(text.replace("  dram_per_chip_gb:", "  dram_gb:"))
    result = cli("profiles", "check", str(bad))
    assert result.exit_code == 2
    assert "host.dram_gb: unknown field" in result.output
    assert "host.dram_per_chip_gb: required field" in result.output
    neg = tmp_path / "neg.yaml"
    neg.write_text(text.replace("link_bandwidth_gb_per_s: {value: 64,",
                                "link_bandwidth_gb_per_s: {value: -64,"))
    result = cli("profiles", "check", str(neg))
    assert result.exit_code == 2 and "link_bandwidth_gb_per_s" in result.output


def test_a_unit_slip_in_the_host_link_is_flagged():
    spec = load_spec(catalog.resolve("hardware", "h100", "--chip"))
    link = spec.host.link_bandwidth_gb_per_s.model_copy(update={"value": 64_000})
    slipped = spec.model_copy(update={"host": spec.host.model_copy(
        update={"link_bandwidth_gb_per_s": link})})
    (warning,) = implausible_figures(slipped, "x")
    assert "host.link_bandwidth_gb_per_s" in warning


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_memory_with_offload_by_hand(tiny, fraction):
    """8-way zero-1: each rank owns P/8 parameters; F of their 12-byte states leave the device,
    and the host holds them with a 4-byte FP32 gradient copy each."""
    chip = load_chip("h100")
    base = evaluate(tiny, chip, stack_of(chip), RUN, _one(tiny, chip, 8, 0.0)).memory
    mem = evaluate(tiny, chip, stack_of(chip), RUN, _one(tiny, chip, 8, fraction)).memory
    owned = float(tiny.params.total) / 8
    assert float(base.optimizer[0]) == pytest.approx(12 * owned)
    assert float(mem.optimizer[0]) == pytest.approx((1 - fraction) * 12 * owned)
    # Live tensors fall by the states moved; the allocator's hold beyond them falls with them.
    assert float(mem.allocated[0]) == pytest.approx(float(base.allocated[0])
                                                    - fraction * 12 * owned)
    factor = float(load_stack_spec("megatron-core-nvidia").memory.allocator_factor.value)
    assert float(mem.reserved[0]) == pytest.approx(float(mem.allocated[0]) * factor)
    assert float(mem.offloaded_optimizer[0]) == pytest.approx(fraction * 12 * owned)
    assert float(mem.host[0]) == pytest.approx(fraction * owned * (12 + 4))
    assert float(base.host[0]) == 0.0
    # Gradients and weights stay on the device; the checkpoint still holds every state.
    assert float(mem.gradients[0]) == pytest.approx(float(base.gradients[0]))
    assert float(mem.checkpoint[0]) == pytest.approx(float(base.checkpoint[0]))


def test_bf16_states_offload_eight_bytes(tiny):
    chip = load_chip("h100")
    run = replace(RUN, optimizer_states="bf16")
    mem = evaluate(tiny, chip, stack_of(chip), run, _one(tiny, chip, 8, 1.0, run=run)).memory
    owned = float(tiny.params.total) / 8
    assert float(mem.host[0]) == pytest.approx(owned * (8 + 4))


def _derived_and_direct(model, n, seq_len, global_batch):
    """(plans without offload, their twins' memory less the offloaded states, the memory model
    run on the offloading plans)."""
    arch, chip = load_model(model), load_chip("h100")
    run = RunConfig(seq_len=seq_len, global_batch=global_batch)
    plans, _ = candidate_plans(arch, chip, run, n, PlanRequest(optimizer_offload=0.0))
    stack = stack_of(chip)
    derived = memory_of(arch, chip, stack, run, plans).with_offload(1.0, run.optimizer_bytes)
    return plans, derived, memory_of(arch, chip, stack, run, plans.with_offload(1.0))


def test_derived_offload_memory_equals_the_memory_model():
    """Where offloading leaves the fullest rank the fullest (Mixtral 8x7B on 8 H100s, every
    plan), the twins' memory less the offloaded states is the memory model's."""
    _, derived, direct = _derived_and_direct("mixtral-8x7b", 8, 4096, 64)
    for field in ("weights", "gradients", "optimizer", "activations", "logits",
                  "offloaded_optimizer", "host"):
        np.testing.assert_allclose(getattr(derived, field), getattr(direct, field))


def test_derived_offload_memory_is_a_lower_bound_where_the_fullest_rank_changes():
    """DeepSeek-V2-Lite at 16K on 2 H100s: under PP2 the loss's rank (more parameters with the
    LM head) is the fullest until its optimizer states leave; then rank 0 (more activations
    in flight) is. The twins' memory keeps the first rank, so it is a lower bound there, and
    the search runs the memory model on the variants it keeps (search equals brute force,
    test_activation_offload)."""
    plans, derived, direct = _derived_and_direct("deepseek-v2-lite", 2, 16384, 16)
    assert np.all(derived.total <= direct.total * (1 + 1e-12))
    changed = derived.total < direct.total * (1 - 1e-9)
    assert changed.any() and np.all(plans.pp[changed] > 1)


def test_offload_pipeline_exposure_by_hand():
    """Three stages over 4 buckets: the slowest paces, the other two cost a bucket each."""
    t = OffloadTimes(d2h=1.0, cpu=3.0, h2d=0.5, buckets=4.0)
    assert float(t.exposed) == pytest.approx(3.0 + (1.0 + 0.5) / 4)
    one = OffloadTimes(d2h=1.0, cpu=3.0, h2d=0.5, buckets=1.0)
    assert float(one.exposed) == pytest.approx(4.5)  # one bucket: no overlap, the sum


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_optimizer_step_with_offload_by_hand(tiny, fraction):
    """Tiny on 8 H100s, zero-1, pp 1 (4 layers, so 4 buckets): owned O = P/8.
    Host: d2h = F O 4 / (64e9 x 0.8), cpu = F O / 1.4e9, h2d = F O 2 / (64e9 x 0.8);
    device: (1 - F) O 30 / (3.35e12 x HBM efficiency); the step takes the longer."""
    chip = load_chip("h100")
    plans = _one(tiny, chip, 8, fraction)
    st = evaluate(tiny, chip, stack_of(chip), RUN, plans)
    o = float(tiny.params.total) / 8
    link = 64e9 * 0.8
    d2h, cpu, h2d = fraction * o * 4 / link, fraction * o / 1.4e9, fraction * o * 2 / link
    host = max(d2h, cpu, h2d) + (d2h + cpu + h2d - max(d2h, cpu, h2d)) / 4
    device = (1 - fraction) * o * optimizer_step_bytes(12.0) / (chip.hbm_bw * chip.hbm_eff)
    assert float(st.optimizer[0]) == pytest.approx(max(host, device))
    base = evaluate(tiny, chip, stack_of(chip), RUN, _one(tiny, chip, 8, 0.0))
    assert float(base.optimizer[0]) == pytest.approx(o * 30 / (chip.hbm_bw * chip.hbm_eff))
    # Only the optimizer step changes.
    assert float(st.step_time[0] - base.step_time[0]) == pytest.approx(
        float(st.optimizer[0] - base.optimizer[0]))


def test_host_adam_is_slower_than_the_device_on_every_catalog_chip():
    """The exactness argument of the search bound: per parameter, the host side (its slowest of
    copy out, CPU Adam, copy back) takes longer than the device step it replaces."""
    for name in catalog.catalog_names("hardware"):
        chip = load_chip(name)
        assert offload_never_faster(chip, 12.0) and offload_never_faster(chip, 8.0), name
        per_param_host = 1.0 / chip.host_adam
        per_param_device = 30.0 / (chip.hbm_bw * chip.hbm_eff)
        assert per_param_host > 5 * per_param_device, name


def test_a_host_faster_than_the_device_turns_the_bound_off():
    chip = chip_with(load_chip("h100"), host_bw=1e15, host_adam=1e15)
    assert not offload_never_faster(chip, 12.0)


def test_a_plan_that_does_not_fit_fits_with_offload(cli):
    """Qwen3-8B on one H100: 8.2B parameters need 18 B each of training state on the device
    without offload (148 GB), 6 B with it (49 GB, plus activations). The host holds the
    offloaded states with their 4-byte FP32 gradient copies (16 B per 12 B of states) and
    any activations offloaded beside them."""
    args = ("estimate", "-m", "qwen3-8b", "-c", "h100", "-n", "1", "--global-batch", "8")
    no = cli(*args, "--optimizer-offload", "0")
    assert no.exit_code == 2 and "no plan fits" in no.output
    out = json.loads(cli(*args, "-f", "json").output)
    assert out["plan"]["optimizer_offload"] == 1.0 and out["fits_memory"]
    p = out["memory_gib"]
    assert p["optimizer"] == 0.0
    assert p["host_used"] == pytest.approx(p["offloaded_optimizer"] * 16 / 12
                                           + p["offloaded_activations"])
    assert p["host_used"] <= p["host_capacity"] == pytest.approx(256e9 / 2**30)


def test_offload_must_fit_host_memory(tiny):
    chip = chip_with(load_chip("h100"), host_dram=1.0)  # one byte of host memory
    st = evaluate(tiny, chip, stack_of(chip), RUN, _one(tiny, chip, 8, 1.0))
    assert not bool(st.fits[0])


@pytest.mark.parametrize(("model", "chip", "n", "gb"), [("mixtral-8x7b", "h100", 8, 64),
                                                         ("deepseek-v2-lite", "h100", 2, 16),
                                                         ("qwen3-8b", "h100", 1, 8)])
def test_search_with_offload_equals_brute_force(model, chip, n, gb):
    """Every plan with and without offload evaluated: the search's pick is within the tie band
    of the true fastest and the most conventional of the ties."""
    _, every = assert_search_equals_brute_force(
        load_model(model), load_chip(chip), RunConfig(seq_len=4096, global_batch=gb), n)
    assert set(np.unique(every.optimizer_offload)) == {0.0, 1.0}


def test_offload_wins_only_where_memory_forces_it():
    """Mixtral on 8 H100s: the search takes offload; the same plan without it does not fit."""
    arch, hw = load_model("mixtral-8x7b"), load_chip("h100")
    run = RunConfig(seq_len=4096, global_batch=64)
    res = search(arch, hw, stack_of(hw), run, 8)
    assert float(res.plans.optimizer_offload[res.best]) == 1.0
    plan = res.plans.describe(res.best, 0)
    fixed = {k: plan[k] for k in ("tp", "pp", "vpp", "ep", "etp", "cp", "recompute",
                                  "schedule", "sharding", "cp_kind")}
    twin = search(arch, hw, stack_of(hw), run, 8,
                  PlanRequest(**fixed, micro_batch=plan["micro_batch"], optimizer_offload=0.0))
    assert not twin.fits


def test_a_fast_host_is_searched_without_the_bound():
    """With a host faster than HBM, offload is a plain grid dimension and may win by speed.
    Brute force over the same release's plans (the search stays inside the release: no
    DualPipe on Megatron-Core)."""
    arch = load_model("mixtral-8x7b")
    hw = chip_with(load_chip("h100"), host_bw=1e15, host_adam=1e15)
    run = RunConfig(seq_len=4096, global_batch=64)
    res = search(arch, hw, stack_of(hw), run, 16)
    every, _ = candidate_plans(arch, hw, run, 16, PlanRequest(), stack_of(hw).release)
    st = evaluate(arch, hw, stack_of(hw), run, every)
    fastest = float(np.where(st.fits, st.step_time, np.inf).min())
    assert float(res.steps.step_time[res.best]) <= fastest * (1 + TIE_BAND) * (1 + 1e-9)


def test_ties_go_to_no_offload():
    from moebench.engine.plan import PlanArrays

    plans = PlanArrays(**{f: np.array(v) for f, v in dict(
        tp=[1, 1], pp=[4, 4], vpp=[1, 1], ep=[8, 8], etp=[1, 1], cp=[1, 1], dp=[4, 4],
        mb=[1, 1], recompute=[0, 0], rc_modules=[0, 0], schedule=[0, 0], sharding=[1, 1],
        shard=[4, 4],
        cp_kind=[0, 0], optimizer_offload=[1.0, 0.0]).items()})
    assert choose_plan(plans, np.array([10.0, 10.05]), np.arange(2)) == 1
    assert choose_plan(plans, np.array([10.0, 10.5]), np.arange(2)) == 0


def test_explain_names_offload_as_an_unusual_choice():
    from moebench.commands.estimate.explain import unusual_choices

    arch, hw = load_model("qwen3-8b"), load_chip("h100")
    res = search(arch, hw, stack_of(hw), RunConfig(seq_len=4096, global_batch=8), 1)
    (note,) = [n for n in unusual_choices(res) if "offload" in n]
    assert "no plan without offload fits memory" in note
    # An offload the user gave is no choice of the search's.
    (note,) = [n for n in unusual_choices(res, PlanRequest(optimizer_offload=1.0))
               if "offload" in n]
    assert note.endswith(": as given")


def test_a_profile_without_host_searches_no_offload(tiny):
    chip = chip_with(load_chip("h100"), host_bw=None, host_link_eff=None, host_dram=None,
                     host_adam=None)
    plans, _ = candidate_plans(tiny, chip, RUN, 8, PlanRequest())
    assert set(np.unique(plans.optimizer_offload)) == {0.0}
    with pytest.raises(InputError, match="host section"):
        search(tiny, chip, stack_of(chip), RUN, 8, PlanRequest(optimizer_offload=1.0))


@pytest.mark.parametrize("value", ["1.5", "-0.5", "nan"])
def test_bad_offload_fraction_exits_2_on_one_line(cli, value):
    result = cli("estimate", "-m", "qwen3-8b", "-c", "h100", "-n", "8",
                 f"--optimizer-offload={value}")
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "--optimizer-offload" in lines[0] and "fraction" in lines[0]


def test_offload_flag_reaches_the_plan_and_the_sweep_parser(cli):
    out = json.loads(cli("estimate", "-m", "qwen3-8b", "-c", "h100", "-n", "8",
                         "--optimizer-offload", "0.5", "-f", "json").output)
    assert out["plan"]["optimizer_offload"] == 0.5
    assert out["memory_gib"]["offloaded_optimizer"] > 0
    bad = cli("sweep", "--vary", "optimizer_offload=2")
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1


def test_measured_run_offload_column(tmp_path):
    from moebench.commands.validation.measured_runs import load_runs

    header = ("id,model,chip,num_chips,precision,seq_len,global_batch,metric,measured,source,"
              "optimizer_offload\n")
    good = tmp_path / "runs.csv"
    good.write_text(header + "r1,qwen3-8b,h100,8,bf16,4096,64,tokens_per_s_per_chip,1000,x,1\n"
                             "r2,qwen3-8b,h100,8,bf16,4096,64,tokens_per_s_per_chip,1000,x,\n")
    r1, r2 = load_runs(good)
    assert r1.plan.optimizer_offload == 1.0 and r2.plan.optimizer_offload == 0.0
    bad = tmp_path / "bad.csv"
    bad.write_text(header + "r1,qwen3-8b,h100,8,bf16,4096,64,tokens_per_s_per_chip,1000,x,1.5\n")
    with pytest.raises(InputError, match="optimizer_offload"):
        load_runs(bad)


def test_scenario_plan_field_is_validated(tmp_path):
    from moebench.inputs.scenario import load_scenario

    text = catalog.resolve("scenarios", "ling-plus-1t", "--scenario").read_text()
    assert "\nplan: {schedule: 1f1b}" in text
    path = tmp_path / "sc.yaml"
    path.write_text(text.replace("\nplan: {schedule: 1f1b}", "\nplan: {optimizer_offload: 1.5}"))
    with pytest.raises(InputError, match="optimizer_offload"):
        load_scenario(str(path))
    path.write_text(text.replace("\nplan: {schedule: 1f1b}", "\nplan: {optimizer_offload: 1}"))
    assert load_scenario(str(path)).plan.optimizer_offload == 1.0


def test_context_carries_the_fraction(tiny):
    chip = load_chip("h100")
    ctx = build_context(tiny, chip, stack_of(chip), RUN, _one(tiny, chip, 8, 0.5))
    assert float(ctx.optimizer_offload[0]) == 0.5
    assert stage_params(ctx)[0].shape == (1,)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_compare_says_when_a_row_offloads(fraction):
    """The compare footer names the rows whose plan offloads, and says their host figures are
    estimates with no measured run behind them; no such line when none offloads."""
    from moebench.commands.compare.comparison import run_comparison
    from moebench.commands.compare.report import comparison_report
    from moebench.commands.shared.options import apply_options
    from moebench.inputs.scenario import load_scenario

    sc = apply_options(load_scenario("ling-plus-1t"), chips=["h800", "a100"],
                       plan={"optimizer_offload": fraction})
    footer = comparison_report(run_comparison(sc), uncertainty=False).footer
    lines = [f for f in footer if f.startswith("opt-offload")]
    if fraction:
        assert lines == [lines[0]] and "(h800, a100)" in lines[0] and "estimates" in lines[0]
    else:
        assert lines == []
