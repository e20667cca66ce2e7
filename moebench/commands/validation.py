"""Predictions against published measured training runs.

``profiles/validation/measured-runs.csv`` lists runs with their plans, one measured figure each
and its source. Each run is predicted with its published plan (fields left empty are searched)
and no per-run constants: the same profiles and equations as every other command. Memory is
not enforced (the run happened), but a run the memory model thinks cannot fit is flagged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.commands.estimate import Estimate, estimate
from moebench.commands.report import Report
from moebench.engine.plan import PlanRequest
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import load_chip
from moebench.inputs.model import load_model
from moebench.inputs.run import RunConfig

# Metrics where a larger value means faster training; the others (times, chip-hours) invert.
FASTER_IS_LARGER = {"tokens_per_s_per_chip": True, "model_tflops_per_chip": True, "mfu": True,
                    "step_time_s": False, "chip_hours_per_1e12_tokens": False}


@dataclass(frozen=True, kw_only=True)
class RunComparison:
    id: str
    model: str
    chip: str
    num_chips: int
    metric: str
    measured: float
    predicted: float
    speed_error: float
    """Predicted speed / measured speed - 1: positive means the model is optimistic."""
    fits_memory: bool
    plan: dict[str, Any]
    source: str
    production: bool
    """A whole training run's average (restarts, ramp-up) rather than a steady-state figure."""


def _opt_int(v: Any) -> int | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else int(v)


def _opt_str(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)


def load_runs(path: Path | None = None) -> pd.DataFrame:
    path = path or catalog.catalog_dir("validation") / "measured-runs.csv"
    if not path.is_file():
        raise InputError(str(path), None, "validation data file does not exist")
    return pd.read_csv(path, dtype={"recompute": "string", "schedule": "string"})


def predict(row: dict[str, Any]) -> tuple[Estimate, float]:
    """The estimate for one published run and the predicted value of its metric."""
    arch, chip = load_model(row["model"]), load_chip(row["chip"])
    run = RunConfig(
        seq_len=int(row["seq_len"]), global_batch=int(row["global_batch"]),
        precision=row["precision"], ep_overlap=str(row["ep_overlap"]).lower() == "true",
    )
    req = PlanRequest(
        tp=_opt_int(row["tp"]), pp=_opt_int(row["pp"]), vpp=_opt_int(row["vpp"]),
        ep=_opt_int(row["ep"]), etp=_opt_int(row.get("etp")), cp=_opt_int(row["cp"]),
        micro_batch=_opt_int(row["micro_batch"]),
        recompute=_opt_str(row["recompute"]), schedule=_opt_str(row["schedule"]),
    )
    est, _ = estimate(arch, chip, run, int(row["num_chips"]), req, allow_oom=True)
    metric = row["metric"]
    if metric not in FASTER_IS_LARGER:
        raise InputError("measured-runs.csv", f"{row['id']}.metric", f"unknown metric {metric!r}")
    return est, float(getattr(est, metric))


def compare_runs(runs: pd.DataFrame) -> list[RunComparison]:
    out = []
    for row in runs.to_dict("records"):
        est, predicted = predict(row)
        measured = float(row["measured"])
        ratio = predicted / measured
        speed = ratio if FASTER_IS_LARGER[row["metric"]] else 1.0 / ratio
        out.append(RunComparison(
            id=row["id"], model=row["model"], chip=row["chip"], num_chips=int(row["num_chips"]),
            metric=row["metric"], measured=measured, predicted=predicted,
            speed_error=speed - 1.0, fits_memory=est.fits_memory, plan=est.plan,
            source=row["source"], production=str(row["production"]).lower() == "true",
        ))
    return out


def mean_abs_error(comparisons: list[RunComparison]) -> float:
    return sum(abs(c.speed_error) for c in comparisons) / len(comparisons)


def validation_report(comparisons: list[RunComparison]) -> Report:
    rows = [{
        "run": c.id, "chips": f"{c.num_chips} x {c.chip}", "metric": c.metric,
        "measured": c.measured, "predicted": c.predicted,
        "speed_error_pct": 100 * c.speed_error,
        "plan_fits_model_memory": c.fits_memory,
    } for c in comparisons]
    mape = mean_abs_error(comparisons)
    worst = max(comparisons, key=lambda c: abs(c.speed_error))
    payload = {
        "runs": [c.__dict__ for c in comparisons],
        "mean_abs_speed_error": mape,
        "worst": {"id": worst.id, "speed_error": worst.speed_error},
    }
    footer = [
        f"mean absolute speed error {100 * mape:.1f}% over {len(comparisons)} runs; "
        f"worst {worst.id} at {100 * worst.speed_error:+.1f}%",
        "speed error = predicted speed / measured speed - 1 (positive: moebench is optimistic)",
        "each run uses its published plan; empty plan fields are searched; no per-run constants",
    ]
    production = [c.id for c in comparisons if c.production]
    if production:
        footer.append(f"{', '.join(production)}: a whole run's average, with restarts and batch "
                      "ramp-up that the steady-state prediction leaves out")
    return Report("moebench predictions against published measured runs",
                  pd.DataFrame(rows), payload, footer)
