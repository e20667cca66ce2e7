"""Memory per chip: weights, gradients, optimizer states, activations, logits and a reserve.

Activation accounting follows Korthikanti et al., "Reducing Activation Recomputation in Large
Transformer Models" (arXiv 2205.05198): with tensor and sequence parallelism every stored tensor
is split over tp (and over cp along the sequence); FlashAttention stores no s x s scores. MoE
tensors scale with the expert-token pairs a rank receives. The first pipeline stage holds the
most micro-batches in flight (pp under 1F1B, times 1 + (pp-1)/(pp*vpp) when interleaved;
pp + 1 under DualPipe, DeepSeek-V3 Table 2); the last holds the LM head, MTP and the logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.plan import PlanArrays
from moebench.engine.workload import ffn_act_elements, layer_shapes
from moebench.inputs.model import ModelArch
from moebench.inputs.run import GRAD_BYTES, OPTIMIZER_BYTES, WEIGHT_BYTES, RunConfig
from moebench.inputs.stack import Stack

BF16 = 2.0


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per chip on the most loaded pipeline stage, by kind (arrays per plan)."""

    weights: np.ndarray
    gradients: np.ndarray
    optimizer: np.ndarray
    activations: np.ndarray
    logits: np.ndarray
    reserve: np.ndarray

    @property
    def checkpoint(self) -> np.ndarray:
        """Bytes each chip writes to a checkpoint: its weights and its optimizer-state shard."""
        return self.weights + self.optimizer

    @property
    def total(self) -> np.ndarray:
        return (self.weights + self.gradients + self.optimizer + self.activations
                + self.logits + self.reserve)

    def as_dict(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations,
                "logits": self.logits, "reserve": self.reserve}


def stage_params(arch: ModelArch, plans: PlanArrays) -> tuple[np.ndarray, np.ndarray]:
    """(replicated, expert-sharded) parameters held per chip on the heaviest stage.

    Layer weights spread over pp stages of ceil(L/(pp*vpp))*vpp layers; the input embedding
    sits on the first stage, the LM head and MTP modules on the last (both on one when pp = 1).
    Replicated weights are split over tp, routed experts over ep x etp.
    """
    p, spec = arch.params, arch.spec
    tp, pp = plans.tp.astype(float), plans.pp.astype(float)
    ep = plans.ep.astype(float) * plans.etp.astype(float)
    sh = layer_shapes(arch)
    mtp_expert = spec.mtp_depth * sh.num_experts * sh.expert_params
    mtp_dense = p.mtp - mtp_expert
    frac = plans.layers_per_stage(spec.num_layers) / spec.num_layers
    layer_dense = p.dense - p.embedding - p.lm_head
    first = layer_dense * frac + p.embedding
    last = layer_dense * frac + p.lm_head + mtp_dense
    whole = layer_dense + p.embedding + p.lm_head + mtp_dense
    dense = np.where(pp > 1, np.maximum(first, last), whole)
    expert = p.expert * frac + mtp_expert
    return dense / tp, expert / ep


def activation_bytes_per_layer(
    arch: ModelArch, run: RunConfig, plans: PlanArrays
) -> tuple[np.ndarray, np.ndarray]:
    """(stored, working) bytes per chip of one average layer and one micro-batch.

    ``stored`` is what waits for the backward pass (only the layer input under full recompute);
    ``working`` is the extra one layer needs while it is recomputed (full recompute only).
    """
    spec, sh = arch.spec, layer_shapes(arch)
    h = spec.hidden_size
    gemm_in_bytes = 1.0 if run.precision == "fp8" else BF16  # FP8 activation caches
    tp, cp, mb = plans.tp.astype(float), plans.cp.astype(float), plans.mb.astype(float)
    rc = plans.recompute
    tok_sp = mb * run.seq_len / (tp * cp)
    load = run.capacity_factor if run.capacity_factor is not None else run.expert_imbalance
    received = tok_sp * sh.top_k * load

    def block(gemm_in: Any, other: float, recomputable: float) -> np.ndarray:
        full = gemm_in * gemm_in_bytes + other * BF16
        return np.where(rc == 1, np.maximum(full - recomputable * BF16, 0.0), full)

    attn = block(sh.attn_act_gemm_in, sh.attn_act_other, sh.attn_act_recomputable) * tok_sp
    g_in, other, recomp = ffn_act_elements(sh.dense_width, arch.gated, h)
    dense = block(g_in, other + h, recomp + h) * tok_sp
    moe = 0.0
    if arch.is_moe:
        e_in, e_other, e_recomp = ffn_act_elements(sh.expert_width, arch.gated, h)
        s_in, s_other, s_recomp = ffn_act_elements(sh.shared_width, arch.gated, h)
        per_token = block(h + s_in, h + 2 * sh.num_experts + s_other, h + s_recomp)
        # Under expert TP each rank keeps etp gathered rows of h per pair, 1/etp of the width.
        etp = plans.etp.astype(float)
        per_pair = block(e_in + h * (etp - 1), e_other + h, e_recomp)
        moe = per_token * tok_sp + per_pair * received
    n_moe, n_dense = arch.num_moe_layers, spec.dense_layers.count
    avg = attn + (n_moe * moe + n_dense * dense) / spec.num_layers
    layer_input = BF16 * h * tok_sp
    return np.where(rc == 2, layer_input, avg), np.where(rc == 2, avg, 0.0)


def memory_per_chip(
    arch: ModelArch, stack: Stack, run: RunConfig, plans: PlanArrays, num_micro: np.ndarray
) -> MemoryBreakdown:
    """Bytes per chip on the most loaded stage for every plan."""
    spec = arch.spec
    tp, pp, vpp, cp, dp = (plans.tp.astype(float), plans.pp.astype(float),
                           plans.vpp.astype(float), plans.cp.astype(float),
                           plans.dp.astype(float))
    dualpipe = plans.schedule == 1
    dense, expert = stage_params(arch, plans)
    copies = np.where(dualpipe, 2.0, 1.0)  # DualPipe keeps two pipeline stages per rank
    weights = (dense + expert) * WEIGHT_BYTES * copies
    grads = (dense + expert) * GRAD_BYTES * copies
    optimizer = (dense / (dp * cp) + expert / plans.expert_dp) * OPTIMIZER_BYTES * copies

    stored, working = activation_bytes_per_layer(arch, run, plans)
    layers_per_stage = plans.layers_per_stage(spec.num_layers)
    in_flight = np.where(
        dualpipe, pp + 1,
        np.minimum(pp, num_micro) * np.where(vpp > 1, 1 + (pp - 1) / (pp * vpp), 1.0),
    )
    first_stage_acts = in_flight * layers_per_stage * stored + working
    tok_sp = plans.mb * run.seq_len / (tp * cp)
    logits = (1 + spec.mtp_depth) * tok_sp * spec.vocab_size * 4.0  # FP32, vocab-parallel
    last_stage_acts = layers_per_stage * stored + working
    # With one stage it holds everything; otherwise report the heavier of first and last.
    first_heavier = (pp > 1) & (first_stage_acts >= last_stage_acts + logits)
    acts = np.where(first_heavier | (pp == 1), first_stage_acts, last_stage_acts)
    return MemoryBreakdown(
        weights=weights, gradients=grads, optimizer=optimizer,
        activations=acts, logits=np.where(first_heavier, 0.0, logits),
        reserve=np.zeros_like(weights) + stack.reserve_bytes,
    )
