"""The error summaries of ``moebench validate``: mean absolute error per group (all, vendor,
dense/MoE), and the memory error of the runs that publish their peak memory."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from moebench.commands.validation.run_comparison import RunComparison

MEMORY_RUN_BOUND = 0.20
"""Issue 22's bar: no run's memory error beyond this."""


def mean_abs(values: list[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(np.abs(vals))) if vals else float("nan")


def groups(comparisons: list[RunComparison]) -> dict[str, list[RunComparison]]:
    """Runs by vendor and by dense/MoE, and all together."""
    out: dict[str, list[RunComparison]] = {"all": list(comparisons)}
    for c in comparisons:
        out.setdefault(f"vendor {c.vendor}", []).append(c)
        out.setdefault("MoE" if c.moe else "dense", []).append(c)
    return out


def summary(comparisons: list[RunComparison]) -> list[dict[str, Any]]:
    """Mean absolute speed error per group, every way, and the worst out-of-source run."""
    rows = []
    for name, group in groups(comparisons).items():
        worst = max(group, key=lambda c: abs(c.loso_error))
        late = [c.split_error for c in group if not math.isnan(c.split_error)]
        rows.append({
            "group": name, "runs": len(group),
            "physics_mae": mean_abs([c.physics_error for c in group]),
            "calibrated_mae": mean_abs([c.calibrated_error for c in group]),
            "loo_mae": mean_abs([c.loo_error for c in group]),
            "loso_mae": mean_abs([c.loso_error for c in group]),
            "published_mae": mean_abs([c.published_error for c in group]),
            "split_mae": mean_abs(late), "split_runs": len(late),
            "worst_loso": worst.id, "worst_loso_error": worst.loso_error,
            "sources": len({c.source_id for c in group}),
        })
    return rows


def memory_summary(comparisons: list[RunComparison]) -> dict[str, Any]:
    """Memory error over the runs that publish their peak memory: mean absolute error overall
    and per vendor, mean signed error, the worst run and its largest predicted term, how many
    lie beyond :data:`MEMORY_RUN_BOUND`, and the measured runs predicted not to fit."""
    with_mem = [c for c in comparisons if c.memory_kind is not None]
    out: dict[str, Any] = {"runs": len(with_mem),
                           "not_fitting": [c.id for c in comparisons if not c.fits_memory],
                           "tight": len([c for c in comparisons
                                         if c.fits_memory and not c.keeps_headroom]),
                           "all_runs": len(comparisons)}
    if not with_mem:
        return out
    errors = np.array([c.memory_error for c in with_mem])
    worst = with_mem[int(np.argmax(np.abs(errors)))]
    terms = worst.memory_terms_gib or {}
    out.update({
        "mae": float(np.mean(np.abs(errors))), "bias": float(np.mean(errors)),
        "by_vendor": {v: mean_abs([c.memory_error for c in with_mem if c.vendor == v])
                      for v in sorted({c.vendor for c in with_mem})},
        "by_kind": {k: len([c for c in with_mem if c.memory_kind == k])
                    for k in sorted({c.memory_kind or "" for c in with_mem})},
        "sources": len({c.source_id for c in with_mem}),
        "beyond": int(np.sum(np.abs(errors) > MEMORY_RUN_BOUND)),
        "worst": worst.id, "worst_error": float(worst.memory_error),
        "worst_term": max(terms, key=lambda k: terms[k]) if terms else None,
    })
    return out


def memory_footer(m: dict[str, Any]) -> list[str]:
    """The footer lines of :func:`memory_summary`."""
    if not m["runs"]:
        lines = ["memory: no run in the file publishes its peak memory (memory_gib)"]
    else:
        vendors = ", ".join(f"{v} {100 * e:.1f}%" for v, e in m["by_vendor"].items())
        lines = [
            f"memory: {m['runs']} runs from {m['sources']} sources publish their peak memory; "
            f"mean absolute error {100 * m['mae']:.1f}% ({vendors}), mean {100 * m['bias']:+.1f}%"
            f"; {m['beyond']} beyond {100 * MEMORY_RUN_BOUND:.0f}%; worst {m['worst']} "
            f"{100 * m['worst_error']:+.1f}% (largest predicted term: {m['worst_term']})",
            "memory error = predicted / published peak memory - 1, of the kind published: live "
            "tensors (allocated), the allocator's hold (reserved) or the device's (device)"]
    if m.get("tight"):
        lines.append(f"tight: {m['tight']} of the {m['all_runs']} measured runs fit at the caching "
                     "allocator's typical hold but not at the top of its measured range, and "
                     "ran (the search keeps the headroom only where it chooses the layout; "
                     "every run's layout is given)")
    if m["not_fitting"]:
        lines.append(f"measured runs the memory model says do not fit: "
                     f"{', '.join(m['not_fitting'])}")
    return lines
