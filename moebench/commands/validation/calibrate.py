"""``moebench calibrate``: fit a few named, bounded stack parameters to measured runs.

Physics first: the step model fixes everything it can from hardware and component measurements.
What it cannot know, how mature a software stack is on a chip, is a handful of named physical
parameters of the stack family (:data:`PARAMETERS`), each bounded, fitted across all the
family's releases. They are fitted by least squares on the log of predicted over measured speed,
never more than one parameter per :data:`RUNS_PER_PARAMETER` runs, never per run. A release may
refit a parameter on its own runs: the name ``collective_fraction@2.0.0`` is that parameter for
the runs of release 2.0.0 only (at least three of them). Each run keeps the plan its published
fields give; fields it leaves open are searched once with the starting stack and then held, so
that a parameter moves predictions smoothly.

Intervals are 90% ones from the fit's Jacobian (Gauss-Newton covariance s^2 (J^T J)^-1 in the
log of each parameter), clipped to the bounds. Out-of-sample errors come from folds: the runs of
one group (a run, or every run of one source) are predicted by the parameters fitted without
them. The fit without group G is one Gauss-Newton step from the full fit with G's residuals and
Jacobian rows removed, x_G = x* - (J'J - J_G'J_G)^-1 (J'r - J_G'r_G), when the full fit is
interior and the fold can fit every parameter; otherwise the fold is refitted from scratch, with
only as many parameters as its runs support (in the order given) and the rest at a prior.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moebench.commands.validation.fitting import (
    PARAMETERS,
    RUNS_PER_PARAMETER,
    FitResult,
    Prepared,
    bounds,
    current_value,
    fit,
    prepare,
    run_values,
    split_name,
    supported,
)
from moebench.commands.validation.measured_run import (
    MeasuredRun,
    run_stack,
)
from moebench.errors import InputError
from moebench.inputs.stack import (
    StackSpec,
    load_stack_spec,
)


def check_parameters(names: tuple[str, ...], runs: int, where: str) -> None:
    """Known names, no repeats, and at least RUNS_PER_PARAMETER runs per parameter."""
    unknown = [n for n in names if split_name(n)[0] not in PARAMETERS]
    if unknown or not names:
        raise InputError("--fit", None, f"unknown parameter(s) {', '.join(unknown) or '(none)'};"
                         f" choose from {', '.join(PARAMETERS)}")
    if len(set(names)) != len(names):
        raise InputError("--fit", None, "a parameter is named twice")
    if runs < RUNS_PER_PARAMETER * len(names):
        raise InputError(where, None,
                         f"{runs} run(s) for {len(names)} parameter(s): calibration needs at "
                         f"least {RUNS_PER_PARAMETER} runs per parameter "
                         f"({RUNS_PER_PARAMETER * len(names)}); add runs or fit fewer")


def runs_for_stack(runs: list[MeasuredRun], spec: StackSpec, where: str) -> list[Prepared]:
    """The runs a stack is fitted on, prepared, each on its own release of the family (or the
    stack's selected release when its row names another family); a run of another vendor is
    refused."""
    out = []
    for run in runs:
        family, _, release = run_stack(run).partition("@")
        name = run_stack(run) if family == spec.name else spec.label
        p = prepare(run, where, name)
        if spec.vendor != "any" and p.vendor.lower() != spec.vendor.lower():
            raise InputError(where, f"line {run.row} ({run.id})",
                             f"runs on {p.chip.name} ({p.vendor}); stack {spec.name} is for "
                             f"{spec.vendor} chips: keep one vendor per calibration")
        out.append(p)
    return out


@dataclass(frozen=True)
class Calibration:
    """A fitted stack: values with intervals, and the error per run in and out of sample."""

    stack: str
    names: tuple[str, ...]
    fit: FitResult
    loo_errors: np.ndarray
    run_ids: list[str]


def pinned(result: FitResult) -> list[str]:
    """The fitted parameters that sit on a bound (the data would push them further)."""
    lo, hi = bounds(result.names)
    return [n for i, n in enumerate(result.names)
            if np.isclose(result.x[i], lo[i], atol=1e-6) or np.isclose(result.x[i], hi[i],
                                                                        atol=1e-6)]


def leave_out(prepared: list[Prepared], full: FitResult, groups: Sequence[Sequence[int]],
              prior: dict[str, float], exact: bool | None = None,
              predict: Sequence[Prepared] | None = None) -> np.ndarray:
    """Speed errors of the runs of each group, predicted by the parameters fitted without the
    group (the other runs of ``prepared``); one entry per run of ``prepared``, NaN for runs in
    no group. ``predict`` (aligned with ``prepared``) gives the inputs each left-out run is
    predicted from, when they differ from those it is fitted with (a run as published).

    One Gauss-Newton step from the full fit (each run at the fit's robust-loss weight) stands
    in for refitting a fold when the full fit is
    interior and the fold's runs still support every parameter (on 91 NVIDIA runs, 2026-11-29,
    it agreed with exact refits to 0.01 points of mean error at 1/78 of the time). Otherwise
    (``exact=None``), and always with ``exact=True``, the fold is refitted: with the parameters
    its runs support (:func:`supported`), the others at ``prior``.
    """
    names = full.names
    lo, hi = bounds(names)
    r = np.log1p(full.errors)
    errors = np.full(len(prepared), np.nan)
    interior = not full.on_a_bound() if exact is None else not exact
    for group in groups:
        idx = np.asarray(group, dtype=int)
        keep = np.ones(len(prepared), dtype=bool)
        keep[idx] = False
        rest = [p for p, k in zip(prepared, keep, strict=True) if k]
        fold_names = supported(rest, names)
        if interior and fold_names == names:
            j_rest = full.jac[keep]
            w = np.ones(len(prepared)) if full.weights is None else full.weights
            jw = j_rest * w[keep][:, None]
            normal = jw.T @ j_rest
            normal += np.eye(len(names)) * 1e-9 * max(float(np.trace(normal)), 1e-12)
            x = np.clip(full.x - np.linalg.solve(normal, jw.T @ r[keep]), lo, hi)
            values = dict(zip(names, np.exp(x), strict=True))
        else:
            # Family parameters the fold cannot fit sit at the prior; a release's own parameter
            # it cannot fit falls back to the family's.
            held = {**full.fixed, **{n: prior[n] for n in names
                                     if "@" not in n and n not in fold_names}}
            values = {**held, **(fit(rest, fold_names, full.values, held).values
                                 if fold_names else {})}
        for i in idx:
            p = prepared[i] if predict is None else predict[i]
            own = run_values(list(values), list(values.values()), p.release)
            errors[i] = float(np.expm1(p.speed_error(p.stack({**full.fixed, **own})))[0])
    return errors


def leave_one_out(prepared: list[Prepared], full: FitResult, prior: dict[str, float],
                  exact: bool | None = None, only: int | None = None) -> np.ndarray:
    """Each run's speed error predicted by the parameters fitted without it (the first ``only``
    runs': the others only help fit)."""
    count = len(prepared) if only is None else only
    return leave_out(prepared, full, [[i] for i in range(count)], prior, exact)[:count]


def calibrate(runs: list[MeasuredRun], base: str, names: tuple[str, ...],
              where: str, exact_loo: bool | None = None) -> tuple[StackSpec, Calibration]:
    """Fit ``names`` of stack ``base`` to ``runs``; errors in sample and leave-one-out."""
    spec = load_stack_spec(base)
    check_parameters(names, len(runs), where)
    prepared = runs_for_stack(runs, spec, where)
    full = fit(prepared, names)
    prior = {n: current_value(prepared, n) for n in names}
    loo = leave_one_out(prepared, full, prior, exact_loo)
    return spec, Calibration(stack=spec.name, names=names, fit=full, loo_errors=loo,
                             run_ids=[p.run.id for p in prepared])
