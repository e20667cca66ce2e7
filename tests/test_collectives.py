"""Alpha-beta collective times against hand-computed values."""

import math

import pytest

from moebench.engine.collectives import (
    Links,
    allreduce_time,
    alltoall_time,
    distinct_remote_domains,
    gather_time,
    p2p_time,
    ranks_per_domain,
)

LINKS = Links(up_bw=100e9, up_lat=1e-6, out_bw=10e9, out_lat=5e-6, domain=8)


def test_gather_inside_one_domain():
    # (n-1)/n * M / B_up + (n-1) alpha = 7/8 * 1e9 / 1e11 + 7e-6
    assert float(gather_time(1e9, 8, 8, LINKS)) == pytest.approx(0.00875 + 7e-6)


def test_gather_across_two_domains_is_hierarchical():
    intra = 0.00875 + 7e-6
    inter = 0.5 * 1e9 / (8 * 10e9) + 5e-6  # the 1/8 shard over each chip's own NIC
    assert float(gather_time(1e9, 16, 8, LINKS)) == pytest.approx(intra + inter)
    assert float(allreduce_time(1e9, 16, 8, LINKS)) == pytest.approx(2 * (intra + inter))


def test_single_rank_costs_nothing():
    assert float(gather_time(1e9, 1, 1, LINKS)) == 0.0
    assert float(alltoall_time(1e3, 100, 2, 1, 1, None, LINKS)) == 0.0


def test_ranks_per_domain():
    assert int(ranks_per_domain(16, 2, 8)) == 4
    assert int(ranks_per_domain(4, 16, 8)) == 1
    assert int(ranks_per_domain(2, 1, 8)) == 2


def test_distinct_remote_domains_and_node_limit():
    n, k = 8, 8
    assert float(distinct_remote_domains(n, k, None)) == pytest.approx(
        n * (1 - (1 - 1 / n) ** k) * (n - 1) / n)
    assert float(distinct_remote_domains(n, k, 4)) == pytest.approx(4 * 7 / 8)


def test_alltoall_inside_and_across_domains():
    # inside: 2 * 7/8 copies x 100 tokens x 1000 B over 100 GB/s + up latency
    assert float(alltoall_time(1000, 100, 2, 8, 8, None, LINKS)) == pytest.approx(2.75e-6)
    # across two domains: 0.75 remote copies per token over 10 GB/s is slower than NVLink
    remote = 2 * (1 - 0.5**2) * 0.5
    assert remote == 0.75
    expected = 100 * remote * 1000 / 10e9 + 5e-6
    assert float(alltoall_time(1000, 100, 2, 16, 8, None, LINKS)) == pytest.approx(expected)


def test_p2p_picks_the_link():
    assert float(p2p_time(1e6, False, LINKS)) == pytest.approx(1e-5 + 1e-6)
    assert float(p2p_time(1e6, True, LINKS)) == pytest.approx(1e-4 + 5e-6)
    assert math.isfinite(float(p2p_time(0.0, True, LINKS)))
