"""Each chip type's step time as a function of its share of the global batch, and the split of
the batch that minimises the slowest type's step.

For a fixed plan the engine's step is linear in the number of micro-batches m:
``step = t_mb x m + bubble + exposed DP + optimizer`` (:mod:`moebench.engine.step`; t_mb, the
bubble and the DP terms do not depend on m, except the share of paired micro-batches under
1F1B all-to-all overlap and the micro-batches in flight when m < pp). So one vectorised
evaluation of every candidate plan at two batch sizes gives each plan's line
``T_i(b) = c_i + a_i b`` in the type's share b (sequences). A share is valid for a plan when it
is a whole number of micro-batches per data-parallel replica (b divisible by dp x mb; by
dp x mb x pp for interleaved plans; even micro-batches, at least pp, for DualPipe). The type's
curve is the lower envelope of the valid lines at every b = 0..G, after dropping lines another
line of the same granularity beats everywhere. The split search then evaluates the chosen
splits exactly with the engine (:mod:`moebench.engine.mix.data_parallel`), so the reported
figures never rest on the linear fit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from moebench.engine.plan import PlanRequest
from moebench.engine.plan_space import MICRO_BATCHES
from moebench.engine.search import plans_worth_timing
from moebench.engine.step import evaluate
from moebench.errors import InputError
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import DUALPIPEV, RunConfig
from moebench.inputs.stack import Stack

# Candidate splits (by the linear curves) that the engine re-evaluates exactly. The curves
# read a share's step up to ~6% off where whole micro-batches fit it unevenly, so their order
# is rough: Ling-Plus on 512 H800s + 1,024 910Bs (2026-12-07) had its exact best sixth by
# the curves. Eight cost ~0.1 s more than four over a whole mix search.
EXACT_CANDIDATES = 8
# Targets per chunk of the min-max convolution for three or more types (memory bound).
CHUNK = 512


@dataclass(frozen=True)
class MixType:
    """One chip type of a mix: the chip, its own stack, its count and its run settings."""

    chip: Chip
    stack: Stack
    count: int
    run: RunConfig


def _lines(arch: ModelArch, t: MixType, request: PlanRequest
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(slope s/sequence, intercept s, quantum, minimum share) of every plan that fits, from
    two engine evaluations; None when the type has no valid plan."""
    mb_max = request.micro_batch or max(MICRO_BATCHES)
    # Every dp x mb divides this batch (dp divides the count, mb the largest micro-batch), and
    # m = 8 tp pp cp / mb is a multiple of pp: the rules that depend on m all pass.
    ref = t.count * mb_max
    run1, run2 = replace(t.run, global_batch=ref), replace(t.run, global_batch=2 * ref)
    try:
        plans, memory, _ = plans_worth_timing(arch, t.chip, t.stack, run1, t.count,
                                              request.with_defaults(t.stack.release))
    except InputError:
        return None
    plans = plans.take(np.flatnonzero(memory.fits(t.chip)))  # exact pruning, fitting ones
    if len(plans) == 0:
        return None
    s1 = evaluate(arch, t.chip, t.stack, run1, plans).step_time
    s2 = evaluate(arch, t.chip, t.stack, run2, plans).step_time
    slope = (s2 - s1) / ref
    intercept = s1 - slope * ref
    g = (plans.dp * plans.mb).astype(np.int64)
    dualpipe, dualpipev = plans.schedule == 1, plans.schedule == DUALPIPEV
    quantum = np.where(plans.vpp > 1, g * plans.pp, np.where(dualpipe, 2 * g, g))
    minimum = np.where(dualpipe, g * plans.pp, np.where(dualpipev, 2 * g * plans.pp, quantum))
    return slope, intercept, quantum, minimum


def _pareto(slope: np.ndarray, intercept: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Indices of the lines no other line of the same group beats at every share (lower or
    equal slope and intercept), by a segmented running minimum."""
    _, rank = np.unique(group, return_inverse=True)
    order = np.lexsort((intercept, slope, rank))
    c = intercept[order]
    # Later groups sit strictly below earlier ones, so one running minimum serves them all.
    span = float(np.ptp(c)) + 1.0
    shifted = c - rank[order] * span
    best_before = np.concatenate(([np.inf], np.minimum.accumulate(shifted)[:-1]))
    return order[shifted < best_before]


def share_curve(arch: ModelArch, t: MixType, request: PlanRequest, global_batch: int
                ) -> np.ndarray:
    """Step seconds of type ``t`` at every share b = 0..G of the global batch (the linear
    model above); 0 at b = 0 (no work), infinite where no fitting plan takes b."""
    curve = np.full(global_batch + 1, np.inf)
    curve[0] = 0.0
    lines = _lines(arch, t, request)
    if lines is None:
        return curve
    slope, intercept, quantum, minimum = lines
    keep = _pareto(slope, intercept, quantum * (global_batch + 1) + minimum)
    slope, intercept, quantum, minimum = (a[keep] for a in lines)
    first = np.maximum(minimum, quantum)
    counts = np.where(first <= global_batch, (global_batch - first) // quantum + 1, 0)
    if counts.sum() == 0:
        return curve
    line = np.repeat(np.arange(len(counts)), counts)
    step_in_line = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    share = first[line] + step_in_line * quantum[line]
    np.minimum.at(curve, share, intercept[line] + slope[line] * share)
    return curve


def best_splits(curves: list[np.ndarray], global_batch: int, cross_s: float,
                limit: int = EXACT_CANDIDATES) -> list[tuple[int, ...]]:
    """Shares (one per type, summing to G) minimising the slowest type's step, best first.

    Two types: every split b, G - b at once, with ``cross_s`` added when both get work; the
    ``limit`` best. More types: a min-max convolution over the types (exact on the curves,
    without the cross-type term, which the exact evaluation adds); the best only.
    """
    g = global_batch
    if len(curves) == 1:
        return [(g,)]
    if len(curves) == 2:
        a, b = curves[0], curves[1][::-1]
        both = (np.arange(g + 1) > 0) & (np.arange(g + 1) < g)
        obj = np.maximum(a, b) + np.where(both, cross_s, 0.0)
        order = np.argsort(obj, kind="stable")
        return [(int(s), g - int(s)) for s in order[:limit] if np.isfinite(obj[s])]
    return _convolve(curves, g)


def _convolve(curves: list[np.ndarray], g: int) -> list[tuple[int, ...]]:
    """min over splits of the max of the curves, type by type: F_k(b) = min_{b'} max(
    F_{k-1}(b - b'), T_k(b')), evaluated for every b (only b = G for the last type)."""
    best = curves[0]
    choices: list[np.ndarray] = []
    for k, curve in enumerate(curves[1:], start=1):
        support = np.flatnonzero(np.isfinite(curve))
        targets = np.array([g]) if k == len(curves) - 1 else np.arange(g + 1)
        new = np.full(len(targets), np.inf)
        arg = np.zeros(len(targets), dtype=np.int64)
        for lo in range(0, len(targets), CHUNK):
            tgt = targets[lo:lo + CHUNK]
            rest = tgt[:, None] - support[None, :]
            cost = np.where(rest >= 0, np.maximum(best[np.clip(rest, 0, g)], curve[support]),
                            np.inf)
            j = np.argmin(cost, axis=1)
            new[lo:lo + CHUNK] = cost[np.arange(len(tgt)), j]
            arg[lo:lo + CHUNK] = support[j]
        choices.append(arg)
        best = new if k < len(curves) - 1 else np.concatenate((np.full(g, np.inf), new))
    if not np.isfinite(best[g]):
        return []
    shares, left = [], g
    for k in range(len(curves) - 1, 0, -1):
        arg = choices[k - 1]
        b = int(arg[0] if k == len(curves) - 1 else arg[left])
        shares.append(b)
        left -= b
    return [(left, *reversed(shares))]
