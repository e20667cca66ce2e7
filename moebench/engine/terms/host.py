"""Host (CPU) time: the operations a framework dispatches, and its device-to-host syncs.

A training step is a stream of operations the host launches one by one (framework code, the
kernel launch itself); the device runs them as they arrive. Between two syncs the host can run
ahead, so a stretch of work costs max(device time, host time): large kernels hide the host, a
layer of many tiny kernels is host-bound. A dropless token dispatcher copies the tokens-per-
expert counts to the host before its all-to-all, every MoE layer and forward pass (Megatron-Core
``MoEAlltoAllTokenDispatcher``: "A synchronization is needed before expert parallel AlltoAll
communication"): the device queue drains there and refills, which costs ``sync_us`` each time.

Graph capture (CUDA graphs) replays captured operations without the host: ``partial`` removes
the host cost of the scopes the stack captures (Megatron: attention, router and its
preprocessing, shared expert), ``full`` of everything that does not depend on a host-side count,
so dropless routed experts stay eager (NVIDIA, DeepSeek-V3 GB200 optimisation guide in the
Megatron-LM repository: "routed experts stay uncapturable because of a D2H sync"); drop-and-pad
routing (a capacity factor) has no sync, and full graphs then capture the whole layer.

Operation counts per component are the stack's (``host.ops``); FP8 adds its quantization
operations per GEMM; backward dispatches ``backward_ops_per_forward_op`` times as many. The same
counts are the kernels the device runs, each costing the chip's minimum kernel time beyond its
roofline, graphs or not (:func:`kernel_overhead`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.context import StepContext
from moebench.inputs.model import MlaAttention

# GEMMs per block whose inputs FP8 quantizes: GQA/MHA attention has QKV and output projections;
# MLA has the q down/up, kv down/up and output projections; an FFN has fc1 and fc2.
ATTENTION_GEMMS = 2
MLA_GEMMS = 5
FFN_GEMMS = 2


@dataclass(frozen=True)
class BlockOps:
    """Operations per layer and forward pass, by block: the attention block (every layer), the
    dense FFN (dense layers), and in MoE layers the router with its preprocessing (up to the
    dispatcher's sync) and what follows the sync (all-to-all, sorting, per-expert GEMMs,
    combine, shared expert)."""

    attention: Any
    dense: Any
    router: Any
    moe_post: Any
    moe_post_s: Any = 0.0
    """Host seconds after the sync beyond the operations counted: the expert GEMMs a grouped
    call issues, the stack's expert_gemm_s each (kept in seconds: they do not scale with the
    cost of an operation, and stay when that is set to zero)."""


def _dispatched(ctx: StepContext, captured: bool, part: str, ops: Any) -> Any:
    """``ops`` of graph scope ``part``: none when counting what the host dispatches
    (``captured``) and the stack captures that scope, else all of them."""
    return 0.0 * ops if (captured and ctx.stack.captured(part)) else ops


def ffn_ops(ctx: StepContext) -> Any:
    """Operations of one dense FFN or shared expert, FP8 quantization included."""
    return ctx.stack.ops_mlp + FFN_GEMMS * (ctx.stack.ops_fp8_cast if ctx.fp8 else 0.0)


def block_ops(ctx: StepContext, captured: bool) -> BlockOps:
    """Operations per block and forward pass: all the kernels the device runs
    (``captured=False``), or those the host still dispatches after graph capture."""
    s = ctx.stack

    def host(part: str, ops: Any) -> Any:
        return _dispatched(ctx, captured, part, ops)

    cast = s.ops_fp8_cast if ctx.fp8 else 0.0
    mla = isinstance(ctx.arch.spec.attention, MlaAttention)
    zero = 0.0 * ctx.tp
    attention = host("attention", s.ops_attention + (s.ops_mla_extra if mla else 0.0)
                     + (MLA_GEMMS if mla else ATTENTION_GEMMS) * cast) + zero
    ffn = ffn_ops(ctx)
    dense = host("mlp", ffn) + zero
    if not ctx.arch.is_moe:
        return BlockOps(attention=attention, dense=dense, router=zero, moe_post=zero)
    router = host("router", s.ops_router) + zero
    shared = host("shared", ffn) if ctx.shapes.shared_params else 0.0
    # What follows the dispatcher's sync (the all-to-all, sorting, per-expert GEMMs, combine)
    # can be captured only when no count comes from the host.
    eager = not captured or ctx.dropless_sync or s.graphs != "full"
    # The device runs each local expert's GEMMs. A grouped call (the release's grouped_gemm) is
    # one host operation per block, plus expert_gemm_s for each expert GEMM it issues (in
    # seconds, moe_post_s); a Python loop dispatches each expert's block whole.
    grouped = captured and s.grouped_gemm
    per_call = 1.0 if grouped else ctx.local_experts
    launches = FFN_GEMMS * ctx.local_experts * s.expert_gemm_s if grouped and eager else 0.0
    experts = (s.ops_per_expert + FFN_GEMMS * cast) * per_call
    post = shared + (s.dispatch_ops + experts if eager else 0.0) + zero
    return BlockOps(attention=attention, dense=dense, router=router, moe_post=post,
                    moe_post_s=launches + zero)


# Forward operations a selectively recomputed module runs again in backward, besides those the
# stack counts per block: the fused attention kernel (core_attn), one norm (layernorm, twice a
# layer), one activation (moe_act, per FFN it covers).
CORE_ATTENTION_OPS = 1.0
NORM_OPS = 1.0
ACTIVATION_OPS = 1.0


def recompute_ops(ctx: StepContext, captured: bool) -> BlockOps:
    """Operations per layer that selective recompute adds to a block's backward: each
    recomputed module's forward operations again, and on the host its checkpoint (the stack's
    ``host.ops.checkpoint``) too; with ``captured=True`` only those the host dispatches (graphs
    replay a captured scope's recompute as they replay its forward). The blocks the mlp and moe
    modules rerun whole are counted beside the block's own operations: by :func:`host_time`
    on the host (moe repeats the dispatcher's sync) and by the step's kernel overhead."""
    s = ctx.stack
    core, act, norm = (ctx.recomputes(m) for m in ("core_attn", "moe_act", "layernorm"))
    up, mlp, shared_rc = (ctx.recomputes(m) for m in ("mla_up_proj", "mlp", "shared_experts"))
    # A module inside a block that is rerun whole (mlp, moe) is not checkpointed apart.
    moe_whole = ctx.recomputes("moe")
    dense_act, moe_act = act * (1.0 - mlp), act * (1.0 - moe_whole)
    shared_rc = shared_rc * (1.0 - moe_whole)
    mla = isinstance(ctx.arch.spec.attention, MlaAttention)
    shared = 1.0 if ctx.shapes.shared_params else 0.0
    ckpt = s.ops_checkpoint if captured else 0.0

    def host(part: str, ops: Any) -> Any:
        return _dispatched(ctx, captured, part, ops)

    attention = host("attention", core * (CORE_ATTENTION_OPS + ckpt) + norm * (NORM_OPS + ckpt)
                     + (up * (s.ops_mla_extra + ckpt) if mla else 0.0))
    dense = host("mlp", norm * (NORM_OPS + ckpt) + dense_act * (ACTIVATION_OPS + ckpt))
    moe = (norm * (NORM_OPS + ckpt) + moe_act * ((1.0 + shared) * ACTIVATION_OPS + ckpt)
           + host("shared", shared * shared_rc * (ffn_ops(ctx) + ckpt)))
    if not ctx.arch.is_moe:
        moe = 0.0 * moe
    return BlockOps(attention=attention, dense=dense, router=0.0 * attention, moe_post=moe)


@dataclass(frozen=True)
class HostTime:
    """Host seconds of one micro-batch on the slowest stage."""

    forward: Any
    backward: Any
    """Backward, with the recomputed forward under full recompute."""
    moe_pre: Any
    """Host seconds of one MoE layer's stretch before its sync (forward)."""
    moe_post: Any
    """Host seconds of one MoE layer's stretch after its sync (forward)."""
    dense: Any
    """Host seconds of one dense layer (forward)."""
    syncs: Any
    """Device-to-host syncs per micro-batch."""


def host_time(ctx: StepContext, ops: BlockOps, rc: BlockOps) -> HostTime:
    """Host time and syncs of one micro-batch on the slowest stage, from the operations the
    host dispatches per block (:func:`block_ops` with ``captured=True``) and those selective
    recompute adds to backward (:func:`recompute_ops` with ``captured=True``)."""
    s = ctx.stack
    moe_layers, dense_layers = ctx.moe_layers_per_stage, ctx.dense_layers_per_stage
    pre, dense = ops.attention + ops.router, ops.attention + ops.dense
    forward = (dense_layers * dense + moe_layers * (pre + ops.moe_post)) * s.host_op_s \
        + moe_layers * ops.moe_post_s
    full = np.where(ctx.recompute == 2, 1.0, 0.0)
    # The moe module reruns the MoE block's forward, its dispatcher's sync included; the mlp
    # module a dense layer's FFN. Full recompute checkpoints each layer once, the moe and mlp
    # modules each block they rerun.
    moe_again, mlp_again = ctx.recomputes("moe"), ctx.recomputes("mlp")
    syncs = moe_layers * (1.0 + full + moe_again) if ctx.dropless_sync else 0.0 * moe_layers
    again = (moe_again * moe_layers * (ops.router + ops.moe_post + s.ops_checkpoint)
             + mlp_again * dense_layers * (ops.dense + s.ops_checkpoint)
             + ctx.layers_per_stage * (rc.attention + full * s.ops_checkpoint)
             + dense_layers * rc.dense + moe_layers * rc.moe_post) * s.host_op_s \
        + moe_again * moe_layers * ops.moe_post_s
    return HostTime(forward=forward, backward=forward * (s.bwd_ops_ratio + full) + again,
                    moe_pre=pre * s.host_op_s,
                    moe_post=ops.moe_post * s.host_op_s + ops.moe_post_s,
                    dense=dense * s.host_op_s, syncs=syncs)


def kernel_overhead(ctx: StepContext, ops: BlockOps) -> BlockOps:
    """Device seconds per block and forward pass that kernels cost beyond their roofline: each
    kernel the stack runs (:func:`block_ops` with ``captured=False``) takes the chip's minimum
    kernel time on top (launch, ramp, tail)."""
    k = ctx.chip.min_kernel
    return BlockOps(attention=ops.attention * k, dense=ops.dense * k, router=ops.router * k,
                    moe_post=ops.moe_post * k)


def forward_wall(ctx: StepContext, ht: HostTime, attention: Any, moe: Any, dense: Any,
                 head: Any) -> Any:
    """Wall time of a micro-batch's forward on the stage, from the device time of each block
    of a layer (attention, MoE, dense FFN) and of the head.

    Without syncs the host runs ahead and the slower of host and device sets the time. A sync
    per MoE layer resets the host's lead, so each stretch between syncs costs the slower of its
    own host and device time: up to the sync (attention, router) and after it (all-to-all,
    experts, combine). Host time in excess of the device in one stretch cannot hide behind
    device time in another.
    """
    layers, moe_layers = ctx.layers_per_stage, ctx.moe_layers_per_stage
    dense_layers = layers - moe_layers
    device = layers * attention + moe_layers * moe + dense_layers * dense + head
    if not ctx.dropless_sync:
        return wall(device, ht.forward)
    return (moe_layers * (wall(attention, ht.moe_pre) + wall(moe, ht.moe_post))
            + dense_layers * wall(attention + dense, ht.dense) + head)


def wall(device: Any, host: Any) -> Any:
    """A stretch of work with no sync inside: the host runs ahead, the slower of the two sets
    it."""
    return np.maximum(device, host)
