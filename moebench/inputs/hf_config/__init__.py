"""Hugging Face ``config.json`` files turned into moebench model records.

Each supported ``model_type`` maps its own key names onto
:class:`moebench.inputs.model.ModelSpec` (:mod:`.families` for the first families,
:mod:`.newer` for the MoE types released since, :mod:`.latest` for the dense Qwen and Mistral
families, MiniMax-M2, dots.llm1 and Ling 2.0); the result is validated like a YAML profile, so
a missing or malformed key gets the same one-line error, naming the file and the config key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moebench.errors import InputError
from moebench.inputs.hf_config.families import FAMILIES
from moebench.inputs.hf_config.latest import LATEST
from moebench.inputs.hf_config.newer import NEWER
from moebench.inputs.hf_config.reader import _Config

MAPPERS: dict[str, Callable[[_Config], dict[str, Any]]] = {**FAMILIES, **NEWER, **LATEST}


def hf_mapping(data: dict[str, Any], where: str) -> dict[str, Any]:
    """A parsed Hugging Face config.json mapped to the fields of
    :class:`moebench.inputs.model.ModelSpec`, which validates it (a multimodal wrapper's
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
    return MAPPERS[str(model_type)](_Config(data, where))
