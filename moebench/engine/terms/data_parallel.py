"""Data-parallel traffic and the optimizer step, once per step.

Megatron's distributed optimizer (ZeRO-1): gradients are reduce-scattered (in FP32 or BF16, as
the stack reduces them) and updated parameters all-gathered in BF16, over the dense
data-parallel group (dp x cp) and, for routed experts, the expert-data-parallel group. The
reduce-scatter hides behind the last micro-batch's backward and the all-gather behind the first
one's forward (their wall time, communication included); the rest is exposed. The optimizer then
reads and writes the Adam state of the parameters each rank owns, at HBM speed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moebench.engine.collectives import gather_time, ranks_per_domain
from moebench.engine.context import StepContext
from moebench.inputs.run import OPTIMIZER_STEP_BYTES, PARAM_GATHER_BYTES


def dp_times(ctx: StepContext, params: tuple[Any, Any]) -> tuple[Any, Any]:
    """(gradient reduce-scatter, parameter all-gather) seconds per step, from the stage's
    (replicated, expert-sharded) parameters per chip."""
    dense_local, expert_local = params
    chip, links = ctx.chip, ctx.links
    dp_dense, dp_expert = ctx.dp * ctx.cp, ctx.expert_dp
    dd_in = ranks_per_domain(dp_dense, ctx.tp, chip.up_domain)
    de_in = ranks_per_domain(dp_expert, ctx.ep * ctx.etp, chip.up_domain)
    grad = ctx.stack.grad_reduce_bytes
    reduce = gather_time(dense_local * grad, dp_dense, dd_in, links) + \
        gather_time(expert_local * grad, dp_expert, de_in, links)
    gather = gather_time(dense_local * PARAM_GATHER_BYTES, dp_dense, dd_in, links) + \
        gather_time(expert_local * PARAM_GATHER_BYTES, dp_expert, de_in, links)
    return reduce, gather


def dp_exposed(reduce: Any, gather: Any, mb_forward: Any, mb_backward: Any) -> Any:
    """What the gradient and parameter traffic takes beyond the micro-batch it hides behind."""
    return np.maximum(0.0, reduce - mb_backward) + np.maximum(0.0, gather - mb_forward)


def optimizer_time(ctx: StepContext, params: tuple[Any, Any]) -> Any:
    """Adam step over the parameters this rank owns (its data-parallel shard), HBM-bound."""
    dense_local, expert_local = params
    owned = dense_local / (ctx.dp * ctx.cp) + expert_local / ctx.expert_dp
    return owned * OPTIMIZER_STEP_BYTES / ctx.mem_bw
