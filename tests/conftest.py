"""Shared test helpers: run the CLI in-process and small hand-checkable models."""

from __future__ import annotations

import functools

import pytest
from typer.testing import CliRunner

from moebench.cli import app
from moebench.inputs.model import ModelSpec, arch_from_spec


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


def tiny_spec(**changes) -> ModelSpec:
    """A small MoE model whose counts are easy to compute by hand."""
    data = {
        "name": "tiny", "display_name": "Tiny MoE", "source": "test fixture",
        "num_layers": 4, "hidden_size": 64, "vocab_size": 1000, "tied_embeddings": False,
        "ffn_activation": "swiglu",
        "attention": {"kind": "gqa", "num_heads": 8, "num_kv_heads": 2, "head_dim": 8},
        "dense_layers": {"count": 1, "ffn_width": 256},
        "moe": {"num_experts": 8, "top_k": 2, "expert_width": 32, "num_shared_experts": 1,
                "shared_expert_width": 32, "max_nodes_per_token": None},
        "mtp_depth": 0,
    }
    data.update(changes)
    return ModelSpec.model_validate(data)


@pytest.fixture
def tiny():
    return arch_from_spec(tiny_spec())


def stack_of(chip, name=None, **options):
    """The stack a chip runs by default (or ``name``), as the engine takes it."""
    return _stack(chip.vendor, chip.name, chip.default_stack, name, tuple(sorted(options.items())))


@functools.lru_cache(maxsize=64)
def _stack(vendor, chip_name, default, name, options):
    from moebench.inputs.stack import StackOptions, load_stack

    return load_stack(name, vendor, chip_name, default, StackOptions(**dict(options)))
