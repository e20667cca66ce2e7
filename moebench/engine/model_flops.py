"""Model FLOPs per token for training, by component: what MFU divides by (forward x 3, no
recompute; the same counting as the 6N rule of thumb, with attention and the LM head)."""

from __future__ import annotations

from dataclasses import dataclass

from moebench.engine.attention_core import causal_keys, full_attention_core_flops, softmax_keys
from moebench.engine.linear_attention import linear_attention_core_flops
from moebench.engine.workload import layer_shapes
from moebench.inputs.linear_attention import gated_deltanet_projections
from moebench.inputs.model import ModelArch, attention_params


@dataclass(frozen=True, kw_only=True)
class ModelFlops:
    """Model FLOPs per token for training (3x forward, no recompute), by component."""

    attention_proj: float
    """Projections of the full-attention layers."""
    attention_core: float
    """Causal scores and context of the full-attention layers (grows with s)."""
    dense_ffn: float
    router: float
    routed_experts: float
    shared_experts: float
    lm_head: float
    mtp: float
    linear_attention: float = 0.0
    """Linear-attention layers of a hybrid model: projections, recurrence and convolution."""

    @property
    def total(self) -> float:
        return (
            self.attention_proj + self.attention_core + self.dense_ffn + self.router
            + self.routed_experts + self.shared_experts + self.lm_head + self.mtp
            + self.linear_attention
        )

    def forward(self) -> dict[str, float]:
        """Forward FLOPs per token by component (a third of the training figure)."""
        return {k: v / 3.0 for k, v in self.as_dict().items()}

    def as_dict(self) -> dict[str, float]:
        return {
            "attention_proj": self.attention_proj, "attention_core": self.attention_core,
            "dense_ffn": self.dense_ffn, "router": self.router,
            "routed_experts": self.routed_experts, "shared_experts": self.shared_experts,
            "lm_head": self.lm_head, "mtp": self.mtp, "linear_attention": self.linear_attention,
        }


def model_flops_per_token(arch: ModelArch, seq_len: int, include_mtp: bool = True) -> ModelFlops:
    """Training FLOPs per token: 3 x forward (backward = 2 x forward), no recomputation.

    Every weight multiplies each token once in the forward pass (2 FLOPs per weight); only the
    top-k routed experts count. Attention scores and context add the causal term of
    :func:`attention_core_flops` (a hybrid model's linear-attention layers their recurrence).
    The input embedding is a lookup and costs nothing. MTP depth D adds D x (one MoE layer with
    full attention + the 2h x h projection + the LM head) (DeepSeek-V3 sec. 2.2).
    """
    spec, sh = arch.spec, layer_shapes(arch)
    n_full, n_moe = spec.num_full_attention_layers, arch.num_moe_layers
    n_dense = spec.dense_layers.count
    h, vocab = spec.hidden_size, spec.vocab_size
    proj = 2.0 * attention_params(spec.attention, h)
    core = full_attention_core_flops(spec.attention, softmax_keys(spec, seq_len))
    lin = spec.linear_attention
    lin_fwd = lin.count * (2.0 * sum(w for w, _ in gated_deltanet_projections(lin, h))
                           + linear_attention_core_flops(lin)) if lin else 0.0
    mtp_layers = spec.mtp_depth if include_mtp else 0
    moe_fwd = 2.0 * (sh.router_params + sh.top_k * sh.expert_params + sh.shared_params)
    # An MTP module's attention layer attends to the whole context.
    mtp_core = full_attention_core_flops(spec.attention, causal_keys(seq_len))
    mtp_fwd = mtp_layers * (proj + mtp_core + moe_fwd + 2.0 * (2 * h * h) + 2.0 * h * vocab)
    return ModelFlops(
        attention_proj=3 * n_full * proj,
        attention_core=3 * n_full * core,
        linear_attention=3 * lin_fwd,
        dense_ffn=3 * 2.0 * n_dense * sh.dense_ffn_params,
        router=3 * 2.0 * n_moe * sh.router_params,
        routed_experts=3 * 2.0 * n_moe * sh.top_k * sh.expert_params,
        shared_experts=3 * 2.0 * n_moe * sh.shared_params,
        lm_head=3 * 2.0 * h * vocab,
        mtp=3 * mtp_fwd,
    )
