"""Shared test helpers: run the CLI in-process and small hand-checkable models."""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from moebench.cli import app
from moebench.inputs.model import ModelSpec, arch_from_spec


def load_script(name: str) -> ModuleType:
    """The module of ``scripts/<name>.py`` (scripts are not a package), for tests that check
    what a script derives against what the repository holds."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true",
                     help="also run the slow end-to-end checks (marked slow), as CI does")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The fast tests by default (under two minutes on two cores); --run-slow adds the
    end-to-end checks that predict the whole validation set, refit stacks or regenerate the
    README."""
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow end-to-end check: add --run-slow (CI does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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


def assert_search_equals_brute_force(arch, chip, run, num_chips, request=None, stack=None,
                                     **options):
    """The vectorised search (with its exact pruning) picks what brute force over every
    candidate plan picks: a plan within the tie band of the true fastest (of those that keep
    the allocator's measured headroom, where any does and the search chooses the layout), and
    among the tied plans one that keeps the headroom where any does, then the most conventional
    one. Returns (search result, every candidate)."""
    import numpy as np

    from moebench.engine.plan import PlanRequest
    from moebench.engine.plan_space import candidate_plans
    from moebench.engine.search import (
        CONVENTION,
        TIE_BAND,
        convention_key,
        requires_headroom,
        search,
    )
    from moebench.engine.step import evaluate

    request = request or PlanRequest()
    res = search(arch, chip, stack_of(chip, stack, **options), run, num_chips, request)
    every, _ = candidate_plans(arch, chip, run, num_chips, request,
                               stack_of(chip, stack, **options).release)
    mask = stack_of(chip, stack, **options).act_offload_mask
    if request.offload_modules is None and chip.has_host and mask:  # activation offload
        every = every.concat(every.with_act_offload(mask))
    assert res.candidates == len(every) > len(res.plans)
    from moebench.engine.headroom import first_of_each

    assert len(first_of_each(res.plans)) == len(res.plans)  # each plan timed once
    st = evaluate(arch, chip, stack_of(chip, stack, **options), run, every)
    high = res.stack.fragmentation_high
    roomy = st.memory.keeps_headroom(chip, high)
    allowed = st.fits & roomy if requires_headroom(arch, request) and (st.fits & roomy).any() \
        else st.fits
    times = np.where(allowed, st.step_time, np.inf)
    fastest = times.min()
    best = float(res.steps.step_time[res.best])
    assert fastest * (1 - 1e-9) <= best <= fastest * (1 + TIE_BAND) * (1 + 1e-9)
    tied = np.flatnonzero(times <= fastest * (1 + TIE_BAND))

    def key_of(plans, i, room):
        return (float(not room[i]), *(float(convention_key(plans, f)[i]) for f, _ in CONVENTION))

    key = min(key_of(every, i, roomy) for i in tied)
    assert key_of(res.plans, res.best, res.steps.memory.keeps_headroom(chip, high)) == key
    return res, every


def shipped_rows(keep) -> list[dict[str, str]]:
    """Rows of the shipped measured-runs CSV that ``keep`` (a set of ids, or a predicate on
    the row) selects, as dicts of its columns."""
    from moebench.commands.validation.measured_runs import shipped_runs_path

    rows = list(csv.DictReader(io.StringIO(shipped_runs_path().read_text())))
    chosen = keep if callable(keep) else (lambda r: r["id"] in keep)
    return [r for r in rows if chosen(r)]


def write_runs(tmp_path, rows, name="runs.csv"):
    """``rows`` written as a measured-runs CSV under ``tmp_path``; its path."""
    path = tmp_path / name
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return path
