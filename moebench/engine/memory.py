"""Memory per chip: weights, gradients, optimizer states, activations, logits and a reserve.

Activation accounting follows Korthikanti et al., "Reducing Activation Recomputation in Large
Transformer Models" (arXiv 2205.05198): with tensor and sequence parallelism every stored tensor
is split over tp (and over cp along the sequence); FlashAttention stores no s x s scores. MoE
tensors scale with the expert-token pairs a rank receives. The first pipeline stage holds the
most micro-batches in flight (pp under 1F1B, times 1 + (pp-1)/(pp*vpp) when interleaved;
pp + 1 under DualPipe, DeepSeek-V3 Table 2); the last holds the LM head, MTP and the logits.

DualPipeV (deepseek-ai/DualPipe README table, "based on the same number of PP stages"): PP
stages on PP/2 devices, "2x" the parameters of a stage per device and PP + 1 stages'
activations. With moebench's pp the devices, PP = 2 pp stages of L/(2 pp) layers each: a rank
holds 2 x L/(2 pp) = L/pp layers, one copy of its share of the model (DualPipe holds two copies
of L/pp), and 2 pp + 1 chunks' activations, i.e. pp + 1/2 micro-batches of its layers. Its
schedule (dualpipev.py) reaches 2 pp + 1 chunks in flight on every rank, and rank 0 holds stage
0 and stage 2 pp - 1: the embedding, the LM head, MTP and the logits sit beside the most
activations.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any

import numpy as np

from moebench.engine.context import StepContext, distinct, expand
from moebench.engine.state import host_state_bytes, state_bytes
from moebench.engine.terms.activation_offload import offloaded_bytes_per_layer
from moebench.engine.workload import ffn_act_elements
from moebench.inputs.run import GRAD_BYTES

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
    offloaded_optimizer: np.ndarray
    """Optimizer-state bytes per chip moved to host memory (not in :attr:`total`)."""
    offloaded_activations: np.ndarray
    """Activation bytes per chip held in host memory (not in :attr:`total`)."""
    host: np.ndarray
    """Host memory per chip the offload uses: the offloaded optimizer states and the pinned
    FP32 gradient copies the CPU Adam reads (not in :attr:`total`)."""

    @property
    def checkpoint(self) -> np.ndarray:
        """Bytes each chip writes to a checkpoint: its weights and its optimizer-state shard
        (wherever it lives)."""
        return self.weights + self.optimizer + self.offloaded_optimizer

    @cached_property
    def total(self) -> np.ndarray:
        """Device bytes (computed once: the search reads it several times)."""
        return (self.weights + self.gradients + self.optimizer + self.activations
                + self.logits + self.reserve)

    def take(self, index: np.ndarray) -> MemoryBreakdown:
        """The breakdown of the plans at ``index``."""
        return MemoryBreakdown(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def concat(self, other: MemoryBreakdown) -> MemoryBreakdown:
        """These plans' breakdowns followed by ``other``'s."""
        return MemoryBreakdown(**{f.name: np.concatenate([getattr(self, f.name),
                                                          getattr(other, f.name)])
                                  for f in fields(self)})

    def with_offload(self, fraction: float, optimizer_bytes: float) -> MemoryBreakdown:
        """The breakdown of the same plans, without offload here, with a fraction of their
        optimizer states offloaded (:func:`host_state_bytes`): (1 - F) of the states stay, F of
        them go to the host with their 4-byte FP32 gradient copies. Equal to
        :func:`memory_per_chip` of the offloading plans (tested), at the cost of a few products.
        """
        states = self.optimizer
        return MemoryBreakdown(
            weights=self.weights, gradients=self.gradients,
            optimizer=(1.0 - fraction) * states, activations=self.activations,
            logits=self.logits, reserve=self.reserve, offloaded_optimizer=fraction * states,
            host=fraction * states * (optimizer_bytes + GRAD_BYTES) / optimizer_bytes
            + self.offloaded_activations,
            offloaded_activations=self.offloaded_activations)

    def fits(self, chip: Any) -> np.ndarray:
        """Whether each plan fits the chip's memory and, where it offloads, its host's."""
        on_host = self.host <= (chip.host_dram if chip.host_dram is not None else 0.0)
        return (self.total <= chip.hbm_bytes) & on_host

    def as_dict(self) -> dict[str, np.ndarray]:
        """Device memory by kind (what :attr:`total` adds up)."""
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations,
                "logits": self.logits, "reserve": self.reserve}


def activation_bytes_per_layer(ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
    """(stored, working) bytes per chip of one average layer and one micro-batch.

    ``stored`` is what waits for the backward pass (only the layer input under full recompute);
    selective recompute drops, per module (:data:`~moebench.inputs.run.RECOMPUTE_MODULES`):
    layernorm the two norm outputs (h each); mla_up_proj MLA's Q, K and V (the up-projections'
    outputs); moe_act the activation output of each FFN (its width per token or routed pair);
    shared_experts every tensor of the shared experts; mlp every tensor of a dense layer's FFN
    but its input and the residual; moe every tensor of a MoE layer but those two. core_attn
    drops nothing here: FlashAttention keeps no s x s scores, and what the checkpoint drops,
    the kernel's softmax statistics (n_h FP32 per token), is not in this model.
    ``working`` is the extra one layer needs while it is recomputed (full recompute), plus, in a
    hybrid model, a linear-attention layer's chunk states: its backward recomputes them and
    holds their gradients beside them, two BF16 copies of n_v d_k d_v / C elements per token,
    split over tp with the heads (:mod:`moebench.engine.linear_attention`).
    """
    arch, spec, sh = ctx.arch, ctx.arch.spec, ctx.shapes
    h = spec.hidden_size
    gemm_in_bytes = 1.0 if ctx.fp8 else BF16  # FP8 activation caches
    rc = ctx.recompute
    tok_sp, received = ctx.tok_sp, ctx.received
    norm, act = ctx.recomputes("layernorm"), ctx.recomputes("moe_act")
    up, mlp = ctx.recomputes("mla_up_proj"), ctx.recomputes("mlp")
    moe_rc, shared_rc = ctx.recomputes("moe"), ctx.recomputes("shared_experts")

    def block(gemm_in: Any, other: Any, dropped: Any) -> np.ndarray:
        # What output-discarding recompute drops counts at BF16, as selective always has.
        return np.maximum(gemm_in * gemm_in_bytes + other * BF16 - dropped * BF16, 0.0)

    # A checkpointed block (mlp, moe) keeps its input, the norm output unless layernorm
    # drops it, and the residual.
    checkpoint = (1 - norm) * h * gemm_in_bytes + h * BF16
    # Replicated KV heads: each rank keeps K and V of kv_copies heads more than its share.
    kv_more = sh.kv_proj_params / h * (ctx.kv_copies - 1)
    attn = block(sh.attn_act_gemm_in, sh.attn_act_other + kv_more,
                 norm * h + up * (sh.attn_act_recomputable - h)) * tok_sp
    g_in, other, recomp = ffn_act_elements(sh.dense_width, arch.gated, h)
    dense = block(g_in, other + h, norm * h + act * recomp)
    dense = np.where(mlp > 0, np.minimum(checkpoint, dense), dense) * tok_sp
    moe = 0.0
    if arch.is_moe:
        e_in, e_other, e_recomp = ffn_act_elements(sh.expert_width, arch.gated, h)
        s_in, s_other, s_recomp = ffn_act_elements(sh.shared_width, arch.gated, h)
        # shared_experts drops all the shared experts keep (moe_act has taken their
        # activation output already); their input is the router's, which stays.
        shared_own = s_in * gemm_in_bytes + (s_other - act * s_recomp) * BF16
        per_token = np.maximum(
            block(h + s_in, h + 2 * sh.num_experts + s_other, norm * h + act * s_recomp)
            - shared_rc * shared_own, 0.0)
        per_token = np.where(moe_rc > 0, np.minimum(checkpoint, per_token), per_token)
        # Under expert TP each rank keeps etp gathered rows of h per pair, 1/etp of the width.
        etp = ctx.etp
        per_pair = (1 - moe_rc) * block(e_in + h * (etp - 1), e_other + h, act * e_recomp)
        moe = per_token * tok_sp + per_pair * received
    n_moe, n_dense = arch.num_moe_layers, spec.dense_layers.count
    avg = attn + (n_moe * moe + n_dense * dense) / spec.num_layers
    layer_input = BF16 * h * tok_sp
    states = 2 * BF16 * sh.recurrent_state * tok_sp
    return np.where(rc == 2, layer_input, avg), np.where(rc == 2, avg, 0.0) + states


def memory_per_chip(ctx: StepContext, params: tuple[np.ndarray, np.ndarray]
                    ) -> MemoryBreakdown:
    """Bytes per chip on the most loaded stage for every plan, from its (replicated,
    expert-sharded) parameters per chip (:func:`stage_params`)."""
    small, index = distinct(ctx, ("tp", "cp", "mb", "ep", "etp", "recompute", "rc_modules",
                                  "act_offload"))
    stored, working = (expand(a, index) for a in activation_bytes_per_layer(small))
    off = expand(np.broadcast_to(offloaded_bytes_per_layer(small), small.tp.shape), index)
    acts, logits, on_host = _stage_activations(ctx, stored, working, off)
    return _breakdown(ctx, params, acts, logits, on_host)


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
    acts, logits, on_host = _stage_activations(
        ctx, np.stack(stored, axis=1), np.stack(working, axis=1), np.stack(off, axis=1))
    return _breakdown(ctx, params, acts.ravel(), logits.ravel(), on_host.ravel(), repeat=k)


def _stage_activations(ctx: StepContext, stored: np.ndarray, working: np.ndarray,
                       offloaded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(activations, logits, activations on the host) bytes on the heavier of the first and
    the last stage, from one layer's stored, working and offloaded bytes (per plan, or per plan
    and option as columns). Of n layer-passes in flight, a rank keeps stored - offloaded of
    each and the offloaded bytes of min(n, 2) (:mod:`moebench.engine.terms.activation_offload`);
    the host holds the rest."""
    off = np.minimum(offloaded, stored)

    def held(n: np.ndarray) -> np.ndarray:
        return n * (stored - off) + np.minimum(n, 2.0) * off + working

    spec = ctx.arch.spec
    pp, vpp, num_micro = ctx.pp, ctx.vpp, ctx.num_micro
    col = (lambda a: a[:, None]) if stored.ndim == 2 else (lambda a: a)
    in_flight = np.where(
        ctx.dualpipe, pp + 1, np.where(
            ctx.dualpipev, pp + 0.5,
            np.minimum(pp, num_micro) * np.where(vpp > 1, 1 + (pp - 1) / (pp * vpp), 1.0)),
    )
    st = ctx.stage
    n_first = col(in_flight * st.first)
    first_stage_acts = held(n_first)
    if not st.uniform:
        # A written layout may leave rank 0 lighter: rank 1, one micro-batch fewer in flight
        # under 1F1B, with the fullest rank's layers.
        second = np.minimum(pp - 1, num_micro) * np.where(vpp > 1, 1 + (pp - 1) / (pp * vpp),
                                                          1.0)
        first_stage_acts = np.maximum(first_stage_acts, held(col(second * st.fullest)))
    on_host = np.maximum(n_first - 2.0, 0.0) * off
    logits = col((1 + spec.mtp_depth) * ctx.tok_sp * spec.vocab_size * 4.0)  # FP32
    last_stage_acts = held(col(st.head))
    # With one stage it holds everything; otherwise report the heavier of first and last
    # (DualPipeV's rank 0 is both).
    multi, v = col(pp > 1), col(ctx.dualpipev)
    first_heavier = multi & (first_stage_acts >= last_stage_acts + logits) & ~v
    acts = np.where(first_heavier | ~multi | v, first_stage_acts, last_stage_acts)
    return acts, np.where(first_heavier, 0.0, logits), np.broadcast_to(on_host, acts.shape)


def _breakdown(ctx: StepContext, params: tuple[np.ndarray, np.ndarray], acts: np.ndarray,
               logits: np.ndarray, on_host: np.ndarray, repeat: int = 1) -> MemoryBreakdown:
    """The breakdown from the plans' training state and the given activation bytes (each
    plan's state repeated ``repeat`` times, beside as many activation rows)."""
    copies = np.where(ctx.dualpipe, 2.0, 1.0)  # DualPipe keeps two copies of a stage per rank
    weights, grads, optimizer = (b * copies for b in state_bytes(ctx, params))
    offloaded, host = (b * copies for b in host_state_bytes(ctx, params))

    def rows(a: np.ndarray) -> np.ndarray:
        return np.repeat(a, repeat) if repeat > 1 else a

    return MemoryBreakdown(
        weights=rows(weights), gradients=rows(grads), optimizer=rows(optimizer),
        activations=acts, logits=logits,
        # The reserve may be an array of sampled figures (uncertainty): broadcast, not fill.
        reserve=np.zeros_like(acts + rows(weights)) + ctx.stack.reserve_bytes,
        offloaded_optimizer=rows(offloaded), host=rows(host) + on_host,
        offloaded_activations=on_host,
    )
