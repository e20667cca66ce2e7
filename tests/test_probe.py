"""moebench probe: fits with known answers, timing, the numpy backend end to end, a simulated
accelerator through the whole pipeline, --check, and every refusal as a one-line error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moebench.probe.backends import reference_attention
from moebench.probe.fit import (
    attention_flops,
    bus_bytes,
    fit_alpha_beta,
    fit_gemm_curve,
    gemm_flops,
    gemm_rate,
    link_efficiency,
    per_step_latency_s,
)
from moebench.probe.timing import MAX_INNER, Budget, Repeats, calls_per_run, measure, summarize

PEAK = 989.4e12

# -- fitting: synthetic timings with known answers ------------------------------------------


def grid() -> tuple[np.ndarray, np.ndarray]:
    rows = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    depths = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    shapes = [(m, 16384) for m in rows] + [(16384, k) for k in depths]
    shapes += [(x, x) for x in rows if x in depths]
    return np.array([s[0] for s in shapes], float), np.array([s[1] for s in shapes], float)


def test_gemm_fit_recovers_known_curve_from_noisy_timings():
    m, k = grid()
    n = 8192
    rng = np.random.default_rng(7)
    seconds = gemm_flops(m, k, n) / gemm_rate(m, k, 0.8 * PEAK, 130, 490)
    seconds *= np.exp(rng.normal(0.0, 0.03, len(seconds)))  # 3% timing noise
    curve = fit_gemm_curve(m, k, gemm_flops(m, k, n) / seconds)
    assert curve.rate_max.value / PEAK == pytest.approx(0.8, rel=0.03)
    assert curve.m_half.value == pytest.approx(130, rel=0.05)
    assert curve.k_half.value == pytest.approx(490, rel=0.05)
    assert curve.m_half.low < 130 < curve.m_half.high
    assert curve.k_half.low < 490 < curve.k_half.high
    assert 0.01 < curve.rms_rel_error < 0.05


def test_gemm_fit_is_exact_without_noise_and_refuses_too_few_points():
    m, k = grid()
    curve = fit_gemm_curve(m, k, gemm_rate(m, k, 0.7 * PEAK, 40, 900))
    assert curve.rate_max.value == pytest.approx(0.7 * PEAK, rel=1e-6)
    assert curve.m_half.value == pytest.approx(40, rel=1e-5)
    assert curve.k_half.value == pytest.approx(900, rel=1e-5)
    with pytest.raises(ValueError, match="at least 4"):
        fit_gemm_curve(m[:3], k[:3], np.ones(3))


def test_alpha_beta_fit_recovers_latency_and_bandwidth():
    rng = np.random.default_rng(3)
    sizes = np.array([2.0 ** p for p in range(20, 31, 2)])
    seconds = (6e-6 + sizes / 360e9) * np.exp(rng.normal(0.0, 0.02, len(sizes)))
    link = fit_alpha_beta(sizes, seconds)
    assert link.alpha_s == pytest.approx(6e-6, rel=0.1)
    assert link.bus_bw == pytest.approx(360e9, rel=0.03)
    assert link.peak_bus_bw == pytest.approx(float(np.max(sizes / seconds)))


def test_collective_arithmetic_follows_nccl_tests_and_the_step_model():
    assert bus_bytes("all_reduce", 1000, 8) == pytest.approx(1000 * 2 * 7 / 8)
    assert bus_bytes("all_gather", 1000, 8) == pytest.approx(1000 * 7 / 8)
    assert bus_bytes("all_to_all", 1000, 2) == pytest.approx(500)
    # A ring all-reduce over 8 ranks runs 2 x 7 steps.
    assert per_step_latency_s("all_reduce", 28e-6, 8) == pytest.approx(2e-6)
    assert per_step_latency_s("all_gather", 28e-6, 8) == pytest.approx(4e-6)
    assert link_efficiency(360e9, 450e9, 8, None) == pytest.approx(0.8)
    # A full mesh of 7 links: 4 ranks use 3 of them.
    assert link_efficiency(150e9, 392e9, 4, 7) == pytest.approx(150 / (392 * 3 / 7))


def test_attention_flops_match_the_step_model_count():
    from moebench.engine.workload import ATTENTION_BWD_FACTOR

    # Per token forward 2 h (d + d) s / 2, times s tokens, times (1 + backward factor).
    expected = 2.0 * 16 * (2 * 128) * 4096 / 2.0 * 4096 * (1 + ATTENTION_BWD_FACTOR)
    assert attention_flops(16, 4096, 128) == pytest.approx(expected)


# -- timing ---------------------------------------------------------------------------------


def test_summarize_gives_median_and_relative_iqr():
    t = summarize([1.0, 2.0, 3.0, 4.0, 100.0], inner=4)
    assert t.median_s == 3.0
    assert t.spread == pytest.approx((4.0 - 2.0) / 3.0)
    assert (t.runs, t.inner) == (5, 4)
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError, match="cannot resolve"):
        summarize([0.0, 0.0])


def test_measure_warms_up_runs_short_ops_back_to_back_and_stops_at_its_share():
    calls: list[int] = []

    def kernel(inner: int) -> float:
        calls.append(inner)
        return inner * 10e-6  # 10 us per call

    clock = iter(np.arange(0.0, 100.0, 1.0))  # one "second" per clock reading
    t = measure(kernel, share_s=2.5, repeats=Repeats(warmup=2, min_runs=3, max_runs=9,
                                                     min_run_s=1e-3),
                clock=lambda: float(next(clock)))
    assert calls[:3] == [1, 1, 1]  # two warm-ups, one call to size the runs
    assert all(c == 100 for c in calls[3:])  # 1 ms / 10 us back to back
    # The clock is read once the minimum runs are done: 1, 2, then 3 s >= 2.5 s: five runs.
    assert t.runs == 5 and t.inner == 100
    assert t.median_s == pytest.approx(10e-6)
    assert measure(kernel, share_s=0.0, repeats=Repeats(min_runs=3)).runs == 3
    t = measure(kernel, share_s=1e9, repeats=Repeats(max_runs=9))
    assert t.runs == 9


def test_calls_per_run_bounds():
    assert calls_per_run(1e-3, 1e-3) == 1
    assert calls_per_run(1e-6, 1e-3) == 1000
    assert calls_per_run(1e-9, 1e-3) == MAX_INNER
    assert calls_per_run(0.0, 1e-3) == MAX_INNER


def test_budget_shares_remaining_time_by_weight():
    now = [0.0]
    budget = Budget(100.0, [1.0, 1.0, 2.0], clock=lambda: now[0])
    assert budget.next_share_s() == pytest.approx(25.0)
    now[0] = 10.0  # the first step finished early: the others get its time
    assert budget.next_share_s() == pytest.approx(90.0 / 3)
    now[0] = 120.0  # overran
    assert budget.next_share_s() == 0.0
    with pytest.raises(IndexError):
        budget.next_share_s()
    with pytest.raises(ValueError):
        Budget(0.0, [1.0])


def test_reference_attention_forward_and_gradients():
    rng = np.random.default_rng(0)
    q, k, v, d_out = (rng.standard_normal((2, 5, 3)) for _ in range(4))
    out, dq, dk, dv = reference_attention(q, k, v, d_out)

    def forward(q, k, v):
        s = q @ k.transpose(0, 2, 1) / math.sqrt(3)
        s = np.where(np.triu(np.ones((5, 5), bool), 1), -np.inf, s)
        p = np.exp(s - s.max(-1, keepdims=True))
        return (p / p.sum(-1, keepdims=True)) @ v

    assert np.allclose(out, forward(q, k, v))
    assert np.allclose(out[:, 0], v[:, 0])  # causal: the first query sees the first key only
    eps, plain = 1e-6, forward(q, k, v)
    for grad, which in ((dq, 0), (dk, 1), (dv, 2)):  # against finite differences
        for index in np.ndindex(q.shape):
            args = [q, k, v]
            bumped = args[which].copy()
            bumped[index] += eps
            args[which] = bumped
            numeric = ((forward(*args) - plain) * d_out).sum() / eps
            assert grad[index] == pytest.approx(numeric, rel=1e-4, abs=1e-5)
