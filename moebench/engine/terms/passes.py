"""Training passes: forward, backward and recompute of each block from its forward times, the
components of a micro-batch, and the slowest pipeline stage with the LM head where it sits.

Backward GEMMs cost twice their forward (input and weight gradients), the attention core its
own backward factor (:func:`moebench.engine.terms.compute.attention_core_time`); recompute reruns
the forward of the modules a plan names (Megatron-Core's ``recompute_modules``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from moebench.engine.context import StepContext
from moebench.engine.terms.compute import LayerForward, train
from moebench.engine.workload import GEMM_BWD_FACTOR

# Of the layer's elementwise pass (10 h per token), the two norms read and write 4 h: the share
# the layernorm module reruns. moe_act is charged the other 6/10, so that selective (layernorm,
# moe_act, mla_up_proj) costs the one elementwise pass it always has; the activation's own
# traffic (read 2w, write w per FFN) is not charged separately.
LAYERNORM_ELEMENTWISE_SHARE = 0.4


@dataclass(frozen=True)
class Recompute:
    """Forward work each block reruns in its backward, as shares of its forward terms (1.0 or
    0.0 per plan): full recompute, or selective by module."""

    full: Any
    elementwise: Any
    """Share of the layer's elementwise pass (layernorm 0.4, moe_act 0.6)."""
    up_proj: Any
    core: Any
    mlp: Any
    moe: Any
    """The whole MoE block: router, permutation, experts, shared experts, all-to-all."""
    shared: Any
    """The shared experts alone (when the moe module does not already rerun them)."""


def recompute_of(ctx: StepContext) -> Recompute:
    full = np.where(ctx.recompute == 2, 1.0, 0.0)
    norm, act = ctx.recomputes("layernorm"), ctx.recomputes("moe_act")
    moe = ctx.recomputes("moe")
    return Recompute(
        full=full,
        elementwise=LAYERNORM_ELEMENTWISE_SHARE * norm + (1 - LAYERNORM_ELEMENTWISE_SHARE) * act,
        up_proj=ctx.recomputes("mla_up_proj"), core=ctx.recomputes("core_attn"),
        mlp=ctx.recomputes("mlp"), moe=moe, shared=ctx.recomputes("shared_experts") * (1 - moe))


def training_components(ctx: StepContext, f: LayerForward) -> dict[str, Any]:
    """Seconds of one micro-batch through the whole model (forward, backward, recompute)."""
    spec = ctx.arch.spec
    n_layers, n_moe, n_dense = spec.num_layers, ctx.arch.num_moe_layers, spec.dense_layers.count
    rc = recompute_of(ctx)
    full = rc.full  # full recompute: the whole forward again
    expert_part = f.experts + f.shared
    return {
        "attention_gemm": n_layers * (train(f.attn_proj) + full * f.attn_proj
                                      + rc.up_proj * f.up_proj),
        "attention_core": n_layers * (train(0.0, f.attn_core, core_bwd=f.attn_bwd_factor)
                                      + (full + rc.core) * f.attn_core),
        "elementwise": n_layers * (train(0.0, 0.0, f.elementwise)
                                   + (full + rc.elementwise) * f.elementwise),
        "dense_ffn": n_dense * (train(f.dense_ffn) + (full + rc.mlp) * f.dense_ffn),
        "moe_experts": n_moe * (train(expert_part) + (full + rc.moe) * expert_part
                                + rc.shared * f.shared),
        "router_permute": n_moe * (train(f.router_permute)
                                   + (full + rc.moe) * f.router_permute),
        "lm_head_mtp": f.head_train + f.mtp_train,
    }


@dataclass(frozen=True)
class LayerPass:
    """Device seconds of one layer's blocks for one micro-batch: forward, and backward with
    the forward it recomputes."""

    attention_fwd: Any
    attention_bwd: Any
    moe_fwd: Any
    """The MoE block after the attention: router, permutation, experts, shared expert."""
    moe_bwd: Any
    dense_fwd: Any
    """The dense FFN block of a dense layer."""
    dense_bwd: Any


def layer_pass(ctx: StepContext, f: LayerForward) -> LayerPass:
    """Forward and backward (+ recompute) seconds of each block of one layer."""
    rc = recompute_of(ctx)
    full = rc.full
    half_elem = f.elementwise / 2
    elem_again = rc.elementwise * half_elem
    attention = f.attention
    attention_bwd = ((f.attn_proj + half_elem) * GEMM_BWD_FACTOR
                     + f.attn_core * f.attn_bwd_factor
                     + full * attention + rc.up_proj * f.up_proj + rc.core * f.attn_core
                     + elem_again)
    moe = f.moe_mlp
    moe_again = rc.moe * (f.experts + f.shared + f.router_permute) + rc.shared * f.shared
    dense = f.dense_ffn + half_elem
    return LayerPass(
        attention_fwd=attention, attention_bwd=attention_bwd,
        moe_fwd=moe, moe_bwd=moe * GEMM_BWD_FACTOR + full * moe + elem_again + moe_again,
        dense_fwd=dense,
        dense_bwd=dense * GEMM_BWD_FACTOR + full * dense + elem_again + rc.mlp * f.dense_ffn,
    )


@dataclass(frozen=True)
class StageCompute:
    """Device compute of one micro-batch on the slowest pipeline stage."""

    layer: LayerPass
    head_fwd: Any
    """The LM head, loss and MTP where they do not fit beside the stage's layers."""
    head_bwd: Any
    components: dict[str, Any]

    @property
    def forward(self) -> Any:
        return self.layers_fwd + self.head_fwd

    @property
    def backward(self) -> Any:
        return self.layers_bwd + self.head_bwd

    @property
    def total(self) -> Any:
        return self.forward + self.backward

    layers_fwd: Any = 0.0
    layers_bwd: Any = 0.0


def stage_compute(ctx: StepContext, f: LayerForward) -> StageCompute:
    """The slowest stage's layers; the head's work where it does not fit beside them is placed
    by :func:`place_head`, once a layer's whole device time is known (zero until then)."""
    comp = training_components(ctx, f)
    comp.pop("lm_head_mtp")
    scale = ctx.layers_per_stage / ctx.arch.spec.num_layers  # the stage's share of layers
    layers = {k: v * scale for k, v in comp.items()}
    lp = layer_pass(ctx, f)
    moe, dense = ctx.moe_layers_per_stage, ctx.dense_layers_per_stage
    fwd = ctx.layers_per_stage * lp.attention_fwd + moe * lp.moe_fwd + dense * lp.dense_fwd
    bwd = ctx.layers_per_stage * lp.attention_bwd + moe * lp.moe_bwd + dense * lp.dense_bwd
    zero = 0.0 * fwd
    return StageCompute(layer=lp, head_fwd=zero, head_bwd=zero,
                        components={**layers, "lm_head_mtp": zero},
                        layers_fwd=fwd, layers_bwd=bwd)


def place_head(ctx: StepContext, stage: StageCompute, f: LayerForward, per_layer: Any
               ) -> StageCompute:
    """``stage`` with the head's excess over the fullest rank weighed against ``per_layer``,
    the whole device time of one of the stage's layers per micro-batch (compute, exposed TP,
    CP and all-to-all, kernel overhead): the loss's rank gives up whole layers, with their
    communication, for the head (:func:`head_beyond_layers`)."""
    head_part = head_beyond_layers(ctx, per_layer * ctx.arch.spec.num_layers, f.head_train,
                                   f.mtp_train)
    return replace(stage, head_fwd=head_part / 3.0, head_bwd=head_part * 2.0 / 3.0,
                   components={**stage.components, "lm_head_mtp": head_part})


def head_beyond_layers(ctx: StepContext, all_layers: Any, head: Any, mtp: Any) -> Any:
    """Seconds the LM head and loss (``head``) and MTP (``mtp``) add to the slowest rank beyond
    the fullest rank's layers (``all_layers``: every layer of the model, t per layer on
    average).

    balanced: whole layers cannot be split and the head must sit on some rank, so the slowest
    rank does max(its layers, the whole model's work / pp), the best any layout can do.
    even or written (:mod:`moebench.engine.layout`), with n_full, n_head and n_mtp the layers
    on the fullest, the loss's and MTP's rank: the slower of n_head t + head (+ mtp when they
    share a rank) and n_mtp t + mtp, beyond n_full t; nothing when the fullest rank is slower.
    """
    n = ctx.arch.spec.num_layers
    per_layer = all_layers / n
    st = ctx.stage
    balanced = np.maximum(0.0, (all_layers + head + mtp) / ctx.pp
                          - ctx.layers_per_stage * per_layer)
    if isinstance(st.kind, int) and st.kind == 0:
        return balanced
    apart = np.asarray(st.mtp_apart) >= 0
    head_rank = (st.head - st.fullest) * per_layer + head + np.where(apart, 0.0, mtp)
    mtp_rank = np.where(apart, (np.asarray(st.mtp_apart) - st.fullest) * per_layer + mtp, 0.0)
    placed = np.maximum(0.0, np.maximum(head_rank, mtp_rank))
    return np.where(np.asarray(st.kind) == 0, balanced, placed)
