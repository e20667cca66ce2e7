"""``moebench sweep``: the best plan at every point of a grid of run and hardware figures.

Each point is one (model, chip, varied values) evaluation with its own best plan. Points are
independent, so they spread over local worker processes (``workers``) or an existing Dask
cluster (``dask_address``); within a point the plan search stays vectorised.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import pandas as pd

from moebench.errors import InputError
from moebench.inputs.scenario import ScenarioSpec


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _fraction(raw: str) -> float:
    value = float(raw)
    if not 0.0 <= value <= 1.0:
        raise ValueError("must be a fraction from 0 to 1")
    return value


def _imbalance(raw: str) -> float:
    value = float(raw)
    if not 1.0 <= value < 100.0:
        raise ValueError("must be at least 1.0 and below 100")
    return value


def _precision(raw: str) -> str:
    if raw not in ("bf16", "fp8", "auto"):
        raise ValueError("expected bf16, fp8 or auto")
    return raw


def _tokens(raw: str) -> float:
    from moebench.commands.shared.options import parse_tokens

    try:
        return parse_tokens(raw, "--vary tokens")
    except InputError as exc:
        raise ValueError(exc.message) from None


def _one_of(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return raw
    return parse


def _plan_fields() -> dict[str, Callable[[str], Any]]:
    """Every plan field a scenario may fix (:class:`PlanFields`), with its parser."""
    from moebench.inputs.run import CP_KINDS, RECOMPUTE, SCHEDULES, SHARDING

    named = {"recompute": RECOMPUTE, "schedule": SCHEDULES, "sharding": SHARDING,
             "cp_kind": CP_KINDS}
    ints = ("tp", "pp", "vpp", "ep", "etp", "cp", "micro_batch", "shard_group")
    return {**{k: _positive_int for k in ints}, **{k: _one_of(v) for k, v in named.items()},
            "recompute_modules": _modules, "optimizer_offload": _fraction,
            "pipeline_layout": _layout, "offload_modules": _offload_modules}


def _offload_modules(raw: str) -> list[str]:
    from moebench.inputs.run import parse_offload_modules

    return list(parse_offload_modules(raw, "--vary offload_modules"))


def _layout(raw: str) -> str:
    from moebench.engine.layout import layout_syntax_error

    problem = layout_syntax_error(raw)
    if problem:
        raise ValueError(problem)
    return raw


def _modules(raw: str) -> list[str]:
    from moebench.inputs.run import parse_modules

    return list(parse_modules(raw, "--vary recompute_modules"))


# Of the fields a sweep may vary, those that fix a plan field rather than a run figure.
PLAN_FIELDS = _plan_fields()
PLAN_KEYS = tuple(PLAN_FIELDS)
# Scenario fields a sweep may vary, with their parsers; hardware fields are section.field.
SCENARIO_FIELDS: dict[str, Callable[[str], Any]] = {
    "num_chips": _positive_int, "seq_len": _positive_int, "global_batch": _positive_int,
    "tokens": _tokens, "precision": _precision, "expert_imbalance": _imbalance,
    **PLAN_FIELDS,
}


@dataclass(frozen=True)
class Point:
    """One grid point, small and picklable so that it can travel to a worker."""

    scenario: dict[str, Any]
    model: str
    chip: str
    values: tuple[tuple[str, str], ...]


def parse_vary(items: list[str]) -> dict[str, list[str]]:
    """``FIELD=v1,v2`` strings as {field: [values]}; hardware fields keep their dotted name."""
    out: dict[str, list[str]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key or not values:
            raise InputError("--vary", None, f"expected FIELD=v1,v2,..., got {item!r}")
        if key not in SCENARIO_FIELDS and "." not in key:
            known = ", ".join(SCENARIO_FIELDS)
            raise InputError("--vary", key,
                             f"unknown field; one of {known}, or a hardware section.field")
        for v in values:
            try:
                (SCENARIO_FIELDS.get(key) or float)(v)
            except ValueError as exc:
                raise InputError("--vary", key, f"cannot use value {v!r}: {exc}") from None
        if key not in SCENARIO_FIELDS:
            _check_hardware_field(key, values[0])
        out[key] = values
    if not out:
        raise InputError("--vary", None, "give at least one --vary FIELD=v1,v2")
    return out


def typed_grid(vary: dict[str, list[str]]) -> dict[str, list[Any]]:
    """The grid with its values as numbers where numbers are meant (for JSON)."""
    return {k: [(SCENARIO_FIELDS.get(k) or float)(v) for v in values]
            for k, values in vary.items()}


def _check_hardware_field(key: str, value: str) -> None:
    """A hardware section.field must exist in a profile (typos fail before any point runs)."""
    from moebench.inputs import catalog
    from moebench.inputs.overrides import apply_overrides
    from moebench.inputs.yamlio import load_mapping

    path = catalog.resolve("hardware", "h800", "--vary")
    try:
        apply_overrides(load_mapping(path), {key: value}, "hardware profiles", "hardware")
    except InputError as exc:
        raise InputError("--vary", key, exc.message) from None


def points(sc: ScenarioSpec, vary: dict[str, list[str]]) -> Iterator[Point]:
    keys = list(vary)
    base = sc.model_dump()
    for model in sc.models:
        for chip in sc.chips:
            for combo in itertools.product(*(vary[k] for k in keys)):
                yield Point(base, model, chip, tuple(zip(keys, combo, strict=True)))


@lru_cache(maxsize=256)
def _scenario(data_key: str) -> ScenarioSpec:
    import json

    from moebench.inputs.schema import validate

    return validate(ScenarioSpec, json.loads(data_key), "sweep point")


def evaluate_point(point: Point) -> dict[str, Any]:
    """The best plan, time and cost at one point (runs in a worker)."""
    import json

    from moebench.commands.compare.comparison import run_comparison

    data = dict(point.scenario)
    data.update(models=[point.model], chips=[point.chip], baseline=point.chip)
    hardware: dict[str, str] = {}
    for key, raw in point.values:
        if key in SCENARIO_FIELDS:
            parsed = SCENARIO_FIELDS[key](raw)
            if key == "expert_imbalance":
                parsed = {**data["expert_imbalance"], "value": parsed, "low": parsed,
                          "high": parsed, "source": "sweep"}
            if key in PLAN_KEYS:
                data["plan"] = {**data["plan"], key: parsed}
            else:
                data[key] = parsed
        else:
            hardware[key] = raw
    sc = _scenario(json.dumps(data, sort_keys=True, default=str))
    row: dict[str, Any] = {"model": point.model, "chip": point.chip}
    row.update({k: SCENARIO_FIELDS[k](v) if k in SCENARIO_FIELDS else float(v)
                for k, v in point.values})
    # A point whose chip has no valid plan gets a row saying so (run_comparison keeps it);
    # any other error is the user's input and stops the sweep.
    r = run_comparison(sc, overrides={"*": hardware} if hardware else None,
                       with_assumptions=False).rows[0]
    from moebench.commands.shared.plan_text import plan_text

    row.update(
        num_chips=r.num_chips, plan=plan_text(r.plan) if r.plan else r.status,
        step_time_s=r.step_time_s, tokens_per_s_per_chip=r.tokens_per_s_per_chip, mfu=r.mfu,
        memory_gib_per_chip=r.memory_gib_per_chip, fits_memory=r.fits_memory,
        keeps_headroom=r.keeps_headroom if r.plan else None,
        headroom_slower_by=r.headroom_slower_by, tight_faster_by=r.tight_faster_by, days=r.days,
        chip_hours=r.chip_hours, goodput=r.goodput, cost=r.cost, currency=r.currency,
        cost_per_1e12_tokens=None if r.cost is None else r.cost / sc.tokens * 1e12,
        status=r.status,
    )
    return row


def run_sweep(
    sc: ScenarioSpec, vary: dict[str, list[str]], workers: int = 1,
    dask_address: str | None = None, progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Evaluate every point; rows come back in grid order whatever ran them."""
    todo = list(points(sc, vary))
    results: list[dict[str, Any] | None] = [None] * len(todo)
    finished = 0

    def done(i: int, row: dict[str, Any]) -> None:
        nonlocal finished
        results[i] = row
        finished += 1
        if progress:
            progress(finished, len(todo))

    if dask_address:
        _run_dask(todo, dask_address, done)
    elif workers > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(evaluate_point, p): i for i, p in enumerate(todo)}
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    else:
        for i, p in enumerate(todo):
            done(i, evaluate_point(p))
    return pd.DataFrame([r for r in results if r is not None])


def _run_dask(todo: list[Point], address: str, done: Callable[[int, dict[str, Any]], None]) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise InputError("--dask-scheduler", None,
                         "needs the dask extra: pip install 'moebench[dask]'") from None
    try:
        client = Client(address, timeout=10)
    except Exception as exc:  # noqa: BLE001 - whatever answers there, one line, not a traceback
        # Not only OSError and timeouts: a port that answers with something other than a Dask
        # scheduler makes its handshake decode garbage (a MemoryError, a protocol error).
        raise InputError("--dask-scheduler", None,
                         f"cannot reach a Dask scheduler at {address!r} (expected "
                         f"tcp://HOST:PORT of a running dask-scheduler): {type(exc).__name__}: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    try:
        futures = client.map(evaluate_point, todo, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures):
            done(index[fut.key], fut.result())
    finally:
        client.close()
