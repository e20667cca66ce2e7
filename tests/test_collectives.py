"""Alpha-beta collective times against hand-computed values."""

import math

import numpy as np
import pytest

from moebench.engine.collectives import (
    Links,
    allreduce_time,
    alltoall_time,
    contiguous_units,
    distinct_remote_domains,
    distinct_remote_ranks,
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


def test_distinct_remote_ranks_by_hand():
    """A per-rank dispatcher (DeepEP) sends a token once to each other rank holding any of
    its experts. Top-8 of 128 experts on 8 ranks (16 each): a rank holds none with
    probability prod_{i<8} (112 - i) / (128 - i); 8 (1 - that) ranks, 7/8 of them another's.
    Top-2 of 8 experts, one per rank: exactly 2 ranks, 2 x 7/8 remote (as one copy per
    expert). Node-limited to 4 of 8 domains of 8 ranks, 256 experts: the pool is 32 ranks."""
    none = np.prod([(112 - i) / (128 - i) for i in range(8)])
    assert float(distinct_remote_ranks(8, 8, 8, 128, None)) == pytest.approx(
        8 * (1 - none) * 7 / 8)
    assert float(distinct_remote_ranks(8, 8, 8, 128, None)) == pytest.approx(4.672, abs=1e-3)
    assert float(distinct_remote_ranks(8, 8, 2, 8, None)) == pytest.approx(2 * 7 / 8)
    pooled = np.prod([(124 - i) / (128 - i) for i in range(8)])
    assert float(distinct_remote_ranks(64, 8, 8, 256, 4)) == pytest.approx(
        32 * (1 - pooled) * 63 / 64)
    # Inside one domain a per-rank dispatch moves 4.67 copies per token, not 7.
    links = Links(up_bw=100e9, up_lat=0.0, out_bw=10e9, out_lat=0.0, domain=8)
    per_expert = float(alltoall_time(1e3, 1000, 8, 8, 8, None, links))
    per_rank = float(alltoall_time(1e3, 1000, 8, 8, 8, None, links, num_experts=128,
                                    per_rank=True))
    assert per_expert == pytest.approx(1000 * 7 * 1e3 / 100e9)
    assert per_rank == pytest.approx(1000 * 8 * (1 - none) * 7 / 8 * 1e3 / 100e9)


def test_contiguous_routing_spans_the_fewest_ranks():
    """A fake balanced gate giving token t experts t k .. t k + k - 1 (mod E): top-8 of 128
    experts over 8 ranks of 16 lands on one rank; of 256 over 64 ranks of 4, on two; of 384
    over 32 ranks of 12 the starts 0, 8, 16 (mod 24) span 1, 2 and 1 ranks: 4/3. A per-rank
    dispatcher then sends each token 7/8 of a copy inside one domain of 8, not 4.67."""
    assert float(contiguous_units(128, 8, 8)) == 1.0
    assert float(contiguous_units(256, 8, 64)) == 2.0
    assert float(contiguous_units(384, 8, 32)) == pytest.approx(4 / 3)
    assert float(contiguous_units(256, 8, 8)) == 1.0
    links = Links(up_bw=100e9, up_lat=0.0, out_bw=10e9, out_lat=0.0, domain=8)
    t = float(alltoall_time(1e3, 1000, 8, 8, 8, None, links, num_experts=128, per_rank=True,
                            contiguous=True))
    assert t == pytest.approx(1000 * 7 / 8 * 1e3 / 100e9)


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


def test_alltoall_runs_at_the_chips_alltoall_efficiency():
    """An all-to-all's remote bytes reach the chip's all-to-all bus efficiency, not the copy
    rate the other collectives use: on an H100 (NVLink 4, 450 GB/s a direction) NCCL-tests
    measure 320 GB/s of all-to-all bus bandwidth (0.71) against 376 GB/s point to point
    (0.836). 1000 tokens x 7 remote copies x 1 KB over 450e9 x 0.71 x the stack's share; the
    gather keeps 0.836."""
    from moebench.inputs.hardware import load_chip

    h100 = load_chip("h100")
    assert h100.up_eff == pytest.approx(0.836) and h100.up_a2a_eff == pytest.approx(0.71)
    links = Links.of(h100, 0.5)
    t = float(alltoall_time(1e3, 1000, 8, 8, 8, None, links))
    assert t == pytest.approx(1000 * 7 * 1e3 / (450e9 * 0.71 * 0.5) + 3e-6)
    assert float(gather_time(1e9, 8, 8, links)) == pytest.approx(
        7 / 8 * 1e9 / (450e9 * 0.836 * 0.5) + 7 * 3e-6)
    # A chip with no all-to-all measurement runs it at its one scale-up efficiency.
    mi300x = load_chip("mi300x")
    assert mi300x.up_a2a_eff == mi300x.up_eff
