"""Predictions against measured training runs: physics only, calibrated, and leave-one-out.

Each run is predicted with its published plan (open fields searched) and no per-run constant,
three ways:

* ``physics``: the ``hardware-limit`` stack, what the chip allows with ideal software;
* ``calibrated``: the run's own stack as shipped (its calibrated figures fitted on all runs);
* ``loo``: the run's stack refitted without that run (the figures of kind ``calibrated``, on
  the other runs that use the stack: those of the file and, when the file is not the shipped
  one, the shipped runs too), then the run predicted: the honest error. With fewer than
  three runs per fitted figure in all (calibration's own minimum) a stack is not refitted: its
  runs' ``loo`` is then the calibrated error (the shipped stack never saw a user's run).

Errors are speed errors, predicted speed / measured speed - 1, summarised as mean absolute error
per vendor and per dense/MoE group.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from moebench.commands.calibrate import (
    PARAMETERS,
    RUNS_PER_PARAMETER,
    Prepared,
    fit,
    leave_one_out,
    prepare,
)
from moebench.commands.measured_runs import (
    MeasuredRun,
    load_runs,
    run_stack,
    shipped_runs_path,
)
from moebench.commands.report import Report
from moebench.inputs.stack import StackSpec, load_stack_spec, stack_from_spec

PHYSICS_STACK = "hardware-limit"


@dataclass(frozen=True, kw_only=True)
class RunComparison:
    id: str
    model: str
    chip: str
    vendor: str
    moe: bool
    num_chips: int
    stack: str
    metric: str
    measured: float
    physics_error: float
    """Speed error with the hardware-limit stack (positive: the prediction is faster)."""
    calibrated_error: float
    loo_error: float
    fits_memory: bool
    production: bool
    source: str


def calibrated_names(spec: StackSpec) -> tuple[str, ...]:
    """The parameters of a stack that a calibration fitted (figures of kind calibrated)."""
    return tuple(n for n, p in PARAMETERS.items() if p.figure(spec).kind == "calibrated")


def _error(p: Prepared, spec: StackSpec) -> tuple[float, bool]:
    stack = stack_from_spec(spec, p.run.options)
    from moebench.engine.step import evaluate

    fits = bool(evaluate(p.arch, p.chip, stack, p.config, p.plan).fits[0])
    return float(np.expm1(p.speed_error(stack))[0]), fits


def _loo(group: list[Prepared], spec: StackSpec, helpers: list[Prepared]) -> list[float]:
    """Leave-one-out speed errors of the runs of one stack: its calibrated figures fitted on
    the others and ``helpers`` (see :func:`moebench.commands.calibrate.leave_one_out`)."""
    names = calibrated_names(spec)
    pool = group + helpers
    if not names or len(pool) < RUNS_PER_PARAMETER * len(names):
        return [_error(p, spec)[0] for p in group]
    start = {n: float(PARAMETERS[n].figure(spec).value) for n in names}
    full = fit(pool, spec, names, start)
    return [float(e) for e in leave_one_out(pool, spec, names, full, only=len(group))]


def compare_runs(runs: list[MeasuredRun], where: str,
                 progress: Callable[[int, int], None] | None = None,
                 helpers: list[MeasuredRun] | None = None) -> list[RunComparison]:
    """Every run predicted three ways (see the module docstring); ``helpers`` are further runs
    that help refit each stack for leave-one-out but are not reported (the shipped runs)."""
    own = [prepare(r, where) for r in runs]
    ids = {r.id for r in runs}
    extra = [r for r in helpers or [] if r.id not in ids]
    physics_spec = load_stack_spec(PHYSICS_STACK)
    physics = [_error(prepare(r, where, PHYSICS_STACK), physics_spec)[0] for r in runs]
    specs: dict[str, StackSpec] = {}
    by_stack: dict[str, list[int]] = {}
    names = [run_stack(r) for r in runs]
    for i, name in enumerate(names):
        specs.setdefault(name, load_stack_spec(name))
        by_stack.setdefault(name, []).append(i)
    loo: dict[int, float] = {}
    for done, (name, idx) in enumerate(by_stack.items(), start=1):
        more = [prepare(r, str(shipped_runs_path())) for r in extra if run_stack(r) == name]
        loo.update(zip(idx, _loo([own[i] for i in idx], specs[name], more), strict=True))
        if progress:
            progress(done, len(by_stack))
    out = []
    for i, (p, name) in enumerate(zip(own, names, strict=True)):
        cal, fits = _error(p, specs[name])
        r = p.run
        out.append(RunComparison(
            id=r.id, model=r.model, chip=p.chip.name, vendor=p.vendor, moe=p.is_moe,
            num_chips=r.num_chips, stack=name, metric=r.metric, measured=r.measured,
            physics_error=physics[i], calibrated_error=cal, loo_error=loo[i], fits_memory=fits,
            production=r.production, source=r.source,
        ))
    return out


# The 27 runs the set held at commit 3743958, before stacks, calibration and the MoE terms of the
# step model: the baseline the fidelity work is measured against. `moebench validate` then read
# 39.3% over them, in sample, and 7.0% on their seven dense runs (issue 9's bar for dense runs).
BASELINE_DENSE_MAE = 0.070
BASELINE_RUNS: tuple[str, ...] = (
    "dsv3-h800-prod",
    "dsv3-h100-1024-fp8",
    "dsv3-gb200-256-mxfp8",
    "dsv3-gb200-256-bf16",
    "qwen3-235b-h100-256-bf16",
    "qwen3-235b-h100-256-bf16-a2a",
    "mixtral8x22b-h100-128-bf16",
    "mixtral8x7b-ascend-64",
    "dsv2lite-ascend-8",
    "llama3-405b-h100-8192",
    "llama3-405b-h100-16384",
    "mbridge-dsv3-gb300-256-bf16",
    "mbridge-dsv3-gb300-256-mxfp8",
    "mbridge-dsv3-gb200-256-mxfp8",
    "mbridge-dsv3-b200-256-mxfp8",
    "mbridge-qwen3-30b-gb300-8-mxfp8",
    "mbridge-qwen3-30b-gb200-8-mxfp8",
    "mbridge-qwen3-30b-b200-8-mxfp8",
    "mbridge-qwen3-30b-h100-16-fp8",
    "mbridge-qwen3-235b-gb300-256-bf16",
    "mbridge-qwen3-235b-gb200-256-bf16",
    "mbridge-qwen3-235b-b200-64-mxfp8",
    "mbridge-llama3-70b-h100-64-fp8",
    "mbridge-llama31-405b-h100-1024-fp8",
    "mbridge-llama31-405b-gb200-256-fp8",
    "mbridge-llama31-405b-gb300-256-fp8",
    "mbridge-llama31-405b-b200-128-fp8",
)


def mean_abs(values: list[float]) -> float:
    return float(np.mean(np.abs(values))) if values else float("nan")


def groups(comparisons: list[RunComparison]) -> dict[str, list[RunComparison]]:
    """Runs by vendor and by dense/MoE, and all together."""
    out: dict[str, list[RunComparison]] = {"all": list(comparisons)}
    for c in comparisons:
        out.setdefault(f"vendor {c.vendor}", []).append(c)
        out.setdefault("MoE" if c.moe else "dense", []).append(c)
    return out


def summary(comparisons: list[RunComparison]) -> list[dict[str, Any]]:
    """Mean absolute speed error per group, three ways, and the worst leave-one-out run."""
    rows = []
    for name, group in groups(comparisons).items():
        worst = max(group, key=lambda c: abs(c.loo_error))
        rows.append({
            "group": name, "runs": len(group),
            "physics_mae": mean_abs([c.physics_error for c in group]),
            "calibrated_mae": mean_abs([c.calibrated_error for c in group]),
            "loo_mae": mean_abs([c.loo_error for c in group]),
            "worst_loo": worst.id, "worst_loo_error": worst.loo_error,
        })
    return rows


def validation_report(comparisons: list[RunComparison], path: Path | None = None,
                      stack: str | None = None) -> Report:
    rows = [{
        "run": c.id, "num_chips": c.num_chips, "chip": c.chip, "stack": c.stack,
        "metric": c.metric, "measured": c.measured,
        "physics_%": 100 * c.physics_error, "calibrated_%": 100 * c.calibrated_error,
        "loo_%": 100 * c.loo_error,
    } for c in comparisons]
    summ = summary(comparisons)
    payload = {"runs": [c.__dict__ for c in comparisons], "summary": summ,
               "data": str(path or shipped_runs_path()), "stack": stack}
    footer = [
        f"{s['group']}: {s['runs']} runs, mean absolute speed error physics "
        f"{100 * s['physics_mae']:.1f}%, calibrated {100 * s['calibrated_mae']:.1f}%, "
        f"leave-one-out {100 * s['loo_mae']:.1f}% (worst {s['worst_loo']} "
        f"{100 * s['worst_loo_error']:+.1f}%)" for s in summ]
    footer += [
        "speed error = predicted speed / measured speed - 1 (positive: moebench is optimistic)",
        "physics: hardware-limit stack; calibrated: "
        + (f"{stack} (--stack) for every run" if stack else "the run's stack as shipped")
        + "; loo: the stack refitted without the run",
    ]
    production = [c.id for c in comparisons if c.production]
    if production:
        footer.append(f"{', '.join(production)}: a whole run's average, with restarts and batch "
                      "ramp-up that the steady-state prediction leaves out")
    return Report("moebench predictions against measured runs", pd.DataFrame(rows), payload,
                  footer, labels={"num_chips": "chips", "physics_%": "physics %",
                                        "calibrated_%": "calib %", "loo_%": "LOO %"},
                  optional=("metric", "stack", "measured", "physics_%", "num_chips"))


def validate(path: Path | None = None,
             progress: Callable[[int, int], None] | None = None,
             stack: str | None = None) -> list[RunComparison]:
    """The runs of ``path`` (default: the shipped file) predicted three ways; ``stack`` (a
    catalog name or YAML) replaces the stack each run names, e.g. one a user calibrated."""
    runs = load_runs(path)
    shipped = path is None or path.resolve() == shipped_runs_path().resolve()
    if stack is not None:
        # The shipped runs still help refit a catalog stack they ran on (matched by name).
        runs, shipped = [replace(r, stack=stack) for r in runs], False
    return compare_runs(runs, str(path or shipped_runs_path()), progress,
                        helpers=None if shipped else load_runs())
