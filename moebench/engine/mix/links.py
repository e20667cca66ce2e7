"""The path between chip types of a mixed cluster, and the time of what crosses it.

Chips of different vendors share no scale-up link, so cross-type traffic never touches NVLink,
HCCS or Infinity Fabric: it leaves each chip through its own NIC onto the site's shared fabric
(one port per chip; a flow runs at the slower of the fabric port and the two endpoints' NICs),
or, between sites, onto the WAN link that every chip of the site shares. Only the fabric profile
and the chips' scale-out NICs enter here, never a chip's scale-up figures (tested).

Alpha-beta model as in :mod:`moebench.engine.collectives`: time = latency + bytes / bandwidth,
with the bandwidth of ``flows`` parallel transfers min(flows x per-flow rate, link cap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.inputs.fabric import Fabric
from moebench.inputs.hardware import Chip

COMMON = "common fabric"
WAN = "WAN"
PLACEMENTS = ("same-site", "separate-sites")


@dataclass(frozen=True)
class CrossLink:
    """Achievable cross-type path: byte/s per flow, byte/s for the whole link, seconds per
    message step, and which network it is."""

    network: str
    per_flow_bw: float
    cap_bw: float
    """The whole link's byte/s (infinite on a switched fabric, where every chip has a port)."""
    latency: float

    def rate(self, flows: Any) -> Any:
        """Byte/s of ``flows`` transfers at once: min(flows x per-flow rate, link cap)."""
        return np.minimum(np.asarray(flows, dtype=float) * self.per_flow_bw, self.cap_bw)


def cross_link(fabric: Fabric, chips: Sequence[Chip], over_wan: bool) -> CrossLink:
    """The link between the chip types: the shared fabric of one site, or the WAN between sites.

    Per flow: min(fabric port, slowest endpoint NIC) x the fabric's cross-vendor efficiency on
    the shared fabric; the slowest NIC x the WAN efficiency, capped by the WAN link, between
    sites. The chips' scale-up bandwidth never enters.
    """
    nic = min(float(c.out_bw) for c in chips)
    if over_wan:
        return CrossLink(WAN, nic * fabric.wan_eff, fabric.wan_bw * fabric.wan_eff,
                         fabric.wan_latency)
    return CrossLink(COMMON, min(fabric.common_bw_per_chip, nic) * fabric.common_eff, math.inf,
                     fabric.common_latency)


def transfer_time(bytes_total: Any, flows: Any, link: CrossLink) -> Any:
    """Point-to-point traffic of ``bytes_total`` spread over ``flows`` chip pairs:
    t = alpha + M / min(flows x B_flow, B_cap)."""
    return link.latency + np.asarray(bytes_total, dtype=float) / link.rate(flows)


def group_allreduce_time(bytes_total: float, group_sizes: Sequence[int], link: CrossLink
                         ) -> float:
    """All-reduce of a buffer that each of T chip-type groups holds (sharded over its chips).

    A ring over the T groups (each group acting as one rank whose NICs are its chips' ports):
    every group sends and receives 2(T-1)/T of the buffer, and the group with the least
    bandwidth sets the pace (ring all-reduce bus factor, nccl-tests PERFORMANCE.md):
    t = 2(T-1)/T x M / min_t rate(n_t) + 2(T-1) alpha; zero for one group.
    """
    t = len(group_sizes)
    if t < 2:
        return 0.0
    slowest = float(min(link.rate(n) for n in group_sizes))
    return 2 * (t - 1) / t * bytes_total / slowest + 2 * (t - 1) * link.latency


def group_allreduce_bytes(bytes_total: float, groups: int) -> float:
    """Bytes each group sends (and receives) across in that all-reduce: 2(T-1)/T x M."""
    return 0.0 if groups < 2 else 2 * (groups - 1) / groups * bytes_total
