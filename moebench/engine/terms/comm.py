"""Communication of one micro-batch on the slowest stage, by kind, before any overlap.

* TP with sequence parallelism: all-gather and reduce-scatter of T/cp tokens x h around attention
  and each TP-sharded FFN, forward and backward (and forward again under full recompute); with
  expert TP, the routed pairs are all-gathered before the experts and reduce-scattered after.
  Without sequence parallelism each all-gather + reduce-scatter pair is one all-reduce of the
  same bytes (its backward: :func:`~moebench.engine.terms.overlap.tp_backward_volume`).
* EP: per MoE layer four all-to-alls, forward dispatch and combine and their backward
  counterparts, each over the dispatcher's path (deduplicated per domain or not); dispatch in FP8
  where the run is FP8 and the stack sends FP8. An all-gather dispatcher gathers every token of
  the EP group instead and reduce-scatters back.
* CP: ring exchange of K and V chunks, cp-1 steps forward and twice that backward.
* PP: activations out and gradients back at each chunk's boundary (vpp chunks, two under
  DualPipeV).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.collectives import alltoall_time, gather_time, p2p_time, ranks_per_domain
from moebench.engine.context import BF16, StepContext

FP8_SCALE_BYTES_PER_ELEMENT = 4.0 / 128  # one FP32 scale per 128 values (blockwise FP8)


@dataclass(frozen=True)
class EpPhases:
    """All-to-all seconds of one MoE layer and one micro-batch, by phase."""

    fwd_dispatch: Any
    fwd_combine: Any
    bwd_dispatch: Any
    """The combine's gradient, sent back along the dispatch path."""
    bwd_combine: Any
    """The dispatch's gradient, sent back along the combine path."""

    @property
    def forward(self) -> Any:
        return self.fwd_dispatch + self.fwd_combine

    @property
    def backward(self) -> Any:
        return self.bwd_dispatch + self.bwd_combine


@dataclass(frozen=True)
class TpLayer:
    """TP seconds per layer and pass (forward, or backward), by the block it surrounds."""

    attention: Any
    dense: Any
    """The FFN of a dense layer."""
    moe: Any
    """The shared expert's TP (zero without a shared expert)."""
    routed: Any
    """Expert TP's all-gather of the routed pairs before the experts and reduce-scatter after:
    the token dispatcher's own collectives, not a TP-sharded linear layer's."""


def tp_layer(ctx: StepContext) -> TpLayer:
    """All-gather before and reduce-scatter after each TP-sharded block, per pass."""
    sh, h = ctx.shapes, ctx.arch.spec.hidden_size
    chip, links = ctx.chip, ctx.links
    tp_in = ranks_per_domain(ctx.tp, 1, chip.up_domain)
    block = 2 * gather_time(ctx.tokens / ctx.cp * h * BF16, ctx.tp, tp_in, links)
    etp_in = ranks_per_domain(ctx.etp, 1, chip.up_domain)
    routed = 2 * gather_time(ctx.expert_rows * h * BF16, ctx.etp, etp_in, links)
    return TpLayer(attention=block, dense=block,
                   moe=block if sh.shared_params else 0.0 * block, routed=routed)


def ep_phases(ctx: StepContext) -> EpPhases:
    """All-to-all seconds per MoE layer and micro-batch, by phase (zero for dense models)."""
    if not ctx.arch.is_moe:
        zero = 0.0 * ctx.tp
        return EpPhases(zero, zero, zero, zero)
    sh, h, stack = ctx.shapes, ctx.arch.spec.hidden_size, ctx.stack
    ep_in = ranks_per_domain(ctx.ep, 1, ctx.chip.up_domain)
    if stack.dispatcher == "allgather":
        # Every rank gathers all T_sp x h hidden states of its EP group, and reduce-scatters back.
        t = gather_time(ctx.tok_sp * ctx.ep * h * BF16, ctx.ep, ep_in, ctx.links)
        return EpPhases(t, t, t, t)
    node_limit = ctx.arch.spec.moe.max_nodes_per_token if ctx.arch.spec.moe else None
    fp8_dispatch = ctx.fp8 and stack.dispatch_fp8
    dispatch_bytes = h * (1.0 + FP8_SCALE_BYTES_PER_ELEMENT) if fp8_dispatch else h * BF16
    load = ctx.received / (ctx.tok_sp * sh.top_k)  # the busiest rank's share over the mean

    def a2a(token_bytes: float) -> Any:
        return alltoall_time(token_bytes, ctx.tok_sp * load, sh.top_k, ctx.ep, ep_in,
                             node_limit, ctx.links, stack.deduplicates, sh.num_experts,
                             stack.per_rank, ctx.run.routing == "contiguous")

    bf16 = a2a(h * BF16)
    return EpPhases(fwd_dispatch=a2a(dispatch_bytes), fwd_combine=bf16,
                    bwd_dispatch=bf16, bwd_combine=bf16)


def cp_time(ctx: StepContext) -> Any:
    """Context-parallel seconds per layer and micro-batch (forward and backward: a third and
    two thirds).

    Ring: cp - 1 steps passing this rank's K/V chunk, three times (forward, and backward's K/V
    and their gradients). Ulysses: all-to-alls of Q, K, V in and of the output back, each
    (cp - 1)/cp of the rank's local tensors, once forward and twice backward (their
    gradients): 3 x [a2a(T/cp x (q + k + v) / tp) + a2a(T/cp x o / tp)]."""
    cp_in = ranks_per_domain(ctx.cp, ctx.tp, ctx.chip.up_domain)
    kv = ctx.shapes.kv_width * ctx.kv_copies
    msg = ctx.tokens / ctx.cp * kv / ctx.tp * BF16
    ring = (ctx.cp - 1) * 3 * p2p_time(msg, cp_in < ctx.cp, ctx.links)
    rows = ctx.tokens / ctx.cp / ctx.tp * BF16
    q, o = ctx.shapes.q_width, ctx.shapes.o_width
    ulysses = 3 * (gather_time(rows * (q + kv), ctx.cp, cp_in, ctx.links)
                   + gather_time(rows * o, ctx.cp, cp_in, ctx.links))
    return np.where(ctx.cp > 1, np.where(ctx.plans.cp_kind == 1, ulysses, ring), 0.0)


def pp_time(ctx: StepContext) -> Any:
    """PP send/receive seconds per micro-batch on a stage (both directions, all chunks)."""
    cross = (ctx.tp * ctx.cp * ctx.dp) >= ctx.chip.up_domain
    msg = ctx.tok_sp * ctx.arch.spec.hidden_size * BF16
    return np.where(ctx.pp > 1, 2 * ctx.chunks * p2p_time(msg, cross, ctx.links), 0.0)
