"""Activation offload: bytes per module, memory and copy time by hand; the search adds it only
where a plan needs it, and equals brute force with it in the plan space."""

from __future__ import annotations

import numpy as np
import pytest

from moebench.engine.context import build_context
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.search import search
from moebench.engine.step import evaluate
from moebench.engine.terms.activation_offload import offloaded_bytes_per_layer
from moebench.errors import InputError
from moebench.inputs.hardware import chip_with, load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig
from tests.conftest import assert_search_equals_brute_force, stack_of

RUN = RunConfig(seq_len=1024, global_batch=8)
PLAN = dict(tp=1, pp=1, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, recompute="none",
            schedule="1f1b", sharding="zero-1", optimizer_offload=0.0)


def _plans(arch, chip, modules, **fixed):
    plans, _ = candidate_plans(arch, chip, RUN, 1, PlanRequest(**{**PLAN, **fixed},
                                                               offload_modules=modules))
    assert len(plans) == 1
    return plans


@pytest.mark.parametrize(("module", "expected"), [
    # Tiny: h 64, 8 heads of 8 (Q 64, K+V 2 x 2 x 8 = 32, output 64), 1,024 tokens on one chip;
    # 3 of its 4 layers MoE, top-2 of 8 experts of width 32 (SwiGLU): 2,048 pairs.
    ("attn_norm", 2 * 64 * 1024),
    ("qkv_linear", 2 * 64 * 1024),
    ("core_attn", 2 * (64 + 32) * 1024),
    ("attn_proj", 2 * 64 * 1024),
    ("mlp_norm", 2 * 64 * 1024),
    ("expert_fc1", 2 * 64 * 2048 * 3 / 4),
    ("moe_act", 2 * 2 * 32 * 2048 * 3 / 4),
])
def test_offloaded_bytes_per_module_by_hand(tiny, module, expected):
    chip = load_chip("h100")
    ctx = build_context(tiny, chip, stack_of(chip), RUN, _plans(tiny, chip, (module,)))
    assert float(np.asarray(offloaded_bytes_per_layer(ctx)).ravel()[0]) == pytest.approx(expected)


def test_recompute_leaves_nothing_to_offload(tiny):
    chip = load_chip("h100")
    full = _plans(tiny, chip, ("attn_norm", "core_attn"), recompute="full")
    ctx = build_context(tiny, chip, stack_of(chip), RUN, full)
    assert float(np.asarray(offloaded_bytes_per_layer(ctx)).ravel()[0]) == 0.0
    moe = _plans(tiny, chip, ("expert_fc1", "moe_act"), recompute="selective",
                 recompute_modules=("moe",))
    ctx = build_context(tiny, chip, stack_of(chip), RUN, moe)
    assert float(np.asarray(offloaded_bytes_per_layer(ctx)).ravel()[0]) == 0.0


def test_memory_by_hand(tiny):
    """One rank, 4 layers of one micro-batch in flight: the device keeps stored - B of each and
    B of two (4 S - 2 B), the host the other two layers' B."""
    chip = load_chip("h100")
    b = 2 * (64 + 32) * 1024
    none = evaluate(tiny, chip, stack_of(chip), RUN, _plans(tiny, chip, ())).memory
    off = evaluate(tiny, chip, stack_of(chip), RUN, _plans(tiny, chip, ("core_attn",))).memory
    assert float(none.activations[0] - off.activations[0]) == pytest.approx(2 * b)
    assert float(off.offloaded_activations[0]) == pytest.approx(2 * b)
    assert float(off.host[0]) == pytest.approx(2 * b)
    small_host = chip_with(chip, host_dram=float(b))  # less host memory than it needs
    assert not evaluate(tiny, small_host, stack_of(chip), RUN,
                        _plans(tiny, small_host, ("core_attn",))).fits[0]


def test_copy_time_by_hand(tiny):
    """A host link of 100 kB/s makes the copies, out and back, of B bytes per layer dominate:
    exposed per step = micro-batches x layers x 2 B / W (the layer's own time, well under a
    millisecond, is under 1e-3 of a copy's 2 s). A link without bounds exposes nothing."""
    b = 2 * (64 + 32) * 1024
    slow = chip_with(load_chip("h100"), host_bw=1e5, host_link_eff=1.0)
    st = evaluate(tiny, slow, stack_of(slow), RUN, _plans(tiny, slow, ("core_attn",)))
    assert float(st.comm_exposed["act_offload"][0]) == pytest.approx(8 * 4 * 2 * b / 1e5,
                                                                      rel=1e-3)
    fast = chip_with(load_chip("h100"), host_bw=1e30)
    with_off = evaluate(tiny, fast, stack_of(fast), RUN, _plans(tiny, fast, ("core_attn",)))
    without = evaluate(tiny, fast, stack_of(fast), RUN, _plans(tiny, fast, ()))
    assert float(with_off.step_time[0]) == pytest.approx(float(without.step_time[0]), rel=1e-12)


def test_the_search_offloads_activations_only_where_memory_forces_it():
    """Qwen3-30B-A3B at 32K tokens on 4 H100s: the chosen plan offloads activations, and the
    same plan without them does not fit. Qwen3-8B on 4 H100s offloads them for headroom
    alone: its fastest plans without offload fit at the typical allocator hold (70.8 of 74.5
    GiB) but not at the top of the measured range (80.7 GiB), and the copies hide behind
    compute, so the same plan with them ties and keeps the headroom. On 4 H200s the fastest
    plan keeps the headroom without offload, and offloads nothing."""
    arch, hw = load_model("qwen3-30b-a3b"), load_chip("h100")
    run = RunConfig(seq_len=32768, global_batch=8)
    res = search(arch, hw, stack_of(hw), run, 4)
    plan = res.plans.describe(res.best, 0)
    assert plan["offload_modules"] == ["core_attn", "attn_proj", "expert_fc1"]
    fixed = {k: plan[k] for k in ("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch",
                                  "recompute", "schedule", "sharding", "cp_kind",
                                  "optimizer_offload")}
    twin = search(arch, hw, stack_of(hw), run, 4, PlanRequest(**fixed, offload_modules=()))
    assert not twin.fits
    small = RunConfig(seq_len=4096, global_batch=64)
    tight = search(load_model("qwen3-8b"), hw, stack_of(hw), small, 4)
    chosen = tight.plans.describe(tight.best, 0)
    assert chosen["offload_modules"] == ["core_attn", "attn_proj", "expert_fc1"]
    fixed = {k: chosen[k] for k in fixed}
    bare = search(load_model("qwen3-8b"), hw, stack_of(hw), small, 4,
                  PlanRequest(**fixed, offload_modules=()))
    frag = bare.stack.fragmentation_high
    assert bare.fits and not bare.steps.memory.keeps_headroom(hw, frag)[bare.best]
    assert tight.steps.memory.keeps_headroom(hw, frag)[tight.best]
    h200 = load_chip("h200")
    roomy = search(load_model("qwen3-8b"), h200, stack_of(h200), small, 4)
    assert roomy.plans.describe(roomy.best, 0)["offload_modules"] == []


@pytest.mark.parametrize(("model", "n", "seq", "gb"), [("deepseek-v2-lite", 2, 16384, 16),
                                                       ("qwen3-8b", 1, 16384, 8),
                                                       ("qwen3-8b", 4, 4096, 64),
                                                       ("qwen3-30b-a3b", 8, 8192, 64),
                                                       ("deepseek-v2-lite", 8, 8192, 128)])
def test_search_with_activation_offload_equals_brute_force(model, n, seq, gb):
    """Every plan with and without offload evaluated. The last three pick plans that offload
    and keep the allocator's headroom; for Qwen3-8B on 4 chips and DeepSeek-V2-Lite on 8 the
    search finds them in its second pass over the tie band, the offloading twins of plans that
    fit without the headroom (:func:`moebench.engine.headroom.headroom_variants`)."""
    _, every = assert_search_equals_brute_force(
        load_model(model), load_chip("h100"), RunConfig(seq_len=seq, global_batch=gb), n)
    assert every.act_offload is not None and set(np.unique(every.act_offload)) > {0}


def test_cli_flag_and_bad_modules(cli):
    import json

    res = cli("estimate", "--model", "qwen3-30b-a3b", "--chip", "h100", "--num-chips", "4",
              "--seq-len", "32768", "--global-batch", "8", "--offload-modules",
              "core_attn,moe_act", "--format", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["plan"]["offload_modules"] == ["core_attn", "moe_act"]
    bad = cli("estimate", "--model", "qwen3-30b-a3b", "--chip", "h100", "--num-chips", "4",
              "--offload-modules", "attention")
    assert bad.exit_code == 2 and bad.output.count("\n") == 1
    assert "--offload-modules" in bad.output and "expert_fc1" in bad.output


def test_offload_modules_need_a_host(tiny):
    chip = chip_with(load_chip("h100"), host_bw=None)
    plans, removed = candidate_plans(tiny, chip, RUN, 1, PlanRequest(
        **PLAN, offload_modules=("core_attn",)))
    assert len(plans) == 0 and "host section" in removed["_last"]
    with pytest.raises(InputError):
        candidate_plans(tiny, chip, RUN, 1, PlanRequest(**PLAN, offload_modules=("x",)))


@pytest.mark.parametrize("modules", [None, []])
def test_compare_says_when_a_row_offloads_activations(modules):
    from moebench.commands.compare.comparison import run_comparison
    from moebench.commands.compare.report import comparison_report
    from moebench.commands.shared.options import apply_options
    from moebench.inputs.scenario import load_scenario

    plan = {} if modules is None else {"offload_modules": modules}
    sc = apply_options(load_scenario("ling-plus-1t"), chips=["h800", "a100"], plan=plan)
    cmp = run_comparison(sc)
    footer = comparison_report(cmp, uncertainty=False).footer
    lines = [f for f in footer if f.startswith("act-offload")]
    offloading = [r.entry for r in cmp.rows if r.plan and r.plan["offload_modules"]]
    if modules is None:
        # Megatron-Core 0.16 and later offload activations: the searched H800 plan does on 1,024
        # chips (the default table), and one footer line names every row that offloads.
        assert "h800" in offloading and len(lines) == 1
        assert f"({', '.join(offloading)})" in lines[0]
    else:
        assert offloading == [] and lines == []


def test_each_stack_searches_the_modules_its_software_offloads():
    """Megatron-Core's documented set on NVIDIA, MindSpeed's swap-attention modules on Ascend,
    none on Primus (no evidence): read from the stack profiles."""
    from moebench.inputs.run import OFFLOAD_MODULES, module_names

    def searched(chip):
        return module_names(stack_of(load_chip(chip)).act_offload_mask, OFFLOAD_MODULES)

    assert searched("h100") == ["core_attn", "attn_proj", "expert_fc1"]
    assert searched("ascend-910b") == ["attn_norm", "core_attn", "attn_proj", "mlp_norm"]
    assert searched("mi300x") == [] and searched("t-head-ppu") == []
    arch, hw = load_model("qwen3-30b-a3b"), load_chip("mi300x")
    res = search(arch, hw, stack_of(hw), RunConfig(seq_len=32768, global_batch=8), 2)
    assert res.plans.act_offload is None or not res.plans.act_offload.any()
