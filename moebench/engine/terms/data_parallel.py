"""Data-parallel traffic and the optimizer step, under each sharding of the training state.

zero-0/zero-1 (DDP; Megatron's distributed optimizer): gradients reduce-scattered (in FP32 or
BF16, as the stack reduces them) and updated parameters all-gathered in BF16 once per step, over
the dense data-parallel group (dp x cp) and, for routed experts, the expert-data-parallel group;
the reduce-scatter hides behind the last micro-batch's backward and the all-gather behind the
first one's forward. zero-2 keeps only its gradient shard, so it reduce-scatters every
micro-batch's gradients behind that micro-batch's backward. zero-3/FSDP also gathers each
layer's parameters before its forward and again before its backward, every micro-batch,
prefetched behind the neighbouring layer's compute (FSDP2; ZeRO-3, arXiv 1910.02054). hsdp does
zero-3 inside its shard group and all-reduces the gradient shards across groups once per step.
The optimizer then reads and writes the Adam state of the parameters each rank owns, at HBM speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.collectives import gather_time, ranks_per_domain
from moebench.engine.context import StepContext
from moebench.inputs.run import GRAD_BYTES, PARAM_GATHER_BYTES, WEIGHT_BYTES


@dataclass(frozen=True)
class DpTraffic:
    """Seconds of data-parallel collectives, by when they run (arrays per plan)."""

    reduce_step: Any
    """Gradient reduce-scatter (or cross-group all-reduce) once per step."""
    gather_step: Any
    """Parameter all-gather once per step."""
    reduce_micro: Any
    """Gradient reduce-scatter every micro-batch (zero-2 and up)."""
    gather_micro: Any
    """One parameter all-gather, twice every micro-batch (zero-3, hsdp)."""

    def total(self, num_micro: Any) -> Any:
        return (self.reduce_step + self.gather_step
                + num_micro * (self.reduce_micro + 2 * self.gather_micro))


def _group_time(ctx: StepContext, dense_bytes: Any, expert_bytes: Any, dense_n: Any,
                expert_n: Any, dense_stride: Any, expert_stride: Any) -> Any:
    """One all-gather (or reduce-scatter) of each buffer over its group; members ``stride``
    ranks apart."""
    up = ctx.chip.up_domain
    return (gather_time(dense_bytes, dense_n, ranks_per_domain(dense_n, dense_stride, up),
                        ctx.links)
            + gather_time(expert_bytes, expert_n, ranks_per_domain(expert_n, expert_stride, up),
                          ctx.links))


def dp_traffic(ctx: StepContext, params: tuple[Any, Any]) -> DpTraffic:
    """Data-parallel collectives of the stage's (replicated, expert-sharded) parameters per
    chip, by sharding."""
    dense, expert = params
    grad = ctx.stack.grad_reduce_bytes
    s = ctx.sharding
    dense_dp, expert_dp = ctx.dp * ctx.cp, ctx.expert_dp
    d_stride, e_stride = ctx.tp, ctx.ep * ctx.etp
    hsdp = s == 4
    # The group the per-micro-batch collectives run over: the whole data-parallel group, or
    # the hybrid shard group.
    d_group = np.where(hsdp, ctx.shard, dense_dp)
    e_group = np.where(hsdp, ctx.expert_shard, expert_dp)
    rs = _group_time(ctx, dense * grad, expert * grad, d_group, e_group, d_stride, e_stride)
    ag = _group_time(ctx, dense * PARAM_GATHER_BYTES, expert * PARAM_GATHER_BYTES, d_group,
                     e_group, d_stride, e_stride)
    # hsdp: the gradient shards all-reduced (reduce-scatter + all-gather) across the groups.
    d_rep, e_rep = dense_dp / ctx.shard, expert_dp / ctx.expert_shard
    across = 2 * _group_time(ctx, dense / ctx.shard * grad, expert / ctx.expert_shard * grad,
                             d_rep, e_rep, d_stride * ctx.shard, e_stride * ctx.expert_shard)
    zero = np.zeros_like(rs)
    return DpTraffic(
        reduce_step=np.where(s <= 1, rs, np.where(hsdp, across, zero)),
        gather_step=np.where(s <= 2, ag, zero),
        reduce_micro=np.where(s >= 2, rs, zero),
        gather_micro=np.where(s >= 3, ag, zero),
    )


def dp_exposed(t: DpTraffic, num_micro: Any, mb_forward: Any, mb_backward: Any) -> Any:
    """What the data-parallel traffic takes beyond the compute it hides behind.

    Every micro-batch's forward hides its parameter gather and its backward the re-gather and
    the gradient reduce-scatter (zero-2 and up); the once-a-step collectives ride on the first
    forward and the last backward, behind what those micro-batches' own traffic leaves free:
    exposed = m (max(0, g - F) + max(0, g + r - B)) + [max(0, g + G - F) - max(0, g - F)]
    + [max(0, g + r + R - B) - max(0, g + r - B)], so no window hides two things at once."""
    g, r = t.gather_micro, t.reduce_micro
    fwd = np.maximum(0.0, g - mb_forward)
    bwd = np.maximum(0.0, g + r - mb_backward)
    first = np.maximum(0.0, g + t.gather_step - mb_forward) - fwd
    last = np.maximum(0.0, g + r + t.reduce_step - mb_backward) - bwd
    return num_micro * (fwd + bwd) + first + last


def optimizer_step_bytes(optimizer_bytes: float) -> float:
    """HBM bytes per owned parameter in one Adam step: read master, m, v and the gradient,
    write master, m, v and the BF16 weight: 2 x optimizer state + 4 + 2 (30 with FP32 moments,
    22 with BF16 moments)."""
    return 2 * optimizer_bytes + GRAD_BYTES + WEIGHT_BYTES


def optimizer_time(ctx: StepContext, params: tuple[Any, Any]) -> Any:
    """Adam step over the parameters this rank owns (all of them under zero-0), HBM-bound."""
    dense, expert = params
    owned = np.where(ctx.sharding == 0, dense + expert,
                     dense / ctx.shard + expert / ctx.expert_shard)
    return owned * optimizer_step_bytes(ctx.run.optimizer_bytes) / ctx.mem_bw
