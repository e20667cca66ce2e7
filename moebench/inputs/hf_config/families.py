"""Hugging Face ``config.json`` mappers of the families moebench first supported: DeepSeek-V2/V3
(and V3.2) and Kimi K2, Qwen2/Qwen3 MoE, Mixtral, gpt-oss, Ling (bailing_moe) and dense Llama."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moebench.inputs.hf_config.reader import (
    _base,
    _Config,
    _dense,
    _dense_layers,
    _first_dense_moe,
    _gqa,
    _group_limit,
    _moe,
    _sparse_step_layers,
)


def _deepseek(c: _Config) -> dict[str, Any]:
    """DeepSeek-V2, V3, V3.2 and Kimi K2: MLA, the first first_k_dense_replace layers dense,
    n_shared_experts shared experts, routing limited to topk_group of n_group groups, MTP.
    DeepSeek-V3.2's sparse attention is not modelled: its lightning indexer (index_n_heads x
    index_head_dim, about 0.1% of the weights) is not counted, and every layer attends to the
    whole causal context, as V3 does: the same work up to index_topk keys per query, an upper
    bound on the attention beyond."""
    d = _base(c, "Hugging Face config.json (DeepSeek-V2/V3 family)")
    d["attention"] = {
        "kind": "mla", "num_heads": c.integer("num_attention_heads"),
        # V2-Lite's config has q_lora_rank null: queries are not compressed.
        "q_lora_rank": c.opt_integer("q_lora_rank") or 0,
        "kv_lora_rank": c.integer("kv_lora_rank"),
        "qk_nope_head_dim": c.integer("qk_nope_head_dim"),
        "qk_rope_head_dim": c.integer("qk_rope_head_dim"), "v_head_dim": c.integer("v_head_dim"),
    }
    d["dense_layers"], d["moe"] = _first_dense_moe(c, "n_routed_experts", "n_shared_experts", 0,
                                                   0, _group_limit(c))
    d["mtp_depth"] = c.integer("num_nextn_predict_layers", 0)
    return d


def _qwen_moe(c: _Config, qwen3: bool) -> dict[str, Any]:
    d = _base(c, f"Hugging Face config.json ({'qwen3_moe' if qwen3 else 'qwen2_moe'})")
    d["attention"] = _gqa(c, qkv_bias=not qwen3, qk_norm=qwen3)
    # Dense layers (mlp_only_layers, decoder_sparse_step) use intermediate_size.
    d["dense_layers"] = _dense_layers(c, _sparse_step_layers(c), c.integer("intermediate_size", 0))
    shared_width = 0 if qwen3 else c.integer("shared_expert_intermediate_size")
    d["moe"] = _moe(c, "num_experts", "moe_intermediate_size",
                    0 if qwen3 or not shared_width else 1, shared_width)
    return d


def _mixtral(c: _Config) -> dict[str, Any]:
    d = _base(c, "Hugging Face config.json (mixtral)")
    d["attention"] = _gqa(c)
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(c, "num_local_experts", "intermediate_size", 0, 0)
    return d


def _gpt_oss(c: _Config) -> dict[str, Any]:
    """gpt-oss: q, k and v biases, a sliding window of ``sliding_window`` keys in the layers
    ``layer_types`` marks sliding_attention (transformers GptOssConfig's default when absent:
    every other layer, from the first). Not counted, under 0.04% of the weights: the output
    projection's bias, the per-head attention sinks, and the experts' and router's biases."""
    d = _base(c, "Hugging Face config.json (gpt_oss)")
    d["attention"] = _gqa(c, qkv_bias=True)
    layers = d["num_layers"]
    kinds = c.layer_kinds(layers, ("sliding_attention", "full_attention"),
                          lambda i: "sliding_attention" if i % 2 == 0 else "full_attention")
    windowed = kinds.count("sliding_attention")
    if windowed:
        d["attention"].update(sliding_window=c.integer("sliding_window"),
                              sliding_window_layers=windowed)
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(c, "num_local_experts", "intermediate_size", 0, 0)
    return d


def _bailing(c: _Config) -> dict[str, Any]:
    d = _base(c, "Hugging Face config.json (bailing_moe, Ling)")
    d["attention"] = _gqa(c)
    d["dense_layers"], d["moe"] = _first_dense_moe(c, "num_experts", "num_shared_experts", 0, 0)
    return d


def _llama(c: _Config) -> dict[str, Any]:
    return _dense(c, "Hugging Face config.json (llama)",
                  _gqa(c, qkv_bias=c.flag("attention_bias", False)))


FAMILIES: dict[str, Callable[[_Config], dict[str, Any]]] = {
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "deepseek_v32": _deepseek,
    "kimi_k2": _deepseek,
    "qwen2_moe": lambda c: _qwen_moe(c, qwen3=False),
    "qwen3_moe": lambda c: _qwen_moe(c, qwen3=True),
    "mixtral": _mixtral,
    "bailing_moe": _bailing,
    "llama": _llama,
    "gpt_oss": _gpt_oss,
}
