"""Training state per chip: the parameters the heaviest pipeline stage holds (replicated and
expert-sharded), and their weights, gradients and optimizer states in bytes, on the device and,
with optimizer offload, on the host. Sharding as the plan's ZeRO/FSDP level; DualPipe holds two
copies of a stage's share, DualPipeV one (see :mod:`moebench.engine.memory`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moebench.engine.context import StepContext
from moebench.engine.layout import GIVEN
from moebench.inputs.run import GRAD_BYTES, WEIGHT_BYTES


def stage_params(ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
    """(replicated, expert-sharded) parameters held per chip on the heaviest stage.

    Layer weights spread over pp stages of ceil(L/(pp*vpp))*vpp layers; the input embedding
    sits on the first stage, the LM head and MTP modules on the last (both on one when pp = 1,
    and on rank 0 under DualPipeV, whose V ends where it starts).
    Replicated weights are split over tp, routed experts over ep x etp.
    """
    p, spec, sh = ctx.arch.params, ctx.arch.spec, ctx.shapes
    tp, pp, ep = ctx.tp, ctx.pp, ctx.ep * ctx.etp
    mtp_expert = spec.mtp_depth * sh.num_experts * sh.expert_params
    mtp_dense = p.mtp - mtp_expert
    frac = ctx.layers_per_stage / spec.num_layers
    # Replicated KV heads (tp wider than the KV heads) add their weights on every rank.
    layer_dense = p.dense - p.embedding - p.lm_head + spec.num_layers * ctx.kv_extra
    first = layer_dense * frac + p.embedding
    last = layer_dense * frac + p.lm_head + mtp_dense
    whole = layer_dense + p.embedding + p.lm_head + mtp_dense
    # DualPipeV: the V turns back to rank 0, which holds the first and the last stage.
    both = layer_dense * frac + p.embedding + p.lm_head + mtp_dense
    dense = np.where(pp > 1, np.where(ctx.dualpipev, both, np.maximum(first, last)), whole)
    expert = p.expert * frac + mtp_expert
    if ctx.stage.uniform:
        return dense / tp, expert / ep
    return _written_stage_params(ctx, layer_dense, mtp_dense, mtp_expert, (dense, expert))


def _written_stage_params(ctx: StepContext, layer_dense: Any, mtp_dense: Any, mtp_expert: Any,
                          uniform: tuple[np.ndarray, np.ndarray]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """(replicated, expert) parameters per chip on the heaviest rank of a written layout: of
    the first rank (its layers and the embedding), the loss's (its layers, the LM head, and MTP
    unless apart), MTP's when apart, and the fullest; plans without one keep ``uniform``."""
    p, n, st = ctx.arch.params, ctx.arch.spec.num_layers, ctx.stage
    tp, ep = ctx.tp, ctx.ep * ctx.etp
    apart = np.asarray(st.mtp_apart) >= 0
    with_head = np.where(apart, 0.0, 1.0)
    ranks = [
        (layer_dense * st.first / n + p.embedding, p.expert * st.first / n),
        (layer_dense * st.head / n + p.lm_head + with_head * mtp_dense,
         p.expert * st.head / n + with_head * mtp_expert),
        (layer_dense * st.fullest / n, p.expert * st.fullest / n),
        (np.where(apart, layer_dense * np.maximum(st.mtp_apart, 0) / n + mtp_dense, 0.0),
         np.where(apart, p.expert * np.maximum(st.mtp_apart, 0) / n + mtp_expert, 0.0)),
    ]
    per_chip = np.stack([d / tp + e / ep for d, e in ranks])
    pick = np.argmax(per_chip, axis=0)
    dense = np.choose(pick, [np.broadcast_to(d, pick.shape) for d, _ in ranks])
    expert = np.choose(pick, [np.broadcast_to(e, pick.shape) for _, e in ranks])
    given = np.asarray(st.kind) == GIVEN
    return (np.where(given, dense, uniform[0]) / tp, np.where(given, expert, uniform[1]) / ep)


def layer_params(ctx: StepContext) -> np.ndarray:
    """Parameters per chip of one transformer layer: its share of the attention and dense FFN
    weights over tp, plus one MoE layer's routed experts over ep x etp (what ZeRO-3/FSDP gathers
    and what one layer's gradient bucket holds)."""
    p, spec = ctx.arch.params, ctx.arch.spec
    layer_dense = p.dense - p.embedding - p.lm_head + spec.num_layers * ctx.kv_extra
    per_moe = p.expert / max(ctx.arch.num_moe_layers, 1)
    return np.maximum(layer_dense, 0.0) / spec.num_layers / ctx.tp + per_moe / (ctx.ep * ctx.etp)


def state_bytes(ctx: StepContext, params: tuple[np.ndarray, np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, gradients, optimizer states) bytes per chip under the plan's sharding.

    With P the stage's parameters per chip and O = P_dense/S + P_expert/S_e the share this rank
    owns (S, S_e the shard groups): weights 2P, or under zero-3/hsdp 2O plus two gathered layers
    (the one computing and the one prefetched, as FSDP2 prefetches); gradients 4P, or from zero-2
    on 4O plus one layer's bucket before its reduce-scatter; optimizer states P x (12, or 8 with
    BF16 moments), or O x that from zero-1 on (ZeRO, arXiv 1910.02054, sec. 5)."""
    dense, expert = params
    full = dense + expert
    owned = dense / ctx.shard + expert / ctx.expert_shard
    layer = layer_params(ctx)
    s = ctx.sharding
    gathered = (s == 3) | (s == 4)
    weights = np.where(gathered, owned + 2 * layer, full) * WEIGHT_BYTES
    grads = np.where(s >= 2, owned + layer, full) * GRAD_BYTES
    optimizer = np.where(s == 0, full, owned) * ctx.run.optimizer_bytes
    return weights, grads, (1.0 - ctx.optimizer_offload) * optimizer


def host_state_bytes(ctx: StepContext, params: tuple[np.ndarray, np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(offloaded optimizer states, host memory used) bytes per chip under optimizer offload.

    Megatron-Core's HybridDeviceOptimizer keeps, for the offloaded fraction F of the parameters
    a rank steps, a pinned FP32 copy of each parameter (the master) and its Adam moments on the
    host, F x owned x (12, or 8 with BF16 moments), plus a pinned FP32 gradient buffer the GPU
    gradients are copied into, F x owned x 4. The gradients stay on the device as well (the
    data-parallel gradient buffer is untouched)."""
    dense, expert = params
    owned = np.where(ctx.sharding == 0, dense + expert,
                     dense / ctx.shard + expert / ctx.expert_shard)
    moved = ctx.optimizer_offload * owned
    return moved * ctx.run.optimizer_bytes, moved * (ctx.run.optimizer_bytes + GRAD_BYTES)
