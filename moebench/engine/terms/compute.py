"""Device compute: a roofline per operation, per layer and forward pass (training passes:
:mod:`moebench.engine.terms.passes`).

Every operation costs max(FLOP / achievable FLOP/s, bytes / achievable HBM B/s). A GEMM's rate
falls when it has few rows, m / (m + m_half), and when its reduction is shallow,
k / (k + k_half), with m_half and k_half the stack's ``gemm_half_rows`` and
``gemm_half_depth``. On H800 with DeepGEMM FP8 (README tables at a6d97a1 / 327ec92) the rows
factor on top of the roofline reproduces the masked grouped GEMM's 62/53/47% of peak at
1024/512/256 rows per expert with m_half = 130, and the depth factor the dense GEMMs' 77, 71,
59, 61 and 39% at K = 16384, 7168, 2048, 1536 and 512 with k_half = 490. Together they make the
skinny, shallow per-expert GEMMs of fine-grained MoE slow (Qwen3-30B's down-projection has
K = 768). Each GEMM of an FFN (fc1 with K = h, fc2 with K = its width) gets its own factor.

Where a chip profile states its BLAS's large-GEMM tile (``compute.gemm_tile``), tile and wave
quantization scale the rate too (:func:`quantization`): a GEMM runs whole tiles, and whole
waves of one tile per SM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.attention_core import (
    ScoreOp,
    attention_core_exps,
    attention_core_flops,
    unfused_attention_ops,
)
from moebench.engine.context import BF16, StepContext
from moebench.engine.workload import (
    ATTENTION_BWD_FACTOR,
    ATTENTION_BWD_RATE,
    ATTENTION_EXP_BWD_FACTOR,
    GEMM_BWD_FACTOR,
)

# Elementwise traffic per token and layer, in units of h elements: RMSNorm reads and writes h,
# each residual add reads 2h and writes h; two of each per layer = 2*2 + 2*3 = 10.
ELEMENTWISE_H_PER_LAYER = 10.0
# FP8 GEMMs need their BF16 inputs quantized (read 2 B, write 1 B per element) in forward, and
# the output gradient quantized plus transposed FP8 copies for the weight gradient in backward
# (Transformer Engine's FP8 recipe; DeepSeek-V3 sec. 3.3): about 4 bytes of HBM traffic per
# element of each GEMM's input and output width, per row.
FP8_CAST_BYTES = 4.0
# HBM bytes per logit (token x vocabulary entry on the rank) of the cross-entropy's forward and
# backward together, by implementation, counted from the source:
# - unfused: Megatron-Core's vocab_parallel_cross_entropy in eager PyTorch (core_r0.8.0,
#   tensor_parallel/cross_entropy.py): the BF16 logits cast to an FP32 copy (2 + 4), max (4),
#   subtract, exp and divide in place (8 each), sum (4); backward multiplies in place (8) and
#   autograd casts the gradient back to BF16 (6): 52.
# - fused: the same steps in four jit-fused kernels (--cross-entropy-loss-fusion, impl native;
#   fusions/fused_cross_entropy.py): cast with max (6), subtract+exp+sum (8), divide (8),
#   gradient with the BF16 cast (6): 28.
# - te: Transformer Engine's Triton kernels (--cross-entropy-fusion-impl te;
#   common/triton/cross_entropy.py): an online-softmax read (2), a read that writes the
#   gradient (2 + 2), and backward's in-place scale by the loss gradient (2 + 2): 10.
CROSS_ENTROPY_BYTES = {"unfused": 52.0, "fused": 28.0, "te": 10.0}
# Permute and unpermute read and write the k*h routed copies once each, whatever the
# dispatcher; buffers and sorting by local expert add the dispatcher's own passes when ep > 1.
LOCAL_COPY_PASSES = 4.0


def roofline(flops: Any, bytes_: Any, rate: Any, bw: Any) -> np.ndarray:
    """Time of an operation: max(FLOP / achievable FLOP/s, bytes / achievable B/s)."""
    return np.maximum(flops / rate, bytes_ / bw)


def rows_factor(rows: Any, half_rows: Any) -> Any:
    """Share of the large-shape GEMM rate reached with ``rows`` rows: m / (m + m_half) (1 for a
    GEMM with no rows, whose time is zero anyway)."""
    rows = np.asarray(rows, dtype=float)
    return np.where(rows > 0, rows / np.maximum(rows + half_rows, 1e-30), 1.0)


def wave_efficiency(rows: Any, cols: Any, groups: Any, tile: tuple[int, int, int]) -> Any:
    """Share of the SM time a GEMM (``groups`` of them, as one grouped launch) issues that
    computes its rows x cols output: useful tile area / (waves x SMs x tile area), with
    tiles = groups x ceil(rows / t_r) x ceil(cols / t_c) and waves = ceil(tiles / SMs).

    Tile quantization (a partial tile costs a whole one) and wave quantization (a partial wave
    costs a whole one): NVIDIA, Matrix Multiplication Background User's Guide (DU-09799-001,
    2023) sec. 3.1-3.2, whose A100 example runs 256 x 128 tiles, one per SM, 108 at once.
    """
    sms, t_r, t_c = tile
    rows = np.maximum(np.asarray(rows, dtype=float), 1.0)
    cols = np.maximum(np.asarray(cols, dtype=float), 1.0)
    tiles = groups * np.ceil(rows / t_r) * np.ceil(cols / t_c)
    return groups * rows * cols / (t_r * t_c) / (np.ceil(tiles / sms) * sms)


def quantization(ctx: StepContext, rows: Any, width: Any, depth: Any, groups: Any) -> Any:
    """Rate share a weight GEMM of ``rows`` x ``depth`` by ``depth`` x ``width`` keeps under
    tile and wave quantization, over its three products: the forward (rows x width), the
    input gradient (rows x depth) and the weight gradient (depth x width), equally weighted
    since the backward's two cost a forward each. 1 when the chip states no tile."""
    tile = ctx.chip.gemm_tile
    if tile is None:
        return 1.0
    return (wave_efficiency(rows, width, groups, tile) + wave_efficiency(rows, depth, groups, tile)
            + wave_efficiency(depth, width, groups, tile)) / 3.0


def depth_factor(depth: float, half_depth: Any) -> Any:
    """Share of the large-shape GEMM rate reached with a reduction of ``depth``: k / (k + k_h)."""
    return depth / (depth + half_depth)


def cast_time(ctx: StepContext, rows: Any, in_out: Any) -> Any:
    """FP8 quantization traffic of one GEMM's rows (zero under BF16)."""
    return rows * in_out * (FP8_CAST_BYTES if ctx.fp8 else 0.0) / ctx.mem_bw


def gemm_time(ctx: StepContext, params: Any, rows: Any, shards: Any, in_out: float,
              depth: Any, fp8_cast: bool = True, gemm_rows: Any = None,
              copies: Any = 1.0) -> Any:
    """Forward time of a weight GEMM: 2 rows params / shards FLOPs, weights (``copies`` of
    them: one per local expert) and activations read and written, at the rate its rows and its
    reduction depth allow, plus FP8 cast traffic unless it stays BF16."""
    flops = 2.0 * rows * params / shards
    bytes_ = copies * params / shards * ctx.weight_bytes + rows * in_out * ctx.act_bytes
    m = rows if gemm_rows is None else gemm_rows
    rate = ctx.gemm_rate * rows_factor(m, ctx.stack.gemm_half_rows) * depth_factor(
        depth, ctx.stack.gemm_half_depth) * quantization(
        ctx, m, params / shards / depth, depth, copies)
    return roofline(flops, bytes_, rate, ctx.mem_bw) + (cast_time(ctx, rows, in_out)
                                                        if fp8_cast else 0.0)


def ffn_time(ctx: StepContext, width: float, rows: Any, shards: Any,
             gemm_rows: Any = None, copies: Any = 1.0) -> Any:
    """Forward time of an FFN's GEMMs, fc1 (gate and up when gated, K = h) and fc2 (K = its
    width), sharded ``shards`` ways along the width, plus the activation's HBM traffic (read
    gate and up, write the product)."""
    if not width:
        return 0.0 * rows
    h = ctx.arch.spec.hidden_size
    local = width / shards
    fc1 = gemm_time(ctx, (2 if ctx.arch.gated else 1) * h * width, rows, shards, h, h,
                    gemm_rows=gemm_rows, copies=copies)
    fc2 = gemm_time(ctx, h * width, rows, shards, h, local, gemm_rows=gemm_rows, copies=copies)
    return fc1 + fc2 + 3 * local * BF16 * rows / ctx.mem_bw


@dataclass(frozen=True)
class LayerForward:
    """Forward seconds of one micro-batch on one chip: per layer by component, and the head."""

    attn_proj: Any
    attn_core: Any
    attn_bwd_factor: Any
    """Backward over forward time of the attention core (2.5 for its matmuls, 1 for its
    exponentials: :func:`attention_core_time`)."""
    elementwise: Any
    up_proj: Any
    """MLA up-projections (recomputed under selective recompute)."""
    dense_ffn: Any
    experts: Any
    shared: Any
    router_permute: Any
    head: Any
    """The LM head GEMM (forward)."""
    mtp: Any
    loss: Any = 0.0
    """The cross-entropy after the head, forward and backward together (:func:`loss_time`)."""
    mtp_depth: int = 0

    @property
    def head_train(self) -> Any:
        """The head's forward and backward with its loss."""
        return train(self.head) + self.loss

    @property
    def mtp_train(self) -> Any:
        """The MTP modules' forward and backward, each with its own head and loss."""
        return train(self.mtp) + self.mtp_depth * self.loss

    @property
    def attention(self) -> Any:
        """The attention half of a layer (the other half is its MLP or MoE)."""
        return self.attn_proj + self.attn_core + self.elementwise / 2

    @property
    def moe_mlp(self) -> Any:
        return self.experts + self.shared + self.router_permute + self.elementwise / 2


def attention_core_time(ctx: StepContext) -> tuple[Any, Any]:
    """Forward seconds of the attention core per layer, and its backward over forward factor.

    t = F s_r / R + E s_r / X, with F and E the FLOPs and exponentials per token
    (:func:`~moebench.engine.attention_core.attention_core_flops`, ``attention_core_exps``), s_r the
    rank's tokens, R the attention kernel's matmul rate and X the special-function units' exp
    rate. The two add rather than overlap: the second matmul waits for the softmax, the
    bottleneck NVIDIA's Blackwell Ultra doubles its exp units to relieve (NVIDIA technical blog
    "Making Softmax More Efficient with NVIDIA Blackwell Ultra": about 35% faster FP8 attention
    forward on DeepSeek-V3 over GB200; this sum gives 28-43% for BF16 to FP8). Backward:
    2.5 x the matmuls' FLOPs at ``ATTENTION_BWD_RATE`` of the forward's rate, 1 x the
    exponentials. F is the kernel's work: with MLA head dims the
    stack pads, more than the model's FLOPs
    (:func:`~moebench.engine.attention_core.mla_pad_factor`).
    """
    if not ctx.fused_attention:
        return unfused_attention_time(ctx)
    tc = (attention_core_flops(ctx.arch, ctx.run.seq_len, ctx.stack.mla_attention_pad)
          * ctx.tok_sp / ctx.attn_rate)
    sfu = attention_core_exps(ctx.arch, ctx.run.seq_len) * ctx.tok_sp / ctx.exp_rate
    fwd = tc + sfu  # > 0: every model has attention work and every rank tokens
    bwd = ATTENTION_BWD_FACTOR / ATTENTION_BWD_RATE * tc + ATTENTION_EXP_BWD_FACTOR * sfu
    return fwd, bwd / fwd


def unfused_attention_time(ctx: StepContext) -> tuple[Any, Any]:
    """Forward seconds of unfused attention per layer, and its backward over forward factor:
    each operation of :func:`~moebench.engine.attention_core.unfused_attention_ops` a roofline,
    its batched BF16 GEMM at the stack's BF16 GEMM rate slowed by its reduction depth (QK^T and
    dP reduce over a head dim), its score traffic at the achievable HBM bandwidth. The
    softmax's exponentials hide under its memory traffic (one per 4-6 bytes)."""
    fwd_ops, bwd_ops = unfused_attention_ops(ctx.arch, ctx.run.seq_len)
    rate = ctx.attn_rate * ctx.stack.gemm_fraction / ctx.stack.attention_fraction
    half = ctx.stack.gemm_half_depth

    def seconds(ops: tuple[ScoreOp, ...]) -> Any:
        return sum(roofline(op.flops * ctx.tok_sp,
                            op.bytes * ctx.tok_sp, rate * depth_factor(max(op.depth, 1.0), half),
                            ctx.mem_bw) for op in ops)

    fwd = seconds(fwd_ops)
    return fwd, seconds(bwd_ops) / fwd


def layer_forward(ctx: StepContext) -> LayerForward:
    """Forward time of each component of a layer (one micro-batch, the busiest chip)."""
    sh, spec, chip, stack = ctx.shapes, ctx.arch.spec, ctx.chip, ctx.stack
    h, vocab = spec.hidden_size, spec.vocab_size
    tok_sp, tok_gemm, tp = ctx.tok_sp, ctx.tok_gemm, ctx.tp
    zero = 0.0 * tp
    # With tp wider than the KV heads, each rank also computes its replicated K/V heads.
    attn_proj = gemm_time(ctx, sh.attn_proj_params + ctx.kv_extra, tok_gemm, tp, 2 * h,
                          sh.attn_proj_depth)
    # Context parallelism runs attention as a ring of cp steps, each its own kernel.
    ring_steps = np.where(ctx.plans.cp_kind == 1, 1.0, ctx.cp)  # Ulysses: one kernel
    core, core_bwd = attention_core_time(ctx)
    attn_core = np.maximum(core, ring_steps * chip.min_kernel)
    # Without sequence parallelism every TP rank normalises and adds the residual of all the
    # micro-batch's tokens, not its 1/tp share (arXiv 2205.05198 sec. 4.2.2).
    elem_tokens = tok_sp if stack.sequence_parallel else tok_sp * tp
    elementwise = ELEMENTWISE_H_PER_LAYER * h * BF16 * elem_tokens / ctx.mem_bw
    dense = ffn_time(ctx, sh.dense_width, tok_gemm, tp)
    # Expert GEMMs: every pair the rank received, 1/etp of the width under expert TP, at the
    # rate the rows per local expert allow; each local expert's weights are read once.
    experts = ffn_time(ctx, sh.expert_width, ctx.expert_rows, ctx.etp,
                       gemm_rows=ctx.rows_per_expert, copies=ctx.local_experts)
    shared = ffn_time(ctx, sh.shared_width, tok_gemm, tp)
    if ctx.arch.is_moe:
        # Router GEMM, FP32 softmax/top-k over E, and the copies of the k*h routed values.
        passes = np.where(ctx.ep > 1, LOCAL_COPY_PASSES + stack.copy_passes, LOCAL_COPY_PASSES)
        router = gemm_time(ctx, sh.router_params, tok_sp, np.ones_like(tp), h, h) + (
            2 * 4.0 * sh.num_experts * tok_sp + passes * BF16 * h * ctx.received) / ctx.mem_bw
    else:
        router = zero
    # The LM head stays in BF16 under FP8 recipes: no cast traffic.
    head = gemm_time(ctx, h * vocab, tok_gemm, tp, h, h, fp8_cast=False)
    up_proj = gemm_time(ctx, sh.attn_up_proj_params, tok_gemm, tp, 0, sh.up_proj_depth) \
        if sh.attn_up_proj_params else zero
    moe_layer = attn_proj + attn_core + elementwise + experts + shared + router
    mtp = spec.mtp_depth * (moe_layer + gemm_time(ctx, 2 * h * h, tok_gemm, tp, 3 * h, 2 * h)
                            + head)
    return LayerForward(attn_proj=attn_proj, attn_core=attn_core, attn_bwd_factor=core_bwd,
                        elementwise=elementwise,
                        up_proj=up_proj, dense_ffn=dense, experts=experts, shared=shared,
                        router_permute=router, head=head, mtp=mtp, loss=loss_time(ctx),
                        mtp_depth=spec.mtp_depth)


def loss_time(ctx: StepContext) -> Any:
    """Forward + backward seconds of the cross-entropy over one micro-batch's logits on a rank:
    B s_r V / m, with B the stack's bytes per logit (:data:`CROSS_ENTROPY_BYTES`), s_r the
    rank's tokens, V the vocabulary and m the achievable HBM bandwidth. Memory-bound: a few
    FLOPs per byte."""
    spec = ctx.arch.spec
    return CROSS_ENTROPY_BYTES[ctx.stack.cross_entropy] * spec.vocab_size * ctx.tok_sp \
        / ctx.mem_bw


def train(fwd_gemm: Any, fwd_core: Any = 0.0, fwd_elem: Any = 0.0,
          core_bwd: Any = ATTENTION_BWD_FACTOR) -> Any:
    """Forward + backward from forward times: GEMMs and elementwise x3, attention core
    x(1 + its backward factor)."""
    return (fwd_gemm + fwd_elem) * (1 + GEMM_BWD_FACTOR) + fwd_core * (1 + core_bwd)
