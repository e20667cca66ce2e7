"""The overlap policy: how much of each kind of communication stays on the critical path.

Named, per kind, never a silent max or sum:

* ``tp``: forward, exposed, unless the stack overlaps TP collectives with the GEMMs they feed
  (Megatron's ``--tp-comm-overlap``); then only what exceeds those GEMMs is exposed. Backward,
  even without it, Megatron hides two of its three collectives: see :func:`tp_backward_exposed`.
  Expert TP's gather and scatter of the routed pairs belong to the token dispatcher, not to a
  TP-sharded linear layer, so neither overlap hides them: see :func:`routed_tp_exposed`.
* ``ep``, plain 1F1B: exposed.
* ``ep``, 1F1B all-to-all overlap (Megatron-Core's EP overlap, MindSpeed's fb-overlap): in the
  steady state a forward and a backward micro-batch run layer against layer, phase by phase:
  forward attention beside the backward combine, forward dispatch beside the backward MLP,
  forward MLP beside the backward dispatch, forward combine beside the backward attention. Each
  pair costs max(communication, compute), so only what a phase's communication exceeds its
  partner's compute is exposed. Warm-up and cool-down micro-batches have no partner and expose
  all of theirs. (On the published Qwen3-235B H100 pair, Megatron-MoE-ModelZoo, overlap took
  19.7 s to 17.6 s, far less than hiding every all-to-all would.)
* ``ep`` under DualPipe and DualPipeV: hidden behind another micro-batch's compute up to its
  length (DeepSeek-V3 sec. 3.2.1: the bidirectional schedule pairs chunks so that all-to-all is
  "almost fully" hidden; DualPipeV's main step runs the same overlapped forward-backward chunk
  pairs, deepseek-ai/DualPipe dualpipev.py ``_forward_backward_chunk``).
* ``cp``: the KV ring hides behind the attention kernel it feeds.
* ``pp``: exposed, unless the stack overlaps sends and receives with the next chunk's compute
  in a schedule that leaves room for it (interleaved, DualPipe): see :func:`pp_exposed`.
* ``dp``: see :mod:`moebench.engine.terms.data_parallel`.

What overlap hides is not free: the collective's kernels hold part of the chip while the compute
beside them runs (:func:`contention`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.context import StepContext
from moebench.engine.terms.comm import EpPhases
from moebench.engine.terms.compute import LayerForward


def tp_exposed(ctx: StepContext, tp: Any, gemm: Any) -> Any:
    """Exposed TP seconds: all of it, or what exceeds the GEMMs it overlaps with."""
    if not ctx.stack.tp_comm_overlap:
        return tp
    return np.maximum(0.0, tp - gemm)


# Backward TP traffic per block over the forward's all-gather + reduce-scatter: the mirror of
# the forward's reduce-scatter (an all-gather of the output gradient), the column-parallel
# layer's input gathered again for its weight gradient (sequence parallelism keeps only the
# shard), and the reduce-scatter of its input gradient.
TP_BWD_VOLUME = 1.5
# Without sequence parallelism a block's forward all-reduce (its bytes those of an all-gather
# plus a reduce-scatter) has one mirror in backward, the all-reduce of the column-parallel
# layer's input gradient; the input is whole on every rank, so nothing is gathered again.
TP_BWD_VOLUME_NO_SP = 1.0


def tp_backward_volume(ctx: StepContext) -> float:
    """Backward TP traffic per block, in forwards: 1.5 with sequence parallelism, 1 without."""
    return TP_BWD_VOLUME if ctx.stack.sequence_parallel else TP_BWD_VOLUME_NO_SP


# Share of a block's GEMM time in its column-parallel layer (QKV, or fc1 with gate and up), the
# one whose backward hides the gather and the reduce-scatter: QKV against the output projection
# is 3:1 with full heads and about 1.5:1 with grouped KV heads, fc1 against fc2 2:1 gated and
# 1:1 plain; a half is the low end, so the hiding is not overstated.
COLUMN_GEMM_SHARE = 0.5


def tp_backward_exposed(ctx: StepContext, block: Any, gemm_bwd: Any) -> Any:
    """Exposed TP seconds of one block's backward pass (not its recomputed forward).

    Megatron's tensor-parallel linear layers overlap backward communication by themselves
    (``LinearWithGradAccumulationAndAsyncCommunication.backward``, megatron/core/tensor_parallel/
    layers.py): with sequence parallelism the column-parallel layer launches the all-gather of
    its input asynchronously and computes the input gradient while it runs, then launches the
    reduce-scatter of that gradient and computes the weight gradient while it runs. Only the
    all-gather of the output gradient, before the row-parallel layer, waits. Of the backward's
    1.5 ``block`` (the forward's all-gather + reduce-scatter), 0.5 is exposed and 1.0 hides
    behind the column-parallel layer's two backward GEMMs, up to their length. With the stack's
    TP overlap all 1.5 hide behind the block's backward GEMMs, up to their length.

    Without sequence parallelism (Megatron-LM before arXiv 2205.05198, as BigScience's
    Megatron-DeepSpeed ran BLOOM) the column-parallel layer's input gradient is all-reduced by
    ``copy_to_tensor_model_parallel_region``, an autograd function the backward waits on
    (bigscience-workshop/Megatron-DeepSpeed megatron/mpu/layers.py, ColumnParallelLinear): its
    one ``block`` is exposed whole.
    """
    if ctx.stack.tp_comm_overlap:
        return np.maximum(0.0, tp_backward_volume(ctx) * block - gemm_bwd)
    if not ctx.stack.sequence_parallel:
        return block
    half = block / 2
    return half + np.maximum(0.0, block - COLUMN_GEMM_SHARE * gemm_bwd)


def routed_tp_exposed(routed: Any, forwards: Any) -> tuple[Any, Any]:
    """Exposed expert-TP seconds of one MoE layer: (forward, backward with its re-forwards).

    With expert TP the token dispatcher all-gathers the routed pairs over the expert-TP group
    before the experts and reduce-scatters their outputs after (``routed``, per forward); the
    backward runs the mirror collectives (a reduce-scatter and an all-gather of the same size)
    and each recomputed forward (``forwards`` of them) its own pair. All are plain collectives
    the experts wait on: Megatron-Core's alltoall dispatcher ends its permutation with the
    expert-TP all-gather and only then runs the experts, serially (MindSpeed-Core-MS
    docs/features/megatron_moe/megatron-moe-alltoall-dispatcher.md; its per-expert async
    variant is void under grouped GEMM), and the fused TP overlaps cover the attention and
    dense linear layers only: MindSpeed's MC2 "is not enabled for the MLP part of MoE models"
    under Megatron-Core (MindSpeed docs/features/mc2.md, 注意事项), Transformer Engine's
    userbuffers the TE linear layers (qkv, proj, fc1, fc2) only.
    """
    return routed, routed * (1 + forwards)


def contention(hidden: Any, share: Any) -> Any:
    """Compute lost to collectives that run beside it: share x hidden seconds.

    While an overlapped collective runs, its kernels hold a share s of the SMs (CUs), so the
    compute beside it advances at (1 - s) of its rate: over the ``hidden`` seconds the
    collective overlaps, s x hidden of compute slips past them. Exposed plus this is
    s x total + (1 - s) x exposed, never more than the collective alone would expose and never
    less than hiding it for free, so faster links or compute never make a step slower.
    Transformer Engine's TP overlaps hold 16 SMs beside the GEMMs they feed
    (``initialize_ub`` defaults, ``set_sm_margin``: 0.12 of an H100's 132); Primus-Turbo's fused
    MI355X MoE measures max(communication, GEMM) / wall at 87-94% (docs/README_Mega_MoE.md).
    The all-to-all's share is its dispatcher's (``comm_sm_share``), applied in the context.
    """
    return share * hidden


def warmup_micro_batches(ctx: StepContext) -> Any:
    """Micro-batches the first stage runs unpaired at each end of the 1F1B schedule.

    Megatron-Core's interleaved schedule warms up with (pp-1) x 2 + (vpp-1) x pp model chunks on
    the first rank, i.e. that over vpp micro-batches; plain 1F1B with pp-1; one stage still leaves
    the first forward and the last backward unpaired.
    """
    pp, vpp = ctx.pp, ctx.vpp
    interleaved = ((pp - 1) * 2 + (vpp - 1) * pp) / vpp
    return np.where(pp == 1, 1.0, np.where(vpp > 1, interleaved, pp - 1))


@dataclass(frozen=True)
class EpExposure:
    """Exposed all-to-all seconds per MoE layer and micro-batch, for micro-batches that run in
    forward/backward pairs (1F1B overlap, DualPipe) and for those that run alone."""

    paired_forward: Any
    paired_backward: Any
    alone_forward: Any
    alone_backward: Any
    paired: Any
    """Share of micro-batches that run in pairs."""

    @property
    def per_micro_batch(self) -> Any:
        """Average exposed seconds per MoE layer and micro-batch."""
        return (self.paired * (self.paired_forward + self.paired_backward)
                + (1 - self.paired) * (self.alone_forward + self.alone_backward))


@dataclass(frozen=True)
class PhaseWindows:
    """Compute of one MoE layer's phases that is free to hide all-to-all: each phase's compute
    less what already hides that phase's own TP or CP traffic (one stretch of compute hides
    one stream of communication, so the total stays monotone: a faster chip is never
    slower)."""

    fwd_attention: Any
    fwd_mlp: Any
    bwd_attention: Any
    bwd_mlp: Any

    @property
    def total(self) -> Any:
        return self.fwd_attention + self.fwd_mlp + self.bwd_attention + self.bwd_mlp


def ep_exposed(ctx: StepContext, ph: EpPhases, w: PhaseWindows) -> EpExposure:
    """Exposed EP seconds of one MoE layer and micro-batch under the plan's schedule."""
    # Full recompute, or the moe module's, runs the forward's dispatch and combine again inside
    # the backward.
    full = np.where(ctx.recompute == 2, 1.0, 0.0) + ctx.recomputes("moe")
    plain_fwd, plain_bwd = ph.forward, ph.backward + full * ph.forward
    one_f1b = bool(ctx.stack.ep_1f1b_overlap) & ~ctx.bidirectional & (
        ctx.ep > 1)
    m = ctx.num_micro
    paired = np.where(one_f1b, np.clip((m - warmup_micro_batches(ctx)) / m, 0.0, 1.0), 0.0)
    # Phase pairs of one forward layer against one backward layer.
    pair = (np.maximum(0.0, ph.bwd_combine - w.fwd_attention)
            + np.maximum(0.0, ph.fwd_dispatch - w.bwd_mlp)
            + np.maximum(0.0, ph.bwd_dispatch - w.fwd_mlp)
            + np.maximum(0.0, ph.fwd_combine - w.bwd_attention))
    # DualPipe and DualPipeV hide a micro-batch's all-to-all behind the other chunk's compute of
    # the whole layer.
    dual = np.maximum(0.0, plain_fwd + plain_bwd - w.total)
    hidden_pair = np.where(ctx.bidirectional, dual, pair + full * ph.forward)
    fwd_share = ph.forward / np.maximum(ph.forward + ph.backward, 1e-30)
    return EpExposure(
        paired_forward=hidden_pair * fwd_share, paired_backward=hidden_pair * (1 - fwd_share),
        alone_forward=plain_fwd, alone_backward=plain_bwd,
        paired=np.where(ctx.bidirectional & (ctx.ep > 1), 1.0, paired))


def cp_exposed(ctx: StepContext, ring: Any, f: LayerForward) -> tuple[Any, Any]:
    """Exposed CP seconds per layer, (forward, backward with recompute): what the KV ring takes
    beyond the attention kernel it feeds, a third of the ring in the forward against the forward
    kernel and two thirds in the backward against the backward kernel (its backward factor)."""
    # Full recompute, or core_attn's, runs the forward's ring again.
    full = np.where(ctx.recompute == 2, 1.0, 0.0) + ctx.recomputes("core_attn")
    # Ulysses' all-to-alls sit before and after the attention kernel: nothing hides them.
    hide = np.where(ctx.plans.cp_kind == 1, 0.0, 1.0)
    fwd = np.maximum(0.0, ring / 3 - hide * f.attn_core)
    bwd = np.maximum(0.0, ring * 2 / 3 - hide * f.attn_core * f.attn_bwd_factor) + full * fwd
    on = ctx.cp > 1
    return np.where(on, fwd, 0.0), np.where(on, bwd, 0.0)


def pp_exposed(ctx: StepContext, pp: Any, chunk_wall: Any) -> Any:
    """Exposed PP seconds per micro-batch: all, or what exceeds the wall time of the chunk it
    overlaps (the links are idle while the device computes or waits for the host).

    The stack's overlap needs a schedule with room for it: Megatron overlaps point-to-point
    only in the interleaved schedule ("Overlap P2P communication is disabled if not using the
    interleaved schedule", megatron/training/arguments.py; Pai-Megatron-Patch's Qwen3-235B
    benchmark measures PP32 without VPP slower for it, InternLM/xtuner
    docs/zh_cn/benchmark/megatron_moe_benchmark.md), since plain 1F1B packs each stage's
    forwards and backwards too tightly; DualPipe and DualPipeV overlap it by design
    (DeepSeek-V3 report sec. 3.2.1)."""
    if not ctx.stack.pp_overlap:
        return pp
    room = (ctx.vpp > 1) | ctx.dualpipe | ctx.dualpipev
    return np.where(room, np.maximum(0.0, pp - chunk_wall), pp)
