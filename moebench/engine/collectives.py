"""Time of collective operations: alpha-beta cost per link level.

A group of ``n`` ranks has ``n_in`` ranks inside each scale-up domain (NVLink, HCCS, Infinity
Fabric) and ``n / n_in`` domains joined by the scale-out network (InfiniBand, RoCE), one NIC per
chip. Bandwidths are achievable ones: link rate x measured bus efficiency. All functions take
numpy arrays or scalars and broadcast, so one call evaluates every candidate plan.

Sources: ring algorithms' bus-bandwidth factors as in nccl-tests' PERFORMANCE.md
(all-reduce 2(n-1)/n, all-gather and reduce-scatter (n-1)/n); hierarchical (intra-domain
reduce-scatter, inter-domain collective on the 1/n_in shard, intra-domain all-gather) as in NCCL
and Megatron for multi-node groups.
"""

from __future__ import annotations

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

    @classmethod
    def of(cls, chip: Chip) -> Links:
        return cls(
            up_bw=chip.up_bw * chip.up_eff, up_lat=chip.up_latency,
            out_bw=chip.out_bw * chip.out_eff, out_lat=chip.out_latency, domain=chip.up_domain,
        )


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

    Hierarchical: each rank moves (n_in-1)/n_in of the buffer's share over scale-up and the
    inter-domain part, (n_out-1)/n_out of its 1/n_in shard, over its own NIC:
    t = (n_in-1)/n_in * M / B_up + (n_out-1)/n_out * M / (n_in B_out) + latency terms.
    """
    n = np.asarray(n, dtype=float)
    n_in = np.asarray(n_in, dtype=float)
    n_out = n / n_in
    intra = (n_in - 1) / n_in * bytes_total / links.up_bw + (n_in - 1) * links.up_lat
    inter = (n_out - 1) / n_out * bytes_total / (n_in * links.out_bw) + (n_out - 1) * links.out_lat
    return np.where(n > 1, intra + inter, 0.0)


def allreduce_time(bytes_total: Num, n: Num, n_in: Num, links: Links) -> np.ndarray:
    """All-reduce = reduce-scatter + all-gather: twice :func:`gather_time`."""
    return 2.0 * gather_time(bytes_total, n, n_in, links)


def p2p_time(bytes_msg: Num, cross_domain: Num, links: Links) -> np.ndarray:
    """One point-to-point transfer, over scale-out when ``cross_domain`` else scale-up."""
    return np.where(
        cross_domain,
        bytes_msg / links.out_bw + links.out_lat,
        bytes_msg / links.up_bw + links.up_lat,
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


def alltoall_time(
    token_bytes: Num, tokens: Num, top_k: int, ep: Num, ep_in: Num,
    node_limit: int | None, links: Links,
) -> np.ndarray:
    """One MoE dispatch (or combine) all-to-all for ``tokens`` tokens sent by each rank.

    Intra-domain: every copy not kept locally crosses scale-up once, directly or when forwarded
    inside the destination domain: k (ep-1)/ep copies per token. Cross-domain: one copy per
    distinct remote domain (DeepEP-style deduplication, then NVLink forwarding). The two levels
    run at once, so the slower sets the time: t = max(intra / B_up, inter / B_out) + latency.
    """
    ep = np.asarray(ep, dtype=float)
    n_domains = ep / np.asarray(ep_in, dtype=float)
    intra_copies = top_k * (ep - 1.0) / ep
    remote = np.where(n_domains > 1, distinct_remote_domains(n_domains, top_k, node_limit), 0.0)
    t_intra = tokens * intra_copies * token_bytes / links.up_bw
    t_inter = tokens * remote * token_bytes / links.out_bw
    lat = np.where(n_domains > 1, links.out_lat, links.up_lat)
    return np.where(ep > 1, np.maximum(t_intra, t_inter) + lat, 0.0)
