"""What ``moebench validate`` reports: errors per group, plan ranking on published sweeps,
prediction intervals and their coverage, and fitted figures pinned at a bound."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from moebench.commands.shared.report import Report
from moebench.commands.validation.fitting import PARAMETERS
from moebench.commands.validation.measured_runs import shipped_runs_path
from moebench.commands.validation.ranking import _speed, sweep_ranking, sweep_stats
from moebench.commands.validation.run_comparison import SPLIT_DATE, RunComparison
from moebench.commands.validation.summaries import (
    memory_footer,
    memory_summary,
    summary,
)
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.stack import load_stack_spec

INTERVAL = 0.8
"""The prediction interval's coverage: 10th to 90th percentile of out-of-source errors."""
MIN_POOL = 15
"""Out-of-source residuals a vendor needs to pool its own; below, every vendor's are pooled."""




# Sources held before first predictions were recorded (commit bf96b23): every later source
# entered validation through scripts/add_source.py, which records how the model predicted it
# before it joined the fit.
SOURCES_BEFORE_FIRST_PREDICTIONS = frozenset({
    "amd-primus-projection-blog-mi325x-llama31", "amd-primus-projection-blog-mi355x-mixtral",
    "deepseek-v3-report-table1", "llama3-herd-table4", "mbridge-perf-summary-25.09",
    "mbridge-perf-summary-25.11", "mbridge-perf-summary-26.02.01", "mbridge-perf-summary-26.04",
    "mbridge-perf-summary-26.04.01", "mbridge-perf-summary-26.08", "mcore-moe-report-2603.07685",
    "mindspeed-llm-features-readme-2026-06", "mindspeed-llm-readme-2025-03",
    "mlm-dsv3-gb200-optimization-guide", "mlm-readme-weak-scaling-2024",
    "modellink-readme-pretrain-2024", "modelzoo-mixtral-8x22b-script", "modelzoo-qwen3-gb200-table",
    "modelzoo-qwen3-gb300-script-2603", "modelzoo-qwen3-gb300-script-2605",
    "modelzoo-qwen3-h100-longctx", "modelzoo-qwen3-h100-script-2603", "modelzoo-qwen3-h100-table",
    "nemo-long-seq-25.04-b200", "primus-moe-blog-fig6-dsv2lite", "primus-moe-blog-fig7-dsv2",
})


def first_predictions_path() -> Path:
    return shipped_runs_path().with_name("first-predictions.csv")


def load_first_predictions(path: Path | None = None) -> pd.DataFrame:
    """The recorded first predictions: id, source_id, recorded, commit, stack, predicted_error
    (speed error before the run's source joined the fit)."""
    return pd.read_csv(path or first_predictions_path(), dtype={"commit": str})


def first_predictions(loso: Mapping[str, float],
                      path: Path | None = None) -> list[dict[str, Any]]:
    """Per source added since first predictions were recorded: its runs, when it was
    recorded, the mean absolute error of the prediction made before it joined the fit, and
    its leave-one-source-out error now (``loso``, by run id; both over the runs it still
    holds)."""
    table = load_first_predictions(path)
    out = []
    for source, rows in table.groupby("source_id", sort=False):
        held = rows[rows["id"].isin(loso.keys())]
        if held.empty:
            continue
        out.append({
            "source_id": source, "runs": len(held), "recorded": str(held["recorded"].min()),
            "stack": held["stack"].iloc[0],
            "first_mae": float(np.mean(np.abs(held["predicted_error"]))),
            # Given only the published plan: recorded for sources added from 2026-12-06 on.
            "first_plan_only_mae": float(np.mean(np.abs(held["plan_only_error"])))
            if "plan_only_error" in held and held["plan_only_error"].notna().all() else None,
            "loso_mae": float(np.mean([abs(loso[i]) for i in held["id"]])),
        })
    return out


def residual_pool(comparisons: list[RunComparison], c: RunComparison) -> np.ndarray:
    """Out-of-source log errors of the runs of other sources: the run's vendor's when it has
    :data:`MIN_POOL` of them, else every vendor's."""
    others = [x for x in comparisons if x.source_id != c.source_id]
    same = [x for x in others if x.vendor == c.vendor]
    pool = same if len(same) >= MIN_POOL else others
    return np.log1p(np.array([x.loso_error for x in pool]))


# Standard normal quantiles at the midpoints of 41 equal-probability bins: the parameter spread
# convolved with the residual pool.
_Z = norm.ppf((np.arange(41) + 0.5) / 41)


def interval_quantiles(pool: np.ndarray, sd: float, level: float = INTERVAL
                       ) -> tuple[float, float]:
    """The (low, high) quantiles of log(predicted / measured) for a new run: the residual pool
    spread by the parameters' uncertainty (sd in log), widened to hold zero so that the point
    prediction always lies inside its interval."""
    pool = pool if pool.size else np.zeros(1)  # no other source: the parameters' spread alone
    samples = (pool[:, None] + sd * _Z[None, :]).ravel()
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(samples, [tail, 1.0 - tail])
    return min(float(lo), 0.0), max(float(hi), 0.0)


def intervals(comparisons: list[RunComparison]) -> dict[str, tuple[float, float]]:
    """Each run's interval for log(predicted / measured), from other sources' residuals."""
    return {c.id: interval_quantiles(residual_pool(comparisons, c), c.param_sd)
            for c in comparisons}


def coverage(comparisons: list[RunComparison],
             bands: dict[str, tuple[float, float]]) -> float:
    """Share of runs whose out-of-source error lies inside its interval."""
    inside = [bands[c.id][0] <= math.log1p(c.loso_error) <= bands[c.id][1] for c in comparisons]
    return float(np.mean(inside)) if inside else float("nan")


def pinned_figures() -> list[str]:
    """Shipped calibrated figures that sit on a bound of their parameter: the data would push
    them further, a sign that something physical is missing."""
    out = []
    for name in catalog.catalog_names("stacks"):
        spec = load_stack_spec(name)
        figs = [(p, spec.family_figure(p)) for p in PARAMETERS]
        figs += [(f"{p}@{r.name}", f) for r in spec.releases_resolved.values()
                 for p, f in r.refit.items()]
        for param, fig in figs:
            bound = PARAMETERS[param.partition("@")[0]]
            if fig.kind == "calibrated" and fig.value in (bound.low, bound.high):
                side = "lower" if fig.value == bound.low else "upper"
                out.append(f"{name}: {param} at its {side} bound {fig.value:g}")
    return out


def _measured_band(c: RunComparison, band: tuple[float, float]) -> tuple[float, float]:
    """The interval of the measured value around the out-of-source prediction, in its unit."""
    measured, predicted = _speed(c, c.loso_error)
    lo, hi = predicted * math.exp(-band[1]), predicted * math.exp(-band[0])
    return (lo, hi) if c.faster_is_larger else (1.0 / hi, 1.0 / lo)


def validation_report(comparisons: list[RunComparison], path: Path | None = None,
                      stack: str | None = None) -> Report:
    bands = intervals(comparisons)
    rows = []
    # The unit goes into the shown value, so that it stays when a narrow terminal drops the
    # metric column.
    display: dict[str, list[str]] = {"measured": [], "interval_80": []}
    for c in comparisons:
        lo, hi = _measured_band(c, bands[c.id])
        unit = METRIC_UNITS.get(c.metric, c.metric)
        display["measured"].append(f"{_num(c.measured)} {unit}")
        display["interval_80"].append(f"{_num(lo)}-{_num(hi)} {unit}")
        rows.append({
            "run": c.id, "num_chips": c.num_chips, "chip": c.chip, "stack": c.stack,
            "metric": c.metric, "measured": c.measured, "interval_80": f"{lo:.4g}-{hi:.4g}",
            "physics_%": 100 * c.physics_error, "calibrated_%": 100 * c.calibrated_error,
            "loo_%": 100 * c.loo_error, "loso_%": 100 * c.loso_error,
            "published_%": 100 * c.published_error, "split_%": 100 * c.split_error,
            "memory_%": 100 * c.memory_error if c.memory_kind else float("nan"),
        })
    summ = summary(comparisons)
    sweeps = sweep_ranking(comparisons)
    cover = coverage(comparisons, bands)
    pinned = pinned_figures()
    memory = memory_summary(comparisons)
    payload = {"memory": _no_nan(memory),
               "runs": [_no_nan({**c.__dict__, "memory_error": c.memory_error,
                                 "interval_log": list(bands[c.id])})
                        for c in comparisons],
               "summary": [_no_nan(s) for s in summ], "sweeps": sweeps, "coverage_80": cover,
               "pinned": pinned,
               "split_date": SPLIT_DATE.isoformat(),
               "data": str(path or shipped_runs_path()), "stack": stack}
    footer = [
        f"{s['group']}: {s['runs']} runs from {s['sources']} sources, mean absolute speed "
        f"error leave-one-source-out {100 * s['loso_mae']:.1f}%, given only the published "
        f"plan {100 * s['published_mae']:.1f}% (leave-one-out "
        f"{100 * s['loo_mae']:.1f}%, calibrated {100 * s['calibrated_mae']:.1f}%, physics "
        f"{100 * s['physics_mae']:.1f}%); time split {_pct(s['split_mae'])} on "
        f"{s['split_runs']} later runs (worst {s['worst_loso']} "
        f"{100 * s['worst_loso_error']:+.1f}%)" for s in summ]
    if sweeps:
        st = sweep_stats(sweeps)
        footer.append(
            f"plan ranking over {st['sweeps']} published sweeps: mean Spearman "
            f"{st['spearman']:.2f}, mean regret {100 * st['regret']:.1f}%, worst "
            f"{st['worst']} {100 * st['worst_regret']:.1f}%")
        footer += [f"  {s['sweep']} ({s['runs']} plans, {s['num_chips']} {s['chip']}): "
                   f"Spearman {s['spearman']:.2f}, regret {100 * s['regret']:.1f}%"
                   for s in sweeps]
    footer += [
        f"80% intervals (10th-90th percentile of other sources' out-of-source errors, spread "
        f"by the fitted figures' uncertainty) hold {100 * cover:.0f}% of the measured runs",
        "speed error = predicted speed / measured speed - 1 (positive: moebench is optimistic)",
        "physics: hardware-limit stack; calibrated: "
        + (f"{stack} (--stack) for every run" if stack else "the run's stack release as shipped")
        + "; loo: refitted without the run; loso: refitted without the run's whole source; "
        "published: loso, the run given only its published plan (chip, count, model, "
        "parallelism, micro-batch, recompute, schedule, layout, precision, batch, dispatcher; "
        "settings from its release and platform); "
        f"split: fitted on runs published before {SPLIT_DATE.isoformat()}",
    ]
    fixed = _fits_nothing(comparisons, stack)
    if fixed:
        footer.append(f"{', '.join(fixed)}: no calibrated figure to refit, so its leave-one-out, "
                      "leave-one-source-out and split columns are its calibrated predictions, "
                      "not out-of-sample ones (moebench calibrate fits one)")
    footer += memory_footer(memory)
    if pinned:
        footer.append("fitted figures on a bound (something physical is missing): "
                      + "; ".join(pinned))
    production = [c.id for c in comparisons if c.production]
    if production:
        footer.append(f"{', '.join(production)}: a whole run's average, with restarts and batch "
                      "ramp-up that the steady-state prediction leaves out")
    return Report("moebench predictions against measured runs", pd.DataFrame(rows), payload,
                  footer, labels={"num_chips": "chips", "physics_%": "physics %",
                                  "calibrated_%": "calib %", "loo_%": "LOO %",
                                  "loso_%": "LOSO %", "published_%": "as published %",
                                  "split_%": "split %",
                                  "interval_80": "80% interval", "memory_%": "memory %"},
                  optional=("metric", "stack", "measured", "physics_%", "num_chips",
                            "interval_80", "loo_%", "split_%", "calibrated_%", "memory_%",
                            "published_%"),
                  display=display)


def _num(value: float) -> str:
    """A measured figure as people write it: 180,000 and 5,275, but 0.412 and 12.5."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _fits_nothing(comparisons: list[RunComparison], stack: str | None) -> list[str]:
    """The stack families of these runs (``stack``, a name or YAML, when --stack gave one)
    that have no calibrated figure: nothing to refit."""
    from moebench.commands.validation.validation import calibrated_names
    from moebench.inputs.stack import load_stack_spec

    out = []
    families = [stack] if stack else [c.stack.partition("@")[0] for c in comparisons]
    for family in dict.fromkeys(families):
        try:
            spec = load_stack_spec(family)
        except InputError:  # a stack given as a file, labelled by its name: not re-loadable
            continue
        if not calibrated_names(spec):
            out.append(family)
    return out


# Short units of the measured metrics, as the table shows them beside the value.
METRIC_UNITS = {"tokens_per_s_per_chip": "tok/s/chip", "model_tflops_per_chip": "TFLOP/s/chip",
                "mfu": "MFU", "step_time_s": "s/step",
                "chip_hours_per_1e12_tokens": "chip-h/1e12 tok"}


def _no_nan(row: dict[str, Any]) -> dict[str, Any]:
    """A JSON row with 'no value' (NaN: e.g. a run before the time split) as null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _pct(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.1f}%"
