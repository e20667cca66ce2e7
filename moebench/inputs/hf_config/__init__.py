"""Hugging Face ``config.json`` files turned into moebench model records.

Each supported ``model_type`` maps its own key names onto
:class:`moebench.inputs.model.ModelSpec` (:mod:`.families` for the first families,
:mod:`.newer` for the MoE types released since); the result is validated like a YAML profile, so
a missing or malformed key gets the same one-line error, naming the file and the config key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moebench.errors import InputError
from moebench.inputs.hf_config.families import FAMILIES
from moebench.inputs.hf_config.newer import NEWER
from moebench.inputs.hf_config.reader import _Config
from moebench.inputs.model import ModelSpec
from moebench.inputs.schema import validate

MAPPERS: dict[str, Callable[[_Config], dict[str, Any]]] = {**FAMILIES, **NEWER}


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
