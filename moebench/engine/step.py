"""Step time and memory per chip for many plans at once (numpy arrays, one entry per plan).

    step = t_mb * (m + bubble) + exposed DP communication + optimizer step

where t_mb is one micro-batch's forward + backward (+ recompute) on the slowest pipeline stage
plus the communication the overlap policy leaves exposed, m the micro-batches per step, and
bubble the schedule's idle time in units of t_mb. Compute is a roofline per operation class:
max(FLOP / achievable FLOP/s, bytes / achievable HBM B/s).

Overlap policy (named, not a hidden max or sum):

* ``tp``: exposed (no TP communication overlap modelled).
* ``ep``: exposed under plain 1F1B; with DualPipe or ``ep_overlap``, hidden behind the compute
  of another micro-batch up to its length, at the price of the compute share the communication
  kernels take (``overlap_compute_loss``, e.g. 20 of 132 SMs in DeepSeek-V3).
* ``cp``: the KV ring is hidden behind the attention kernel it feeds.
* ``pp``: exposed (point-to-point sends sit on the critical path of each stage).
* ``dp``: gradient reduce-scatter hidden behind the last micro-batch's backward, parameter
  all-gather behind the first forward; the rest is exposed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.collectives import (
    Links,
    alltoall_time,
    gather_time,
    p2p_time,
    ranks_per_domain,
)
from moebench.engine.memory import MemoryBreakdown, memory_per_chip, stage_params
from moebench.engine.plan import PlanArrays
from moebench.engine.workload import (
    ATTENTION_BWD_FACTOR,
    GEMM_BWD_FACTOR,
    attention_core_flops,
    layer_shapes,
)
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import (
    GRAD_REDUCE_BYTES,
    OPTIMIZER_STEP_BYTES,
    PARAM_GATHER_BYTES,
    RunConfig,
)

BF16 = 2.0  # bytes
# Elementwise traffic per token and layer, in units of h elements: RMSNorm reads and writes h,
# each residual add reads 2h and writes h; two of each per layer = 2*2 + 2*3 = 10.
ELEMENTWISE_H_PER_LAYER = 10.0
# FP8 GEMMs need their BF16 inputs quantized (read 2 B, write 1 B per element) in forward, and
# the output gradient quantized plus transposed FP8 copies for the weight gradient in backward
# (Transformer Engine's FP8 recipe; DeepSeek-V3 sec. 3.3): about 4 bytes of HBM traffic per
# element of each GEMM's input and output width, per row.
FP8_CAST_BYTES = 4.0
# Kernels per layer and forward pass that are small enough for the launch cost to bound them:
# norms, residual adds, RoPE, activation, bias-free elementwise ops and, for MoE layers, the
# router's softmax/top-k/aux-loss, permute, unpermute and the all-to-all's pack/unpack
# (counted from Megatron-Core's TransformerLayer and MoELayer). Backward launches twice as many.
SMALL_KERNELS_DENSE_LAYER = 8
SMALL_KERNELS_MOE_LAYER = 20
# MoE token shuffling, in passes over the k*h routed copies of each token (read or write):
# permute and unpermute read and write each (4); the all-to-all packs its send buffer and
# unpacks its receive buffer for dispatch and for combine (8) (Megatron-Core token dispatcher,
# DeepEP buffers).
PERMUTE_PASSES = 4.0
A2A_COPY_PASSES = 8.0
# Cross-entropy over the vocabulary: FP32 logits written, read for softmax, gradient written.
LOGIT_PASSES_FP32_BYTES = 3 * 4.0


def roofline(flops: np.ndarray, bytes_: np.ndarray, rate: np.ndarray, bw: np.ndarray) -> np.ndarray:
    """Time of an operation: max(FLOP / achievable FLOP/s, bytes / achievable B/s)."""
    return np.maximum(flops / rate, bytes_ / bw)


@dataclass(frozen=True)
class StepArrays:
    """Per-plan results: seconds, bytes and flags as arrays aligned with the plans."""

    step_time: np.ndarray
    num_micro: np.ndarray
    compute: dict[str, np.ndarray]
    """Seconds per step on the critical stage, by component (forward+backward+recompute)."""
    comm_exposed: dict[str, np.ndarray]
    """Exposed communication seconds per step, by kind and link level."""
    comm_total: dict[str, np.ndarray]
    """Communication seconds per step before overlap, by kind."""
    bubble: np.ndarray
    optimizer: np.ndarray
    memory: MemoryBreakdown
    fits: np.ndarray


def _rates(chip: Chip, run: RunConfig) -> tuple[Any, float, float]:
    """Achievable GEMM FLOP/s, weight bytes and GEMM-input activation bytes per element."""
    if run.precision == "fp8":
        if chip.fp8_flops is None or chip.fp8_gemm_eff is None:
            raise ValueError(f"{chip.name} has no FP8 path")
        return chip.fp8_flops * chip.fp8_gemm_eff, 1.0, 1.0
    return chip.bf16_flops * chip.bf16_gemm_eff, BF16, BF16


def evaluate(arch: ModelArch, chip: Chip, run: RunConfig, plans: PlanArrays) -> StepArrays:
    """Step time, its breakdown and memory per chip for every plan in ``plans``."""
    spec, sh = arch.spec, layer_shapes(arch)
    h, vocab, s = spec.hidden_size, spec.vocab_size, run.seq_len
    tp, pp, vpp, ep, etp, cp, dp, mb = (
        plans.tp.astype(float), plans.pp.astype(float), plans.vpp.astype(float),
        plans.ep.astype(float), plans.etp.astype(float), plans.cp.astype(float),
        plans.dp.astype(float), plans.mb.astype(float),
    )
    rc, dualpipe = plans.recompute, plans.schedule == 1
    num_micro = run.global_batch / (dp * mb)
    links = Links.of(chip)
    gemm_rate, w_bytes, a_bytes = _rates(chip, run)
    fp8 = run.precision == "fp8"
    overlap_ep = (dualpipe | run.ep_overlap) & (ep > 1) & arch.is_moe
    # Communication kernels running alongside compute take a share of the chip.
    slow = np.where(overlap_ep, 1.0 / (1.0 - chip.overlap_compute_loss), 1.0)
    gemm_rate = gemm_rate / slow
    attn_rate = chip.bf16_flops * chip.attention_eff / slow
    mem_bw = chip.hbm_bw * chip.hbm_eff
    imb = run.expert_imbalance

    tokens = mb * s  # per micro-batch per data-parallel replica
    tok_sp = tokens / (tp * cp)  # per chip in sequence-parallel regions
    tok_gemm = tokens / cp  # rows of each TP-sharded GEMM

    def gemm(params: float, rows: np.ndarray, shards: np.ndarray, in_out: float,
             fp8_cast: bool = True) -> np.ndarray:
        """Forward time of a weight GEMM: 2*rows*params/shards FLOPs; weights + activations;
        plus FP8 cast traffic unless the GEMM stays in BF16 (``fp8_cast`` False)."""
        flops = 2.0 * rows * params / shards
        bytes_ = params / shards * w_bytes + rows * in_out * a_bytes
        return roofline(flops, bytes_, gemm_rate, mem_bw) + (
            cast(rows, in_out) if fp8_cast else 0.0)

    def cast(rows: np.ndarray, in_out: Any) -> np.ndarray:
        """FP8 quantization traffic of one GEMM's rows (zero under BF16)."""
        return rows * in_out * (FP8_CAST_BYTES if fp8 else 0.0) / mem_bw

    # --- Forward time per layer, by component ---------------------------------------------
    t_attn_proj = gemm(sh.attn_proj_params, tok_gemm, tp, 2 * h)
    # Context parallelism runs attention as a ring of cp steps, each its own kernel (plus the
    # KV send), so the attention of a micro-batch takes at least cp launches.
    t_attn_core = np.maximum(attention_core_flops(arch, s) * tok_sp / attn_rate,
                             cp * chip.kernel_launch)
    t_elem = ELEMENTWISE_H_PER_LAYER * h * BF16 * tok_sp / mem_bw
    # Small kernels take at least their launch time: elementwise work is bounded below by it.
    small_kernels = (SMALL_KERNELS_MOE_LAYER * arch.num_moe_layers
                     + SMALL_KERNELS_DENSE_LAYER * spec.dense_layers.count) / spec.num_layers
    t_elem = np.maximum(t_elem, small_kernels * chip.kernel_launch)
    t_dense = gemm(sh.dense_ffn_params, tok_gemm, tp, 2 * h) + \
        3 * sh.dense_width * BF16 * tok_sp / mem_bw
    received = tok_sp * sh.top_k * imb  # expert-token pairs on the busiest EP rank
    # With expert TP, the ETP group all-gathers its pairs and each rank applies 1/etp of every
    # local expert to all of them: etp times the rows, 1/etp of the width.
    rows = received * etp
    width = sh.expert_width / etp
    local_experts = max(sh.num_experts, 1) / ep
    expert_flops = 2.0 * received * sh.expert_params
    expert_bytes = local_experts * sh.expert_params / etp * w_bytes \
        + rows * 2 * (h + width) * a_bytes
    t_experts = roofline(expert_flops, expert_bytes, gemm_rate, mem_bw) + \
        3 * width * BF16 * rows / mem_bw + cast(rows, 2 * (h + width))
    t_shared = gemm(sh.shared_params, tok_gemm, tp, 2 * h) + \
        3 * sh.shared_width * BF16 * tok_sp / mem_bw if sh.shared_params else 0.0 * tp
    # Router GEMM, softmax/top-k over E in FP32, permute + unpermute copies of k*h (read and
    # write each), and the all-to-all's pack and unpack copies into and out of its send and
    # receive buffers, for dispatch and combine (read and write each: 8 passes of k*h).
    t_router = gemm(sh.router_params, tok_sp, np.ones_like(tp), h) + (
        2 * 4.0 * sh.num_experts * tok_sp
        + (PERMUTE_PASSES + np.where(ep > 1, A2A_COPY_PASSES, 0.0)) * BF16 * h * received
    ) / mem_bw if arch.is_moe else 0.0 * tp
    # The LM head stays in BF16 under FP8 recipes: no cast traffic.
    t_head = gemm(h * vocab, tok_gemm, tp, h, fp8_cast=False) \
        + LOGIT_PASSES_FP32_BYTES * vocab * tok_sp / mem_bw
    t_up_proj = gemm(sh.attn_up_proj_params, tok_gemm, tp, 0) if sh.attn_up_proj_params \
        else 0.0 * tp

    attn_gemm = t_attn_proj
    moe_gemm = t_experts + t_shared + t_router
    fwd_moe_layer = attn_gemm + t_attn_core + t_elem + moe_gemm
    n_moe, n_dense = arch.num_moe_layers, spec.dense_layers.count
    n_layers = spec.num_layers
    mtp_fwd = spec.mtp_depth * (fwd_moe_layer + gemm(2 * h * h, tok_gemm, tp, 3 * h) + t_head)

    def train(fwd_gemm: Any, fwd_core: Any, fwd_elem: Any) -> Any:
        """Forward + backward time from forward times: GEMMs and elementwise x3, attention x3.5."""
        return fwd_gemm * (1 + GEMM_BWD_FACTOR) + fwd_core * (1 + ATTENTION_BWD_FACTOR) \
            + fwd_elem * (1 + GEMM_BWD_FACTOR)

    recompute_layer = np.where(rc == 2, 1.0, 0.0)  # full: whole forward again
    sel = np.where(rc == 1, 1.0, 0.0)  # selective: norms, activations, MLA up-projections

    # Per-component seconds for the whole model, one micro-batch, forward+backward+recompute.
    comp = {
        "attention_gemm": n_layers * (train(attn_gemm, 0, 0) + recompute_layer * attn_gemm
                                      + sel * t_up_proj),
        "attention_core": n_layers * (train(0, t_attn_core, 0) + recompute_layer * t_attn_core),
        "elementwise": n_layers * (train(0, 0, t_elem) + (recompute_layer + sel) * t_elem),
        "dense_ffn": n_dense * (train(t_dense, 0, 0) + recompute_layer * t_dense),
        "moe_experts": n_moe * (train(t_experts + t_shared, 0, 0)
                                + recompute_layer * (t_experts + t_shared)),
        "router_permute": n_moe * (train(t_router, 0, 0) + recompute_layer * t_router),
        "lm_head_mtp": train(t_head, 0, 0) + train(mtp_fwd, 0, 0),
    }
    work = sum(comp.values())
    layer_work = work - comp["lm_head_mtp"]
    per_layer = layer_work / n_layers
    layers_per_stage = plans.layers_per_stage(n_layers)
    # The slowest stage: whole layers cannot be split, and the head must sit somewhere.
    stage_time = np.maximum(layers_per_stage * per_layer, work / pp)
    stage_share = stage_time / work
    compute = {k: v * stage_share for k, v in comp.items()}
    fwd_share = 1.0 / 3.0  # forward is ~1/3 of a training pass (backward = 2x forward)

    # --- Communication per micro-batch on the slowest stage ---------------------------------
    stage_layers = layers_per_stage
    moe_frac = n_moe / n_layers
    passes = 2.0 + recompute_layer  # forward, backward, and forward again under full recompute
    # TP with sequence parallelism: all-gather + reduce-scatter around attention and each
    # TP-sharded FFN (dense or shared experts), over T/cp tokens of h BF16 values.
    tp_in = ranks_per_domain(tp, 1, chip.up_domain)
    tp_msg = tokens / cp * h * BF16
    ffn_tp = (1.0 - moe_frac) + moe_frac * (1.0 if sh.shared_params else 0.0)
    t_tp = stage_layers * passes * 2 * (1 + ffn_tp) * gather_time(tp_msg, tp, tp_in, links)
    # Expert TP: all-gather the routed pairs before the experts, reduce-scatter after.
    etp_in = ranks_per_domain(etp, 1, chip.up_domain)
    t_tp = t_tp + stage_layers * moe_frac * passes * 2 * gather_time(
        rows * h * BF16, etp, etp_in, links)
    # EP all-to-all: dispatch (FP8 under FP8 training) and combine (BF16) per MoE layer, each in
    # forward and backward; the busiest rank receives imb times the mean.
    ep_in = ranks_per_domain(ep, 1, chip.up_domain)
    node_limit = spec.moe.max_nodes_per_token if spec.moe else None
    dispatch_bytes = h * (1.0 + 4.0 / 128 if run.precision == "fp8" else BF16)

    def a2a(token_bytes: float) -> np.ndarray:
        return alltoall_time(token_bytes, tok_sp * imb, sh.top_k, ep, ep_in, node_limit, links)

    bf16_a2a = a2a(h * BF16)
    # Forward dispatch + combine (again under full recompute); backward: two BF16 passes.
    per_moe_layer = (a2a(dispatch_bytes) + bf16_a2a) * (1.0 + recompute_layer) + 2 * bf16_a2a
    t_ep = stage_layers * moe_frac * per_moe_layer if arch.is_moe else 0.0 * tp
    # CP: ring exchange of K and V chunks, cp-1 steps forward and twice that backward.
    cp_in = ranks_per_domain(cp, tp, chip.up_domain)
    cp_msg = tokens / cp * sh.kv_width / tp * BF16
    t_cp_layer = (cp - 1) * 3 * p2p_time(cp_msg, cp_in < cp, links)
    t_cp = stage_layers * np.where(cp > 1, t_cp_layer, 0.0)
    cp_exposed = stage_layers * np.where(
        cp > 1, np.maximum(0.0, t_cp_layer - t_attn_core * (1 + ATTENTION_BWD_FACTOR)), 0.0)
    # PP: activations out and gradients back at each of the vpp chunk boundaries.
    pp_cross = (tp * cp * dp) >= chip.up_domain
    t_pp = np.where(pp > 1, 2 * vpp * p2p_time(tok_sp * h * BF16, pp_cross, links), 0.0)

    mb_compute = stage_time
    ep_exposed = np.where(overlap_ep, np.maximum(0.0, t_ep - mb_compute), t_ep)
    t_mb = mb_compute + t_tp + ep_exposed + cp_exposed + t_pp

    # --- Pipeline bubble --------------------------------------------------------------------
    fwd = mb_compute * fwd_share
    bwd = mb_compute - fwd
    wgrad = bwd / 2.0
    bubble_1f1b = (pp - 1) / vpp * t_mb
    # DualPipe (DeepSeek-V3 Table 2): (PP/2 - 1)(F&B + B - 3W), with F&B the overlapped
    # forward+backward pair, taken as F + B.
    bubble_dual = np.maximum(pp / 2 - 1, 0) * (fwd + bwd + bwd - 3 * wgrad) * (t_mb / mb_compute)
    bubble = np.where(dualpipe, bubble_dual, bubble_1f1b)

    # --- Data-parallel gradient and parameter traffic, once per step ------------------------
    dense_local, expert_local = stage_params(arch, plans)
    dp_dense = dp * cp
    dp_expert = plans.expert_dp
    dd_in = ranks_per_domain(dp_dense, tp, chip.up_domain)
    de_in = ranks_per_domain(dp_expert, ep * etp, chip.up_domain)
    t_rs = gather_time(dense_local * GRAD_REDUCE_BYTES, dp_dense, dd_in, links) + \
        gather_time(expert_local * GRAD_REDUCE_BYTES, dp_expert, de_in, links)
    t_ag = gather_time(dense_local * PARAM_GATHER_BYTES, dp_dense, dd_in, links) + \
        gather_time(expert_local * PARAM_GATHER_BYTES, dp_expert, de_in, links)
    # Hidden behind the wall time (compute and exposed communication) of the last micro-batch's
    # backward and the first one's forward.
    dp_exposed = np.maximum(0.0, t_rs - t_mb * (1 - fwd_share)) + \
        np.maximum(0.0, t_ag - t_mb * fwd_share)
    owned = dense_local / dp_dense + expert_local / dp_expert
    t_opt = owned * OPTIMIZER_STEP_BYTES / mem_bw

    step_time = t_mb * num_micro + bubble + dp_exposed + t_opt

    memory = memory_per_chip(arch, chip, run, plans, num_micro)
    comm_total = {"tp": t_tp * num_micro, "ep": t_ep * num_micro, "cp": t_cp * num_micro,
                  "pp": t_pp * num_micro, "dp": t_rs + t_ag}
    ep_cross = (ep / ep_in) > 1
    comm_exposed = {
        "tp_scale_up": t_tp * num_micro * (tp_in >= tp),
        "tp_scale_out": t_tp * num_micro * (tp_in < tp),
        "ep_scale_up": ep_exposed * num_micro * ~ep_cross,
        "ep_scale_out": ep_exposed * num_micro * ep_cross,
        "cp": cp_exposed * num_micro,
        "pp": t_pp * num_micro,
        "dp": dp_exposed,
    }
    compute_step = {k: v * num_micro for k, v in compute.items()}
    return StepArrays(
        step_time=step_time, num_micro=num_micro, compute=compute_step,
        comm_exposed=comm_exposed, comm_total=comm_total, bubble=bubble, optimizer=t_opt,
        memory=memory, fits=memory.total <= chip.hbm_bytes,
    )

