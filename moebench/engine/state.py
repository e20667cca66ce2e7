"""Training state per chip: the parameters the heaviest pipeline stage holds (replicated and
expert-sharded), and their weights, gradients and optimizer states in bytes, on the device and,
with optimizer offload, on the host, for the ranks that can hold the most. Sharding as the
plan's ZeRO/FSDP level; DualPipe holds two stages per rank, DualPipeV two half stages (see
:mod:`moebench.engine.memory`).
"""

from __future__ import annotations

import numpy as np

from moebench.engine.context import StepContext
from moebench.inputs.run import GRAD_BYTES, WEIGHT_BYTES

# Transformer Engine's FP8 weight caches: one byte row-wise, one column-wise (its transpose).
FP8_WEIGHT_COPIES_BYTES = 2.0


def rank_params(ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
    """(replicated, expert-sharded) parameters per chip on each rank that can hold the most
    memory, as rows: rank 0, the loss's rank, the fullest rank and MTP's rank when apart (that
    row zero otherwise).

    Rank 0 holds its layers and the input embedding; with one stage it holds everything, and
    under DualPipe (stages 0 and pp-1 on rank 0) and DualPipeV (whose V ends where it starts)
    also the LM head and MTP. The loss's rank holds its layers, the LM head and MTP unless MTP
    sits apart. The fullest rank holds only layers, two stages of them under DualPipe (its
    "two copies of the parameters", DeepSeek-V3 report Table 2). Replicated weights are split
    over tp, routed experts over ep x etp.
    """
    p, spec, sh, st = ctx.arch.params, ctx.arch.spec, ctx.shapes, ctx.stage
    n = spec.num_layers
    mtp_expert = spec.mtp_depth * sh.num_experts * sh.expert_params
    mtp_dense = p.mtp - mtp_expert
    # Replicated KV heads (tp wider than the KV heads) add their weights on every rank.
    layer_dense = p.dense - p.embedding - p.lm_head + n * ctx.kv_extra
    apart = np.asarray(st.mtp_apart) >= 0
    with_head = np.where(apart, 0.0, 1.0)
    dual = np.asarray(ctx.dualpipe, dtype=bool)
    ends = (ctx.pp == 1) | dual | np.asarray(ctx.dualpipev, dtype=bool)
    first = np.where(ctx.pp == 1, n, np.where(dual, st.first + st.head, st.first))
    on_first = np.where(ends, 1.0, 0.0)
    fullest = np.where(dual, 2 * st.fullest, st.fullest)
    mtp_layers = np.maximum(st.mtp_apart, 0)
    ranks = [
        (layer_dense * first / n + p.embedding + on_first * (p.lm_head + mtp_dense),
         p.expert * first / n + on_first * mtp_expert),
        ((layer_dense * st.head / n + p.lm_head + with_head * mtp_dense) * (1 - on_first),
         (p.expert * st.head / n + with_head * mtp_expert) * (1 - on_first)),
        (layer_dense * fullest / n, p.expert * fullest / n),
        (np.where(apart, layer_dense * mtp_layers / n + mtp_dense, 0.0),
         np.where(apart, p.expert * mtp_layers / n + mtp_expert, 0.0)),
    ]
    shape = np.broadcast(ctx.tp, first).shape
    dense = np.stack([np.broadcast_to(d / ctx.tp, shape) for d, _ in ranks])
    expert = np.stack([np.broadcast_to(e / (ctx.ep * ctx.etp), shape) for _, e in ranks])
    return dense, expert


def stage_params(ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
    """(replicated, expert-sharded) parameters per chip on the rank that holds the most
    (:func:`rank_params`): what its gradient reduce and optimizer step move."""
    return heaviest(rank_params(ctx))


def heaviest(ranks: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Of :func:`rank_params`' rows, the rank holding the most parameters, per plan."""
    dense, expert = ranks
    pick = np.argmax(dense + expert, axis=0)
    cols = np.arange(dense.shape[1])
    return dense[pick, cols], expert[pick, cols]


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
    BF16 moments), or O x that from zero-1 on (ZeRO, arXiv 1910.02054, sec. 5). Under FP8 a
    release that caches FP8 weights adds 2 bytes per parameter held whole (weights). A release that
    keeps half-precision gradients (DeepSpeed ZeRO, main_grads half) holds 2P of them, or from
    zero-2 on one layer's half bucket, plus 4O, the FP32 copy of its shard the optimizer reads;
    DeepSpeed's BF16 optimizer (half+fp32) keeps 2P beside a full FP32 accumulation, 6P;
    Megatron's BF16 main_grad buffer (bf16) 2P, or from zero-2 on 2 (O + one layer). Pure
    BF16 training (optimizer states pure-bf16: the BF16 weights are the master) keeps BF16
    gradients alone: 2P, or from zero-2 on 2 (O + one layer), and 4 bytes of BF16 moments."""
    dense, expert = params
    full = dense + expert
    owned = dense / ctx.shard + expert / ctx.expert_shard
    layer = layer_params(ctx)
    s = ctx.sharding
    gathered = (s == 3) | (s == 4)
    weights = np.where(gathered, owned + 2 * layer, full) * WEIGHT_BYTES
    if ctx.fp8 and ctx.stack.fp8_weight_cache:
        # Transformer Engine keeps each weight's FP8 copy, row- and column-wise (the forward's
        # and the input gradient's layouts), across micro-batches: 2 bytes per parameter it
        # holds whole (under zero-3/hsdp, the two gathered layers).
        weights = weights + np.where(gathered, 2 * layer, full) * FP8_WEIGHT_COPIES_BYTES
    if ctx.run.pure_bf16:
        # No FP32 copy anywhere: the gradients stay in the weights' BF16 (FSDP2 reduces them in
        # FP32 on the wire and writes BF16 shards).
        grads = np.where(s >= 2, owned + layer, full) * ctx.run.grad_bytes
    elif ctx.stack.main_grads == "bf16":
        # Megatron with grad_reduce_in_fp32 off: the main_grad buffer itself in BF16 (all of
        # it, or the owned shard and one layer's bucket from zero-2 on). The distributed
        # optimizer casts the owned shard's gradients to FP32 only inside the optimizer step
        # (distrib_optimizer.py _copy_model_grads_to_main_grads), when the activations are
        # gone: not at the peak.
        grads = np.where(s >= 2, owned + layer, full) * WEIGHT_BYTES
    elif ctx.stack.main_grads == "half":
        # DeepSpeed ZeRO: half-precision gradients (all of them, or one bucket from zero-2
        # on) and an FP32 copy of the owned shard for the optimizer.
        grads = np.where(s >= 2, layer, full) * WEIGHT_BYTES + owned * GRAD_BYTES
    elif ctx.stack.main_grads == "half+fp32":
        # DeepSpeed's BF16 optimizer: the half gradients beside a full FP32 accumulation.
        grads = full * (WEIGHT_BYTES + GRAD_BYTES)
    else:
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
