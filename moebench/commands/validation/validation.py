"""Predictions against measured training runs, judged the way users will judge them: on runs the
fit never saw.

Each run is predicted with its published plan (open fields searched) on its own stack release,
with no per-run constant, several ways:

* ``physics``: the ``hardware-limit`` stack, what the chip allows with ideal software;
* ``calibrated``: the run's stack as shipped (its family's figures fitted on all runs);
* ``loo``: the family refitted without that run;
* ``loso``: the family refitted without every run of the run's source (one publication or
  table: its rows share stack, release and authors' habits), the headline figure;
* ``split``: the families fitted only on runs published before
  :data:`~moebench.commands.validation.run_comparison.SPLIT_DATE`, predicting
  the later ones (NaN for earlier runs);
* ``published``: as ``loso``, each left-out run predicted from its published plan alone
  (:meth:`MeasuredRun.as_published`: no settings columns), as a user predicting it would.

A fold whose remaining runs cannot support a fitted figure (three runs per figure) holds it at a
prior: the median of the other vendor families' fitted values (:func:`priors`), the value a
stack with no runs of its own would take. Errors are speed errors, predicted speed / measured
speed - 1. Figures a family inherits from another family (``kind: estimate``) are not refitted:
its runs were never in that fit, so every column but physics is out of sample for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from moebench.commands.validation.calibrate import leave_out
from moebench.commands.validation.fitting import (
    PARAMETERS,
    FitResult,
    Prepared,
    fit,
    prepare,
    run_values,
    supported,
)
from moebench.commands.validation.measured_run import FASTER_IS_LARGER, MeasuredRun, run_stack
from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path
from moebench.commands.validation.run_comparison import SPLIT_DATE, RunComparison
from moebench.engine.memory import MemoryBreakdown, device_level
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.stack import StackSpec, load_stack_spec
from moebench.units import GIB

PHYSICS_STACK = "hardware-limit"
def family_of(run: MeasuredRun) -> str:
    return run_stack(run).partition("@")[0]


def calibrated_names(spec: StackSpec) -> tuple[str, ...]:
    """What a calibration fitted: the family's figures of kind calibrated, then each release's
    own refits (``name@release``)."""
    names = [n for n, p in PARAMETERS.items() if p.figure(spec).kind == "calibrated"]
    for release in spec.releases_resolved.values():
        names += [f"{n}@{release.name}" for n, fig in release.refit.items()
                  if fig.kind == "calibrated"]
    return tuple(names)


def priors(exclude: str) -> dict[str, float]:
    """Each calibratable figure's prior for a family with too few runs: the median of the
    shipped vendor families' calibrated values, ``exclude`` left out."""
    values: dict[str, list[float]] = {}
    for name in catalog.catalog_names("stacks"):
        spec = load_stack_spec(name)
        if name == exclude or spec.vendor == "any":
            continue
        for param in PARAMETERS:
            fig = spec.family_figure(param)
            if fig.kind == "calibrated":
                values.setdefault(param, []).append(float(fig.value))
    out = {k: float(np.median(v)) for k, v in values.items()}
    spec = load_stack_spec(exclude)
    # A figure no vendor family calibrates keeps this family's own value.
    return {p: out.get(p, float(spec.family_figure(p).value)) for p in PARAMETERS}


def _error(p: Prepared) -> tuple[float, bool, dict[str, Any]]:
    """The calibrated speed error, whether the plan fits, and the memory comparison (with
    whether the plan keeps the allocator's measured headroom)."""
    from moebench.engine.step import evaluate

    stack = p.stack()
    res = evaluate(p.arch, p.chip, stack, p.config, p.plan)
    device = device_level(res.memory, stack.cache_growth, p.chip.hbm_bytes)
    roomy = bool(res.memory.keeps_headroom(p.chip, stack.fragmentation_high)[0])
    return (float(np.expm1(p.speed_error(stack))[0]), bool(res.fits[0]),
            {"keeps_headroom": roomy, **_memory(p, res.memory, device)})


def _memory(p: Prepared, m: MemoryBreakdown, device: np.ndarray) -> dict[str, Any]:
    """The memory fields of a run's comparison: the predicted figure of the kind the run
    publishes (live tensors, the allocator's hold, or the device's: ``device``,
    :func:`~moebench.engine.memory.device_level`), and the breakdown."""
    r = p.run
    if r.memory_bytes is None or r.memory_kind is None:
        return {}
    figure = {"allocated": m.allocated, "reserved": m.reserved, "device": device}
    return {"memory_kind": r.memory_kind, "memory_measured_gib": r.memory_bytes / GIB,
            "memory_predicted_gib": float(figure[r.memory_kind][0]) / GIB,
            "memory_terms_gib": {**{k: float(v[0]) / GIB for k, v in m.as_dict().items()},
                                 "cache": float(device[0] - m.total[0]) / GIB}}


@dataclass(frozen=True)
class FamilyErrors:
    loo: np.ndarray
    loso: np.ndarray
    split: np.ndarray
    param_sd: np.ndarray
    full: FitResult | None
    published: np.ndarray
    """Leave-one-source-out, each run predicted from its published plan alone."""


def family_errors(own: list[Prepared], helpers: list[Prepared], names: tuple[str, ...],
                  prior: dict[str, float], early_prior: dict[str, float],
                  published: list[Prepared]) -> FamilyErrors:
    """Out-of-sample errors of a family's runs (``own``; ``helpers`` only help fit;
    ``published``: each of ``own`` as its source publishes it, predicted, never fitted)."""
    n = len(own)
    calibrated = np.array([_error(p)[0] for p in own])

    def unfitted() -> np.ndarray:  # no refit: each run as published, with the shipped stack
        return np.array([_error(p)[0] for p in published])

    if not names:
        return FamilyErrors(calibrated, calibrated, _split(own, helpers, (), early_prior),
                            np.zeros(n), None, unfitted())
    pool = own + helpers
    fold_names = supported(pool, names)
    held = {k: prior[k] for k in names if "@" not in k and k not in fold_names}
    full = fit(pool, fold_names, fixed=held) if fold_names else None
    if full is None:
        return FamilyErrors(calibrated, calibrated, _split(own, helpers, names, early_prior),
                            np.zeros(n), None, unfitted())
    loo = leave_out(pool, full, [[i] for i in range(n)], prior)[:n]
    sources: dict[str, list[int]] = {}
    for i, p in enumerate(pool):
        sources.setdefault(p.run.source_id, []).append(i)
    mine = {pool[i].run.source_id for i in range(n)}
    groups = [g for s, g in sources.items() if s in mine]
    loso = leave_out(pool, full, groups, prior)[:n]
    as_published = leave_out(pool, full, groups, prior, predict=published + helpers)[:n]
    return FamilyErrors(loo, loso, _split(own, helpers, names, early_prior),
                        _param_sd(full, n), full, as_published)


def _param_sd(full: FitResult, n: int) -> np.ndarray:
    """Per run, the sd of its log prediction over the fit's covariance: sqrt(j C j')."""
    j = full.jac[:n]
    dof = max(len(full.errors) - len(full.names), 1)
    cov = float(np.sum(np.log1p(full.errors) ** 2)) / dof * np.linalg.pinv(full.jac.T @ full.jac)
    return np.sqrt(np.clip(np.einsum("ij,jk,ik->i", j, cov, j), 0.0, None))


def _split(own: list[Prepared], helpers: list[Prepared], names: tuple[str, ...],
           prior: dict[str, float]) -> np.ndarray:
    """Errors of the runs published on or after SPLIT_DATE, the family fitted on the earlier
    ones only (its unsupported figures at ``prior``); NaN for the others."""
    out = np.full(len(own), np.nan)
    late = [i for i, p in enumerate(own)
            if p.run.published is not None and p.run.published >= SPLIT_DATE]
    if not late:
        return out
    early = [p for p in own + helpers
             if p.run.published is not None and p.run.published < SPLIT_DATE]
    fold_names = supported(early, names)
    held = {k: prior[k] for k in names if "@" not in k and k not in fold_names}
    values = {**held, **(fit(early, fold_names, fixed=held).values if fold_names else {})}
    for i in late:
        p = own[i]
        vals = run_values(list(values), list(values.values()), p.release)
        out[i] = float(np.expm1(p.speed_error(p.stack(vals)))[0])
    return out


def early_priors(prepared: dict[str, list[Prepared]]) -> dict[str, dict[str, float]]:
    """The time split's priors: per family, the median over the other families of what their
    runs before SPLIT_DATE fit (a figure none of them can fit: the full-fit prior)."""
    fitted: dict[str, dict[str, float]] = {}
    for family, runs in prepared.items():
        names = calibrated_names(load_stack_spec(family))
        early = [p for p in runs if p.run.published and p.run.published < SPLIT_DATE]
        base = tuple(n for n in supported(early, names) if "@" not in n)
        if base:
            fitted[family] = fit(early, base, fixed={
                k: v for k, v in priors(family).items() if k in names and k not in base}).values
    out = {}
    for family in prepared:
        others = [v for f, v in fitted.items() if f != family]
        full = priors(family)
        out[family] = {p: float(np.median([o[p] for o in others if p in o]))
                       if any(p in o for o in others) else full[p] for p in PARAMETERS}
    return out


def _as_published(run: MeasuredRun, fitted: Prepared, where: str) -> Prepared:
    """``run`` given only its published plan (:meth:`MeasuredRun.as_published`), ready to
    predict; the run as written where that plan admits none (then nothing was left out)."""
    try:
        return prepare(run.as_published(), where)
    except InputError:
        return fitted


def compare_runs(runs: list[MeasuredRun], where: str,
                 progress: Callable[[int, int], None] | None = None,
                 helpers: list[MeasuredRun] | None = None) -> list[RunComparison]:
    """Every run predicted every way (see the module docstring); ``helpers`` are further runs
    that help refit each family but are not reported (the shipped runs, for a user's file)."""
    own = [prepare(r, where) for r in runs]
    published = [_as_published(r, p, where) for r, p in zip(runs, own, strict=True)]
    ids = {r.id for r in runs}
    extra = [prepare(r, str(shipped_runs_path())) for r in helpers or [] if r.id not in ids]
    physics = [_error(prepare(r, where, PHYSICS_STACK))[0] for r in runs]
    by_family: dict[str, list[int]] = {}
    for i, r in enumerate(runs):
        by_family.setdefault(family_of(r), []).append(i)
    pools = {f: [own[i] for i in idx] + [p for p in extra if family_of(p.run) == f]
             for f, idx in by_family.items()}
    early = early_priors(pools)
    columns: dict[int, tuple[float, float, float, float, float]] = {}
    for done, (family, idx) in enumerate(by_family.items(), start=1):
        names = calibrated_names(load_stack_spec(family))
        more = [p for p in extra if family_of(p.run) == family]
        errs = family_errors([own[i] for i in idx], more, names, priors(family), early[family],
                             [published[i] for i in idx])
        for k, i in enumerate(idx):
            columns[i] = (errs.loo[k], errs.loso[k], errs.split[k], errs.param_sd[k],
                          errs.published[k])
        if progress:
            progress(done, len(by_family))
    out = []
    for i, p in enumerate(own):
        cal, fits, memory = _error(p)
        r = p.run
        loo, loso, split, sd, as_published = columns[i]
        out.append(RunComparison(
            id=r.id, model=r.model, chip=p.chip.name, vendor=p.vendor, moe=p.is_moe,
            num_chips=r.num_chips, stack=p.spec.label, source_id=r.source_id,
            published=r.published.isoformat() if r.published else None, sweep=r.sweep,
            metric=r.metric, measured=r.measured,
            faster_is_larger=FASTER_IS_LARGER[r.metric],
            tokens_per_step=float(r.global_batch * r.seq_len), physics_error=physics[i],
            calibrated_error=cal, loo_error=float(loo), loso_error=float(loso),
            split_error=float(split), published_error=float(as_published),
            param_sd=float(sd), fits_memory=fits,
            production=r.production, source=r.source, **memory,
        ))
    return out


# The 27 runs the set held at commit 3743958, before stacks, calibration and the MoE terms of the
# step model: the baseline the fidelity work is measured against. `moebench validate` then read
# 39.3% over them, in sample, and 7.0% on their seven dense runs (issue 9's bar for dense runs).
BASELINE_DENSE_MAE = 0.070
BASELINE_RUNS: tuple[str, ...] = (
    "dsv3-h800-prod", "dsv3-h100-1024-fp8", "dsv3-gb200-256-mxfp8", "dsv3-gb200-256-bf16",
    "qwen3-235b-h100-256-bf16", "qwen3-235b-h100-256-bf16-a2a", "mixtral8x22b-h100-128-bf16",
    "mixtral8x7b-ascend-64", "dsv2lite-ascend-8", "llama3-405b-h100-8192",
    "llama3-405b-h100-16384", "mbridge-dsv3-gb300-256-bf16", "mbridge-dsv3-gb300-256-mxfp8",
    "mbridge-dsv3-gb200-256-mxfp8", "mbridge-dsv3-b200-256-mxfp8",
    "mbridge-qwen3-30b-gb300-8-mxfp8", "mbridge-qwen3-30b-gb200-8-mxfp8",
    "mbridge-qwen3-30b-b200-8-mxfp8", "mbridge-qwen3-30b-h100-16-fp8",
    "mbridge-qwen3-235b-gb300-256-bf16", "mbridge-qwen3-235b-gb200-256-bf16",
    "mbridge-qwen3-235b-b200-64-mxfp8", "mbridge-llama3-70b-h100-64-fp8",
    "mbridge-llama31-405b-h100-1024-fp8", "mbridge-llama31-405b-gb200-256-fp8",
    "mbridge-llama31-405b-gb300-256-fp8", "mbridge-llama31-405b-b200-128-fp8",
)


def validate(path: Path | None = None,
             progress: Callable[[int, int], None] | None = None,
             stack: str | None = None) -> list[RunComparison]:
    """The runs of ``path`` (default: the shipped file) predicted every way; ``stack`` (a
    catalog name or YAML) replaces the stack each run names, e.g. one a user calibrated."""
    runs = load_runs(path)
    shipped = path is None or path.resolve() == shipped_runs_path().resolve()
    if stack is not None:
        # The shipped runs still help refit a catalog stack they ran on (matched by name).
        runs, shipped = [replace(r, stack=stack) for r in runs], False
    return compare_runs(runs, str(path or shipped_runs_path()), progress,
                        helpers=None if shipped else load_runs())

