"""Hugging Face ``config.json`` files turned into moebench model records.

Each supported ``model_type`` maps its own key names onto
:class:`moebench.inputs.model.ModelSpec`; the result is validated like a YAML profile, so a
missing or malformed key gets the same one-line error, naming the config key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from moebench.errors import InputError
from moebench.inputs.model import ModelSpec
from moebench.inputs.schema import validate


class _Config:
    """Typed access to config keys with errors that name the file and the key."""

    def __init__(self, data: dict[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if value is None:
            raise InputError(self.where, key, "required config key is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(self.where, key, f"expected a whole number, got {value!r}")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.integer(key)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise InputError(self.where, key, f"expected true or false, got {value!r}")
        return value


def _base(c: _Config, source: str) -> dict[str, Any]:
    # Named after the checkpoint (name_or_path) or the file, never after the model type: two
    # configs of one type are different models.
    named = c.data.get("_name_or_path") or c.data.get("name_or_path")
    name = str(named or Path(c.where).stem).split("/")[-1].lower()
    if name == "config":  # a bare config.json: its folder says which model it is
        name = Path(c.where).resolve().parent.name.lower() or name
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "-" for ch in name).strip("-._")
    return {
        "name": safe or "hf-model",
        "display_name": f"{name} (from {c.where})",
        "source": source,
        "num_layers": c.integer("num_hidden_layers"),
        "hidden_size": c.integer("hidden_size"),
        "vocab_size": c.integer("vocab_size"),
        "tied_embeddings": c.flag("tie_word_embeddings", False),
        "ffn_activation": "swiglu",
        "mtp_depth": 0,
    }


def _gqa(c: _Config, qkv_bias: bool = False, qk_norm: bool = False) -> dict[str, Any]:
    heads = c.integer("num_attention_heads")
    kv = c.integer("num_key_value_heads", heads)
    head_dim = c.integer("head_dim", c.integer("hidden_size") // heads)
    return {
        "kind": "mha" if kv == heads else "gqa", "num_heads": heads, "num_kv_heads": kv,
        "head_dim": head_dim, "qkv_bias": qkv_bias, "qk_norm": qk_norm,
    }


def _moe(c: _Config, experts: str, width: str, shared: int, shared_width: int,
         node_limit: int | None = None) -> dict[str, Any]:
    return {
        "num_experts": c.integer(experts), "top_k": c.integer("num_experts_per_tok"),
        "expert_width": c.integer(width), "num_shared_experts": shared,
        "shared_expert_width": shared_width, "max_nodes_per_token": node_limit,
    }


def _deepseek(c: _Config) -> dict[str, Any]:
    d = _base(c, "Hugging Face config.json (DeepSeek-V2/V3 family)")
    width = c.integer("moe_intermediate_size")
    n_group, topk_group = c.opt_integer("n_group"), c.opt_integer("topk_group")
    node_limit = topk_group if n_group and n_group > 1 and topk_group else None
    d["attention"] = {
        "kind": "mla", "num_heads": c.integer("num_attention_heads"),
        # V2-Lite's config has q_lora_rank null: queries are not compressed.
        "q_lora_rank": c.opt_integer("q_lora_rank") or 0,
        "kv_lora_rank": c.integer("kv_lora_rank"),
        "qk_nope_head_dim": c.integer("qk_nope_head_dim"),
        "qk_rope_head_dim": c.integer("qk_rope_head_dim"), "v_head_dim": c.integer("v_head_dim"),
    }
    first_dense = c.integer("first_k_dense_replace", 0)
    d["dense_layers"] = {"count": first_dense, "ffn_width": c.integer("intermediate_size")}
    d["moe"] = _moe(c, "n_routed_experts", "moe_intermediate_size",
                    c.integer("n_shared_experts", 0), width, node_limit)
    d["mtp_depth"] = c.integer("num_nextn_predict_layers", 0)
    return d


def _qwen_moe(c: _Config, qwen3: bool) -> dict[str, Any]:
    d = _base(c, f"Hugging Face config.json ({'qwen3_moe' if qwen3 else 'qwen2_moe'})")
    d["attention"] = _gqa(c, qkv_bias=not qwen3, qk_norm=qwen3)
    mlp_only = c.data.get("mlp_only_layers") or []
    if c.integer("decoder_sparse_step", 1) != 1 or mlp_only:
        raise InputError(c.where, "decoder_sparse_step",
                         "interleaved dense/MoE layers are not supported; use a model YAML")
    d["dense_layers"] = {"count": 0, "ffn_width": c.integer("intermediate_size", 0)}
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
    d = _base(c, "Hugging Face config.json (gpt_oss)")
    d["attention"] = _gqa(c, qkv_bias=True)
    d["dense_layers"] = {"count": 0, "ffn_width": 0}
    d["moe"] = _moe(c, "num_local_experts", "intermediate_size", 0, 0)
    return d


def _bailing(c: _Config) -> dict[str, Any]:
    d = _base(c, "Hugging Face config.json (bailing_moe, Ling)")
    d["attention"] = _gqa(c)
    width = c.integer("moe_intermediate_size")
    d["dense_layers"] = {"count": c.integer("first_k_dense_replace", 0),
                         "ffn_width": c.integer("intermediate_size")}
    d["moe"] = _moe(c, "num_experts", "moe_intermediate_size",
                    c.integer("num_shared_experts", 0), width)
    return d


def _llama(c: _Config) -> dict[str, Any]:
    d = _base(c, "Hugging Face config.json (llama)")
    d["attention"] = _gqa(c, qkv_bias=c.flag("attention_bias", False))
    d["dense_layers"] = {"count": d["num_layers"], "ffn_width": c.integer("intermediate_size")}
    d["moe"] = None
    return d


MAPPERS: dict[str, Callable[[_Config], dict[str, Any]]] = {
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "kimi_k2": _deepseek,
    "qwen2_moe": lambda c: _qwen_moe(c, qwen3=False),
    "qwen3_moe": lambda c: _qwen_moe(c, qwen3=True),
    "mixtral": _mixtral,
    "bailing_moe": _bailing,
    "llama": _llama,
    "gpt_oss": _gpt_oss,
}


def spec_from_hf_config(data: dict[str, Any], where: str) -> ModelSpec:
    """A validated ModelSpec from a parsed Hugging Face config.json (a multimodal wrapper's
    language model is read from its ``text_config``)."""
    text = data.get("text_config")
    if isinstance(text, dict) and text.get("model_type") in MAPPERS:
        inner = dict(text)
        for key in ("_name_or_path", "name_or_path", "tie_word_embeddings"):
            if key in data and key not in inner:
                inner[key] = data[key]
        data = inner
    model_type = data.get("model_type")
    if model_type not in MAPPERS:
        supported = ", ".join(sorted(MAPPERS))
        raise InputError(
            where, "model_type", f"unsupported model type {model_type!r}; supported: {supported}"
        )
    mapped = MAPPERS[str(model_type)](_Config(data, where))
    return validate(ModelSpec, mapped, where)
