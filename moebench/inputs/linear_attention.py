"""Linear-attention layers: the Gated DeltaNet record and its parameter count.

Hybrid models such as Qwen3-Next mix full-attention layers (described by ``attention`` in the
model record) with linear-attention layers (described here). A linear-attention layer keeps a
fixed-size recurrent state per head instead of a key-value cache, so its cost grows linearly with
the sequence length; :mod:`moebench.engine.linear_attention` gives its FLOPs and activations.

Gated DeltaNet: Yang, Kautz and Hatamizadeh, "Gated Delta Networks: Improving Mamba2 with Delta
Rule", arXiv 2412.06464; the layer as Qwen3-Next ships it is Hugging Face transformers'
``Qwen3NextGatedDeltaNet`` (models/qwen3_next/modular_qwen3_next.py).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from moebench.inputs.schema import Record

PosInt = Annotated[int, Field(gt=0, strict=True)]


class LinearAttention(Record):
    """Gated DeltaNet token mixing in ``count`` of the model's layers (the rest use ``attention``).

    Queries and keys have ``num_key_heads`` heads of ``key_head_dim``; values, the output gate and
    the recurrent state have ``num_value_heads`` heads (each key head serves
    num_value_heads / num_key_heads value heads, as grouped-query attention does).
    """

    kind: Literal["gated_deltanet"]
    count: PosInt = Field(description="layers that use linear attention")
    num_key_heads: PosInt
    num_value_heads: PosInt
    key_head_dim: PosInt
    value_head_dim: PosInt
    conv_kernel_size: PosInt = Field(description="width of the causal depthwise convolution")

    @model_validator(mode="after")
    def _heads(self) -> LinearAttention:
        if self.num_value_heads % self.num_key_heads:
            raise ValueError(f"num_value_heads {self.num_value_heads} must be a multiple of "
                             f"num_key_heads {self.num_key_heads}")
        return self

    @property
    def key_dim(self) -> int:
        """Width of all query (or key) heads together: n_k d_k."""
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        """Width of all value heads together: n_v d_v."""
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the depthwise convolution, over q, k and v: 2 n_k d_k + n_v d_v."""
        return 2 * self.key_dim + self.value_dim


def gated_deltanet_projections(lin: LinearAttention, hidden: int) -> list[tuple[int, int]]:
    """The layer's weight GEMMs as (weights, reduction depth K).

    in_proj_qkvz: h x (2 n_k d_k + 2 n_v d_v) (queries, keys, values and the output gate z);
    in_proj_ba: h x 2 n_v (per value head, the write strength beta and the decay input a);
    out_proj: n_v d_v x h.
    """
    return [
        (hidden * (2 * lin.key_dim + 2 * lin.value_dim), hidden),
        (hidden * 2 * lin.num_value_heads, hidden),
        (lin.value_dim * hidden, lin.value_dim),
    ]


def gated_deltanet_params(lin: LinearAttention, hidden: int) -> int:
    """Weights of one Gated DeltaNet layer: its projections (above), the depthwise convolution
    (conv_dim x kernel, no bias), the per-head decay parameters dt_bias and A_log (2 n_v) and the
    gated RMSNorm on the output (d_v, shared by the heads)."""
    proj = sum(w for w, _ in gated_deltanet_projections(lin, hidden))
    return (proj + lin.conv_dim * lin.conv_kernel_size + 2 * lin.num_value_heads
            + lin.value_head_dim)
