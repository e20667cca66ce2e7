"""Every strategy on one mixed cluster, and each chip type alone, from one call."""

from __future__ import annotations

import time
from dataclasses import dataclass

from moebench.engine.mix.data_parallel import ExactShares, hetero_data_parallel, local_sgd
from moebench.engine.mix.links import PLACEMENTS, CrossLink, cross_link
from moebench.engine.mix.pipeline import hetero_pipeline
from moebench.engine.mix.result import DATA_PARALLEL, LOCAL_SGD, PIPELINE, StrategyResult
from moebench.engine.mix.shares import MixType
from moebench.engine.plan import PlanRequest
from moebench.engine.search import SearchResult
from moebench.errors import InputError
from moebench.inputs.fabric import Fabric
from moebench.inputs.model import ModelArch

DEFAULT_SYNC_EVERY = 100


@dataclass(frozen=True)
class MixSearch:
    """The strategies on a mix (by name, in the order modelled), each type alone on the whole
    batch (None where no plan fits), and the links cross-type traffic rides."""

    arch: ModelArch
    types: tuple[MixType, ...]
    strategies: dict[str, StrategyResult]
    alone: tuple[SearchResult | None, ...]
    link: CrossLink
    wan: CrossLink
    placement: str
    sync_every: int
    search_seconds: float


def search_mix(arch: ModelArch, types: list[MixType], request: PlanRequest, fabric: Fabric,
               placement: str = "same-site", sync_every: int = DEFAULT_SYNC_EVERY) -> MixSearch:
    """Heterogeneous data parallel and pipeline over the common fabric (or the WAN when the
    types sit on separate sites), loosely coupled sites over the WAN, and each type alone."""
    if placement not in PLACEMENTS:
        raise InputError("--placement", None,
                         f"expected one of {', '.join(PLACEMENTS)}, got {placement!r}")
    if sync_every < 1:
        raise InputError("--sync-every", None, f"must be at least 1 step, got {sync_every}")
    start = time.perf_counter()
    chips = [t.chip for t in types]
    link = cross_link(fabric, chips, over_wan=placement == "separate-sites")
    wan = cross_link(fabric, chips, over_wan=True)
    exact = ExactShares(arch, types, request)
    strategies = {
        DATA_PARALLEL: hetero_data_parallel(arch, types, link, exact),
        PIPELINE: hetero_pipeline(arch, types, request, link),
        LOCAL_SGD: local_sgd(arch, types, wan, fabric.sync_bytes_per_param, sync_every, exact),
    }
    g = types[0].run.global_batch
    alone = tuple(exact.result(k, g) for k in range(len(types)))
    return MixSearch(arch=arch, types=tuple(types), strategies=strategies, alone=alone,
                     link=link, wan=wan, placement=placement, sync_every=sync_every,
                     search_seconds=time.perf_counter() - start)
