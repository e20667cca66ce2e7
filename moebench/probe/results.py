"""From measured points to the figures the step model reads.

- Max-achievable matmul rate: the best dense GEMM of the grid (what the catalog's
  ``bf16_gemm_efficiency`` means: best shape over the peak, as stas00's MAMF finder measures).
- GEMM shape curve: R, m_half and k_half fitted on the dense and grouped points together (a
  grouped GEMM's m is its tokens per expert, as the step model reads it).
- HBM: copy bandwidth, read plus write bytes over time.
- Host: seconds to issue one op; device: seconds per op back to back (the kernel floor).
- Attention: FLOP rate, forward and backward, at the longest sequence measured.
- Links: alpha-beta per collective; the all-reduce's gives the scale-up efficiency and latency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moebench.probe.fit import AlphaBeta, GemmCurve, fit_alpha_beta, fit_gemm_curve
from moebench.probe.runner import AttentionPoint, GemmPoint, Measurements


@dataclass(frozen=True)
class Fitted:
    best: GemmPoint
    """The dense GEMM with the highest rate: the max-achievable matmul rate."""
    curve: GemmCurve
    fp8_best: GemmPoint | None
    copy_bw: float
    """byte/s"""
    kernel_floor_s: float
    host_op_s: float
    attention: AttentionPoint | None
    links: dict[str, AlphaBeta]
    """Per collective, fitted over message sizes."""


def best_point(points: list[GemmPoint]) -> GemmPoint:
    return max(points, key=lambda p: p.flops_per_s)


def fit_measurements(meas: Measurements) -> Fitted:
    gemms = meas.dense + meas.grouped
    curve = fit_gemm_curve(np.array([p.m for p in gemms]), np.array([p.k for p in gemms]),
                           np.array([p.flops_per_s for p in gemms]))
    links = {}
    for op in dict.fromkeys(p.op for p in meas.collectives):
        points = [p for p in meas.collectives if p.op == op]
        if len(points) >= 2:
            links[op] = fit_alpha_beta(np.array([p.bus_bytes for p in points]),
                                       np.array([p.timing.median_s for p in points]))
    return Fitted(
        best=best_point(meas.dense), curve=curve,
        fp8_best=best_point(meas.fp8) if meas.fp8 else None,
        copy_bw=meas.copy.rate(meas.copy_bytes),
        kernel_floor_s=meas.kernel_floor.median_s, host_op_s=meas.host_op.median_s,
        attention=max(meas.attention, key=lambda a: a.seq) if meas.attention else None,
        links=links,
    )


def spreads(meas: Measurements) -> list[float]:
    """Every point's spread (interquartile range over median)."""
    timings = [p.timing for p in meas.dense + meas.grouped + meas.fp8]
    timings += [meas.copy, meas.kernel_floor, meas.host_op]
    timings += [a.timing for a in meas.attention] + [c.timing for c in meas.collectives]
    return [t.spread for t in timings]
