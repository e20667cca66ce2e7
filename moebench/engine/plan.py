"""Parallel plans as the engine reads them: the fields a user fixes (:class:`PlanRequest`) and
candidate plans as flat numpy arrays (:class:`PlanArrays`).

A plan is (TP, PP, VPP, EP, ETP, CP, DP, micro-batch, sharding, optimizer offload, recompute,
schedule); :mod:`moebench.engine.plan_space` enumerates the ones real frameworks accept.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from moebench.engine.layout import (
    GIVEN,
    LAYOUTS,
    StageCounts,
    WrittenLayout,
    stage_counts,
)
from moebench.inputs.release import Release
from moebench.inputs.run import (
    CP_KINDS,
    DUALPIPEV,
    OFFLOAD_MODULES,
    RECOMPUTE,
    RECOMPUTE_MODULES,
    SCHEDULES,
    SHARDING,
    module_names,
)
from moebench.inputs.settings import plan_defaults

HSDP = SHARDING.index("hsdp")


@dataclass(frozen=True)
class PlanArrays:
    """Parallel plans as equal-length integer arrays (one entry per plan)."""

    tp: np.ndarray
    pp: np.ndarray
    vpp: np.ndarray
    ep: np.ndarray
    etp: np.ndarray
    cp: np.ndarray
    dp: np.ndarray
    mb: np.ndarray
    recompute: np.ndarray
    """0 none, 1 selective (the modules in ``rc_modules``), 2 full."""
    rc_modules: np.ndarray
    """Bit mask of the modules recomputed under selective (:data:`RECOMPUTE_MODULES`); 0 for
    none and full."""
    schedule: np.ndarray
    """Index into :data:`SCHEDULES`: 0 1F1B (interleaved when vpp > 1), 1 DualPipe, 2 ZB1P,
    3 DualPipeV (two model chunks per rank in a V)."""
    sharding: np.ndarray
    """Index into :data:`SHARDING`: 0 zero-0 ... 3 zero-3, 4 hsdp."""
    cp_kind: np.ndarray
    """Index into :data:`CP_KINDS`: 0 ring, 1 Ulysses."""
    shard: np.ndarray
    """Ranks the dense training state is sharded over: 1 (zero-0), dp*cp (zero-1 to 3) or the
    hybrid shard group (hsdp)."""
    optimizer_offload: np.ndarray
    """Fraction (float) of each rank's optimizer states (FP32 master and Adam moments) kept in
    host memory and stepped on the CPU: 0 none, 1 all (Megatron-Core --optimizer-cpu-offload
    --optimizer-offload-fraction)."""
    layout: np.ndarray | None = None
    """Index into :data:`~moebench.engine.layout.LAYOUTS` per plan; None: balanced for all
    (the search's choice, no column built)."""
    written: WrittenLayout | None = None
    """The written-out layout of the plans whose layout is ``given``."""
    act_offload: np.ndarray | None = None
    """Bit mask per plan of the modules whose saved inputs go to host memory
    (:data:`~moebench.inputs.run.OFFLOAD_MODULES`); None: no activation offload, no column."""

    def columns(self) -> dict[str, np.ndarray]:
        """The per-plan arrays by field name (a missing layout column left out)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "written" and getattr(self, f.name) is not None}

    @property
    def recompute_level(self) -> np.ndarray:
        """Recompute as one ordered number: none < selective module sets (by mask) < full;
        along the searched chain, a larger level is a superset."""
        return self.recompute.astype(np.int64) * (1 << len(RECOMPUTE_MODULES)) + self.rc_modules

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    @property
    def chunks(self) -> np.ndarray:
        """Model chunks per pipeline rank: vpp, or 2 under DualPipeV (stages i and 2pp-1-i)."""
        return np.where(self.schedule == DUALPIPEV, 2, self.vpp)

    def layers_per_stage(self, num_layers: int) -> np.ndarray:
        """Layers on the fullest pipeline rank: ceil(L / (pp * c)) layers in each of its c
        chunks (c = :attr:`chunks`; never more than L) unless a written layout says otherwise.
        """
        return self.stage_counts(num_layers).fullest

    def stage_counts(self, num_layers: int) -> StageCounts:
        """Layers on the first, the loss's, the fullest and MTP's rank of every plan."""
        return stage_counts(self.pp, self.vpp, self.chunks, self.layout, self.written,
                            num_layers)

    @property
    def expert_dp(self) -> np.ndarray:
        """Expert-data-parallel size: the ranks of a stage (tp*cp*dp) over ep*etp."""
        return (self.tp * self.cp * self.dp / (self.ep * self.etp)).astype(float)

    @property
    def expert_shard(self) -> np.ndarray:
        """Ranks the routed experts' training state is sharded over: 1 (zero-0), the
        expert-data-parallel group, or under hsdp the ranks it shares with the shard group."""
        edp = self.expert_dp.astype(np.int64)
        return np.where(self.sharding == 0, 1,
                        np.where(self.sharding == HSDP, np.gcd(edp, self.shard), edp)
                        ).astype(float)

    def take(self, idx: np.ndarray | int) -> PlanArrays:
        idx = np.atleast_1d(idx)
        return PlanArrays(**{k: v[idx] for k, v in self.columns().items()},
                          written=self.written)

    def concat(self, other: PlanArrays) -> PlanArrays:
        """These plans followed by ``other``'s (the same layout request)."""
        mine, theirs = self.columns(), other.columns()
        names = [f.name for f in fields(self) if f.name in mine or f.name in theirs]

        def column(k: str, plans: PlanArrays, cols: dict[str, np.ndarray]) -> np.ndarray:
            # An optional column one side lacks is its default there: 0 (balanced, none).
            return cols[k] if k in cols else np.zeros(len(plans), dtype=np.int64)

        return PlanArrays(**{k: np.concatenate([column(k, self, mine), column(k, other, theirs)])
                             for k in names}, written=self.written or other.written)

    def with_act_offload(self, mask: int) -> PlanArrays:
        """The same plans with their activation-offload modules set."""
        return replace(self, act_offload=np.full(len(self), mask, dtype=np.int64))

    def with_offload(self, fraction: float) -> PlanArrays:
        """The same plans with the optimizer-offload fraction set."""
        return replace(self, optimizer_offload=np.full(len(self), fraction))

    def describe(self, i: int, num_micro: int, num_layers: int | None = None
                 ) -> dict[str, object]:
        """Plan ``i`` as a plain mapping (the JSON ``plan`` object; with ``num_layers``, the
        layers on its first, last and fullest pipeline rank)."""
        return {
            "tp": int(self.tp[i]), "pp": int(self.pp[i]), "vpp": int(self.vpp[i]),
            "ep": int(self.ep[i]), "etp": int(self.etp[i]), "cp": int(self.cp[i]),
            "dp": int(self.dp[i]),
            "micro_batch": int(self.mb[i]), "num_micro_batches": num_micro,
            "recompute": RECOMPUTE[int(self.recompute[i])],
            "recompute_modules": module_names(int(self.rc_modules[i])),
            "schedule": SCHEDULES[int(self.schedule[i])],
            "sharding": SHARDING[int(self.sharding[i])], "shard_group": int(self.shard[i]),
            "cp_kind": CP_KINDS[int(self.cp_kind[i])],
            "optimizer_offload": float(self.optimizer_offload[i]),
            "offload_modules": module_names(
                0 if self.act_offload is None else int(self.act_offload[i]), OFFLOAD_MODULES),
            **self.describe_layout(i, num_layers),
        }

    def describe_layout(self, i: int, num_layers: int | None) -> dict[str, object]:
        """Plan ``i``'s pipeline layout: its kind (or the layout as written) and the layers
        on its first, last (the loss's) and fullest rank."""
        kind = 0 if self.layout is None else int(self.layout[i])
        name = self.written.text if kind == GIVEN and self.written else LAYOUTS[kind]
        if int(self.pp[i]) == 1 or num_layers is None:
            return {"pipeline_layout": name}
        counts = self.take(i).stage_counts(num_layers)
        return {"pipeline_layout": name,
                "stage_layers": {"first": int(counts.first[0]), "last": int(counts.head[0]),
                                 "fullest": int(counts.fullest[0])}}



@dataclass(frozen=True, kw_only=True)
class PlanRequest:
    """Plan fields the user fixed; None means 'search it'."""

    tp: int | None = None
    pp: int | None = None
    vpp: int | None = None
    ep: int | None = None
    etp: int | None = None
    cp: int | None = None
    micro_batch: int | None = None
    recompute: str | None = None
    recompute_modules: tuple[str, ...] | None = None
    """Modules recomputed under selective (:data:`RECOMPUTE_MODULES`); None: selective's own
    set, or searched."""
    schedule: str | None = None
    sharding: str | None = None
    cp_kind: str | None = None
    shard_group: int | None = None
    """Hybrid shard group size (hsdp); default: the data-parallel ranks in one scale-up
    domain."""
    optimizer_offload: float | None = None
    """Fraction of the optimizer states offloaded to the host, 0 to 1."""
    pipeline_layout: str | None = None
    """balanced, even or a written layout (:mod:`moebench.engine.layout`); None: balanced,
    the search's choice."""
    offload_modules: tuple[str, ...] | None = None
    """Modules whose saved inputs go to host memory (:data:`OFFLOAD_MODULES`); () none; None:
    searched (none, or the stack's own modules where a plan needs them to fit)."""

    def __post_init__(self) -> None:
        for name in ("recompute_modules", "offload_modules"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    def with_defaults(self, release: Release, search: frozenset[str] = frozenset()
                      ) -> PlanRequest:
        """The request with the release's default schedule and pipeline layout where it gives
        none and they are not searched (:func:`moebench.inputs.settings.plan_defaults`)."""
        return replace(self, **plan_defaults(release, self.__dict__, search))

    def is_complete(self) -> bool:
        return all(getattr(self, f.name) is not None for f in fields(self)
                   if f.name not in ("shard_group", "recompute_modules", "pipeline_layout",
                                     "offload_modules"))


