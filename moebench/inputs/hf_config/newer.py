"""Hugging Face ``config.json`` mappers of the MoE types released since the first families: GLM-4.5
(glm4_moe), ERNIE 4.5 (ernie4_5_moe), OLMoE, Phi-3.5-MoE (phimoe), DBRX, Hunyuan-A13B
(hunyuan_v1_moe), the hybrid Qwen3-Next (qwen3_next) and Llama 4 (llama4_text, with its dense and
MoE layers interleaved).

Key names, their defaults and each family's weights follow Hugging Face transformers'
``models/<type>/configuration_<type>.py`` and ``modeling_<type>.py``; a key whose default there
is structural (a layer index, a flag) takes that default, a size never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moebench.inputs.hf_config.reader import (
    _base,
    _Config,
    _dense_layers,
    _first_dense_moe,
    _gqa,
    _moe,
    _sparse_step_layers,
)

LAYER_TYPES = ("linear_attention", "full_attention")


def _glm4_moe(c: _Config) -> dict[str, Any]:
    """GLM-4.5: q, k and v biases (attention_bias; no o_proj bias), per-head QK norm
    (use_qk_norm), the first first_k_dense_replace layers dense, one shared expert of
    n_shared_experts x moe_intermediate_size, MTP layers. Partial RoPE changes no weights."""
    d = _base(c, "Hugging Face config.json (glm4_moe)")
    d["attention"] = _gqa(c, qkv_bias=c.flag("attention_bias", False),
                          qk_norm=c.flag("use_qk_norm", False))
    d["dense_layers"], d["moe"] = _first_dense_moe(c, "n_routed_experts", "n_shared_experts", 1,
                                                   1)
    d["mtp_depth"] = c.integer("num_nextn_predict_layers", 0)
    return d


def _ernie4_5_moe(c: _Config) -> dict[str, Any]:
    """ERNIE 4.5: MoE from layer moe_layer_start_index on (the layers before are dense), shared
    experts of moe_num_shared_experts x moe_intermediate_size, top moe_k of moe_num_experts."""
    d = _base(c, "Hugging Face config.json (ernie4_5_moe)")
    if c.flag("use_bias", False):
        raise c.error("use_bias", "biases in every projection are not modelled; use a model YAML")
    d["attention"] = _gqa(c)
    layers = d["num_layers"]
    end = c.integer("moe_layer_end_index", -1)
    if c.integer("moe_layer_interval", 1) != 1:
        raise c.error("moe_layer_interval",
                      "interleaved dense/MoE layers are not supported; use a model YAML")
    if end not in (-1, layers - 1):
        raise c.error("moe_layer_end_index",
                      "dense layers after the MoE layers are not supported; use a model YAML")
    d["dense_layers"] = {"count": c.integer("moe_layer_start_index", 1),
                         "ffn_width": c.integer("intermediate_size")}
    d["moe"] = _moe(c, "moe_num_experts", "moe_intermediate_size",
                    c.integer("moe_num_shared_experts", 2), c.integer("moe_intermediate_size"),
                    top_k="moe_k")
    d["mtp_depth"] = c.integer("num_nextn_predict_layers", 0)
    return d


def _olmoe(c: _Config) -> dict[str, Any]:
    """OLMoE: every layer MoE (intermediate_size is the expert width), no shared expert, QK norm
    over the whole query and key projections rather than per head."""
    d = _base(c, "Hugging Face config.json (olmoe)")
    d["attention"] = {**_gqa(c, qkv_bias=c.flag("attention_bias", False), qk_norm=True),
                      "qk_norm_scope": "all_heads"}
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(c, "num_experts", "intermediate_size", 0, 0)
    return d


def _phimoe(c: _Config) -> dict[str, Any]:
    """Phi-3.5-MoE: Mixtral's layout with attention biases. Not counted, about 0.4M weights
    (0.001%) for Phi-3.5-MoE: the o_proj bias, the LayerNorm biases and the LM-head bias."""
    d = _base(c, "Hugging Face config.json (phimoe)")
    d["attention"] = _gqa(c, qkv_bias=c.flag("attention_bias", False))
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(c, "num_local_experts", "intermediate_size", 0, 0)
    return d


def _dbrx(c: _Config) -> dict[str, Any]:
    """DBRX: its own key names (d_model, n_heads, n_layers) and nested attn_config and ffn_config;
    fused Wqkv without bias, bias-free LayerNorms, GLU experts."""
    attn, ffn = c.sub("attn_config"), c.sub("ffn_config")
    d = _base(c, "Hugging Face config.json (dbrx)", layers="n_layers", hidden="d_model")
    heads, kv = c.integer("n_heads"), attn.integer("kv_n_heads")
    d["attention"] = {"kind": "mha" if kv == heads else "gqa", "num_heads": heads,
                      "num_kv_heads": kv, "head_dim": d["hidden_size"] // heads}
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(ffn, "moe_num_experts", "ffn_hidden_size", 0, 0, top_k="moe_top_k")
    return d


def _hunyuan_v1_moe(c: _Config) -> dict[str, Any]:
    """Hunyuan-A13B: per-head QK norm, one shared MLP of intermediate_size beside the routed
    experts; expert count, width and top-k may be given per layer (lists, all equal here)."""
    d = _base(c, "Hugging Face config.json (hunyuan_v1_moe)")
    if c.flag("use_cla", False):
        raise c.error("use_cla", "cross-layer attention (K/V shared between layers) is not "
                                 "modelled; use a model YAML")
    key = "head_dim" if "head_dim" in c.data else "attention_head_dim"
    d["attention"] = _gqa(c, qkv_bias=c.flag("attention_bias", False),
                          qk_norm=c.flag("use_qk_norm", True), head_dim_key=key)
    shared_width = c.integer("intermediate_size")
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = {
        "num_experts": c.uniform("num_experts"), "top_k": c.uniform("moe_topk"),
        # transformers sizes the experts by intermediate_size; Tencent's configs also give
        # moe_intermediate_size per layer (equal to it in Hunyuan-A13B).
        "expert_width": c.uniform("moe_intermediate_size", shared_width),
        "num_shared_experts": c.uniform("num_shared_expert", 1),
        "shared_expert_width": shared_width, "max_nodes_per_token": None,
    }
    return d


def _linear_layers(c: _Config, layers: int) -> int:
    """How many layers use linear attention: from layer_types, or every layer but each
    full_attention_interval-th (Qwen3NextConfig builds layer_types so)."""
    def every_interval(i: int) -> str:
        interval = c.integer("full_attention_interval", 4)
        if interval < 1:
            raise c.error("full_attention_interval", f"must be at least 1, got {interval}")
        return "full_attention" if (i + 1) % interval == 0 else "linear_attention"

    return c.layer_kinds(layers, LAYER_TYPES, every_interval).count("linear_attention")


def _qwen3_next(c: _Config) -> dict[str, Any]:
    """Qwen3-Next: Gated DeltaNet linear attention in most layers, gated full attention (output
    gate, per-head QK norm) in the rest, every layer MoE with one shared expert."""
    d = _base(c, "Hugging Face config.json (qwen3_next)")
    d["attention"] = {**_gqa(c, qkv_bias=c.flag("attention_bias", False), qk_norm=True),
                      "output_gate": True}
    count = _linear_layers(c, d["num_layers"])
    d["linear_attention"] = {
        "kind": "gated_deltanet", "count": count,
        "num_key_heads": c.integer("linear_num_key_heads"),
        "num_value_heads": c.integer("linear_num_value_heads"),
        "key_head_dim": c.integer("linear_key_head_dim"),
        "value_head_dim": c.integer("linear_value_head_dim"),
        "conv_kernel_size": c.integer("linear_conv_kernel_dim"),
    } if count else None
    # Not counted: the shared expert's sigmoid gate (h weights per layer, 0.1M in all).
    shared_width = c.integer("shared_expert_intermediate_size", 0)
    d["dense_layers"] = _dense_layers(c, _sparse_step_layers(c), c.integer("intermediate_size", 0))
    d["moe"] = _moe(c, "num_experts", "moe_intermediate_size", 1 if shared_width else 0,
                    shared_width)
    d["mtp_depth"] = c.integer("num_nextn_predict_layers", 0)
    return d


def _llama4_text(c: _Config) -> dict[str, Any]:
    """Llama 4 (the text model of llama4's text_config): GQA with QK norm (use_qk_norm), MoE
    on the layers moe_layers lists, else every interleave_moe_layer_step-th layer (from
    interleave_moe_layer_step - 1), each with num_local_experts routed experts and one shared
    expert of intermediate_size, top num_experts_per_tok; the other layers dense with
    intermediate_size_mlp (transformers Llama4TextConfig and Llama4TextDecoderLayer). Chunked
    local attention (attention_chunk_size) is not modelled: every layer attends causally over
    the whole sequence, an upper bound on its attention work."""
    d = _base(c, "Hugging Face config.json (llama4_text)")
    d["attention"] = _gqa(c, qk_norm=c.flag("use_qk_norm", True))
    layers, step = c.integer("num_hidden_layers"), c.integer("interleave_moe_layer_step", 1)
    listed = c.data.get("moe_layers")
    if listed is not None and (not isinstance(listed, list)
                               or not all(isinstance(i, int) for i in listed)):
        raise c.error("moe_layers", f"expected a list of layer indices, got {listed!r}")
    moe = listed if listed is not None else list(range(step - 1, layers, step))
    width = c.integer("intermediate_size")
    d["dense_layers"] = _dense_layers(c, moe, c.integer("intermediate_size_mlp"))
    d["moe"] = _moe(c, "num_local_experts", "intermediate_size", 1, width)
    return d


NEWER: dict[str, Callable[[_Config], dict[str, Any]]] = {
    "glm4_moe": _glm4_moe,
    "ernie4_5_moe": _ernie4_5_moe,
    "olmoe": _olmoe,
    "phimoe": _phimoe,
    "dbrx": _dbrx,
    "hunyuan_v1_moe": _hunyuan_v1_moe,
    "qwen3_next": _qwen3_next,
    "llama4_text": _llama4_text,
}
