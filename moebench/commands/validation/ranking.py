"""Plan ranking on published sweeps: within each sweep (one model, chip count and stack, several
plans), does moebench order the plans as measured, and what does its favourite cost?"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from moebench.commands.validation.run_comparison import RunComparison


def _speed(c: RunComparison, error: float) -> tuple[float, float]:
    """(measured speed, predicted speed) in a common, larger-is-faster unit: a step time
    becomes tokens per second per chip, since a sweep's plans may train different batches."""
    if c.metric == "step_time_s":
        measured = c.tokens_per_step / (c.measured * c.num_chips)
    else:
        measured = c.measured if c.faster_is_larger else 1.0 / c.measured
    return measured, measured * (1.0 + error)


def sweep_ranking(comparisons: list[RunComparison]) -> list[dict[str, Any]]:
    """Per published sweep (three plans or more): Spearman correlation of the out-of-source
    predicted speeds with the measured ones, and the regret: how much slower the plan predicted
    fastest measured than the fastest measured plan."""
    by_sweep: dict[str, list[RunComparison]] = {}
    for c in comparisons:
        if c.sweep:
            by_sweep.setdefault(c.sweep, []).append(c)
    out = []
    for name, runs in by_sweep.items():
        if len(runs) < 3:
            continue
        speeds = np.array([_speed(c, c.loso_error) for c in runs])
        rho = float(spearmanr(speeds[:, 1], speeds[:, 0]).statistic)
        chosen, best = int(np.argmax(speeds[:, 1])), int(np.argmax(speeds[:, 0]))
        out.append({
            "sweep": name, "runs": len(runs), "chip": runs[0].chip, "model": runs[0].model,
            "num_chips": runs[0].num_chips, "stack": runs[0].stack,
            "spearman": rho if not math.isnan(rho) else 0.0,
            "regret": float(speeds[best, 0] / speeds[chosen, 0] - 1.0),
            "predicted_best": runs[chosen].id, "measured_best": runs[best].id,
        })
    return out


def sweep_stats(sweeps: list[dict[str, Any]]) -> dict[str, Any]:
    """Over sweeps (:func:`sweep_ranking`): how many, mean Spearman, mean regret, and the
    sweep with the largest regret."""
    worst = max(sweeps, key=lambda s: s["regret"])
    return {"sweeps": len(sweeps), "spearman": float(np.mean([s["spearman"] for s in sweeps])),
            "regret": float(np.mean([s["regret"] for s in sweeps])),
            "worst": worst["sweep"], "worst_regret": float(worst["regret"])}
