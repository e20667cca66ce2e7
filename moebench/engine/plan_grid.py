"""The grid that builds candidate plans one dimension at a time, and the dimensions past the core
parallelism: pipeline layout, activation offload, recompute, optimizer offload and sharding."""

from __future__ import annotations

import numpy as np

from moebench.engine.layout import (
    GIVEN,
    LAYOUTS,
    WrittenLayout,
    parse_layout,
    shape_key,
)
from moebench.engine.plan import HSDP, PlanRequest
from moebench.errors import InputError
from moebench.inputs.hardware import Chip
from moebench.inputs.release import Release
from moebench.inputs.run import (
    DUALPIPEV,
    OFFLOAD_MODULES,
    RECOMPUTE,
    RECOMPUTE_SEARCHED,
    SELECTIVE_MASK,
    SHARDING,
    module_mask,
    parse_modules,
)

# A release default: Megatron's even split where the layers divide pp x vpp; where they do not,
# Megatron-Bridge's recipes write an uneven layout, taken as the balanced bound.
EVEN_WHERE_DIVISIBLE = "even_where_divisible"


# Sharding searched by default: zero-1 to zero-3 and hybrid; zero-0 (plain DDP) only on
# request, since zero-1 moves the same bytes with less memory and a shorter optimizer step.
SHARDING_SEARCHED = (1, 2, 3, 4)


# Optimizer-state CPU offload fractions searched (Megatron-Core's --optimizer-offload-fraction):
# none, or all of it (Megatron's documented setting, 1.0) where the chip's profile describes
# its host; any fraction from 0 to 1 may be given.
OFFLOAD_SEARCHED = (0.0, 1.0)


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


def _divisors(n: int, at_most: int) -> tuple[int, ...]:
    """The divisors of ``n`` up to ``at_most``."""
    return tuple(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


class _Grid:
    """Candidate plans built one dimension at a time, each rule applied as soon as the
    dimensions it needs exist, so that invalid combinations never multiply."""

    def __init__(self) -> None:
        self.cols: dict[str, np.ndarray] = {"_": np.zeros(1, dtype=np.int64)}
        self.removed: dict[str, int] = {}

    def expand(self, name: str, values: np.ndarray, dtype: type = np.int64) -> None:
        n, k = len(next(iter(self.cols.values()))), len(values)
        self.cols = {c: np.repeat(v, k) for c, v in self.cols.items()}
        self.cols[name] = np.tile(np.asarray(values, dtype=dtype), n)

    def drop(self, *names: str) -> None:
        """Columns no later rule reads: not copied by the expansions that follow."""
        for name in names:
            del self.cols[name]

    def rule(self, name: str, mask: np.ndarray) -> None:
        before = len(mask)
        self.cols = {c: v[mask] for c, v in self.cols.items()}
        self.removed[name] = before - int(mask.sum())
        if before and not mask.any():
            self.removed.setdefault("_last", name)  # type: ignore[arg-type]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.cols[name]


def _activation_offload(g: _Grid, req: PlanRequest, chip: Chip) -> None:
    """The activation-offload modules, as a column when given (the search adds them itself,
    only where a plan needs them to fit: :func:`moebench.engine.search.plans_worth_timing`)."""
    if not req.offload_modules:
        return
    names = parse_modules(list(req.offload_modules), "--offload-modules", OFFLOAD_MODULES)
    g.expand("act_offload", np.array([module_mask(names, OFFLOAD_MODULES)]))
    g.rule("activation offload needs the chip profile's host section (host link and memory)",
           np.full(len(g["tp"]), chip.has_host))


def _layout(g: _Grid, req: PlanRequest, num_layers: int, mtp_depth: int
            ) -> WrittenLayout | None:
    """The pipeline layout, when one is asked for (a column only then: the search's own choice,
    balanced, is every plan's without one). A written layout holds for the pipeline sizes it
    can be laid on (:meth:`WrittenLayout.fits`), under 1F1B or ZB1P: DualPipe's and
    DualPipeV's stage placement is their own."""
    text = req.pipeline_layout
    if text is None or text.strip() == "balanced":
        return None
    if text.strip() in ("even", EVEN_WHERE_DIVISIBLE):
        g.expand("layout", np.array([LAYOUTS.index("even")]))
        chunks = np.where(g["schedule"] == DUALPIPEV, 2, g["vpp"])
        divides = num_layers % (g["pp"] * chunks) == 0
        if text.strip() == "even":
            g.rule("an even pipeline layout needs the layers divisible by pp x vpp (Megatron-"
                   "LM's default split); give --pipeline-layout balanced or a written layout",
                   divides)
        else:
            # Even where the layers divide pp x chunks, else the recipe's own uneven split,
            # which the balanced bound stands for.
            g.cols["layout"] = np.where(divides, LAYOUTS.index("even"),
                                        LAYOUTS.index("balanced"))
        return None
    written = parse_layout(text, num_layers, mtp_depth)
    g.expand("layout", np.array([GIVEN]))
    if len(g["pp"]) == 0:
        return written
    # One check per distinct (pp, vpp, DualPipeV), not per plan.
    v = g["schedule"] == DUALPIPEV
    key = shape_key(g["pp"], g["vpp"], v)
    shapes, first = np.unique(key, return_index=True)
    ok = [written.fits(int(g["pp"][i]), int(g["vpp"][i]), bool(v[i])) for i in first]
    g.rule(f"pipeline layout {text!r} needs {written.requirement()}",
           np.isin(key, shapes[np.array(ok, dtype=bool)]))
    g.rule("a written pipeline layout does not apply to dualpipe (two copies of each stage)",
           g["schedule"] != 1)
    return written


def recompute_group_size(req: PlanRequest, release: Release) -> int:
    """How many recompute options :func:`candidate_plans` gives each plan (adjacent rows),
    within the levels the release implements."""
    return len(_recompute_options(req, release.caps.recompute))


def _recompute_options(req: PlanRequest, allowed: tuple[str, ...] = RECOMPUTE) -> np.ndarray:
    """(recompute, module mask) rows to expand: the searched chain within the levels the
    release implements (``allowed``), or what was given."""
    if req.recompute_modules is not None:
        if req.recompute not in (None, "selective"):
            raise InputError("--recompute-modules", None, "recompute modules are selective "
                             f"recompute: not with --recompute {req.recompute}")
        names = parse_modules(list(req.recompute_modules))
        return np.array([(1, module_mask(names))])
    if req.recompute is None:
        levels = [RECOMPUTE.index(a) for a in allowed]
        return np.array([row for row in RECOMPUTE_SEARCHED if row[0] in levels])
    level = int(_named(req.recompute, RECOMPUTE, "--recompute")[0])
    return np.array([(level, SELECTIVE_MASK if level == 1 else 0)])


def offload_fraction(value: object, option: str = "--optimizer-offload") -> float:
    """A fraction from 0 to 1, or an InputError naming ``option``."""
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not 0.0 <= float(value) <= 1.0:
        raise InputError(option, None, f"must be a fraction from 0 to 1, got {value!r}")
    return float(value)


def _offload(g: _Grid, req: PlanRequest, chip: Chip, implemented: bool) -> None:
    """Expand the optimizer-offload fraction (between sharding and recompute: the search prunes
    the variants of one plan that differ in these, :func:`moebench.engine.search.dominated`).
    """
    if req.optimizer_offload is None:
        levels = OFFLOAD_SEARCHED if chip.has_host and implemented else (0.0,)
    else:
        levels = (offload_fraction(req.optimizer_offload),)
    g.expand("optimizer_offload", np.array(levels, dtype=float), dtype=float)
    g.rule("optimizer offload needs the chip profile's host section (host link, host memory, "
           "CPU Adam rate)", (g["optimizer_offload"] == 0) | chip.has_host)


def _sharding(g: _Grid, req: PlanRequest, chip: Chip, implemented: tuple[str, ...]) -> None:
    """Expand the sharding of training state (before offload and recompute: the search prunes
    variants of one plan that differ only in these, :func:`moebench.engine.search.dominated`).
    """
    if req.sharding is None:
        levels = np.array([s for s in SHARDING_SEARCHED if SHARDING[s] in implemented]
                          or [SHARDING.index(implemented[0])])
    else:
        levels = _named(req.sharding, SHARDING, "--sharding")
    g.expand("sharding", levels)
    dense_dp = g["dp"] * g["cp"]
    if req.shard_group is not None:
        if req.shard_group <= 0:
            raise InputError("--shard-group", None,
                             f"must be a positive whole number, got {req.shard_group}")
        group = np.full_like(dense_dp, req.shard_group)
    else:
        # A scale-up domain's worth of data-parallel ranks (ranks are ordered tp, cp, dp).
        group = np.minimum(dense_dp, np.maximum(1, chip.up_domain // g["tp"]))
    hsdp = g["sharding"] == HSDP
    g.cols["shard"] = np.where(g["sharding"] == 0, 1, np.where(hsdp, group, dense_dp))
    g.cols["_group"] = group
    g.rule("sharding beyond zero-1 needs data parallelism (dp*cp > 1)",
           (g["sharding"] <= 1) | (dense_dp > 1))
    dense_dp, group = g["dp"] * g["cp"], g["_group"]
    g.rule("hsdp's shard group must divide dp*cp and be smaller than it (else it is zero-3)",
           (g["sharding"] != HSDP) | ((dense_dp % group == 0) & (group < dense_dp)))
    g.drop("_group")
