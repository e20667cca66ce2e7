"""Attention records of a model profile and their parameter counts.

Full (softmax) attention layers: multi-head and grouped-query attention, and DeepSeek's
multi-head latent attention. Linear-attention layers of hybrid models are in
:mod:`moebench.inputs.linear_attention`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from moebench.inputs.schema import Record

PosInt = Annotated[int, Field(gt=0, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, strict=True)]


class MhaAttention(Record):
    """Multi-head attention; GQA when ``num_kv_heads`` < ``num_heads``."""

    kind: Literal["mha", "gqa"]
    num_heads: PosInt
    num_kv_heads: PosInt
    head_dim: PosInt
    qkv_bias: bool = False
    qk_norm: bool = False
    qk_norm_scope: Literal["head", "all_heads"] = Field(
        "head", description="RMSNorm weights per head_dim (Qwen3) or over all heads (OLMoE)")
    output_gate: bool = Field(
        False, description="sigmoid gate on the attention output, projected with the queries "
                           "(Qwen3-Next gated attention)")
    sliding_window: PosInt | None = Field(
        None, description="keys a query of a sliding-window layer sees, itself included "
                          "(gpt-oss: 128); null when every layer attends to the whole context")
    sliding_window_layers: NonNegInt = Field(
        0, description="how many of the attention layers use the sliding window (gpt-oss: "
                       "every other one); the others attend causally to the whole context")

    @model_validator(mode="after")
    def _kv(self) -> MhaAttention:
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads {self.num_heads} must be a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.kind == "mha" and self.num_kv_heads != self.num_heads:
            raise ValueError("kind mha needs num_kv_heads == num_heads; use kind gqa otherwise")
        if (self.sliding_window is None) != (self.sliding_window_layers == 0):
            raise ValueError("sliding_window and sliding_window_layers go together: give the "
                             "window's keys and how many layers use it, or neither")
        return self


class MlaAttention(Record):
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank q and kv paths, decoupled RoPE."""

    kind: Literal["mla"]
    num_heads: PosInt
    q_lora_rank: NonNegInt = Field(description="0 when queries are not compressed (V2-Lite)")
    kv_lora_rank: PosInt
    qk_nope_head_dim: PosInt
    qk_rope_head_dim: PosInt
    v_head_dim: PosInt


def attention_params(att: MhaAttention | MlaAttention, hidden: int) -> int:
    """Attention weights of one layer, projections and their internal norms.

    MHA/GQA: Wq (h x n_h d), Wk, Wv (h x n_kv d each), Wo (n_h d x h); an output gate doubles
    Wq (h x 2 n_h d); QK norm weights are d each, or n_h d and n_kv d over all heads.
    MLA (DeepSeek-V2 report, sec. 2.1): W_DQ (h x d'_c), q norm, W_UQ (d'_c x n_h (d_nope +
    d_rope)), W_DKV+W_KR (h x (d_c + d_rope)), kv norm, W_UK+W_UV (d_c x n_h (d_nope + d_v)),
    Wo (n_h d_v x h).
    """
    if isinstance(att, MlaAttention):
        qk = att.qk_nope_head_dim + att.qk_rope_head_dim
        if att.q_lora_rank:
            q = hidden * att.q_lora_rank + att.q_lora_rank + att.q_lora_rank * att.num_heads * qk
        else:
            q = hidden * att.num_heads * qk
        kv = (
            hidden * (att.kv_lora_rank + att.qk_rope_head_dim)
            + att.kv_lora_rank
            + att.kv_lora_rank * att.num_heads * (att.qk_nope_head_dim + att.v_head_dim)
        )
        return q + kv + att.num_heads * att.v_head_dim * hidden
    q_dim = att.num_heads * att.head_dim
    kv_dim = att.num_kv_heads * att.head_dim
    q_out = 2 * q_dim if att.output_gate else q_dim
    params = hidden * (q_out + 2 * kv_dim) + q_dim * hidden
    if att.qkv_bias:
        params += q_out + 2 * kv_dim
    if att.qk_norm:
        params += 2 * att.head_dim if att.qk_norm_scope == "head" else q_dim + kv_dim
    return params
