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
    return _fullest_rank(ctx, params, _rank_activations(ctx, stored, working, off))


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
    flat = [(acts.ravel(), logits.ravel(), host.ravel()) for acts, logits, host in ranks]
    return _fullest_rank(ctx, params, flat, repeat=k)


def _rank_activations(ctx: StepContext, stored: np.ndarray, working: np.ndarray,
                      offloaded: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(activations, logits, activations on the host) bytes of each candidate rank of
    :func:`moebench.engine.state.rank_params` (rank 0, the loss's, the fullest, MTP's apart),
    from one layer's stored, working and offloaded bytes (per plan, or per plan and option as
    columns). Of n layer-passes in flight, a rank keeps stored - offloaded of each and the
    offloaded bytes of min(n, 2) (:mod:`moebench.engine.terms.activation_offload`); the host
    holds the rest.

    Micro-batches in flight: rank 0 holds pp under 1F1B, times 1 + (pp-1)/(pp vpp) when
    interleaved; under DualPipe pp of its first stage and one of its last (pp + 1, DeepSeek-V3
    Table 2); under DualPipeV pp + 1/2 of its layers. Rank 1, the fullest rank of a layout whose
    rank 0 is lighter, holds one fewer under 1F1B and as many under DualPipe(V). The loss's rank
    holds one, and the logits; with one stage, or under DualPipe(V), rank 0 holds them. A
    release that keeps stage outputs adds one hidden state per micro-batch in flight."""
    off = np.minimum(offloaded, stored)

    def held(n: np.ndarray) -> np.ndarray:
        return n * (stored - off) + np.minimum(n, 2.0) * off + working

    spec, st = ctx.arch.spec, ctx.stage
    pp, vpp, num_micro = ctx.pp, ctx.vpp, ctx.num_micro
    shape = np.shape(pp)

    def col(a: Any) -> np.ndarray:
        a = np.broadcast_to(np.asarray(a, dtype=float), shape)
        return a[:, None] if stored.ndim == 2 else a

    dual, v = np.asarray(ctx.dualpipe, dtype=bool), np.asarray(ctx.dualpipev, dtype=bool)
    interleave = np.where(vpp > 1, 1 + (pp - 1) / (pp * vpp), 1.0)
    in_flight = np.where(dual, pp + 1, np.where(v, pp + 0.5,
                                                np.minimum(pp, num_micro) * interleave))
    n_first = np.where(dual, pp * st.first + st.head, in_flight * st.first)
    n_full = np.where(dual | v, in_flight, np.minimum(pp - 1, num_micro) * interleave
                      ) * st.fullest
    ends = (pp == 1) | dual | v
    logits = col((1 + spec.mtp_depth) * ctx.tok_sp * spec.vocab_size * 4.0)  # FP32
    zero = np.zeros_like(stored + working)
    on_ends, on_last = col(np.where(ends, 1.0, 0.0)), col(np.where(ends, 0.0, 1.0))
    mtp_layers = col(np.maximum(np.asarray(st.mtp_apart, dtype=float), 0.0))
    counts = [col(n_first), col(st.head + 0.0 * pp), col(n_full), mtp_layers]
    # A stack that keeps each in-flight micro-batch's stage output (DeepSpeed's pipeline
    # engine; Megatron frees its data once sent, deallocate_pipeline_outputs) holds one BF16
    # hidden state per micro-batch in flight on every rank that sends one (not the last).
    kept = ctx.stack.keeps_stage_outputs and bool(np.any(pp > 1))
    outputs = col(np.where(pp > 1, BF16 * spec.hidden_size * ctx.tok_sp
                           * np.where(ctx.stack.sequence_parallel, 1.0, ctx.tp), 0.0)) \
        if kept else 0.0
    flights = [col(np.where(dual, pp + 1, in_flight)),
               col(np.zeros_like(in_flight, dtype=float)),
               col(n_full / np.maximum(st.fullest, 1)), col(np.zeros_like(in_flight))]
    rows = []
    # MTP's rank is a candidate only where some plan puts MTP apart; elsewhere its row holds
    # nothing and can never be the fullest, so it is not computed.
    if not np.any(np.asarray(st.mtp_apart) >= 0):
        counts = counts[:3]
    for i, n in enumerate(counts):
        acts = held(n) * (on_last if i == 1 else 1.0) + outputs * flights[i]
        if i == 3:
            acts = np.where(mtp_layers > 0, acts, zero)
        rows.append((acts, zero + logits * (on_ends if i == 0 else on_last if i == 1 else 0.0),
                     np.maximum(n - 2.0, 0.0) * off * (on_last if i == 1 else 1.0)))
    return rows


def _fullest_rank(ctx: StepContext, params: tuple[np.ndarray, np.ndarray],
                  ranks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], repeat: int = 1
                  ) -> MemoryBreakdown:
    """The breakdown of the candidate rank that needs the most device memory, per plan (each
    plan's state repeated ``repeat`` times, beside as many activation rows). The rank is picked
    on live bytes (the allocator's hold and the reserve grow with them), and only its fields
    are gathered: the candidates' states stay one row per plan."""
    k = len(ranks)  # MTP's rank left out where no plan puts it apart (_rank_activations)
    state = [state_bytes(ctx, (d, e)) for d, e in zip(params[0][:k], params[1][:k], strict=True)]
    hosted = [host_state_bytes(ctx, (d, e))
              for d, e in zip(params[0][:k], params[1][:k], strict=True)]
    live = np.stack([np.repeat(w + g + o, repeat) + acts + logits
                     for (w, g, o), (acts, logits, _) in zip(state, ranks, strict=True)])
    pick = np.argmax(live, axis=0)
    rows = np.arange(pick.size)
    plan = rows // repeat

    def per_plan(values: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.broadcast_to(v, plan.size // repeat) for v in values])[pick, plan]

    def per_row(values: list[np.ndarray]) -> np.ndarray:
        return np.stack([np.broadcast_to(v, pick.shape) for v in values])[pick, rows]

    weights, grads, optimizer = (per_plan([s[j] for s in state]) for j in range(3))
    offloaded, host = (per_plan([h[j] for h in hosted]) for j in range(2))
    acts, logits, on_host = (per_row([r[j] for r in ranks]) for j in range(3))
    allocated = live[pick, rows]
    return MemoryBreakdown(
        weights=weights, gradients=grads, optimizer=optimizer, activations=acts, logits=logits,
        # The reserve may be an array of sampled figures (uncertainty): broadcast, not fill.
        reserve=np.zeros_like(allocated) + ctx.stack.reserve_bytes,
        fragmentation=allocated * ctx.stack.fragmentation,
        offloaded_optimizer=offloaded, host=host + on_host, offloaded_activations=on_host,
    )
