"""Hugging Face ``config.json`` mappers added last: the dense Qwen2/Qwen2.5, Qwen3 and Mistral
families that published training runs use beside the MoE models, and the MoE types MiniMax-M2
(minimax_m2), dots.llm1 (dots1) and Ling 2.0 (bailing_moe_v2).

Key names and their defaults follow Hugging Face transformers'
``models/<type>/configuration_<type>.py`` and ``modeling_<type>.py``; a key whose default there
is structural (a flag, a layer index, a head size) takes that default, a size never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moebench.inputs.hf_config.reader import (
    _base,
    _Config,
    _dense,
    _first_dense_moe,
    _gqa,
    _group_limit,
    _moe,
    _windowed,
)


def _qwen_window(c: _Config) -> tuple[int | None, Callable[[int], str]]:
    """Qwen2/Qwen3's window: ``sliding_window`` keys only under ``use_sliding_window``, in the
    layers from ``max_window_layers`` on (transformers Qwen2Config/Qwen3Config.__post_init__)."""
    window = c.opt_integer("sliding_window") if c.flag("use_sliding_window", False) else None
    first = c.integer("max_window_layers", 28)
    return window, lambda i: "sliding_attention" if i >= first else "full_attention"


def _qwen2(c: _Config) -> dict[str, Any]:
    """Qwen2 and Qwen2.5 (dense): q, k and v biases always (Qwen2Attention), no o_proj bias."""
    return _dense(c, "Hugging Face config.json (qwen2)", _gqa(c, qkv_bias=True),
                  *_qwen_window(c))


def _qwen3(c: _Config) -> dict[str, Any]:
    """Qwen3 (dense): per-head QK norm, head_dim 128 when the key is absent (Qwen3Config)."""
    return _dense(c, "Hugging Face config.json (qwen3)",
                  _gqa(c, qkv_bias=c.flag("attention_bias", False), qk_norm=True,
                       head_dim_default=128), *_qwen_window(c))


def _mistral(c: _Config) -> dict[str, Any]:
    """Mistral (dense): GQA without biases; a window of ``sliding_window`` keys in every layer
    (4096 when the key is absent, none when it is null: MistralConfig)."""
    window = None if c.data.get("sliding_window", 4096) is None else \
        c.integer("sliding_window", 4096)
    return _dense(c, "Hugging Face config.json (mistral)", _gqa(c), window,
                  lambda i: "sliding_attention")


def _minimax_m2(c: _Config) -> dict[str, Any]:
    """MiniMax-M2: every layer MoE (intermediate_size is the expert width) with sigmoid routing
    and no shared expert, QK norm over the whole query and key projections (MiniMaxM2Attention
    is OLMo's; use_qk_norm with qk_norm_type per_layer in MiniMax's config), no biases. The MTP
    modules MiniMax's config names (use_mtp, num_mtp_modules) are not read: transformers'
    MiniMaxM2Config has no such keys and the published 230B total leaves them out; give
    mtp_depth in a model YAML to count them."""
    d = _base(c, "Hugging Face config.json (minimax_m2)")
    norm = c.flag("use_qk_norm", True)
    d["attention"] = {**_gqa(c, qk_norm=norm), **({"qk_norm_scope": "all_heads"} if norm else {})}
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(c, "num_local_experts", "intermediate_size", 0, 0)
    return d


def _dots1(c: _Config) -> dict[str, Any]:
    """dots.llm1: Qwen3's attention (per-head QK norm, head_dim from hidden_size /
    num_attention_heads when absent) with DeepSeek-V3's MoE layout: the first
    first_k_dense_replace layers dense, n_shared_experts shared experts of
    moe_intermediate_size beside n_routed_experts routed ones; a sliding window only in the
    layers from max_window_layers on (Dots1Config: none by default)."""
    d = _base(c, "Hugging Face config.json (dots1)")
    attention = _gqa(c, qkv_bias=c.flag("attention_bias", False), qk_norm=True)
    first = c.integer("max_window_layers", d["num_layers"])
    d["attention"] = _windowed(c, attention, d["num_layers"], c.opt_integer("sliding_window"),
                               lambda i: "sliding_attention" if i >= first else "full_attention")
    d["dense_layers"], d["moe"] = _first_dense_moe(c, "n_routed_experts", "n_shared_experts", 0,
                                                   0)
    return d


def _bailing_moe_v2(c: _Config) -> dict[str, Any]:
    """Ling 2.0 (bailing_moe_v2, remote code; keys and defaults from Megatron-Bridge's
    ``models/bailing/configuration_bailing_moe_v2.py``): per-head QK norm (use_qk_norm), q, k
    and v biases only under use_qkv_bias, the first first_k_dense_replace layers dense,
    num_shared_experts shared experts of moe_intermediate_size, sigmoid routing limited to
    topk_group of n_group groups, MTP layers. Partial RoPE changes no weights."""
    d = _base(c, "Hugging Face config.json (bailing_moe_v2, Ling 2.0)")
    if c.flag("use_bias", False):
        raise c.error("use_bias", "biases in every projection are not modelled; use a model YAML")
    d["attention"] = _gqa(c, qkv_bias=c.flag("use_qkv_bias", False),
                          qk_norm=c.flag("use_qk_norm", True))
    d["dense_layers"], d["moe"] = _first_dense_moe(c, "num_experts", "num_shared_experts", 1, 1,
                                                   _group_limit(c))
    d["mtp_depth"] = c.integer("num_nextn_predict_layers", 0)
    return d


LATEST: dict[str, Callable[[_Config], dict[str, Any]]] = {
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "mistral": _mistral,
    "minimax_m2": _minimax_m2,
    "dots1": _dots1,
    "bailing_moe_v2": _bailing_moe_v2,
}
