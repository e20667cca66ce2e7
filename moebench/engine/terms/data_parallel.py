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
The optimizer then reads and writes the Adam state of the parameters each rank owns, at HBM speed,
less the fraction offloaded to the host, which is stepped on the CPU (:func:`offload_times`).
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


def dp_exposed(t: DpTraffic, num_micro: Any, mb_forward: Any, mb_backward: Any,
               overlap: bool = True) -> Any:
    """What the data-parallel traffic takes beyond the compute it hides behind.

    Every micro-batch's forward hides its parameter gather and its backward the re-gather and
    the gradient reduce-scatter (zero-2 and up); the once-a-step collectives ride on the first
    forward and the last backward, behind what those micro-batches' own traffic leaves free:
    exposed = m (max(0, g - F) + max(0, g + r - B)) + [max(0, g + G - F) - max(0, g - F)]
    + [max(0, g + r + R - B) - max(0, g + r - B)], so no window hides two things at once.
    Without ``overlap`` (the stack or run does not overlap them), the once-a-step gather G and
    reduce R are exposed whole: exposed = m (...) + G + R."""
    g, r = t.gather_micro, t.reduce_micro
    fwd = np.maximum(0.0, g - mb_forward)
    bwd = np.maximum(0.0, g + r - mb_backward)
    if not overlap:
        return num_micro * (fwd + bwd) + t.gather_step + t.reduce_step
    first = np.maximum(0.0, g + t.gather_step - mb_forward) - fwd
    last = np.maximum(0.0, g + r + t.reduce_step - mb_backward) - bwd
    return num_micro * (fwd + bwd) + first + last


def optimizer_step_bytes(optimizer_bytes: float, grad_bytes: float = GRAD_BYTES) -> float:
    """HBM bytes per owned parameter in one Adam step: read master, m, v and the gradient,
    write master, m, v and the BF16 weight: 2 x optimizer state + 4 + 2 (30 with FP32 moments,
    22 with BF16 moments). Pure BF16 reads and writes the BF16 weight itself, m and v, and reads
    a BF16 gradient: 2 x 4 + 2 + 2 = 12 (``optimizer_bytes`` 4, ``grad_bytes`` 2)."""
    return 2 * optimizer_bytes + grad_bytes + WEIGHT_BYTES


# HBM bytes per parameter to add one micro-batch's gradients into the accumulated ones, by
# where the stack keeps them (``main_grads``). fp32: Megatron's main_grad, which the weight-
# gradient GEMM accumulates into in place (gradient_accumulation_fusion, Megatron's default),
# no pass of its own; bf16 the same buffer in BF16 (Transformer Engine's fused weight-gradient
# accumulation takes either dtype). half: DeepSpeed ZeRO-1/2 under its pipeline engine, autograd's
# AccumulateGrad adds each new half-precision gradient into param.grad (read 2 + 2, write 2).
# half+fp32: DeepSpeed's BF16 optimizer adds param.grad into its FP32 buffer after every
# micro-batch (deepspeed/runtime/bf16_optimizer.py, update_hp_grads: read 2 + 4, write 4).
ACCUMULATION_BYTES = {"fp32": 0.0, "bf16": 0.0, "half": 6.0, "half+fp32": 10.0}


def accumulation_time(ctx: StepContext, params: tuple[Any, Any]) -> Any:
    """Seconds per micro-batch to accumulate its gradients where the GEMMs do not:
    (m - 1) / m x bytes x (dense + expert parameters on the rank) / HBM B/s (the first
    micro-batch writes its gradients, the others add to them)."""
    dense, expert = params
    per_param = ACCUMULATION_BYTES[ctx.stack.main_grads]
    m = ctx.num_micro
    return (m - 1) / m * per_param * (dense + expert) / ctx.mem_bw


def owned_params(ctx: StepContext, params: tuple[Any, Any]) -> Any:
    """Parameters whose optimizer states this rank holds and steps (all of them under zero-0)."""
    dense, expert = params
    return np.where(ctx.sharding == 0, dense + expert,
                    dense / ctx.shard + expert / ctx.expert_shard)


# Bytes per offloaded parameter over the host link each step (Megatron-Core's
# HybridDeviceOptimizer): its FP32 main gradient device-to-host, the updated parameter back
# host-to-device in the model's BF16 (the CPU copy is cast before the copy).
OFFLOAD_D2H_BYTES = GRAD_BYTES
OFFLOAD_H2D_BYTES = WEIGHT_BYTES


@dataclass(frozen=True)
class OffloadTimes:
    """Seconds of the host side of an offloaded optimizer step (arrays per plan)."""

    d2h: Any
    """Gradients device-to-host over the host link."""
    cpu: Any
    """Adam on the CPU at the host's update rate."""
    h2d: Any
    """Updated parameters host-to-device."""
    buckets: Any
    """Pipeline stages of the overlap: one per layer on the stage (Megatron builds one CPU
    optimizer per parameter tensor, several per layer, so a layer's worth is a bound)."""

    @property
    def exposed(self) -> Any:
        """max(d2h, cpu, h2d) + (the other two) / buckets: a three-stage pipeline over
        ``buckets`` equal buckets, the slowest stage paced, the first bucket's copy and the last
        one's update and copy back in the fill and drain."""
        longest = np.maximum(np.maximum(self.d2h, self.cpu), self.h2d)
        return longest + (self.d2h + self.cpu + self.h2d - longest) / self.buckets


def offload_times(ctx: StepContext, offloaded: Any) -> OffloadTimes:
    """The host side of the optimizer step for ``offloaded`` parameters per chip.

    Megatron-Core's ``--optimizer-cpu-offload --optimizer-offload-fraction F
    --overlap-cpu-optimizer-d2h-h2d`` (megatron/core/optimizer/cpu_offloading/
    hybrid_optimizer.py, HybridDeviceOptimizer): all gradient copies are queued on a D2H stream,
    one CPU Adam per parameter tensor starts as soon as its own copy lands, and a post-step hook
    copies that parameter back on an H2D stream while the CPU steps the next one. The link is
    full duplex, so copies in and out and the CPU all run at once and the slowest paces the
    pipeline (:attr:`OffloadTimes.exposed`), not the sum; DeepSpeed ZeRO-Offload (arXiv
    2101.06840, sec. 4) pipelines the same three stages. Nothing of it hides behind the
    backward: the step starts once gradients are reduced, as Megatron's does.
    """
    chip = ctx.chip
    if chip.host_bw is None or chip.host_link_eff is None or chip.host_adam is None:
        zero = 0.0 * offloaded
        return OffloadTimes(zero, zero, zero, 1.0)
    link = chip.host_bw * chip.host_link_eff
    return OffloadTimes(d2h=offloaded * OFFLOAD_D2H_BYTES / link,
                        cpu=offloaded / chip.host_adam,
                        h2d=offloaded * OFFLOAD_H2D_BYTES / link,
                        buckets=np.maximum(ctx.layers_per_stage, 1.0))


def optimizer_time(ctx: StepContext, params: tuple[Any, Any]) -> Any:
    """The optimizer step: Adam over the parameters this rank owns, HBM-bound on the device,
    the offloaded fraction F of them on the host.

        t = max((1 - F) x owned x bytes / HBM, host side of F x owned)

    The two run at once (HybridDeviceOptimizer launches the GPU optimizer's kernels, then
    steps the CPU optimizers while they run). With F = 0 this is the device step alone."""
    owned = owned_params(ctx, params)
    f = ctx.optimizer_offload
    step_bytes = optimizer_step_bytes(ctx.run.optimizer_bytes, ctx.run.grad_bytes)
    device = (1.0 - f) * owned * step_bytes / ctx.mem_bw
    return np.maximum(device, offload_times(ctx, f * owned).exposed)


def offload_never_faster(chip: Any, optimizer_bytes: float, fraction: float = 1.0) -> bool:
    """Whether offloading ``fraction`` (all by default) of a plan's optimizer states can never
    make its step faster than offloading none.

    Per offloaded parameter, the host side costs at least max(4 B / link, 1 / CPU rate, 2 B /
    link) seconds (:attr:`OffloadTimes.exposed` is at least its slowest stage), and the device
    step it replaces costs (2 x state + 6) B / HBM. When the first is at least the second, the
    plan with F = 1 is never faster than the same plan with F = 0 (which needs more memory),
    whatever the plan, since nothing else in the step depends on F. True for every catalog chip
    by a factor of ten or more (a PCIe Gen5 link at 51 GB/s against HBM at 2.8 TB/s); checked
    on the figures given, so a what-if with a faster host link stays exact."""
    if chip.host_bw is None or chip.host_link_eff is None or chip.host_adam is None:
        return True
    link = chip.host_bw * chip.host_link_eff
    host = np.maximum(np.maximum(OFFLOAD_D2H_BYTES / link, 1.0 / chip.host_adam),
                      OFFLOAD_H2D_BYTES / link)
    device = optimizer_step_bytes(optimizer_bytes) / (chip.hbm_bw * chip.hbm_eff)
    return bool(np.all(fraction * host >= device))
