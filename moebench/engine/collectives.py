"""Time of collective operations: alpha-beta cost per link level, with links as they are wired.

A group of ``n`` ranks has ``n_in`` ranks inside each scale-up domain (NVLink, HCCS, Infinity
Fabric) and ``n / n_in`` domains joined by the scale-out network (InfiniBand, RoCE), one NIC per
chip. Bandwidths are achievable ones: link rate x measured bus efficiency x the stack's share of
it. All functions take numpy arrays or scalars and broadcast, so one call evaluates every
candidate plan.

A switched scale-up domain (NVSwitch, a UB Clos) gives any pair of chips the chip's whole
bandwidth. A full mesh (Ascend 910B HCCS, AMD Infinity Fabric, Gaudi's RoCE mesh) wires one
direct link to each peer: a group of g chips inside the domain reaches its g-1 peers over g-1 of
the L links, so it gets (g-1)/L of the chip's bandwidth, and a point-to-point transfer 1/L
(measured on 910B: 2-NPU all-gather at one link's rate, 8 NPUs at seven; MI300X all-reduce
47.7 GB/s on 2 GPUs against 312.9 on 8, stas00/ml-engineering network/README.md).

Sources: ring algorithms' bus-bandwidth factors as in nccl-tests' PERFORMANCE.md
(all-reduce 2(n-1)/n, all-gather and reduce-scatter (n-1)/n); hierarchical (intra-domain
reduce-scatter, inter-domain collective on the 1/n_in shard, intra-domain all-gather) as in NCCL
and Megatron for multi-node groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from moebench.inputs.hardware import Chip, Num


@dataclass(frozen=True)
class Links:
    """Achievable bandwidth (byte/s) and per-step latency (s) of both link levels."""

    up_bw: Num
    up_lat: Num
    out_bw: Num
    out_lat: Num
    domain: int
    mesh_links: int | None = None
    """Direct links per chip when the scale-up domain is a full mesh; None when switched."""
    up_a2a_bw: Num | None = None
    """Scale-up bandwidth of an all-to-all, at the chip's all-to-all bus efficiency; None runs
    it at ``up_bw`` (no all-to-all measured apart)."""

    @classmethod
    def of(cls, chip: Chip, share: Num = 1.0) -> Links:
        """The chip's links at ``share`` of their measured efficiency (the stack's)."""
        return cls(
            up_bw=chip.up_bw * chip.up_eff * share, up_lat=chip.up_latency,
            out_bw=chip.out_bw * chip.out_eff * share, out_lat=chip.out_latency,
            domain=chip.up_domain, mesh_links=chip.up_mesh_links,
            up_a2a_bw=chip.up_bw * chip.up_a2a_eff * share,
        )

    def up_group_bw(self, n_in: Num, bw: Num | None = None) -> np.ndarray:
        """Scale-up bandwidth one rank gets in a collective among ``n_in`` ranks of a domain,
        of a domain-wide bandwidth ``bw`` (``up_bw`` unless given): a full mesh uses only the
        links to the other n_in - 1 members."""
        n_in = np.asarray(n_in, dtype=float)
        full = self.up_bw if bw is None else bw
        if self.mesh_links is None:
            return full * np.ones_like(n_in)
        used = np.clip(n_in - 1.0, 1.0, self.mesh_links)
        return full * used / self.mesh_links

    def up_pair_bw(self) -> Num:
        """Scale-up bandwidth of one point-to-point transfer between two chips of a domain."""
        return self.up_bw if self.mesh_links is None else self.up_bw / self.mesh_links


def ranks_per_domain(group: Num, stride: Num, domain: int) -> np.ndarray:
    """How many members of a group sit in one scale-up domain.

    Members are ``stride`` ranks apart (Megatron orders ranks tp, cp, ep/dp, pp from the inside
    out), so a domain of D chips holds max(1, D / stride) of them, at most the whole group.
    """
    group = np.asarray(group)
    per = np.maximum(1, np.asarray(domain) // np.maximum(1, np.asarray(stride)))
    return np.minimum(group, per)


def gather_time(bytes_total: Num, n: Num, n_in: Num, links: Links) -> np.ndarray:
    """All-gather or reduce-scatter of a ``bytes_total`` buffer over ``n`` ranks.

    Hierarchical: each rank moves (n_in-1)/n_in of the buffer over scale-up and the inter-domain
    part, (n_out-1)/n_out of its 1/n_in shard, over its own NIC:
    t = (n_in-1)/n_in * M / B_up(n_in) + (n_out-1)/n_out * M / (n_in B_out) + latency terms.
    """
    n = np.asarray(n, dtype=float)
    n_in = np.asarray(n_in, dtype=float)
    n_out = n / n_in
    up = links.up_group_bw(n_in)
    intra = (n_in - 1) / n_in * bytes_total / up + (n_in - 1) * links.up_lat
    inter = (n_out - 1) / n_out * bytes_total / (n_in * links.out_bw) + (n_out - 1) * links.out_lat
    return np.where(n > 1, intra + inter, 0.0)


def allreduce_time(bytes_total: Num, n: Num, n_in: Num, links: Links) -> np.ndarray:
    """All-reduce = reduce-scatter + all-gather: twice :func:`gather_time`."""
    return 2.0 * gather_time(bytes_total, n, n_in, links)


def p2p_time(bytes_msg: Num, cross_domain: Num, links: Links) -> np.ndarray:
    """One point-to-point transfer, over scale-out when ``cross_domain`` else one scale-up link."""
    return np.where(
        cross_domain,
        bytes_msg / links.out_bw + links.out_lat,
        bytes_msg / links.up_pair_bw() + links.up_lat,
    )


def distinct_remote_domains(n_domains: Num, top_k: int, node_limit: int | None) -> np.ndarray:
    """Expected number of other domains a token's top-k experts land in.

    With experts spread evenly over N domains and picked independently, a given domain receives
    at least one of the k copies with probability 1 - (1 - 1/N)^k; node-limited routing caps the
    domains per token at M (DeepSeek-V3 sec. 2.1.2). Of the domains used, (N-1)/N are remote.
    """
    n = np.asarray(n_domains, dtype=float)
    used = n * (1.0 - (1.0 - 1.0 / n) ** top_k)
    if node_limit is not None:
        used = np.minimum(used, node_limit)
    return used * (n - 1.0) / n


def distinct_remote_ranks(ep: Num, ep_in: Num, top_k: int, num_experts: int,
                          node_limit: int | None) -> np.ndarray:
    """Expected number of other ranks holding at least one of a token's top-k experts.

    With E experts, E/ep on each rank, and k distinct experts per token picked uniformly, a
    rank holds none of them with probability C(E - E/ep, k) / C(E, k) = prod_{i<k} (E - E/ep -
    i) / (E - i). Node-limited routing (DeepSeek-V3 sec. 2.1.2) draws the k among the experts of
    the M domains it picks, a pool of M x ep_in ranks, when the group spans more than M domains.
    Of the ranks used, (ep-1)/ep are another's. Few experts per rank make it k (ep-1)/ep: one
    copy per expert; many make it smaller (top-8 of 128 experts over 8 ranks: 4.7, not 7)."""
    ep = np.asarray(ep, dtype=float)
    ep_in = np.asarray(ep_in, dtype=float)
    pool = ep if node_limit is None else np.where(ep / ep_in > node_limit, node_limit * ep_in, ep)
    per_rank = num_experts / ep
    experts = pool * per_rank
    none = np.ones_like(pool)
    for i in range(top_k):
        none = none * np.maximum(experts - per_rank - i, 0.0) / np.maximum(experts - i, 1.0)
    return pool * (1.0 - none) * (ep - 1.0) / ep


def contiguous_units(num_experts: int, top_k: int, units: Num) -> np.ndarray:
    """Expected number of units (ranks, or scale-up domains) a token's experts span when the
    router gives it k consecutive experts, token t taking experts t k .. t k + k - 1 (mod E),
    as NeMo AutoModel's FakeBalancedGate does: the starts t k mod E run over the multiples of
    g = gcd(k, E), and a start s spans floor((s + k - 1) / u) - floor(s / u) + 1 units of
    u = E / units experts each. With u a multiple of k that is one unit: every token to one
    rank and one domain."""
    units = np.asarray(units, dtype=float)
    out = np.empty_like(units)
    g = math.gcd(top_k, num_experts)
    starts = np.arange(0, num_experts, g, dtype=float)
    for n in np.unique(units):
        u = num_experts / n
        span = np.floor((starts + top_k - 1) / u) - np.floor(starts / u) + 1
        out[units == n] = float(np.mean(np.minimum(span, n)))
    return out


def alltoall_time(
    token_bytes: Num, tokens: Num, top_k: int, ep: Num, ep_in: Num,
    node_limit: int | None, links: Links, deduplicate: bool = True,
    num_experts: int | None = None, per_rank: bool = False, contiguous: bool = False,
) -> np.ndarray:
    """One MoE dispatch (or combine) all-to-all for ``tokens`` tokens sent by each rank.

    Of a token's k copies, (ep-1)/ep go to other ranks. A deduplicating dispatcher (DeepEP,
    HybridEP) sends one copy per distinct remote domain over scale-out and forwards it inside
    that domain, once to each rank that holds any of the token's experts (DeepEP's
    is_token_in_rank layout, ``per_rank``; else once per expert), so every remote copy crosses
    scale-up once: intra = distinct remote ranks (:func:`distinct_remote_ranks`) or k (ep-1)/ep,
    inter = distinct remote domains. Under ``contiguous`` routing (a benchmark's fake gate) the
    ranks and domains a token reaches are those its k consecutive experts span
    (:func:`contiguous_units`), (n-1)/n of them another's. Both need ``num_experts``. A plain
    all-to-all (NCCL, HCCL) sends every copy straight to its rank: the copies for ranks in other
    domains, k (ep - ep_in)/ep, cross scale-out, and those inside the domain, k (ep_in - 1)/ep,
    scale-up.
    The two levels run at once, so the slower sets the time: max(intra/B_up, inter/B_out) + lat.
    B_up is what an all-to-all reaches of the link (the chip's all-to-all bus efficiency where
    measured: NCCL-tests 320 of 450 GB/s on 8 H100s, below the 0.84 a copy reaches).
    """
    ep = np.asarray(ep, dtype=float)
    ep_in = np.asarray(ep_in, dtype=float)
    n_domains = ep / ep_in
    if deduplicate:
        per_expert = top_k * (ep - 1.0) / ep
        if num_experts is not None and contiguous:
            ranks = contiguous_units(num_experts, top_k, ep) * (ep - 1.0) / ep
            domains = contiguous_units(num_experts, top_k, n_domains) * (n_domains - 1) / n_domains
        else:
            ranks = (per_expert if num_experts is None or not per_rank
                     else distinct_remote_ranks(ep, ep_in, top_k, num_experts, node_limit))
            domains = distinct_remote_domains(n_domains, top_k, node_limit)
        intra_copies = ranks if per_rank else per_expert
        remote = np.where(n_domains > 1, domains, 0.0)
    else:
        intra_copies = top_k * (ep_in - 1.0) / ep
        remote = top_k * (ep - ep_in) / ep
    up_bw = links.up_group_bw(ep_in, links.up_a2a_bw)
    t_intra = tokens * intra_copies * token_bytes / up_bw
    t_inter = tokens * remote * token_bytes / links.out_bw
    lat = np.where(n_domains > 1, links.out_lat, links.up_lat)
    return np.where(ep > 1, np.maximum(t_intra, t_inter) + lat, 0.0)
