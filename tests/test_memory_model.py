"""The memory terms a release states (issue 22), each by hand on the tiny MoE, and what
`estimate` says when a plan does not fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from moebench.engine.layout import balanced_ends
from moebench.engine.memory import activation_bytes_per_layer
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.state import rank_params, state_bytes
from moebench.engine.step import build_context, evaluate
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import arch_from_spec
from moebench.inputs.run import RunConfig, module_mask
from moebench.inputs.stack import load_stack_spec
from tests.conftest import load_script, stack_of, tiny_spec

RUN = RunConfig(seq_len=4096, global_batch=512)


def _ctx(tp=1, recompute="none", sharding="zero-1", chips=8, pp=1):
    arch, chip = arch_from_spec(tiny_spec()), load_chip("h100")
    req = PlanRequest(tp=tp, pp=pp, vpp=1, ep=1, etp=1, cp=1, micro_batch=1, schedule="1f1b",
                      sharding=sharding, recompute=recompute, optimizer_offload=0)
    plans, _ = candidate_plans(arch, chip, RUN, chips, req)
    assert len(plans) == 1
    return build_context(arch, chip, stack_of(chip), RUN, plans)


def test_balanced_layouts_put_the_short_stages_at_the_ends():
    """61 layers on 16 stages: 13 of 4 and 3 of 3; a planner gives the ends (embedding; LM head
    and MTP) the short ones. 94 on 4: 24, 24, 23, 23 (the ends short). Interleaved: even."""
    pp, one = np.array([16, 4, 4]), np.array([1, 1, 2])
    even = np.array([4.0, 24.0, 24.0])
    first, last = balanced_ends(pp, one, even, 61)
    assert (first[0], last[0]) == (3, 3)
    first, last = balanced_ends(pp[1:], one[1:], even[1:], 94)
    assert list(first) == [23, 24] and list(last) == [23, 24]


def test_without_sequence_parallelism_hidden_tensors_are_whole_on_each_tp_rank():
    """TP2 without SP: the two norm outputs and two residuals of a layer (4 x h x 2 B = 512 B
    per token, BF16) stay whole; with SP each rank holds half. The difference per token of the
    micro-batch: 512 / 2 = 256 B."""
    ctx = _ctx(tp=2)
    with_sp, _ = activation_bytes_per_layer(ctx)
    no_sp = replace(ctx, stack=replace(ctx.stack, sequence_parallel=False))
    without, _ = activation_bytes_per_layer(no_sp)
    assert float(without[0] - with_sp[0]) / 4096 == pytest.approx(256.0)


def test_without_fused_attention_the_scores_are_kept_unless_core_attn_recomputes_them():
    """Korthikanti et al.: 5 a s bytes per token and layer (scores, softmax, dropout mask),
    over tp: the tiny model's heads, s = 4096, tp = 1, every layer attention; core_attn
    recompute drops them all again."""
    ctx = _ctx()
    heads = ctx.arch.spec.attention.num_heads
    flash, _ = activation_bytes_per_layer(ctx)
    plain = replace(ctx, fused_attention=False)  # as build_context resolves a stack without one
    scores, _ = activation_bytes_per_layer(plain)
    assert float(scores[0] - flash[0]) / 4096 == pytest.approx(5.0 * heads * 4096)
    core = module_mask(("core_attn",))
    dropped = replace(plain, recompute=np.full_like(ctx.recompute, 1),
                      rc_modules=np.full_like(ctx.rc_modules, core))
    kept, _ = activation_bytes_per_layer(dropped)
    assert float(kept[0]) == pytest.approx(float(flash[0]))


@pytest.mark.parametrize(("main_grads", "per_full", "per_owned"),
                         [("fp32", 4.0, 0.0), ("bf16", 2.0, 0.0), ("half", 2.0, 4.0),
                          ("half+fp32", 6.0, 0.0)])
def test_gradient_buffers_as_each_release_keeps_them(main_grads, per_full, per_owned):
    """ZeRO-1 over 8 ranks: Megatron's FP32 main_grad 4P, its BF16 one 2P; DeepSpeed ZeRO half
    gradients 2P plus the owned shard's FP32 copy 4P/8; DeepSpeed's BF16 optimizer 2P + 4P."""
    ctx = _ctx()
    ctx = replace(ctx, stack=replace(ctx.stack, main_grads=main_grads))
    dense, expert = rank_params(ctx)
    params = (dense[0], expert[0])
    _, grads, _ = state_bytes(ctx, params)
    full = float(params[0][0] + params[1][0])
    assert float(grads[0]) == pytest.approx(per_full * full + per_owned * full / 8)


def test_the_kinds_of_peak_memory_nest():
    """Live tensors <= the allocator's hold (x the stack's factor) <= the device's (+ its
    runtime reserve)."""
    arch, chip = arch_from_spec(tiny_spec()), load_chip("h100")
    plans, _ = candidate_plans(arch, chip, RUN, 8, PlanRequest())
    m = evaluate(arch, chip, stack_of(chip), RUN, plans).memory
    factor = float(load_stack_spec("megatron-core-nvidia").memory.allocator_factor.value)
    np.testing.assert_allclose(m.reserved, m.allocated * factor)
    np.testing.assert_allclose(m.total, m.reserved + m.reserve)


def test_the_device_shows_the_allocator_cache_up_to_its_memory_but_fits_ignore_it():
    """Device level = total + cache_growth x live tensors, capped at the device (hand-computed:
    50 + 0.2 x 40 = 58 GB, or the 55 GB the device has); the cache decides no fit."""
    from moebench.engine.memory import MemoryBreakdown, device_level

    gb = 1e9
    zero = np.zeros(2)
    m = MemoryBreakdown(weights=np.full(2, 10 * gb), gradients=np.full(2, 10 * gb),
                        optimizer=np.full(2, 10 * gb), activations=np.full(2, 10 * gb),
                        logits=zero, reserve=np.full(2, 6 * gb), fragmentation=np.full(2, 4 * gb),
                        offloaded_optimizer=zero, offloaded_activations=zero, host=zero)
    assert m.total[0] == 50 * gb
    np.testing.assert_allclose(device_level(m, 0.2, 80 * gb), 58 * gb)
    np.testing.assert_allclose(device_level(m, 0.2, 55 * gb), 55 * gb)
    np.testing.assert_allclose(device_level(m, 0.0, 80 * gb), 50 * gb)
    # A stack's cache growth is its cache_factor over its allocator_factor (1.22 - 1.05), and
    # nothing that decides a fit reads it.
    arch, chip = arch_from_spec(tiny_spec()), load_chip("a100")
    stack = stack_of(chip, "megatron-deepspeed")
    assert stack.cache_growth == pytest.approx(1.22 - 1.05)
    plans, _ = candidate_plans(arch, chip, RUN, 8, PlanRequest())
    with_cache = evaluate(arch, chip, stack, RUN, plans).memory
    without = evaluate(arch, chip, replace(stack, cache_growth=0.0), RUN, plans).memory
    np.testing.assert_array_equal(with_cache.total, without.total)
    assert stack_of(chip, "hardware-limit").cache_growth == 0.0


def test_releases_state_their_memory_defaults():
    """DeepSeek's stack keeps BF16 moments and FP8 SwiGLU inputs (report sec. 3.3.4); Megatron
    applies router probabilities in the activation from core 0.13 (!2668); BLOOM's 2022 stack
    had no sequence parallelism nor fused attention."""
    hai = load_stack_spec("hai-llm").release.defaults
    assert hai["optimizer_states"] == "bf16" and hai["swiglu_fp8_store"]
    old, new = (load_stack_spec(f"megatron-core-nvidia@{r}").release.defaults
                for r in ("25.04", "dev-2025.05"))
    assert not old["probs_in_activation"] and new["probs_in_activation"]
    bloom = load_stack_spec("megatron-deepspeed@bigscience-2022.02").release.defaults
    assert not bloom["sequence_parallel"] and not bloom["flash_attention"]
    assert bloom["main_grads"] == "half"
    later = load_stack_spec("megatron-deepspeed@bigscience-2022.02.28").release.defaults
    assert later["main_grads"] == "half+fp32"
    # Megatron-Bridge's recipes keep an FP32 main_grad buffer; its performance configs turn
    # grad_reduce_in_fp32 off (25.09 on), for the models they name, on every chip.
    spec = load_stack_spec("megatron-core-nvidia@26.04")
    assert spec.release.defaults["main_grads"] == "fp32"
    perf = spec.for_platform("b200", "bf16", "gpt-oss-120b", True).release
    assert perf.defaults["main_grads"] == "bf16"
    other = spec.for_platform("h100", "bf16", "moonlight-16b-a3b", True).release
    assert other.defaults["main_grads"] == "fp32"


def test_a_plan_that_does_not_fit_says_by_how_much_and_the_cheapest_change(cli):
    """DeepSeek-V3 on 512 H800 without recompute, CP or offload needs about three times the
    memory; recomputing more fits, and estimate says so in its one-line error."""
    result = cli("estimate", "--model", "deepseek-v3", "--chip", "h800", "--num-chips", "512",
                 "--tp", "1", "--pp", "8", "--ep", "64", "--cp", "1", "--vpp", "1", "--etp", "1",
                 "--recompute", "none", "--zero", "1", "--optimizer-offload", "0",
                 "--offload-modules", "none", "--micro-batch", "2")
    assert result.exit_code == 2
    line = result.output.strip().splitlines()
    assert len(line) == 1
    assert "% over); its largest term is activations" in line[0]
    assert "cheapest change that fits: recompute more" in line[0]


def test_allow_oom_keeps_the_advice_in_the_output(cli):
    import json

    result = cli("estimate", "--model", "deepseek-v3", "--chip", "h800", "--num-chips", "2048",
                 "--tp", "1", "--pp", "16", "--ep", "64", "--cp", "1", "--vpp", "1", "--etp",
                 "1", "--recompute", "none", "--zero", "1", "--optimizer-offload", "0",
                 "--offload-modules", "none", "--micro-batch", "1", "--schedule", "dualpipe",
                 "--stack", "hai-llm", "--precision", "fp8", "--global-batch", "15360",
                 "--allow-oom", "--format", "json")
    assert result.exit_code == 0
    out = json.loads(result.output)
    assert not out["fits_memory"]
    assert out["memory_advice"].startswith("the plan needs")
    assert "cheapest change that fits: recompute more" in out["memory_advice"]


def test_cache_factors_are_what_the_script_measures_on_the_other_stacks():
    """Each stack's memory.cache_factor is scripts/device_memory_factor.py's median over the
    other stacks' device-level runs (to the profile's two decimals), and its low and high the
    10th and 90th percentiles (the low end floored at the stack's allocator_factor): rerun the
    script when the memory model or the runs change."""
    rows = load_script("device_memory_factor").implied_factors()
    families = {family for family, _, _ in rows}
    assert families == {"megatron-core-nvidia", "megatron-deepspeed", "primus-amd"}
    for family in families:
        others = [f for fam, _, f in rows if fam != family]
        memory = load_stack_spec(family).memory
        assert memory.cache_factor is not None, family
        assert memory.cache_factor.value == pytest.approx(np.median(others), abs=0.005), family
        low, high = np.percentile(others, [10, 90])
        floor = float(memory.allocator_factor.value)
        assert memory.cache_factor.low == pytest.approx(max(low, floor), abs=0.005), family
        assert memory.cache_factor.high == pytest.approx(high, abs=0.005), family


def test_the_plan_flagperf_reports_out_of_memory_does_not_fit(cli):
    """FlagPerf's A800 ablation (FlagOpen/FlagPerf@1b5a0303 training/nvidia/llama3_8B-megatron/
    README.md): Llama 3 8B at 8K on one 8 x A800 80 GB node with its script's bare Megatron-LM
    (distributed optimizer, no recompute flag) runs PP2 DP4 TP1 (76 of 80 GB) but is OOM at PP1
    DP8 TP1: unsharded weights (15 GiB) and FP32 gradients (30 GiB) beside 32 layers of
    activations cannot fit, with or without recompute of the norms and activations."""
    import json

    base = ("estimate", "--model", "llama-3.1-8b", "--chip", "a800", "--num-chips", "8",
            "--tp", "1", "--vpp", "1", "--cp", "1", "--micro-batch", "1", "--zero", "1",
            "--global-batch", "512", "--seq-len", "8192", "--offload-modules", "none",
            "--optimizer-offload", "0", "--stack", "megatron-core-nvidia@core_r0.8.0",
            "--allow-oom", "--format", "json")
    for recompute in ("none", "selective"):
        oom = json.loads(cli(*base, "--pp", "1", "--recompute", recompute).output)
        ran = json.loads(cli(*base, "--pp", "2", "--recompute", recompute).output)
        assert not oom["fits_memory"], recompute
        assert oom["memory_gib"]["weights"] == pytest.approx(8.03e9 * 2 / 2**30, rel=0.01)
    assert ran["fits_memory"]


def test_a_bf16_main_grad_buffer_is_reduced_in_bf16():
    """Megatron reduces the main_grad buffer as it keeps it: 2 bytes per gradient on the wire
    with grad_reduce_in_fp32 off (Megatron-Bridge's performance configs), 4 with the FP32
    buffer of its recipes' default."""
    from moebench.inputs.stack import stack_from_spec

    spec = load_stack_spec("megatron-core-nvidia@26.04")
    perf = stack_from_spec(spec.for_platform("b200", "bf16", "gpt-oss-120b", True))
    bare = stack_from_spec(spec)
    assert (perf.main_grads, perf.grad_reduce_bytes) == ("bf16", 2.0)
    assert (bare.main_grads, bare.grad_reduce_bytes) == ("fp32", 4.0)
