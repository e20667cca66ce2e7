"""Memory per chip on the rank that holds the most: every candidate rank's training state (rank 0,
the loss's rank, the fullest rank, MTP's rank) with its own activations, for every plan, and
the fast path over recompute options."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from moebench.engine.context import StepContext, distinct, expand
from moebench.engine.memory import BF16, MemoryBreakdown, activation_bytes_per_layer
from moebench.engine.state import host_state_bytes, state_bytes
from moebench.engine.terms.activation_offload import offloaded_bytes_per_layer


def memory_per_chip(ctx: StepContext, params: tuple[np.ndarray, np.ndarray]
                    ) -> MemoryBreakdown:
    """Bytes per chip on the rank that holds the most, for every plan, from the (replicated,
    expert-sharded) parameters of each candidate rank (:func:`rank_params`)."""
    small, index = distinct(ctx, ("tp", "cp", "mb", "ep", "etp", "recompute", "rc_modules",
                                  "act_offload"))
    stored, working = (expand(a, index) for a in activation_bytes_per_layer(small))
    off = expand(np.broadcast_to(offloaded_bytes_per_layer(small), small.tp.shape), index)
    return _fullest_rank(ctx, params, *_rank_activations(ctx, stored, working, off))


def memory_over_recompute(ctx: StepContext, params: tuple[np.ndarray, np.ndarray],
                          recompute: np.ndarray, rc_modules: np.ndarray) -> MemoryBreakdown:
    """:func:`memory_per_chip` of each plan of ``ctx`` under each of k recompute options
    (``recompute[j]``, ``rc_modules[j]``), as n x k rows, option innermost: the order in which
    :func:`moebench.engine.plan_space.candidate_plans` builds them.

    Recompute changes only the activations, and those only through (tp, cp, micro-batch, ep,
    etp) per layer (ep through the busiest rank's imbalance, none at ep = 1): the training
    state is computed once per plan and the activations once per distinct combination and
    option, instead of k times over every row (equal to
    :func:`memory_per_chip` of the expanded plans, tested)."""
    k = len(recompute)
    small, index = distinct(ctx, ("tp", "cp", "mb", "ep", "etp", "act_offload"))
    stored: list[np.ndarray] = []
    working: list[np.ndarray] = []
    off: list[np.ndarray] = []
    for r, mods in zip(recompute, rc_modules, strict=True):
        opt = replace(small, recompute=np.full_like(small.recompute, r),
                      rc_modules=np.full_like(small.rc_modules, mods))
        for out, values in zip((stored, working, off),
                               (*activation_bytes_per_layer(opt), offloaded_bytes_per_layer(opt)),
                               strict=True):
            out.append(expand(np.broadcast_to(values, small.tp.shape), index))
    ranks = _rank_activations(ctx, np.stack(stored, axis=1), np.stack(working, axis=1),
                              np.stack(off, axis=1))
    # (rank, plan, option) -> (rank, row): the option innermost, as the rows are laid out.
    acts, logits, host = (a.reshape(len(a), -1) for a in ranks)
    return _fullest_rank(ctx, params, acts, logits, host, repeat=k)


# Bytes per logit the loss holds from its forward to its backward, by implementation (the
# names of terms.compute.CROSS_ENTROPY_BYTES): Megatron-Core's eager and jit-fused
# vocab-parallel cross-entropies cast the BF16 logits to FP32 and save the FP32 softmax
# (tensor_parallel/cross_entropy.py, fusions/fused_cross_entropy.py): 4. Transformer Engine's
# Triton loss writes the gradient into its BF16 input in place and saves that input
# (transformer_engine/pytorch/cross_entropy.py, CrossEntropyFunction.forward,
# save_for_backward(_input)): 2.
LOGIT_HELD_BYTES = {"unfused": 4.0, "fused": 4.0, "te": 2.0}


def logits_held(ctx: StepContext) -> Any:
    """Bytes the loss holds for one micro-batch on the loss's rank: a logit per token, vocabulary
    entry and prediction head (the main one and MTP's), at :data:`LOGIT_HELD_BYTES`."""
    spec = ctx.arch.spec
    return ((1 + spec.mtp_depth) * ctx.tok_sp * spec.vocab_size
            * LOGIT_HELD_BYTES[ctx.stack.cross_entropy])


def _rank_activations(ctx: StepContext, stored: np.ndarray, working: np.ndarray,
                      offloaded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations, logits, activations on the host) bytes of each candidate rank of
    :func:`moebench.engine.state.rank_params` (rank 0, the loss's, the fullest, MTP's apart),
    one row per rank, from one layer's stored, working and offloaded bytes (per plan, or per
    plan and option as columns: then each rank's row is a plan x option array). Of n
    layer-passes in flight, a rank keeps stored - offloaded of each and the offloaded bytes of
    min(n, 2) (:mod:`moebench.engine.terms.activation_offload`); the host holds the rest.

    Micro-batches in flight: rank 0 holds pp under 1F1B, times 1 + (pp-1)/(pp vpp) when
    interleaved; under DualPipe pp of its first stage and one of its last (pp + 1, DeepSeek-V3
    Table 2); under DualPipeV pp + 1/2 of its layers. Rank 1, the fullest rank of a layout whose
    rank 0 is lighter, holds one fewer under 1F1B and as many under DualPipe(V). The loss's rank
    holds one, and the logits; with one stage, or under DualPipe(V), rank 0 holds them. A
    release that keeps stage outputs adds one hidden state per micro-batch in flight."""
    off = np.minimum(offloaded, stored)
    spec, st = ctx.arch.spec, ctx.stage
    pp, vpp, num_micro = ctx.pp, ctx.vpp, ctx.num_micro
    shape = np.shape(pp)

    def ranks(*values: Any) -> np.ndarray:
        """One row per rank, each a column beside the options when there are options."""
        a = np.stack([np.broadcast_to(np.asarray(v, dtype=float), shape) for v in values])
        return a[:, :, None] if stored.ndim == 2 else a

    dual, v = np.asarray(ctx.dualpipe, dtype=bool), np.asarray(ctx.dualpipev, dtype=bool)
    interleave = np.where(vpp > 1, 1 + (pp - 1) / (pp * vpp), 1.0)
    in_flight = np.where(dual, pp + 1, np.where(v, pp + 0.5,
                                                np.minimum(pp, num_micro) * interleave))
    n_first = np.where(dual, pp * st.first + st.head, in_flight * st.first)
    n_full = np.where(dual | v, in_flight, np.minimum(pp - 1, num_micro) * interleave
                      ) * st.fullest
    ends = np.where((pp == 1) | dual | v, 1.0, 0.0)
    mtp_layers = np.maximum(np.asarray(st.mtp_apart, dtype=float), 0.0)
    # MTP's rank is a candidate only where some plan puts MTP apart; elsewhere its row holds
    # nothing and can never be the fullest, so it is not computed.
    with_mtp = bool(np.any(np.asarray(st.mtp_apart) >= 0))
    r = slice(None) if with_mtp else slice(0, 3)
    counts = ranks(n_first, st.head, n_full, mtp_layers)[r]
    # What each rank holds of its layers' activations: the loss's rank only when it is not
    # rank 0, MTP's only where MTP sits apart.
    share = ranks(1.0, 1.0 - ends, 1.0, mtp_layers > 0)[r]
    offloads = bool(off.any())  # most plans offload nothing: skip those terms
    held = (counts * (stored - off) + np.minimum(counts, 2.0) * off if offloads
            else counts * stored) + working
    held *= share
    # A stack that keeps each in-flight micro-batch's stage output (DeepSpeed's pipeline
    # engine; Megatron frees its data once sent, deallocate_pipeline_outputs) holds one BF16
    # hidden state per micro-batch in flight on every rank that sends one (not the last).
    if ctx.stack.keeps_stage_outputs and bool(np.any(pp > 1)):
        outputs = np.where(pp > 1, BF16 * spec.hidden_size * ctx.tok_sp
                           * np.where(ctx.stack.sequence_parallel, 1.0, ctx.tp), 0.0)
        flights = ranks(np.where(dual, pp + 1, in_flight), 0.0,
                        n_full / np.maximum(st.fullest, 1), 0.0)[r]
        held = held + ranks(outputs)[0] * flights * (share > 0)
    logits = logits_held(ctx)
    on_logits = ranks(ends * logits, (1.0 - ends) * logits, 0.0, 0.0)[r]
    zero = np.zeros_like(held)
    host = (np.maximum(counts - 2.0, 0.0) * off * ranks(1.0, 1.0 - ends, 1.0, 1.0)[r]
            if offloads else 0.0)
    return held, zero + on_logits, zero + host


def _fullest_rank(ctx: StepContext, params: tuple[np.ndarray, np.ndarray], acts: np.ndarray,
                  logits: np.ndarray, on_host: np.ndarray, repeat: int = 1) -> MemoryBreakdown:
    """The breakdown of the candidate rank that needs the most device memory, per plan (each
    plan's state repeated ``repeat`` times, beside as many activation rows; ``acts``,
    ``logits`` and ``on_host`` one row per rank, :func:`_rank_activations`). The rank is picked
    on live bytes (the allocator's hold and the reserve grow with them), and only its fields
    are gathered: the candidates' states stay one row per plan."""
    k = len(acts)  # MTP's rank left out where no plan puts it apart (_rank_activations)
    ranks = (params[0][:k], params[1][:k])
    weights, grads, optimizer = state_bytes(ctx, ranks)
    offloaded, host = host_state_bytes(ctx, ranks)
    live = np.repeat(weights + grads + optimizer, repeat, axis=1) + acts + logits
    pick = np.argmax(live, axis=0)
    n_rows = pick.size
    # Flat positions of each row's picked rank: in the (rank, row) and (rank, plan) arrays.
    at_row = pick * n_rows + np.arange(n_rows)
    at_plan = pick * (n_rows // repeat) + np.arange(n_rows) // repeat

    weights, grads, optimizer, offloaded, host = (
        np.take(np.broadcast_to(a, (k, n_rows // repeat)).ravel(), at_plan)
        for a in (weights, grads, optimizer, offloaded, host))
    acts, logits, on_host = (np.take(a.ravel(), at_row) for a in (acts, logits, on_host))
    allocated = np.take(live.ravel(), at_row)
    return MemoryBreakdown(
        weights=weights, gradients=grads, optimizer=optimizer, activations=acts, logits=logits,
        # The reserve may be an array of sampled figures (uncertainty): broadcast, not fill.
        reserve=np.zeros_like(allocated) + ctx.stack.reserve_bytes,
        fragmentation=allocated * ctx.stack.fragmentation,
        offloaded_optimizer=offloaded, host=host + on_host, offloaded_activations=on_host,
    )
