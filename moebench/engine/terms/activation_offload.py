"""Activation offload: module inputs saved for backward, kept in host memory in between.

Megatron-LM's fine-grained activation offloading (``--fine-grained-activation-offloading
--offload-modules ...``, docs/source/api-guide/fine_grained_activation_offloading.md) copies
the input each listed module saves for backward to the host after the module's forward, and
reloads it, one module ahead, during backward; both copies run on their own stream beside
compute. Per layer and micro-batch, with B the bytes it offloads and W the host link (one
direction, :attr:`Chip.host_bw` x its efficiency):

* device memory keeps, of every layer in flight, its stored activations less B, plus two
  layers' B (the one in use and the one being reloaded or copied out);
* host memory holds B of every other layer in flight;
* time: the copy out hides behind the layer's forward and the reload behind its backward,
  so each pass exposes max(0, B / W - that pass's device time).

B by module, per token a rank holds (tok_sp) or per expert-token pair it computes:
attn_norm the layer input (h, BF16); qkv_linear the norm output (h, a GEMM input; nothing when
``layernorm`` is recomputed); core_attn Q, K and V (BF16; nothing for MLA when ``mla_up_proj``
is recomputed); attn_proj the attention output (a GEMM input); mlp_norm the residual before
the MLP (h, BF16); expert_fc1 each pair's gathered rows (h x etp, a GEMM input); moe_act the
activation's input (2w gated, w otherwise, BF16). The expert modules hold nothing when the MoE
block is recomputed, and under full recompute nothing is stored to offload.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moebench.engine.context import StepContext
from moebench.inputs.run import OFFLOAD_MODULES

BF16 = 2.0


def offloads(ctx: StepContext, module: str) -> Any:
    """1.0 where the plan offloads ``module``'s input, else 0.0."""
    bit = 1 << OFFLOAD_MODULES.index(module)
    return np.where(np.asarray(ctx.act_offload) & bit > 0, 1.0, 0.0)


def offloaded_bytes_per_layer(ctx: StepContext) -> Any:
    """B: bytes per chip one average layer offloads for one micro-batch (0 without offload)."""
    if not np.any(ctx.act_offload):
        return 0.0
    arch, spec, sh = ctx.arch, ctx.arch.spec, ctx.shapes
    h = spec.hidden_size
    gemm_in = 1.0 if ctx.fp8 else BF16
    kept = np.where(ctx.recompute == 2, 0.0, 1.0)  # full recompute keeps only layer inputs
    full_attention = spec.num_full_attention_layers / spec.num_layers
    qkv_kept = 1.0 - ctx.recomputes("mla_up_proj") if sh.attn_up_proj_params else 1.0
    per_token = (
        offloads(ctx, "attn_norm") * BF16 * h
        + offloads(ctx, "qkv_linear") * gemm_in * h * (1.0 - ctx.recomputes("layernorm"))
        + offloads(ctx, "core_attn") * BF16 * (sh.q_width + sh.kv_width) * qkv_kept
        * full_attention
        + offloads(ctx, "attn_proj") * gemm_in * sh.o_width * full_attention
        + offloads(ctx, "mlp_norm") * BF16 * h)
    per_pair = 0.0
    if arch.is_moe:
        moe_kept = (1.0 - ctx.recomputes("moe")) * arch.num_moe_layers / spec.num_layers
        gated = 2 if arch.gated else 1
        per_pair = moe_kept * (offloads(ctx, "expert_fc1") * gemm_in * h * ctx.etp
                               + offloads(ctx, "moe_act") * BF16 * gated * sh.expert_width)
    return kept * (per_token * ctx.tok_sp + per_pair * ctx.received)


def link_bytes_per_s(ctx: StepContext) -> Any:
    """The host link one direction, as achieved (infinite without a host: nothing moves; an
    array under sampled figures)."""
    chip = ctx.chip
    if chip.host_bw is None:
        return float("inf")
    return chip.host_bw * (1.0 if chip.host_link_eff is None else chip.host_link_eff)


def exposed_per_layer(ctx: StepContext, offloaded: Any, forward: Any, backward: Any) -> Any:
    """Seconds per layer and micro-batch the copies add: max(0, B/W - forward) out, and
    max(0, B/W - backward) back in (``forward``, ``backward``: the layer's device time)."""
    copy = offloaded / link_bytes_per_s(ctx)
    return np.maximum(0.0, copy - forward) + np.maximum(0.0, copy - backward)
