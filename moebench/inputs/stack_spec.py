"""The stack profile's shape, ``profiles/stacks/<name>.yaml``, validated at load: kernels,
host, MoE dispatchers, collectives, memory, the dated releases and the validation summary.
:mod:`moebench.inputs.stack` turns one release of it into the :class:`~moebench.inputs.stack.Stack`
the equations read.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PrivateAttr, model_validator

from moebench.errors import InputError
from moebench.inputs.release import Release, newest, resolve_releases
from moebench.inputs.release_spec import CrossEntropy, Dispatcher, Graphs, ReleaseSpec
from moebench.inputs.schema import (
    Figure,
    FractionFigure,
    NonNegFigure,
    OpCountFigure,
    Record,
    ShareFigure,
)

DISPATCHERS: tuple[str, ...] = ("alltoall", "allgather", "deepep", "hybridep")
GRAPHS: tuple[str, ...] = ("none", "partial", "full")
CROSS_ENTROPY: tuple[str, ...] = ("unfused", "fused", "te")
__all__ = ["CrossEntropy", "Dispatcher", "Graphs"]

# The physical figures calibration may fit, by name: (section, field) in the stack profile.
CALIBRATABLE: dict[str, tuple[str, str]] = {
    "gemm_fraction": ("kernels", "gemm_fraction"),
    "gemm_half_rows": ("kernels", "gemm_half_rows"),
    "attention_fraction": ("kernels", "attention_fraction"),
    "host_op_us": ("host", "op_us"),
    "collective_fraction": ("collectives", "bandwidth_fraction"),
    "overlap_sm_share": ("collectives", "overlap_sm_share"),
}


class KernelSpec(Record):
    gemm_fraction: FractionFigure = Field(
        description="share of the chip's max-achievable GEMM rate that training GEMMs reach")
    gemm_half_rows: Figure = Field(
        description="rows at which a GEMM runs at half its large-shape rate: rate x m/(m + this)")
    gemm_half_depth: Figure = Field(
        description="reduction depth K at which a GEMM runs at half its large-shape rate: "
                    "rate x k/(k + this)")
    attention_fraction: FractionFigure = Field(
        description="attention kernel FLOP rate over the chip's max-achievable BF16 GEMM rate")


class OpCounts(Record):
    """Operations the host dispatches per layer and forward pass, by component."""

    attention: OpCountFigure = Field(description="norm, projections, RoPE, core, residual")
    mla_extra: OpCountFigure = Field(description="extra operations of MLA's low-rank paths")
    mlp: OpCountFigure = Field(description="one dense FFN or one shared expert")
    router: OpCountFigure = Field(description="router GEMM, score, top-k, aux loss")
    per_local_expert: OpCountFigure = Field(description="per local expert: GEMMs and activation")
    fp8_cast_per_gemm: OpCountFigure = Field(
        description="quantization operations per GEMM under FP8 (amax, cast, transpose)")
    checkpoint: OpCountFigure = Field(
        description="host cost of checkpointing one module for selective recompute (RNG state "
                    "saved and restored, output storage freed and refilled, hooks, autograd "
                    "re-entry), in operations")


class HostSpec(Record):
    op_us: NonNegFigure = Field(
        description="host time to dispatch one operation (framework + launch)")
    expert_gemm_us: NonNegFigure = Field(
        description="host time per routed-expert GEMM that a grouped call issues (its tensors, "
                    "descriptors and launch): once per local expert and GEMM")
    sync_us: NonNegFigure = Field(
        description="one device-to-host sync: the queue drains, then refills")
    backward_ops_per_forward_op: Figure
    ops: OpCounts


class DispatcherSpec(Record):
    host_ops: OpCountFigure = Field(description="operations per MoE layer forward")
    copy_passes: NonNegFigure = Field(
        description="HBM passes over the k x h routed copies per forward (permute, unpermute, "
                    "sort by expert, send/receive buffers), each pass a read or a write")
    deduplicates: bool = Field(
        description="sends one copy per remote scale-up domain and forwards inside it")
    per_rank: bool = Field(
        default=False,
        description="sends a token once to each rank holding any of its experts (DeepEP's "
                    "is_token_in_rank layout), not once per expert")
    host_sync: bool = Field(description="copies token counts to the host every forward (dropless)")
    comm_sm_share: ShareFigure = Field(
        description="share of compute lost while its kernels run beside compute")


class MoeSpec(Record):
    dispatchers: dict[Dispatcher, DispatcherSpec] = Field(
        description="what each dispatcher the family's releases implement costs")


class CollectiveSpec(Record):
    bandwidth_fraction: FractionFigure = Field(
        description="share of the hardware's measured bus bandwidth this stack's collectives get")
    overlap_sm_share: ShareFigure = Field(
        description="share of compute lost while TP, CP, pipeline and data-parallel collectives "
                    "run beside it (their kernels hold SMs or CUs)")
    grad_reduce: Literal["fp32", "bf16"]


class StackMemorySpec(Record):
    reserve_gb: Figure = Field(description="runtime context and communication buffers, outside "
                                           "the framework's allocator")
    allocator_factor: Figure = Field(description="what the caching allocator reserves at the "
                                                 "peak over the live tensors then (>= 1): the "
                                                 "value decides what fits, the top of its range "
                                                 "the headroom the search prefers among ties")
    cache_factor: Figure | None = Field(
        default=None,
        description="what the caching allocator grows to over the live tensors when the device "
                    "has room (the device-level figure nvidia-smi or rocm-smi shows, less "
                    "reserve_gb; >= allocator_factor). It frees that cache before it fails an "
                    "allocation, so only allocator_factor decides what fits. Absent: the device "
                    "shows allocator_factor's hold")

    @model_validator(mode="after")
    def _cache_holds_the_hold(self) -> StackMemorySpec:
        if self.cache_factor is not None and \
                self.cache_factor.value < self.allocator_factor.value:
            raise ValueError("cache_factor must be at least allocator_factor (the cache grows "
                             "on top of the allocator's hold)")
        return self


class ValidationSummary(Record):
    """How well the stack predicts measured runs (written by calibration), for caveats."""

    runs: int = Field(ge=0)
    sources: int | None = Field(default=None, ge=0, description="publications the runs are from")
    loo_mean_abs_error: float | None = Field(default=None, ge=0)
    loso_mean_abs_error: float | None = Field(
        default=None, ge=0, description="mean absolute speed error, each source predicted by the "
                                        "stack fitted without it (moebench validate)")
    interval_80: list[float] | None = Field(
        default=None, min_length=2, max_length=2,
        description="10th and 90th percentile of log(predicted / measured speed) out of source: "
                    "a new prediction's 80% interval before its figures' own uncertainty")
    pinned: list[str] = Field(default_factory=list,
                              description="fitted figures that sit on a bound")
    target: float = Field(gt=0, description="the error a stack should stay within")
    note: str = Field(min_length=3)


class StackSpec(Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str
    vendor: str = Field(description="chip vendor it runs on, as in hardware profiles; any")
    framework: str
    notes: str | None = None
    kernels: KernelSpec
    host: HostSpec
    moe: MoeSpec
    collectives: CollectiveSpec
    memory: StackMemorySpec
    releases: list[ReleaseSpec] = Field(
        min_length=1, description="dated releases, oldest first: what each implements and "
                                  "does by default (moebench.inputs.release)")
    validation: ValidationSummary | None = None
    _resolved: dict[str, Release] = PrivateAttr(default_factory=dict)
    _selected: str = PrivateAttr(default="")
    _platform: tuple[str, str, str, bool] | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _releases(self) -> StackSpec:
        try:
            resolved = resolve_releases(self.name, self.releases)
        except ValueError as exc:
            raise ValueError(f"releases: {exc}") from None
        for r in resolved.values():
            missing = [d for d in r.caps.dispatchers if d not in self.moe.dispatchers]
            if missing:
                raise ValueError(f"releases: release {r.name!r} implements the "
                                 f"{', '.join(missing)} dispatcher, which moe.dispatchers does "
                                 "not cost")
            unknown = [n for n in r.refit if n not in CALIBRATABLE]
            if unknown:
                raise ValueError(f"releases: release {r.name!r} refits {unknown[0]!r}; "
                                 f"refittable: {', '.join(CALIBRATABLE)}")
        self._resolved = resolved
        self._selected = newest(resolved).name
        return self

    @property
    def release(self) -> Release:
        """The selected release (the newest unless ``NAME@RELEASE`` chose one), with its
        recipe defaults for the platform set by :meth:`for_platform`."""
        r = self._resolved[self._selected]
        return r if self._platform is None else r.on(*self._platform)

    def for_platform(self, chip: str, precision: str, model: str, moe: bool,
                     option: str = "--stack") -> StackSpec:
        """This spec as a run of ``model`` (an MoE one if ``moe``) on ``chip`` at
        ``precision`` takes it (:meth:`Release.on`); an MoE model on a dense-only release is
        refused, naming ``option`` (:meth:`Release.check_model`)."""
        self._resolved[self._selected].check_model(model, moe, option)
        out = self.model_copy()
        out._platform = (chip, precision, model, moe)
        return out

    @property
    def platform_chip(self) -> str | None:
        """The chip :meth:`for_platform` set (None before)."""
        return None if self._platform is None else self._platform[0]

    @property
    def releases_resolved(self) -> dict[str, Release]:
        return dict(self._resolved)

    @property
    def label(self) -> str:
        """``family@release``: what a run on this spec names."""
        return self.release.label

    def select(self, release: str | None, option: str = "--stack") -> StackSpec:
        """This family with ``release`` selected (None: the newest)."""
        name = release or newest(self._resolved).name
        if name not in self._resolved:
            hint = nearest_release(name, list(self._resolved))
            raise InputError(option, None, f"stack {self.name} has no release {name!r}; its "
                             f"releases: {', '.join(self._resolved)}"
                             + (f"; the newest not newer than {name} is {hint}: "
                                f"{self.name}@{hint}" if hint else ""))
        out = self.model_copy()
        out._selected = name
        return out

    def family_figure(self, param: str) -> Figure:
        """A calibratable figure (:data:`CALIBRATABLE`) as the family states it."""
        section, field = CALIBRATABLE[param]
        return getattr(getattr(self, section), field)  # type: ignore[no-any-return]

    def figure(self, param: str) -> Figure:
        """A calibratable figure for the selected release: its refit, else the family's."""
        return self.release.refit.get(param) or self.family_figure(param)


def nearest_release(name: str, releases: list[str]) -> str | None:
    """Of the releases numbered like ``name`` (dotted whole numbers: NeMo's 26.08, MindSpeed's
    2.1.0), the newest not newer than it, to suggest for a release moebench does not know (a
    container newer than its last); None when ``name`` is not such a number or none is older.
    """
    def number(text: str) -> tuple[int, ...] | None:
        parts = text.split(".")
        return tuple(int(p) for p in parts) if all(p.isdigit() for p in parts) else None

    wanted = number(name)
    older = [r for r in releases if (n := number(r)) is not None and wanted is not None
             and n <= wanted]
    return max(older, key=lambda r: number(r) or ()) if older else None

