"""Step time and memory per chip for many plans at once: the composition of the named terms.

    step = t_mb x (m + bubble) + exposed DP communication + optimizer step
    (bubble and the once-a-run DP exchange counted per pipeline schedule run, where a trainer
    runs the schedule more than once a step)

t_mb is one micro-batch on the slowest pipeline stage. Each block of a layer (attention, MoE,
dense FFN) has a device time: its compute (:mod:`terms.compute`) plus the communication that
hides behind it and does not fit (:mod:`terms.comm`, :mod:`terms.overlap`). Against that runs
the host's time to dispatch it (:mod:`terms.host`): the slower of the two sets each stretch of
work between syncs. Pipeline sends hide behind the micro-batch's wall time; what TP, CP, PP and
DP traffic hides still slows the compute beside it (:func:`terms.overlap.contention`). m is the
number of micro-batches, the bubble the schedule's idle time (:mod:`terms.pipeline`), and the
DP traffic and optimizer step are :mod:`terms.data_parallel`. The breakdown falls out of the same
terms: compute by component, exposed communication by kind and link level, host waits, bubble,
optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moebench.engine.collectives import ranks_per_domain
from moebench.engine.context import StepContext, build_context, distinct, expand
from moebench.engine.memory import MemoryBreakdown
from moebench.engine.memory_ranks import memory_over_recompute, memory_per_chip
from moebench.engine.plan import PlanArrays
from moebench.engine.state import heaviest, rank_params
from moebench.engine.terms import (
    activation_offload,
    comm,
    compute,
    data_parallel,
    host,
    overlap,
    passes,
    pipeline,
)
from moebench.engine.terms.activation_offload import offloaded_bytes_per_layer
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import RunConfig
from moebench.inputs.stack import Stack

FORWARD_SHARE = 1.0 / 3.0  # of a training pass: backward = 2 x forward


@dataclass(frozen=True)
class StepArrays:
    """Per-plan results: seconds, bytes and flags as arrays aligned with the plans."""

    step_time: np.ndarray
    num_micro: np.ndarray
    compute: dict[str, np.ndarray]
    """Device compute seconds per step on the critical stage, by component."""
    comm_exposed: dict[str, np.ndarray]
    """Exposed communication seconds per step, by kind and link level."""
    comm_total: dict[str, np.ndarray]
    """Communication seconds per step before overlap, by kind."""
    host: np.ndarray
    """Seconds per step the device waits for the host (dispatch and syncs)."""
    bubble: np.ndarray
    optimizer: np.ndarray
    memory: MemoryBreakdown
    fits: np.ndarray

    def concat(self, other: StepArrays) -> StepArrays:
        """These plans' results followed by ``other``'s (as :meth:`MemoryBreakdown.concat`)."""
        n, m = np.shape(self.step_time), np.shape(other.step_time)

        def cat(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return np.concatenate([np.broadcast_to(x, n), np.broadcast_to(y, m)])

        def cat_all(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {k: cat(x[k], y[k]) for k in x}

        return StepArrays(
            step_time=cat(self.step_time, other.step_time),
            num_micro=cat(self.num_micro, other.num_micro),
            compute=cat_all(self.compute, other.compute),
            comm_exposed=cat_all(self.comm_exposed, other.comm_exposed),
            comm_total=cat_all(self.comm_total, other.comm_total),
            host=cat(self.host, other.host), bubble=cat(self.bubble, other.bubble),
            optimizer=cat(self.optimizer, other.optimizer),
            memory=self.memory.concat(other.memory), fits=cat(self.fits, other.fits))


def evaluate(
    arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig, plans: PlanArrays,
    memory: MemoryBreakdown | None = None,
) -> StepArrays:
    """Step time, its breakdown and memory per chip for every plan in ``plans`` (``memory``
    when it was already computed, see :func:`memory_of`)."""
    return compose(build_context(arch, chip, stack, run, plans), memory)


def memory_of(
    arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig, plans: PlanArrays,
    block: int | None = None,
) -> MemoryBreakdown:
    """Memory per chip of every plan, without its step time (cheap: for pruning). Plans laid
    out as :func:`~moebench.engine.plan_space.candidate_plans` builds them, each plan's recompute
    options in adjacent rows (:func:`recompute_block`), are computed once per plan and
    option set (:func:`memory_over_recompute`). ``block``: that layout's group size when the
    caller knows it (plans straight from :func:`candidate_plans`), skipping the check."""
    k = recompute_block(plans) if block is None else block
    if k > 1:
        ctx = build_context(arch, chip, stack, run, plans.take(np.arange(0, len(plans), k)))
        return memory_over_recompute(ctx, rank_params(ctx), plans.recompute[:k],
                                     plans.rc_modules[:k])
    ctx = build_context(arch, chip, stack, run, plans)
    return memory_per_chip(ctx, rank_params(ctx))


def recompute_block(plans: PlanArrays) -> int:
    """k when the plans are groups of k rows that differ only in recompute, every group with
    the same k options in the same order (the layout :func:`candidate_plans` builds); else 1.
    """
    n = len(plans)
    rc, mods = plans.recompute, plans.rc_modules
    if n < 2:
        return 1
    again = np.flatnonzero((rc[1:] == rc[0]) & (mods[1:] == mods[0]))
    k = int(again[0]) + 1 if again.size else n
    if k < 2 or n % k:
        return 1
    same_options = (np.array_equal(rc.reshape(-1, k), np.broadcast_to(rc[:k], (n // k, k)))
                    and np.array_equal(mods.reshape(-1, k),
                                       np.broadcast_to(mods[:k], (n // k, k))))
    if not same_options:
        return 1
    varied = ("recompute", "rc_modules")
    for name, values in plans.columns().items():
        if name not in varied:
            col = values.reshape(-1, k)
            if not (col == col[:, :1]).all():
                return 1
    return k


def compose(ctx: StepContext, memory: MemoryBreakdown | None = None) -> StepArrays:
    # Per-layer terms once per distinct (tp, cp, micro-batch, ep, etp) combination.
    small, index = distinct(ctx)
    f = expand(compute.layer_forward(small), index)
    tp = expand(comm.tp_layer(small), index)
    ring = expand(comm.cp_time(small), index)
    phases = expand(comm.ep_phases(small), index)
    host_ops = expand(host.block_ops(small, captured=True), index)
    kernel_ops = expand(host.block_ops(small, captured=False), index)
    stage = passes.stage_compute(ctx, f)
    lp = stage.layer
    layers, moe_layers = ctx.layers_per_stage, ctx.moe_layers_per_stage
    dense_layers = layers - moe_layers
    full = np.where(ctx.recompute == 2, 1.0, 0.0)
    bwd_passes = 1.0 + full  # the backward pass and the forward it recomputes
    # The moe and mlp modules rerun their block's forward, its TP traffic and (moe) all-to-all.
    moe_again, mlp_again = ctx.recomputes("moe"), ctx.recomputes("mlp")
    core_again = ctx.recomputes("core_attn")

    # TP per block and pass: forwards (recomputed ones too) hide it only if the stack overlaps
    # it with their GEMMs; the backward pass hides two of its three collectives regardless.
    def tp_x(block: np.ndarray, gemm: np.ndarray, again: np.ndarray | float = 0.0
             ) -> tuple[np.ndarray, np.ndarray]:
        redo = full + again
        return (overlap.tp_exposed(ctx, block, gemm),
                overlap.tp_exposed(ctx, block * redo, gemm * redo)
                + overlap.tp_backward_exposed(ctx, block, gemm * compute.GEMM_BWD_FACTOR))

    tp_bwd = overlap.tp_backward_volume(ctx) + full  # backward TP traffic per block, in forwards'
    att_x, att_xb = tp_x(tp.attention, f.attn_proj)
    shared_x, shared_xb = tp_x(tp.moe, f.shared, moe_again)
    routed_x, routed_xb = overlap.routed_tp_exposed(tp.routed, full + moe_again)
    moe_x, moe_xb = shared_x + routed_x, shared_xb + routed_xb
    den_x, den_xb = tp_x(tp.dense, f.dense_ffn, mlp_again)
    cp_xf, cp_xb = overlap.cp_exposed(ctx, ring, f)
    # Compute that already hides a phase's TP or CP traffic cannot also hide the all-to-all.
    cp_hidden_f = np.where(ctx.cp > 1, ring / 3 - cp_xf, 0.0)
    cp_hidden_b = np.where(ctx.cp > 1, ring * (2 + full + core_again) / 3 - cp_xb, 0.0)
    windows = overlap.PhaseWindows(
        fwd_attention=lp.attention_fwd - (tp.attention - att_x) - cp_hidden_f,
        fwd_mlp=lp.moe_fwd - (tp.moe - shared_x),
        bwd_attention=lp.attention_bwd - (tp.attention * tp_bwd - att_xb) - cp_hidden_b,
        bwd_mlp=lp.moe_bwd - (tp.moe * (tp_bwd + moe_again) - shared_xb))
    ep_x = overlap.ep_exposed(ctx, phases, windows)

    # Device time of each block and pass (compute, exposed communication, the kernels' own
    # overhead); the host against it, stretch by stretch.
    kern = host.kernel_overhead(ctx, kernel_ops)
    # Selective recompute's modules run their kernels again in backward (``mlp`` and ``moe``
    # rerun whole blocks: ``mlp_again``, ``moe_again``).
    rc_kern = host.kernel_overhead(ctx, host.recompute_ops(ctx, captured=False))
    kb = ctx.stack.bwd_ops_ratio + full  # backward kernels, and the recomputed forward's
    att_f = lp.attention_fwd + att_x + cp_xf + kern.attention
    att_b = lp.attention_bwd + att_xb + cp_xb + kern.attention * kb + rc_kern.attention
    moe_kern = kern.router + kern.moe_post
    moe_f = lp.moe_fwd + moe_x + moe_kern
    moe_b = lp.moe_bwd + moe_xb + moe_kern * (kb + moe_again) + rc_kern.moe_post
    den_f = lp.dense_fwd + den_x + kern.dense
    den_b = lp.dense_bwd + den_xb + kern.dense * (kb + mlp_again) + rc_kern.dense
    # The loss's rank against the fullest, each layer at its whole device time.
    per_layer = (layers * (att_f + att_b) + moe_layers * (moe_f + moe_b + ep_x.per_micro_batch)
                 + dense_layers * (den_f + den_b)) / np.maximum(layers, 1.0)
    stage = passes.place_head(ctx, stage, f, per_layer)
    base_fwd = layers * att_f + moe_layers * moe_f + dense_layers * den_f + stage.head_fwd
    base_bwd = layers * att_b + moe_layers * moe_b + dense_layers * den_b + stage.head_bwd
    ht = host.host_time(ctx, host_ops, host.recompute_ops(ctx, captured=True))
    # Micro-batches that run alone: the all-to-all is exposed, and syncs split the forward.
    fwd_wall = host.forward_wall(ctx, ht, att_f, moe_f + ep_x.alone_forward, den_f,
                                 stage.head_fwd)
    alone_bwd = base_bwd + moe_layers * ep_x.alone_backward
    apart = fwd_wall + host.wall(alone_bwd, ht.backward)
    # Pairs (1F1B overlap, DualPipe) interleave one micro-batch's forward with another's
    # backward, layer by layer: the device against the host over both.
    paired_dev = base_fwd + base_bwd + moe_layers * (ep_x.paired_forward + ep_x.paired_backward)
    together = host.wall(paired_dev, ht.forward + ht.backward)
    t_core = ep_x.paired * together + (1 - ep_x.paired) * apart + ht.syncs * ctx.stack.sync_s
    # Activation offload: each layer's copies out and back hide behind its own passes.
    offloaded = offloaded_bytes_per_layer(ctx)
    per_layer = np.maximum(layers, 1.0)
    act_x = layers * activation_offload.exposed_per_layer(
        ctx, offloaded, (layers * att_f + moe_layers * moe_f + dense_layers * den_f) / per_layer,
        (layers * att_b + moe_layers * moe_b + dense_layers * den_b) / per_layer)
    t_core = t_core + act_x
    dev_total = base_fwd + base_bwd + moe_layers * ep_x.per_micro_batch
    t_pp = comm.pp_time(ctx)
    pp_x = overlap.pp_exposed(ctx, t_pp, t_core / ctx.chunks)
    # TP, CP and PP traffic per micro-batch, in all and exposed; what hides slows the compute.
    tp_mb = (layers * tp.attention * (1 + tp_bwd)
             + moe_layers * (tp.moe * (1 + tp_bwd + moe_again)
                             + routed_x + routed_xb)  # routed: all of it exposed
             + dense_layers * tp.dense * (1 + tp_bwd + mlp_again))
    tp_mb_x = (layers * (att_x + att_xb) + moe_layers * (moe_x + moe_xb)
               + dense_layers * (den_x + den_xb))
    cp_mb = layers * ring * (1 + (full + core_again) / 3)
    cp_mb_x = layers * (cp_xf + cp_xb)
    share = ctx.stack.overlap_sm_share
    slowed = overlap.contention(tp_mb - tp_mb_x + cp_mb - cp_mb_x + t_pp - pp_x, share)
    ranks = rank_params(ctx)
    params = heaviest(ranks)
    accumulate = data_parallel.accumulation_time(ctx, params)
    t_mb = t_core + pp_x + slowed + accumulate
    host_wait = t_core - dev_total

    m = ctx.num_micro
    # Gradient accumulation outside the schedule: f runs of m / f micro-batches, each with its
    # own fill and drain and its own once-a-run data-parallel exchange (one run without PP).
    runs = np.minimum(np.where(ctx.pp > 1, ctx.run.pipeline_flushes, 1), m)
    bubble = runs * pipeline.bubble(ctx, t_mb)
    dp = data_parallel.dp_traffic(ctx, params)
    dp_x = runs * data_parallel.dp_exposed(dp, m / runs, t_mb * FORWARD_SHARE,
                                           t_mb * (1 - FORWARD_SHARE), ctx.stack.dp_overlap)
    dp_total = dp.total(m) + (runs - 1) * (dp.reduce_step + dp.gather_step)
    dp_x = dp_x + overlap.contention(dp_total - dp_x, share)
    t_opt = data_parallel.optimizer_time(ctx, params)
    step_time = t_mb * m + bubble + dp_x + t_opt

    memory = memory if memory is not None else memory_per_chip(ctx, ranks)
    tp_out = ranks_per_domain(ctx.tp, 1, ctx.chip.up_domain) < ctx.tp
    ep_cross = ranks_per_domain(ctx.ep, 1, ctx.chip.up_domain) < ctx.ep
    tp_all = tp_mb_x * m
    ep_all = moe_layers * ep_x.per_micro_batch * m
    return StepArrays(
        step_time=step_time, num_micro=m,
        compute={**{k: v * m for k, v in stage.components.items()},
                 "kernel_overhead": (layers * (kern.attention * (1 + kb) + rc_kern.attention)
                                     + moe_layers * (moe_kern * (1 + kb + moe_again)
                                                     + rc_kern.moe_post)
                                     + dense_layers * (kern.dense * (1 + kb + mlp_again)
                                                       + rc_kern.dense)) * m,
                 "grad_accumulation": accumulate * m},
        comm_exposed={
            "tp_scale_up": tp_all * ~tp_out, "tp_scale_out": tp_all * tp_out,
            "ep_scale_up": ep_all * ~ep_cross, "ep_scale_out": ep_all * ep_cross,
            "cp": cp_mb_x * m, "pp": pp_x * m, "dp": dp_x,
            "act_offload": act_x * m, "overlap": slowed * m,
        },
        comm_total={
            "tp": tp_mb * m,
            "ep": moe_layers * (phases.forward * (bwd_passes + moe_again) + phases.backward) * m,
            "cp": cp_mb * m, "pp": t_pp * m,
            "dp": dp_total,
            "act_offload": layers * 2 * offloaded / activation_offload.link_bytes_per_s(ctx) * m,
        },
        host=host_wait * m, bubble=bubble, optimizer=t_opt, memory=memory,
        fits=memory.fits(ctx.chip),
    )
