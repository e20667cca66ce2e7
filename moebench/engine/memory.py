"""Memory per chip: weights, gradients, optimizer states, activations, logits, the allocator's
fragmentation and the runtime's reserve.

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

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np

from moebench.engine.context import StepContext
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
    """Runtime context and communication buffers (the stack's reserve_gb)."""
    fragmentation: np.ndarray
    """What the caching allocator holds beyond the peak of live tensors (the stack's
    fragmentation times :attr:`allocated`)."""
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

    @property
    def allocated(self) -> np.ndarray:
        """The peak of live tensors (what torch.cuda.max_memory_allocated reports)."""
        return (self.weights + self.gradients + self.optimizer + self.activations
                + self.logits)

    @property
    def reserved(self) -> np.ndarray:
        """What the caching allocator holds at the peak (torch.cuda.max_memory_reserved)."""
        return self.allocated + self.fragmentation

    @cached_property
    def total(self) -> np.ndarray:
        """Device bytes, as nvidia-smi or npu-smi would show them (computed once: the search
        reads it several times)."""
        return self.reserved + self.reserve

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
        them go to the host with their 4-byte FP32 gradient copies, on the rank that was the
        fullest. Equal to :func:`memory_per_chip` of the offloading plans where that rank stays
        the fullest, and a lower bound where the offload makes another rank the fullest (one
        holding fewer states, e.g. rank 0 against the loss's rank): a cheap test that a plan
        cannot fit the device, at the cost of a few products (tested). Its host figure is then
        the first rank's, which holds more states than the new fullest rank."""
        states = self.optimizer
        before = self.allocated
        after = before - fraction * states
        return MemoryBreakdown(
            weights=self.weights, gradients=self.gradients,
            optimizer=(1.0 - fraction) * states, activations=self.activations,
            logits=self.logits, reserve=self.reserve,
            fragmentation=self.fragmentation * np.divide(
                after, before, out=np.ones_like(before), where=before > 0),
            offloaded_optimizer=fraction * states,
            host=fraction * states * (optimizer_bytes + GRAD_BYTES) / optimizer_bytes
            + self.offloaded_activations,
            offloaded_activations=self.offloaded_activations)

    def fits(self, chip: Any) -> np.ndarray:
        """Whether each plan fits the chip's memory and, where it offloads, its host's."""
        on_host = self.host <= (chip.host_dram if chip.host_dram is not None else 0.0)
        return (self.total <= chip.hbm_bytes) & on_host

    def with_high_hold(self, fragmentation_high: Any) -> np.ndarray:
        """Device bytes if the caching allocator held the top of its measured range
        (``fragmentation_high``, the stack's) over the live tensors (:func:`high_hold`)."""
        return high_hold(self.allocated, self.reserve, self.total, fragmentation_high)

    def keeps_headroom(self, chip: Any, fragmentation_high: Any) -> np.ndarray:
        """Whether each plan fits and would still fit at the allocator's measured high hold:
        the headroom real allocators needed (the search keeps it where it
        chooses the layout, and prefers it among ties where the layout is given)."""
        return self.fits(chip) & (self.with_high_hold(fragmentation_high) <= chip.hbm_bytes)

    def as_dict(self) -> dict[str, np.ndarray]:
        """Device memory by kind (what :attr:`total` adds up)."""
        return {"weights": self.weights, "gradients": self.gradients,
                "optimizer": self.optimizer, "activations": self.activations,
                "logits": self.logits, "fragmentation": self.fragmentation,
                "reserve": self.reserve}


def high_hold(allocated: Any, reserve: Any, total: Any, fragmentation_high: Any) -> Any:
    """Device bytes of ``allocated`` live bytes if the caching allocator held the top of its
    measured range over them, beside ``reserve``; never below ``total``, their typical
    device figure."""
    return np.maximum(allocated * (1.0 + fragmentation_high) + reserve, total)


def device_level(memory: MemoryBreakdown, cache_growth: Any, hbm_bytes: float) -> np.ndarray:
    """What the device shows at the peak (nvidia-smi, rocm-smi): :attr:`MemoryBreakdown.total`
    plus the caching allocator's cache, cache_growth x the live tensors, up to the device's
    memory. Freed blocks stay cached, and show in nvidia-smi, while there is room; that cache
    stays available to the framework's own allocations ("empty_cache() doesn't increase the
    amount of GPU memory available for PyTorch", torch.cuda.memory.empty_cache), so it shows in
    device-level figures but never decides whether a plan fits; the fragmentation it cannot
    release is the stack's allocator_factor, in :attr:`MemoryBreakdown.total`."""
    return np.minimum(memory.total + cache_growth * memory.allocated, hbm_bytes)


def activation_bytes_per_layer(ctx: StepContext) -> tuple[np.ndarray, np.ndarray]:
    """(stored, working) bytes per chip of one average layer and one micro-batch.

    ``stored`` is what waits for the backward pass (only the layer input under full recompute).
    GEMM inputs are kept in FP8 under FP8 training (Transformer Engine saves the quantized
    input for the weight gradient); the rest in BF16. A dropped tensor counts in the precision
    it was kept in. Selective recompute drops, per module
    (:data:`~moebench.inputs.run.RECOMPUTE_MODULES`): layernorm the two norm outputs (h each);
    mla_up_proj MLA's Q, K and V (the up-projections' outputs); moe_act the activation output
    of each FFN (its width per token or routed pair); shared_experts every tensor of the shared
    experts; mlp every tensor of a dense layer's FFN but its input and the residual; moe every
    tensor of a MoE layer but those two. core_attn drops nothing under FlashAttention, which
    keeps no s x s scores (what the checkpoint drops, the kernel's softmax statistics, n_h FP32
    per token, is not in this model); a release without it keeps the scores, which core_attn
    drops.

    Two release settings (:class:`~moebench.inputs.stack.Stack`): ``swiglu_fp8_store`` keeps
    the SwiGLU input (the gate/up output) in FP8 under FP8 (Megatron-Core's
    activation_func_fp8_input_store; DeepSeek-V3 report sec. 3.3.4); without
    ``probs_in_activation`` each routed pair also keeps its expert output (h) for the router
    probabilities' gradient, as Megatron-Core's unpermute did before 0.13 (!2668).
    ``working`` is the extra one layer needs while it is recomputed (full recompute), plus, in a
    hybrid model, a linear-attention layer's chunk states: its backward recomputes them and
    holds their gradients beside them, two BF16 copies of n_v d_k d_v / C elements per token,
    split over tp with the heads (:mod:`moebench.engine.linear_attention`).
    Tensors are split over tp x cp as sequence parallelism splits them; a release without it
    keeps the hidden-size ones whole on each tensor-parallel rank.
    """
    arch, spec, sh = ctx.arch, ctx.arch.spec, ctx.shapes
    h = spec.hidden_size
    fp8 = 1.0 if ctx.fp8 else 0.0
    gemm_in_bytes = BF16 - fp8  # FP8 activation caches
    # The SwiGLU input kept as a GEMM input is (FP8 under FP8) where the release stores it so.
    swiglu_in_gemm = bool(ctx.stack.swiglu_fp8_store)
    expert_out = 0.0 if ctx.stack.probs_in_activation else float(h)
    rc = ctx.recompute
    tok_sp, received = ctx.tok_sp, ctx.received
    norm, act = ctx.recomputes("layernorm"), ctx.recomputes("moe_act")
    up, mlp = ctx.recomputes("mla_up_proj"), ctx.recomputes("mlp")
    moe_rc, shared_rc = ctx.recomputes("moe"), ctx.recomputes("shared_experts")

    def block(gemm_in: Any, other: Any, drop_gemm: Any = 0.0, drop_other: Any = 0.0
              ) -> np.ndarray:
        return np.maximum((gemm_in - drop_gemm) * gemm_in_bytes
                          + (other - drop_other) * BF16, 0.0)

    def ffn(width: int) -> tuple[float, float, float]:
        """(GEMM inputs, other, the activation output) elements of one FFN per token."""
        g_in, other, recomp = ffn_act_elements(width, arch.gated, h)
        return (g_in + other, 0.0, recomp) if swiglu_in_gemm else (g_in, other, recomp)

    # A checkpointed block (mlp, moe) keeps its input, the norm output unless layernorm
    # drops it, and the residual.
    checkpoint = (1 - norm) * h * gemm_in_bytes + h * BF16
    # Replicated KV heads: each rank keeps K and V of kv_copies heads more than its share.
    kv_more = sh.kv_proj_params / h * (ctx.kv_copies - 1)
    attn = block(sh.attn_act_gemm_in, sh.attn_act_other + kv_more, norm * h,
                 up * (sh.attn_act_recomputable - h)) * tok_sp
    if not ctx.fused_attention:
        # Without a fused attention kernel the scores are kept: softmax output (2 B), its
        # dropout mask (1 B) and the scores (2 B) for each head and key, 5 a s / t bytes per
        # token (Korthikanti et al. eq. 1), unless core_attn recomputes them.
        heads = getattr(spec.attention, "num_heads", 0) * spec.num_full_attention_layers \
            / spec.num_layers
        attn = attn + (1 - ctx.recomputes("core_attn")) * 5.0 * heads \
            * (ctx.run.seq_len / ctx.cp) / ctx.tp * tok_sp
    g_in, other, recomp = ffn(sh.dense_width)
    dense = block(g_in, other + h, norm * h + act * recomp)
    dense = np.where(mlp > 0, np.minimum(checkpoint, dense), dense) * tok_sp
    moe = 0.0
    if arch.is_moe:
        e_in, e_other, e_recomp = ffn(sh.expert_width)
        s_in, s_other, s_recomp = ffn(sh.shared_width)
        # shared_experts drops all the shared experts keep (moe_act has taken their
        # activation output already); their input is the router's, which stays.
        shared_own = block(s_in, s_other, act * s_recomp)
        per_token = np.maximum(
            block(h + s_in, h + 2 * sh.num_experts + s_other, norm * h + act * s_recomp)
            - shared_rc * shared_own, 0.0)
        per_token = np.where(moe_rc > 0, np.minimum(checkpoint, per_token), per_token)
        # Under expert TP each rank keeps etp gathered rows of h per pair, 1/etp of the width.
        etp = ctx.etp
        per_pair = (1 - moe_rc) * block(e_in + h * (etp - 1), e_other + expert_out,
                                        act * e_recomp)
        moe = per_token * tok_sp + per_pair * received
    n_moe, n_dense = arch.num_moe_layers, spec.dense_layers.count
    avg = attn + (n_moe * moe + n_dense * dense) / spec.num_layers
    # Without sequence parallelism (a release that lacks it) the hidden-size tensors of both
    # sublayers, each norm's output and its residual, and the layer input are whole on every
    # tensor-parallel rank (Korthikanti et al. eq. 2: the 10 sbh of 10 + 24/t), not 1/tp.
    rep = 0.0 if ctx.stack.sequence_parallel else ctx.tp - 1.0
    avg = avg + 2 * ((1 - norm) * h * gemm_in_bytes + h * BF16) * tok_sp * rep
    layer_input = BF16 * h * tok_sp * (1 + rep)
    states = 2 * BF16 * sh.recurrent_state * tok_sp
    return np.where(rc == 2, layer_input, avg), np.where(rc == 2, avg, 0.0) + states

