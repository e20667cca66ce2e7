"""Parallel plans: their constraints and their vectorised enumeration.

A plan is (TP, PP, VPP, EP, CP, DP, micro-batch, recompute, schedule). The search builds every
combination of the candidate values as flat numpy arrays and keeps those that real frameworks
accept (Megatron-Core's rules, noted per mask), in one pass with no Python loop per plan.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from moebench.errors import InputError
from moebench.hardware import Chip
from moebench.model import MlaAttention, ModelArch
from moebench.run import RECOMPUTE, SCHEDULES, RunConfig

POW2 = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
MICRO_BATCHES = (1, 2, 4, 8)
VPP_CHOICES = (1, 2, 3, 4, 6, 8)
CP_CHOICES = (1, 2, 4, 8)


@dataclass(frozen=True)
class PlanArrays:
    """Parallel plans as equal-length integer arrays (one entry per plan)."""

    tp: np.ndarray
    pp: np.ndarray
    vpp: np.ndarray
    ep: np.ndarray
    cp: np.ndarray
    dp: np.ndarray
    mb: np.ndarray
    recompute: np.ndarray
    """0 none, 1 selective, 2 full."""
    schedule: np.ndarray
    """0 1F1B (interleaved when vpp > 1), 1 DualPipe."""

    def __len__(self) -> int:
        return int(self.tp.shape[0])

    def take(self, idx: np.ndarray | int) -> PlanArrays:
        idx = np.atleast_1d(idx)
        return PlanArrays(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def describe(self, i: int, num_micro: int) -> dict[str, object]:
        """Plan ``i`` as a plain mapping (the JSON ``plan`` object)."""
        return {
            "tp": int(self.tp[i]), "pp": int(self.pp[i]), "vpp": int(self.vpp[i]),
            "ep": int(self.ep[i]), "cp": int(self.cp[i]), "dp": int(self.dp[i]),
            "micro_batch": int(self.mb[i]), "num_micro_batches": num_micro,
            "recompute": RECOMPUTE[int(self.recompute[i])],
            "schedule": SCHEDULES[int(self.schedule[i])],
        }


@dataclass(frozen=True, kw_only=True)
class PlanRequest:
    """Plan fields the user fixed; None means 'search it'."""

    tp: int | None = None
    pp: int | None = None
    vpp: int | None = None
    ep: int | None = None
    cp: int | None = None
    micro_batch: int | None = None
    recompute: str | None = None
    schedule: str | None = None

    def is_complete(self) -> bool:
        return all(getattr(self, f.name) is not None for f in fields(self))


def _choices(fixed: int | None, default: tuple[int, ...], option: str) -> np.ndarray:
    if fixed is None:
        return np.array(default)
    if fixed <= 0:
        raise InputError(option, None, f"must be a positive whole number, got {fixed}")
    return np.array([fixed])


def _named(fixed: str | None, names: tuple[str, ...], option: str) -> np.ndarray:
    if fixed is None:
        return np.arange(len(names))
    if fixed not in names:
        raise InputError(option, None, f"expected one of {', '.join(names)}, got {fixed!r}")
    return np.array([names.index(fixed)])


def _divisors(n: int) -> tuple[int, ...]:
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def candidate_plans(
    arch: ModelArch, chip: Chip, run: RunConfig, num_chips: int, req: PlanRequest
) -> tuple[PlanArrays, dict[str, int]]:
    """Every valid plan for this cluster, and how many combinations each rule removed."""
    if num_chips <= 0:
        raise InputError("--num-chips", None, f"must be a positive whole number, got {num_chips}")
    spec = arch.spec
    experts = spec.moe.num_experts if spec.moe else 1
    grids = np.meshgrid(
        _choices(req.tp, POW2, "--tp"),
        _choices(req.pp, _divisors(num_chips) if num_chips <= 4096 else POW2, "--pp"),
        _choices(req.vpp, VPP_CHOICES, "--vpp"),
        _choices(req.ep, POW2 if spec.moe else (1,), "--ep"),
        _choices(req.cp, CP_CHOICES, "--cp"),
        _choices(req.micro_batch, MICRO_BATCHES, "--micro-batch"),
        _named(req.recompute, RECOMPUTE, "--recompute"),
        _named(req.schedule, SCHEDULES, "--schedule"),
        indexing="ij",
    )
    tp, pp, vpp, ep, cp, mb, rc, sched = (g.ravel() for g in grids)
    model_par = tp * pp * cp
    dp = np.where(num_chips % model_par == 0, num_chips // np.maximum(model_par, 1), 0)
    seqs_per_micro_round = np.maximum(dp * mb, 1)
    m = np.where(run.global_batch % seqs_per_micro_round == 0,
                 run.global_batch // seqs_per_micro_round, 0)
    att = spec.attention
    kv_heads = att.num_heads if isinstance(att, MlaAttention) else att.num_kv_heads
    rules = {
        "chips not divisible by tp*pp*cp": dp > 0,
        "global batch not divisible by dp*micro_batch": m > 0,
        "tp must divide attention heads and KV heads": (att.num_heads % tp == 0)
        & (kv_heads % tp == 0),
        "tp beyond the scale-up domain": (tp <= chip.up_domain) | run.tp_across_domains,
        "more pipeline stages than layers": pp * vpp <= spec.num_layers,
        "vpp needs pp > 1 and micro-batches divisible by pp": (vpp == 1)
        | ((pp > 1) & (m % np.maximum(pp, 1) == 0)),
        "ep must divide the experts": experts % ep == 0,
        "ep must divide tp*cp*dp (ranks per stage)": (dp > 0)
        & ((tp * cp * dp) % ep == 0),
        "cp needs seq_len divisible by 2*cp": (cp == 1) | (run.seq_len % (2 * cp) == 0),
        "dualpipe needs even pp >= 2, vpp 1, even micro-batches >= pp": (sched == 0)
        | ((pp >= 2) & (pp % 2 == 0) & (vpp == 1) & (m >= pp) & (m % 2 == 0)),
    }
    keep = np.ones(tp.shape, dtype=bool)
    removed: dict[str, int] = {}
    for name, mask in rules.items():
        before = int(keep.sum())
        keep &= mask
        removed[name] = before - int(keep.sum())
        if before and not keep.any():
            removed["_last"] = name  # type: ignore[assignment]
    plans = PlanArrays(
        tp=tp[keep], pp=pp[keep], vpp=vpp[keep], ep=ep[keep], cp=cp[keep], dp=dp[keep],
        mb=mb[keep], recompute=rc[keep], schedule=sched[keep],
    )
    return plans, removed


def first_violation(removed: dict[str, int]) -> str:
    """The rule that removed the last candidates, for a one-line error."""
    return str(removed.get("_last", "no plan satisfies the constraints"))
