"""Work per token, by component: FLOPs, weights touched and activations stored.

Everything here depends on the model (and the sequence length) only, not on the chip or the
parallel plan. Counts are *forward* and *per token*; :mod:`moebench.engine.step` scales them by the
tokens each chip handles and by the backward and recompute multipliers.

Notation (as in the scaling book): h hidden size, s sequence length, n_h query heads,
d_qk / d_v per-head query-key and value widths, E routed experts, k experts per token,
w expert width, V vocabulary.

Hybrid models (Qwen3-Next) have linear-attention layers beside their full-attention layers; the
attention figures of :class:`LayerShapes` are then the average over all layers (weighted by the
count of each kind), so that layers x figure is the model's total, and each stage's share of
layers carries its share of both kinds (their interleaving is regular: one full-attention layer
in every four in Qwen3-Next). Attention's score and context work, which grows with the keys
each query sees, is in :mod:`moebench.engine.attention_core`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moebench.engine.linear_attention import (
    linear_attention_activations,
    recurrent_state_elements,
)
from moebench.inputs.linear_attention import LinearAttention, gated_deltanet_projections
from moebench.inputs.model import (
    MhaAttention,
    MlaAttention,
    ModelArch,
    attention_params,
    ffn_params,
)

# FlashAttention backward runs five matmuls against the forward's two (Dao et al., FlashAttention,
# arXiv 2205.14135, sec. 3.1 and appendix B): 2.5x the forward FLOPs, not the 2x of a plain GEMM.
ATTENTION_BWD_FACTOR = 2.5
# Its kernel runs those FLOPs more slowly than the forward's: DeepSeek's H800 trace
# (deepseek-ai/profile-data train.json; ../shared/reference/component-measurements.md) times the
# attention forward at 1.20-1.28 ms a layer and its backward at 3.58-3.86 ms, 550 against 455
# TFLOPS: the backward at 0.83 of the forward's rate (FlashAttention-2 on A100, arXiv 2307.08691
# sec. 1: "up to 73% of the theoretical max throughput in the forward pass, and up to 63% ... in
# the backward pass", 0.86).
ATTENTION_BWD_RATE = 0.83
# The softmax's exponentials: one per score element in the forward, and one again in the
# backward, which recomputes the probabilities from the saved row statistics (FlashAttention-2,
# arXiv 2307.08691, algorithm 2); so 1x the forward's, against the matmuls' 2.5x.
ATTENTION_EXP_BWD_FACTOR = 1.0
GEMM_BWD_FACTOR = 2.0  # activation gradient + weight gradient


@dataclass(frozen=True, kw_only=True)
class LayerShapes:
    """Per-token forward counts of one transformer layer of each kind (attention figures: the
    average layer of a hybrid model)."""

    attn_proj_params: float
    """Weights of the attention projections (FLOPs per token = 2x this)."""
    attn_up_proj_params: float
    """MLA up-projection weights (recomputed under selective recompute); 0 for MHA/GQA."""
    attn_proj_depth: float
    """Reduction depth K of the attention GEMMs together (weight-weighted harmonic mean)."""
    up_proj_depth: float
    """Reduction depth K of the MLA up-projections (their latent ranks)."""
    kv_width: float
    """Width of K plus V per token over all heads (what context parallelism passes around)."""
    dense_ffn_params: int
    router_params: int
    expert_params: int
    """Weights of one routed expert."""
    shared_params: int
    """Weights of all shared experts of one layer together."""
    expert_width: int
    shared_width: int
    dense_width: int
    top_k: int
    num_experts: int
    # Activation elements stored per token for the backward pass, by kind of tensor.
    attn_act_gemm_in: float
    """Attention tensors that are GEMM inputs (stored in FP8 under FP8 training)."""
    attn_act_other: float
    """Other attention tensors kept for backward (Q, K, V for the attention kernel, norms)."""
    attn_act_recomputable: float
    """Attention tensors dropped by selective recompute (norm outputs, MLA up-projections)."""
    recurrent_state: float = 0.0
    """Elements per token of one linear-attention layer's chunk states (working memory)."""
    kv_proj_params: float = 0.0
    """K and V projection weights of the average layer (MHA/GQA only): what is replicated when
    tensor parallelism is wider than the KV heads."""
    kv_heads: int = 0
    """KV heads of MHA/GQA attention (0: MLA or none, whose heads all split over tp)."""
    q_width: float = 0.0
    """Width of Q per token over all heads (what Ulysses moves beside K and V)."""
    o_width: float = 0.0
    """Width of the attention output per token over all heads, before the output projection."""


def harmonic_depth(gemms: list[tuple[int, int]]) -> float:
    """One reduction depth for several GEMMs of (weights, K): time at rate k / (k + k_h) adds
    up as if all had K = 1 / sum(w_i / K_i) with weights w_i normalised (independent of k_h)."""
    total = sum(w for w, _ in gemms)
    if not total:
        return 1.0
    return total / sum(w / k for w, k in gemms if w)


@dataclass(frozen=True)
class _Mixer:
    """Per-token figures of one layer's token mixing (attention of one kind)."""

    params: int
    up_params: int
    gemms: list[tuple[int, int]]
    """Weight GEMMs as (weights, reduction depth K), up-projections included."""
    up_gemms: list[tuple[int, int]]
    kv_width: int
    acts: tuple[int, int, int]
    """(GEMM inputs, other, recomputable) activation elements."""


def _full_attention(att: MhaAttention | MlaAttention, h: int) -> _Mixer:
    """Softmax attention: MLA's down- and up-projections, or MHA/GQA's QKV and output."""
    if isinstance(att, MlaAttention):
        n, qk, v = att.num_heads, att.qk_nope_head_dim + att.qk_rope_head_dim, att.v_head_dim
        q_in = att.q_lora_rank
        up = (q_in * n * qk if q_in else 0) + att.kv_lora_rank * n * (att.qk_nope_head_dim + v)
        latents = (2 * q_in if q_in else 0) + (att.kv_lora_rank + att.qk_rope_head_dim) \
            + att.kv_lora_rank
        q_full, k_full, v_full, o = n * qk, n * qk, n * v, n * v
        q_up = [(q_in * n * qk, q_in)] if q_in else []
        kv_up = [(att.kv_lora_rank * n * (att.qk_nope_head_dim + v), att.kv_lora_rank)]
        downs = [(h * q_in, h)] if q_in else [(h * n * qk, h)]
        downs += [(h * (att.kv_lora_rank + att.qk_rope_head_dim), h), (n * v * h, n * v)]
        return _Mixer(
            params=attention_params(att, h), up_params=up, gemms=downs + q_up + kv_up,
            up_gemms=q_up + kv_up, kv_width=k_full + v_full,
            # GEMM inputs: norm output, o-proj input, latent inputs of up-projections; other:
            # residual input, Q, K, V for the kernel; recomputable: norm out and up-projections.
            acts=(h + o + latents, h + q_full + k_full + v_full, h + q_full + k_full + v_full))
    q = att.num_heads * att.head_dim
    kv = att.num_kv_heads * att.head_dim
    # An output gate comes out of the query projection; its backward keeps the gate and the
    # attention output before gating.
    gate = q if att.output_gate else 0
    return _Mixer(
        params=attention_params(att, h), up_params=0,
        gemms=[(h * (q + gate + 2 * kv), h), (q * h, q)], up_gemms=[], kv_width=2 * kv,
        # GEMM inputs: norm output (QKV input), o-proj input; other: residual input, Q, K, V;
        # recomputable: the norm output.
        acts=(h + q, h + q + 2 * kv + 2 * gate, h))


def _linear_attention(lin: LinearAttention, h: int) -> _Mixer:
    """Gated DeltaNet: its projection GEMMs (:func:`gated_deltanet_projections`; the
    convolution's work is in the core term, with the recurrence) and activations; no K/V to pass
    around under context parallelism."""
    gemms = gated_deltanet_projections(lin, h)
    return _Mixer(params=sum(w for w, _ in gemms), up_params=0, gemms=gemms, up_gemms=[],
                  kv_width=0, acts=linear_attention_activations(lin, h))


def _mean(mixers: list[tuple[_Mixer, int]], figure: Callable[[_Mixer], int]) -> float:
    """Layer-weighted mean of a per-layer figure over the kinds of layer: sum n_i x_i / sum n_i
    (the figure itself when all layers are of one kind)."""
    return sum(figure(m) * n for m, n in mixers) / sum(n for _, n in mixers)


def layer_shapes(arch: ModelArch) -> LayerShapes:
    """Plan-independent per-token counts of the model's layers (sequence length aside)."""
    spec = arch.spec
    h = spec.hidden_size
    gated = arch.gated
    moe = spec.moe
    full = _full_attention(spec.attention, h)
    lin = spec.linear_attention
    mixers = [(full, spec.num_full_attention_layers)]
    depth = harmonic_depth(full.gemms)
    if lin:
        mixers.append((_linear_attention(lin, h), lin.count))
        # Each kind's GEMMs weigh as often as it occurs.
        depth = harmonic_depth([(w * n, k) for m, n in mixers for w, k in m.gemms])
    expert_w = moe.expert_width if moe else 0
    shared_w = moe.num_shared_experts * moe.shared_expert_width if moe else 0
    return LayerShapes(
        attn_proj_params=_mean(mixers, lambda m: m.params),
        attn_up_proj_params=_mean(mixers, lambda m: m.up_params),
        attn_proj_depth=depth,
        up_proj_depth=harmonic_depth(full.up_gemms) if full.up_gemms else 1.0,
        kv_width=_mean(mixers, lambda m: m.kv_width),
        dense_ffn_params=ffn_params(h, spec.dense_layers.ffn_width, gated),
        router_params=h * moe.num_experts if moe else 0,
        expert_params=ffn_params(h, expert_w, gated) if moe else 0,
        shared_params=ffn_params(h, shared_w, gated) if moe else 0,
        expert_width=expert_w,
        shared_width=shared_w,
        dense_width=spec.dense_layers.ffn_width,
        top_k=moe.top_k if moe else 0,
        num_experts=moe.num_experts if moe else 0,
        attn_act_gemm_in=_mean(mixers, lambda m: m.acts[0]),
        attn_act_other=_mean(mixers, lambda m: m.acts[1]),
        attn_act_recomputable=_mean(mixers, lambda m: m.acts[2]),
        recurrent_state=recurrent_state_elements(lin) if lin else 0.0,
        **_attention_widths(spec.attention, h, spec.num_full_attention_layers / spec.num_layers),
    )


def _attention_widths(att: MhaAttention | MlaAttention, h: int, share: float) -> dict[str, Any]:
    """Q and output widths, and for MHA/GQA the K/V projection weights of the average layer
    and the KV heads (``share``: the fraction of layers that use this attention)."""
    if isinstance(att, MlaAttention):
        n = att.num_heads
        return {"q_width": n * (att.qk_nope_head_dim + att.qk_rope_head_dim),
                "o_width": n * att.v_head_dim}
    width = att.num_heads * att.head_dim
    return {"kv_proj_params": share * h * 2 * att.num_kv_heads * att.head_dim,
            "kv_heads": att.num_kv_heads, "q_width": width, "o_width": width}


def ffn_act_elements(width: int, gated: bool, hidden: int) -> tuple[int, int, int]:
    """(GEMM inputs, other, recomputable) activation elements of one FFN per token it processes.

    Stored for backward: the FFN input (h), the gate/up outputs (2w gated, w otherwise) for the
    activation's backward, and the activation output (w), the down-projection's input. Selective
    recompute drops the activation output.
    """
    if width == 0:
        return 0, 0, 0
    return hidden + width, (2 if gated else 1) * width, width

