"""Attention's work outside the weight GEMMs: the keys each query attends to, and the score and
context FLOPs and softmax exponentials that follow, per token and layer.

Causal attention over the whole context sees s / 2 keys per query on average; a sliding-window
layer (gpt-oss: 128 keys in every other layer) its window; a hybrid model's linear-attention
layers their recurrence instead (:mod:`moebench.engine.linear_attention`). Figures per layer are
the average over the model's layers, as :mod:`moebench.engine.workload`'s are.
"""

from __future__ import annotations

from dataclasses import dataclass

from moebench.engine.linear_attention import linear_attention_core_flops
from moebench.inputs.model import MhaAttention, MlaAttention, ModelArch, ModelSpec


def causal_keys(seq_len: int, window: int | None = None) -> float:
    """Keys a query attends to on average under a causal mask: s / 2 over the whole context;
    under a sliding window of w keys (w < s), w - w^2 / (2 s).

    With the window, query i sees min(i, w) keys: the first w queries a triangle (w^2 / 2 keys
    together), the other s - w queries w each, so (s w - w^2 / 2) / s on average; at w = s this
    is the s / 2 of the whole context (the same continuous counting).
    """
    if window is None or window >= seq_len:
        return seq_len / 2.0
    return window - window * window / (2.0 * seq_len)


def softmax_keys(spec: ModelSpec, seq_len: int) -> float:
    """Keys per query averaged over the softmax-attention layers: the sliding-window layers'
    :func:`causal_keys` with the window (gpt-oss: 128 keys in every other layer), the others'
    over the whole context."""
    window, windowed = spec.sliding_window
    if not windowed:
        return causal_keys(seq_len)
    n = spec.num_full_attention_layers
    return ((n - windowed) * causal_keys(seq_len)
            + windowed * causal_keys(seq_len, window)) / n


def full_attention_core_flops(att: MhaAttention | MlaAttention, keys: float) -> float:
    """Attention FLOPs per token, forward, for a query attending to ``keys`` keys:
    2 n_h (d_qk + d_v) keys, with keys = s / 2 under a causal mask over the whole context
    (:func:`causal_keys`).

    QK^T costs 2 n_h d_qk per key and AV 2 n_h d_v per key. (Matches the ~2.49e11 FLOP/token
    that Megatron-style counting gives DeepSeek-V3 at s = 4096 without MTP once multiplied by
    3 for training.)
    """
    d_qk, d_v = head_dims(att)
    return 2.0 * att.num_heads * (d_qk + d_v) * keys


def _per_layer(arch: ModelArch, full: float, linear: float) -> float:
    """A per-layer figure of the softmax-attention layers, averaged with the linear-attention
    layers' figure over a hybrid model's layers (the softmax figure alone otherwise)."""
    spec = arch.spec
    if spec.linear_attention is None:
        return full
    return (spec.num_full_attention_layers * full
            + spec.linear_attention.count * linear) / spec.num_layers


def attention_core_exps(arch: ModelArch, seq_len: int) -> float:
    """Exponentials per token and layer in the attention forward: one per causal score element,
    n_h s / 2 (n_h x :func:`softmax_keys` with sliding windows), averaged over the layers of a
    hybrid model (linear attention has no softmax)."""
    return _per_layer(arch, arch.spec.attention.num_heads * softmax_keys(arch.spec, seq_len),
                      0.0)


def attention_core_flops(arch: ModelArch, seq_len: int, mla_pad: str = "none") -> float:
    """Attention FLOPs per token and layer outside the weight GEMMs, forward: the causal term of
    :func:`full_attention_core_flops` (over :func:`softmax_keys`: sliding-window layers see
    their window), or for a hybrid model the average over its layers of that
    and the linear-attention layers' recurrence (constant in s,
    :func:`~moebench.engine.linear_attention.linear_attention_core_flops`). ``mla_pad`` gives
    the matmul work the kernel does when the stack pads MLA's head dims
    (:func:`mla_pad_factor`); the model's FLOPs are those at ``none``."""
    spec = arch.spec
    lin = spec.linear_attention
    full = full_attention_core_flops(spec.attention, softmax_keys(spec, seq_len)) * mla_pad_factor(
        spec.attention, mla_pad)
    return _per_layer(arch, full, 0.0 if lin is None else linear_attention_core_flops(lin))


def head_dims(att: MhaAttention | MlaAttention) -> tuple[int, int]:
    """(query-key, value) head dims: MLA's d_nope + d_rope and d_v, else the head dim twice."""
    if isinstance(att, MlaAttention):
        return att.qk_nope_head_dim + att.qk_rope_head_dim, att.v_head_dim
    return att.head_dim, att.head_dim


def fused_attention(arch: ModelArch, flash: bool, head_dim_limit: int | None) -> bool:
    """Whether the attention runs as a fused kernel that keeps no scores: the stack has one
    (``flash``) and it takes the model's head dims on the chip (``head_dim_limit``, the
    largest query-key or value head dim it takes there; None: no limit). Transformer Engine
    before 2.5 gives Blackwell cuDNN attention only up to 128 and flash-attn no MLA at all,
    so DeepSeek-V3's 192/128 falls back to unfused attention there
    (:func:`unfused_attention_ops`)."""
    return flash and (head_dim_limit is None
                      or max(head_dims(arch.spec.attention)) <= head_dim_limit)


@dataclass(frozen=True)
class ScoreOp:
    """One operation of unfused attention, per token and layer: matmul FLOPs, the depth its
    reduction runs over (0: no matmul) and the HBM bytes of score-sized tensors it moves."""

    flops: float
    depth: float
    bytes: float


def unfused_attention_ops(arch: ModelArch, seq_len: int
                          ) -> tuple[tuple[ScoreOp, ...], tuple[ScoreOp, ...]]:
    """Unfused attention (Transformer Engine's UnfusedDotProductAttention) per token and layer,
    as (forward ops, backward ops). Every query scores all s keys (the causal or window mask is
    applied to a full s x s matrix): n = n_h s BF16 score elements per token over the softmax
    layers (averaged with a hybrid model's linear layers, which have none).

    Forward: QK^T (2 n d_qk FLOPs over d_qk, the scores written: 2n bytes), the fused masked
    softmax (read and write: 4n), PV (2 n d_v over the keys, P read: 2n). Backward: dP = dO V^T
    (2 n d_v over d_v, written: 2n), dV = P^T dO (2 n d_v over the queries, P read: 2n), the
    softmax backward (P and dP read, dS written: 6n), dQ = dS K and dK = dS^T Q (2 n d_qk each,
    dS read: 2n each). Korthikanti et al. (arXiv 2205.05198 sec. 4.1) count the same score and
    softmax tensors for memory."""
    att = arch.spec.attention
    d_qk, d_v = (float(d) for d in head_dims(att))
    s = float(seq_len)
    n = _per_layer(arch, att.num_heads * s, 0.0)
    fwd = (ScoreOp(2 * n * d_qk, d_qk, 2 * n), ScoreOp(0.0, 0.0, 4 * n),
           ScoreOp(2 * n * d_v, s, 2 * n))
    bwd = (ScoreOp(2 * n * d_v, d_v, 2 * n), ScoreOp(2 * n * d_v, s, 2 * n),
           ScoreOp(0.0, 0.0, 6 * n), ScoreOp(2 * n * d_qk, s, 2 * n),
           ScoreOp(2 * n * d_qk, s, 2 * n))
    return fwd, bwd


# The head dim MindSpeed-LLM pads MLA's query, key and value to for its fused attention with
# the default SBH layout (fa_padding_length; 256 fixed through 1.0.0).
MLA_PAD_DIM = 256


def mla_pad_factor(att: MhaAttention | MlaAttention, pad: str) -> float:
    """Attention matmul work with padded head dims over that without: (d_qk' + d_v') /
    (d_qk + d_v), the causal FLOPs being 2 n_h (d_qk + d_v) s / 2 per token.

    An attention kernel that needs one head dim for query, key and value gets MLA's value
    (d_v = 128 in DeepSeek-V2/V3) padded to the query-key dim (192): ``v``, 384 / 320 = 1.2;
    MindSpeed-LLM's fused attention with its default SBH layout gets all three padded to 256:
    ``256``, 512 / 320 = 1.6 (Ascend/MindSpeed-LLM v1.0.RC3.0
    modellink/core/transformer/multi_head_latent_attention.py: F.pad of query and key to
    256 - q_head_dim and value to 256 - v_head_dim, or value alone to q_head_dim under BNSD).
    Other attention, and ``none``: 1."""
    if pad == "none" or not isinstance(att, MlaAttention):
        return 1.0
    d_qk, d_v = head_dims(att)
    if d_qk == d_v:
        return 1.0
    if pad == "v":
        return 2.0 * d_qk / (d_qk + d_v)
    return 2.0 * max(MLA_PAD_DIM, d_qk, d_v) / (d_qk + d_v)
