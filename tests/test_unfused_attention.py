"""Unfused attention where a release's fused kernels do not take the model's head dims: the
release claim resolved per chip, the per-token work hand-counted, the time of one layer's
forward hand-computed as rooflines, and the scores it keeps in memory."""

import json
from dataclasses import replace

import pytest

from moebench.engine.attention_core import fused_attention, head_dims, unfused_attention_ops
from moebench.engine.context import build_context
from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import candidate_plans
from moebench.engine.terms.compute import attention_core_time
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig
from moebench.inputs.stack import load_stack_spec, stack_from_spec, with_calibrated

NVIDIA = "megatron-core-nvidia"


def _stack(release: str, chip: str, model: str = "deepseek-v3", precision: str = "bf16"):
    spec = load_stack_spec(f"{NVIDIA}@{release}").for_platform(chip, precision, model, True)
    return stack_from_spec(spec)


@pytest.mark.parametrize(("release", "chip", "limit"), [
    # TE bee4649 (NeMo 25.04): cuDNN attention on sm >= 100 only up to head dim 128.
    ("25.04", "gb200", 128), ("25.04", "b200", 128), ("25.04", "h100", None),
    # 25.07 keeps it (estimate: the container's cuDNN unknown); 25.09's TE 2.7 + cuDNN 9.11
    # takes MLA's 192/128 on Blackwell.
    ("25.07", "gb200", 128), ("25.09", "gb200", None), ("26.08", "gb200", None),
])
def test_release_states_the_head_dim_limit_per_chip(release, chip, limit):
    assert _stack(release, chip).attention_head_dim_limit == limit


def test_a_family_that_never_says_has_no_limit():
    spec = load_stack_spec("primus-amd").for_platform("mi300x", "bf16", "deepseek-v3", True)
    assert stack_from_spec(spec).attention_head_dim_limit is None


def test_fused_only_where_the_kernel_takes_the_head_dims():
    dsv3, llama = load_model("deepseek-v3"), load_model("llama-3-70b")
    assert head_dims(dsv3.spec.attention) == (192, 128)
    assert head_dims(llama.spec.attention) == (128, 128)
    assert not fused_attention(dsv3, True, 128)
    assert fused_attention(dsv3, True, None) and fused_attention(dsv3, True, 192)
    assert fused_attention(llama, True, 128)
    assert not fused_attention(llama, False, None)  # no fused kernel at all


def test_unfused_work_per_token_hand_counted():
    """DeepSeek-V3 at s = 4096: n = 128 heads x 4096 keys = 524,288 score elements per token;
    QK^T 2 n 192 FLOPs, PV 2 n 128; 8 bytes per element forward, 14 backward; the backward's
    matmuls twice the forward's."""
    fwd, bwd = unfused_attention_ops(load_model("deepseek-v3"), 4096)
    n = 128 * 4096
    assert [op.flops for op in fwd] == [2 * n * 192, 0.0, 2 * n * 128]
    assert [op.depth for op in fwd] == [192, 0.0, 4096]
    assert sum(op.bytes for op in fwd) == 8 * n
    assert sum(op.bytes for op in bwd) == 14 * n
    assert sum(op.flops for op in bwd) == 2 * sum(op.flops for op in fwd)
    assert [op.depth for op in bwd][0] == 128  # dP = dO V^T reduces over d_v


def _ctx(stack):
    arch, chip = load_model("deepseek-v3"), load_chip("gb200")
    run = RunConfig(seq_len=4096, global_batch=2048)
    req = PlanRequest(tp=2, pp=4, vpp=1, ep=64, etp=1, cp=1, micro_batch=1,
                      recompute="none", sharding="zero-1", optimizer_offload=0)
    plans, _ = candidate_plans(arch, chip, run, 256, req)
    return build_context(arch, chip, stack, run, plans.take(0))


def test_unfused_forward_time_hand_computed():
    """GB200, BF16, TP2 with sequence parallelism: 2,048 tokens per rank, 64 heads each.
    Rate 2,500 TFLOP/s x 0.729 x 0.8 = 1.458 PFLOP/s, depth factors 192/682 and 4096/4586
    (k_half 490), HBM 8 TB/s x 0.85. QK^T: 4.123e11 FLOP / (1.458e15 x 0.2815) = 1.0045 ms
    (its 2.147 GB of scores 0.316 ms); softmax 4.295 GB: 0.632 ms; PV: 2.749e11 / (1.458e15
    x 0.8932) = 0.211 ms < its 0.316 ms read. Forward 1.952 ms."""
    stack = with_calibrated(_stack("25.04", "gb200"),
                            {"gemm_fraction": 0.8, "attention_fraction": 0.8})
    ctx = _ctx(stack)
    assert not ctx.fused_attention
    fwd, bwd_factor = attention_core_time(ctx)
    assert float(fwd[0]) == pytest.approx(1.952e-3, rel=2e-3)
    # Backward: dP 2.749e11 / (1.458e15 x 128/618) = 0.910 ms; dV 0.316 ms (its P read);
    # softmax backward 6.442 GB: 0.947 ms; dQ, dK 4.123e11 / (1.458e15 x 0.8932) = 0.317 ms
    # each: 2.807 ms, 1.438 x the forward.
    assert float(bwd_factor[0]) == pytest.approx(2.807 / 1.952, rel=3e-3)


def test_unfused_is_slower_and_keeps_its_scores():
    """The same plan on 25.04, unfused on GB200 and fused where no limit applies: the attention
    core costs
    more, and without core_attn recompute the scores stay (5 bytes per head and key per
    token, Korthikanti et al. eq. 1: 5 x 64 heads x 4096 keys x 2,048 tokens = 2.5 GiB per
    layer)."""
    from moebench.engine.memory import activation_bytes_per_layer

    stack = _stack("25.04", "gb200")
    unfused, fused = _ctx(stack), _ctx(replace(stack, attention_head_dim_limit=None))
    assert fused.fused_attention
    assert float(attention_core_time(unfused)[0][0]) > 3 * float(attention_core_time(fused)[0][0])
    gap = activation_bytes_per_layer(unfused)[0] - activation_bytes_per_layer(fused)[0]
    assert float(gap[0]) == pytest.approx(5 * 64 * 4096 * 2048, rel=1e-9)


@pytest.mark.parametrize(("release", "listed"), [("25.04", True), ("25.09", False)])
def test_the_assumptions_say_the_attention_ran_unfused(cli, release, listed):
    """DeepSeek-V3 on 256 GB200s with NeMo 25.04's plan: the assumed list says the attention
    runs unfused, why, and that a fused kernel would be faster; 25.09 (fused) says nothing."""
    out = json.loads(cli(
        "estimate", "--model", "deepseek-v3", "--chip", "gb200", "--num-chips", "256",
        "--stack", f"megatron-core-nvidia@{release}", "--tp", "2", "--pp", "4", "--ep", "64",
        "--vpp", "1", "--cp", "1", "--micro-batch", "1", "--recompute", "selective",
        "--recompute-modules", "core_attn", "--global-batch", "2048", "--seq-len", "4096",
        "--format", "json").output)
    attention = [a for a in out["assumed"] if a["setting"] == "attention"]
    if not listed:
        assert attention == []
        return
    (a,) = attention
    assert a["value"] == "unfused" and a["alternative"] == "fused"
    assert "fused up to head dim 128" in a["how"] and "bee4649" in a["source"]
    # Fused would be faster, though by less than the core's own time (about 5%): the host's
    # launches, hidden under the unfused core, come out again.
    assert -0.2 < a["change"] < -0.02
