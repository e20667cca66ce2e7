"""Typed access to a Hugging Face ``config.json`` and the record parts every family shares.

Every accessor names the file and the key (``attn_config.kv_n_heads`` for a nested one) when the
key is missing or malformed, so a bad config gives one line, like a bad YAML profile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from moebench.errors import InputError


class _Config:
    """Typed access to config keys with errors that name the file and the key."""

    def __init__(self, data: dict[str, Any], where: str, prefix: str = "") -> None:
        self.data = data
        self.where = where
        self.prefix = prefix

    def error(self, key: str, message: str) -> InputError:
        return InputError(self.where, self.prefix + key, message)

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "required config key is missing")
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {value!r}")
        return value

    def opt_integer(self, key: str) -> int | None:
        return None if self.data.get(key) is None else self.integer(key)

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def uniform(self, key: str, default: int | None = None) -> int:
        """A whole number given once or per layer (Hunyuan's lists), the same for every layer."""
        value = self.data.get(key, default)
        if not isinstance(value, list):
            return self.integer(key, default)
        if not value or any(isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise self.error(key, f"expected a whole number or a list of them, got {value!r}")
        if len(set(value)) != 1:
            raise self.error(key, f"values differ between layers ({sorted(set(value))}); "
                                  "per-layer shapes are not supported, use a model YAML")
        return int(value[0])

    def strings(self, key: str) -> list[str] | None:
        """A list of strings (such as ``layer_types``), or None when the key is absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        return value

    def layer_kinds(self, layers: int, kinds: tuple[str, ...],
                    default: Callable[[int], str]) -> list[str]:
        """``layer_types``: one of ``kinds`` per layer; absent, ``default(i)`` for each layer i,
        the pattern the model's transformers config builds when it is not given."""
        types = self.strings("layer_types")
        if types is None:
            return [default(i) for i in range(layers)]
        unknown = sorted(set(types) - set(kinds))
        if unknown or len(types) != layers:
            raise self.error("layer_types", f"expected {layers} entries, each one of "
                                            f"{', '.join(kinds)}; got {unknown or len(types)}")
        return types

    def sub(self, key: str) -> _Config:
        """A nested section (DBRX's ``attn_config``), read with the same errors."""
        value = self.data.get(key)
        if not isinstance(value, dict):
            what = "required config section is missing" if value is None else \
                f"expected a mapping, got {value!r}"
            raise self.error(key, what)
        return _Config(value, self.where, f"{self.prefix}{key}.")


def _base(c: _Config, source: str, layers: str = "num_hidden_layers",
          hidden: str = "hidden_size") -> dict[str, Any]:
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
        "num_layers": c.integer(layers),
        "hidden_size": c.integer(hidden),
        "vocab_size": c.integer("vocab_size"),
        "tied_embeddings": c.flag("tie_word_embeddings", False),
        "ffn_activation": "swiglu",
        "mtp_depth": 0,
    }


def _gqa(c: _Config, qkv_bias: bool = False, qk_norm: bool = False,
         head_dim_key: str = "head_dim", head_dim_default: int | None = None) -> dict[str, Any]:
    """Multi-head or grouped-query attention; ``head_dim`` absent or null is
    ``head_dim_default``, else hidden_size / num_attention_heads (transformers' default)."""
    heads = c.integer("num_attention_heads")
    kv = c.integer("num_key_value_heads", heads)
    head_dim = c.opt_integer(head_dim_key) or head_dim_default or \
        c.integer("hidden_size") // heads
    return {
        "kind": "mha" if kv == heads else "gqa", "num_heads": heads, "num_kv_heads": kv,
        "head_dim": head_dim, "qkv_bias": qkv_bias, "qk_norm": qk_norm,
    }


def _moe(c: _Config, experts: str, width: str, shared: int, shared_width: int,
         node_limit: int | None = None, top_k: str = "num_experts_per_tok") -> dict[str, Any]:
    return {
        "num_experts": c.uniform(experts), "top_k": c.uniform(top_k),
        "expert_width": c.uniform(width), "num_shared_experts": shared,
        "shared_expert_width": shared_width, "max_nodes_per_token": node_limit,
    }


def _first_dense_moe(c: _Config, experts: str, shared: str, shared_default: int,
                     dense_default: int, node_limit: int | None = None
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dense_layers and moe records of DeepSeek's layout: the first first_k_dense_replace
    layers dense with intermediate_size, then MoE layers of ``experts`` routed experts of
    moe_intermediate_size beside ``shared`` shared experts of that width."""
    width = c.integer("moe_intermediate_size")
    dense = {"count": c.integer("first_k_dense_replace", dense_default),
             "ffn_width": c.integer("intermediate_size")}
    return dense, _moe(c, experts, "moe_intermediate_size", c.integer(shared, shared_default),
                       width, node_limit)


def _group_limit(c: _Config) -> int | None:
    """Groups a token may route to (topk_group of n_group), None when routing is not grouped."""
    n_group, topk_group = c.opt_integer("n_group"), c.opt_integer("topk_group")
    return topk_group if n_group and n_group > 1 and topk_group else None


def _sparse_step_layers(c: _Config) -> list[int]:
    """The MoE layers of a Qwen2/Qwen3-MoE-style config: layer i is sparse unless it is in
    ``mlp_only_layers``, and only when (i + 1) is a multiple of ``decoder_sparse_step``
    (transformers Qwen2MoeDecoderLayer)."""
    layers, step = c.integer("num_hidden_layers"), c.integer("decoder_sparse_step", 1)
    only = c.data.get("mlp_only_layers") or []
    if not isinstance(only, list) or not all(isinstance(i, int) for i in only):
        raise c.error("mlp_only_layers", f"expected a list of layer indices, got {only!r}")
    return [i for i in range(layers) if i not in set(only) and (i + 1) % step == 0]


def _dense_layers(c: _Config, moe_layers: list[int], width: int) -> dict[str, Any]:
    """The dense_layers record of a model whose MoE layers are ``moe_layers``: how many are
    dense, their FFN width, and whether they come first or sit among the MoE layers."""
    layers = c.integer("num_hidden_layers")
    moe = set(moe_layers)
    dense = [i for i in range(layers) if i not in moe]
    if not moe:
        raise c.error("num_hidden_layers", "no layer is a MoE layer; use a dense model type")
    first = dense == list(range(len(dense)))
    return {"count": len(dense), "ffn_width": width,
            "placement": "first" if first else "interleaved"}


WINDOW_TYPES = ("sliding_attention", "full_attention")


def _windowed(c: _Config, attention: dict[str, Any], layers: int, window: int | None,
              default: Callable[[int], str]) -> dict[str, Any]:
    """``attention`` with its sliding window: ``window`` keys in the layers ``layer_types``
    marks sliding_attention (``default(i)`` per layer when the key is absent)."""
    if window is None:
        return attention
    count = c.layer_kinds(layers, WINDOW_TYPES, default).count("sliding_attention")
    return {**attention, "sliding_window": window, "sliding_window_layers": count} if count \
        else attention


def _dense(c: _Config, source: str, attention: dict[str, Any], window: int | None = None,
           default: Callable[[int], str] = lambda i: "full_attention") -> dict[str, Any]:
    """A dense model: every layer an FFN of intermediate_size, and its attention with the
    sliding window of :func:`_windowed`."""
    d = _base(c, source)
    d["attention"] = _windowed(c, attention, d["num_layers"], window, default)
    d["dense_layers"] = {"count": d["num_layers"], "ffn_width": c.integer("intermediate_size")}
    d["moe"] = None
    return d
