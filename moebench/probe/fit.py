"""The step model's curves fitted to measured points, with the equations as small functions.

GEMM rate by shape (:mod:`moebench.engine.terms.compute`): a GEMM with m rows and reduction
depth k runs at

    rate(m, k) = R * m / (m + m_half) * k / (k + k_half),

R being the large-shape rate (f x peak, f the fraction of the peak the curve tends to). The fit
is a bounded least squares (scipy's trust region) on log rate, i.e. on relative errors, since a
timing's noise is proportional to it; parameters are searched on a log scale, as the half-points
span decades between chips. Collectives follow alpha-beta, t = alpha + bus bytes / B, fitted the
same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

Array = np.ndarray


def gemm_flops(m: float, k: float, n: float, groups: int = 1) -> float:
    """FLOPs of ``groups`` GEMMs of (m x k) by (k x n): 2 groups m k n."""
    return 2.0 * groups * m * k * n


def gemm_rate(m: Array | float, k: Array | float, rate_max: float, m_half: float,
              k_half: float) -> Array:
    """GEMM rate by shape: R x m / (m + m_half) x k / (k + k_half)."""
    m = np.asarray(m, dtype=float)
    k = np.asarray(k, dtype=float)
    return rate_max * m / (m + m_half) * k / (k + k_half)


def attention_flops(heads: int, seq: int, head_dim: int) -> float:
    """Causal attention FLOPs, forward and backward, as the step model counts them:
    forward 2 heads s^2 d (QK^T and AV, 2 s^2 d each, half the pairs under the causal mask),
    backward 2.5x forward (``ATTENTION_BWD_FACTOR``), so 3.5 x 2 heads s^2 d."""
    from moebench.engine.workload import ATTENTION_BWD_FACTOR

    forward = 2.0 * heads * seq * seq * head_dim
    return forward * (1.0 + ATTENTION_BWD_FACTOR)


BUS_FACTORS = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0, "all_to_all": 1.0}
"""Bus-bandwidth factor over (n-1)/n per collective (nccl-tests PERFORMANCE.md)."""

STEPS_PER_LATENCY = {"all_reduce": 2.0, "all_gather": 1.0, "reduce_scatter": 1.0,
                     "all_to_all": 1.0}
"""Latency steps per (n-1) ranks: a ring all-reduce is a reduce-scatter and an all-gather."""


def bus_bytes(op: str, nbytes: float, ranks: int) -> float:
    """Bytes each rank moves over its link: S x factor x (n-1)/n, S being the all-reduce buffer,
    the all-gather output, the reduce-scatter input or the all-to-all buffer (nccl-tests)."""
    return nbytes * BUS_FACTORS[op] * (ranks - 1) / ranks


def per_step_latency_s(op: str, alpha_s: float, ranks: int) -> float:
    """A collective's fixed time alpha over its steps: alpha / (steps x (n - 1)), the per-step
    latency the step model's ring collectives multiply back."""
    return alpha_s / (STEPS_PER_LATENCY[op] * (ranks - 1))


def link_efficiency(bus_bw: float, link_bw: float, ranks: int, mesh_links: int | None) -> float:
    """Measured bus bandwidth over what the link offers a group of n ranks: the whole per-chip
    bandwidth when switched, (n-1)/L of it over a full mesh of L direct links (as
    :meth:`moebench.engine.collectives.Links.up_group_bw`)."""
    offered = link_bw if mesh_links is None else link_bw * min(ranks - 1, mesh_links) / mesh_links
    return bus_bw / offered


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class GemmCurve:
    """Fitted GEMM curve; intervals are +-2 standard errors (log scale)."""

    rate_max: Interval
    """R, FLOP/s."""
    m_half: Interval
    k_half: Interval
    rms_rel_error: float
    """Root mean square of log(measured / fitted): 0.03 is about 3%."""
    points: int


def _intervals(result: object, n_points: int) -> Array:
    """Standard errors of least-squares parameters from the Jacobian: s^2 (J^T J)^-1."""
    jac = np.asarray(result.jac)  # type: ignore[attr-defined]
    res = np.asarray(result.fun)  # type: ignore[attr-defined]
    dof = max(1, n_points - jac.shape[1])
    s2 = float(res @ res) / dof
    cov = np.linalg.pinv(jac.T @ jac) * s2
    return np.sqrt(np.clip(np.diag(cov), 0.0, None))


def _interval(log_value: float, log_se: float) -> Interval:
    # A parameter the data barely constrain gets a huge interval: clip the exponent so it stays
    # a finite number a profile can hold.
    span = min(2.0 * log_se, 50.0)
    return Interval(math.exp(log_value), math.exp(log_value - span), math.exp(log_value + span))


def fit_gemm_curve(m: Array, k: Array, rate: Array) -> GemmCurve:
    """R, m_half and k_half from measured rates at shapes (m, k), at least four points."""
    m, k, rate = (np.asarray(x, dtype=float) for x in (m, k, rate))
    if len(rate) < 4:
        raise ValueError(f"need at least 4 GEMM shapes to fit 3 parameters, got {len(rate)}")
    if np.any(rate <= 0) or np.any(m <= 0) or np.any(k <= 0):
        raise ValueError("GEMM shapes and rates must be positive")
    log_rate = np.log(rate)

    def residuals(theta: Array) -> Array:
        r, mh, kh = np.exp(theta)
        return np.log(gemm_rate(m, k, r, mh, kh)) - log_rate

    start = np.log([rate.max() * 1.5, np.median(m) / 4.0, np.median(k) / 4.0])
    # R from half the best point (a noisy best point may sit above the curve) up to 1000x it;
    # half-points from 1/1000 of the smallest shape to 1000x the largest: beyond that the data
    # cannot tell them apart from 0 or infinity.
    lower = np.log([rate.max() / 2.0, m.min() / 1e3, k.min() / 1e3])
    upper = np.log([rate.max() * 1e3, m.max() * 1e3, k.max() * 1e3])
    result = least_squares(residuals, np.clip(start, lower + 1e-9, upper - 1e-9),
                           bounds=(lower, upper), method="trf", x_scale="jac")
    se = _intervals(result, len(rate))
    theta = result.x
    return GemmCurve(
        rate_max=_interval(theta[0], se[0]), m_half=_interval(theta[1], se[1]),
        k_half=_interval(theta[2], se[2]),
        rms_rel_error=float(np.sqrt(np.mean(result.fun ** 2))), points=len(rate),
    )


@dataclass(frozen=True)
class AlphaBeta:
    """A collective's fitted t = alpha + bus bytes / B."""

    alpha_s: float
    bus_bw: float
    """B, byte/s: the bus bandwidth large messages tend to."""
    peak_bus_bw: float
    """Best measured bus bytes / t."""
    rms_rel_error: float


def fit_alpha_beta(bus: Array, seconds: Array) -> AlphaBeta:
    """alpha and B from (bus bytes, seconds) of one collective at two or more sizes, fitted on
    relative errors so small messages (latency) count as much as large ones (bandwidth)."""
    x, t = np.asarray(bus, dtype=float), np.asarray(seconds, dtype=float)
    if len(t) < 2 or np.any(t <= 0) or np.any(x <= 0):
        raise ValueError("need two or more sizes with positive times to fit alpha and B")
    peak = float(np.max(x / t))

    def residuals(theta: Array) -> Array:
        alpha, inv_bw = np.exp(theta)
        return np.log(alpha + x * inv_bw) - np.log(t)

    start = np.log([max(t.min() / 2.0, 1e-9), 1.0 / peak])
    lower = np.log([1e-12, 1.0 / (peak * 100.0)])
    upper = np.log([t.max(), 1.0 / (peak / 100.0)])
    result = least_squares(residuals, np.clip(start, lower + 1e-9, upper - 1e-9),
                           bounds=(lower, upper), method="trf")
    alpha, inv_bw = np.exp(result.x)
    return AlphaBeta(alpha_s=float(alpha), bus_bw=float(1.0 / inv_bw), peak_bus_bw=peak,
                     rms_rel_error=float(np.sqrt(np.mean(result.fun ** 2))))
