"""Software stacks: what a training framework gets out of a chip, kept apart from the chip.

A hardware profile says what the silicon and its links sustain (peak, max-achievable GEMM rate,
HBM and link bandwidth). A stack profile, ``profiles/stacks/<name>.yaml``, says what one software
stack reaches on top of that: the share of the max-achievable GEMM rate its training GEMMs get,
how GEMM efficiency falls when a GEMM has few rows, its attention kernel, the host (CPU) time it
spends dispatching each operation and syncing with the device, what it captures in graphs, its
MoE token dispatchers, which communication it overlaps, and its memory reserve.

``hardware-limit`` is the ideal stack: no host cost, every kernel at the chip's max-achievable
rate, every overlap the plan allows. Fitted figures have kind ``calibrated`` (``moebench
calibrate``) and carry their interval as low/high.

:class:`StackSpec` is the file's shape; :class:`Stack` is the record the equations read, in base
units, after the run's options (dispatcher, graphs, ...) have been applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.run import OFFLOAD_MODULES, module_mask
from moebench.inputs.schema import (
    Figure,
    FractionFigure,
    NonNegFigure,
    OpCountFigure,
    Record,
    ShareFigure,
    validate,
)
from moebench.inputs.yamlio import cached_record, load_mapping
from moebench.units import to_base

Dispatcher = Literal["alltoall", "allgather", "deepep", "hybridep"]
Graphs = Literal["none", "partial", "full"]
CrossEntropy = Literal["unfused", "fused", "te"]
DISPATCHERS: tuple[str, ...] = ("alltoall", "allgather", "deepep", "hybridep")
GRAPHS: tuple[str, ...] = ("none", "partial", "full")
CROSS_ENTROPY: tuple[str, ...] = ("unfused", "fused", "te")


class CrossEntropySpec(Record):
    """Which cross-entropy implementation the stack runs after the LM head."""

    implementation: CrossEntropy = Field(
        description="unfused (Megatron's eager vocab-parallel loss), fused (its jit-fused "
                    "kernels, --cross-entropy-loss-fusion) or te (Transformer Engine's Triton "
                    "kernels, --cross-entropy-fusion-impl te)")
    kind: Literal["documented", "estimate"] = Field(
        description="documented: the stack's published recipes set it; estimate otherwise")
    source: str = Field(min_length=3)


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
    cross_entropy: CrossEntropySpec = Field(
        description="the loss implementation, e.g. {implementation: fused, kind: estimate, "
                    "source: \"...\"} (unfused, fused or te; stack files written before "
                    "2026-11-29 lack it: Megatron-Core's default on NVIDIA is fused)")


class OpCounts(Record):
    """Operations the host dispatches per layer and forward pass, by component."""

    attention: OpCountFigure = Field(description="norm, projections, RoPE, core, residual")
    mla_extra: OpCountFigure = Field(description="extra operations of MLA's low-rank paths")
    mlp: OpCountFigure = Field(description="one dense FFN or one shared expert")
    router: OpCountFigure = Field(description="router GEMM, score, top-k, aux loss")
    per_local_expert: OpCountFigure = Field(description="per local expert: GEMMs and activation")
    fp8_cast_per_gemm: OpCountFigure = Field(
        description="quantization operations per GEMM under FP8 (amax, cast, transpose)")


class HostSpec(Record):
    op_us: NonNegFigure = Field(
        description="host time to dispatch one operation (framework + launch)")
    sync_us: NonNegFigure = Field(
        description="one device-to-host sync: the queue drains, then refills")
    backward_ops_per_forward_op: Figure
    graphs: Graphs = Field(description="default graph-capture scope: none, partial or full")
    partial_graph_scope: list[Literal["attention", "router", "dispatch", "shared", "mlp"]] = Field(
        description="what the partial scope captures")
    ops: OpCounts


class DispatcherSpec(Record):
    host_ops: OpCountFigure = Field(description="operations per MoE layer forward")
    copy_passes: NonNegFigure = Field(
        description="HBM passes over the k x h routed copies per forward (permute, unpermute, "
                    "sort by expert, send/receive buffers), each pass a read or a write")
    deduplicates: bool = Field(
        description="sends one copy per remote scale-up domain and forwards inside it")
    host_sync: bool = Field(description="copies token counts to the host every forward (dropless)")
    comm_sm_share: ShareFigure = Field(
        description="share of compute lost while its kernels run beside compute")


class MoeSpec(Record):
    dispatcher: Dispatcher
    dispatch_fp8: bool = Field(description="dispatch in FP8 when the run is FP8")
    dispatchers: dict[Dispatcher, DispatcherSpec]

    @model_validator(mode="after")
    def _default_listed(self) -> MoeSpec:
        if self.dispatcher not in self.dispatchers:
            raise ValueError(f"dispatcher {self.dispatcher} is not among the dispatchers listed")
        return self


OffloadModule = Literal["attn_norm", "qkv_linear", "core_attn", "attn_proj", "mlp_norm",
                        "expert_fc1", "moe_act"]


class ActivationOffloadSpec(Record):
    """What the stack offloads to host memory when activation offload is searched."""

    modules: list[OffloadModule] = Field(
        description="modules whose saved inputs the stack offloads (empty: none searched)")
    source: str = Field(min_length=3, description="where the stack's feature is documented")


class OverlapSpec(Record):
    ep_1f1b: bool = Field(description="implements 1F1B all-to-all overlap across micro-batches")
    tp_comm: bool = Field(description="overlaps TP collectives with the GEMMs they feed")
    pp_p2p: bool = Field(description="overlaps pipeline sends and receives with compute")
    dp: bool = Field(description="overlaps the once-a-step data-parallel gradient reduce with the "
                                 "last backward and the parameter gather with the first forward "
                                 "(Megatron --overlap-grad-reduce --overlap-param-gather)")
    activation_offload: ActivationOffloadSpec = Field(
        description="activation offload to host memory, copies overlapped with compute")


class CollectiveSpec(Record):
    bandwidth_fraction: FractionFigure = Field(
        description="share of the hardware's measured bus bandwidth this stack's collectives get")
    overlap_sm_share: ShareFigure = Field(
        description="share of compute lost while TP, CP, pipeline and data-parallel collectives "
                    "run beside it (their kernels hold SMs or CUs)")
    grad_reduce: Literal["fp32", "bf16"]


class StackMemorySpec(Record):
    reserve_gb: Figure = Field(description="runtime, communication buffers, fragmentation")


class ValidationSummary(Record):
    """How well the stack predicts measured runs (written by calibration), for caveats."""

    runs: int = Field(ge=0)
    loo_mean_abs_error: float | None = Field(default=None, ge=0)
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
    overlap: OverlapSpec
    collectives: CollectiveSpec
    memory: StackMemorySpec
    validation: ValidationSummary | None = None


Num = Any  # float, or a numpy array (uncertainty samples, calibration candidates)


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    """Run facts that pick among what a stack offers (None keeps the stack's default)."""

    dispatcher: str | None = None
    graphs: str | None = None
    dispatch_fp8: bool | None = None
    tp_comm_overlap: bool | None = None
    pp_overlap: bool | None = None
    dp_overlap: bool | None = None
    sync_free: bool | None = None
    """True: the dispatcher keeps token counts on the device (no host sync), as Primus's
    sync-free MoE or a padded per-rank buffer does."""
    cross_entropy: str | None = None
    """unfused, fused or te: the loss implementation the run used."""

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Stack:
    """A stack with the run's options applied, in base units (seconds, bytes)."""

    name: str
    vendor: str
    gemm_fraction: Num
    gemm_half_rows: Num
    gemm_half_depth: Num
    attention_fraction: Num
    cross_entropy: str
    """unfused, fused or te (:data:`moebench.engine.terms.compute.CROSS_ENTROPY_BYTES`)."""
    host_op_s: Num
    sync_s: Num
    bwd_ops_ratio: Num
    graphs: str
    graph_scope: frozenset[str]
    ops_attention: float
    ops_mla_extra: float
    ops_mlp: float
    ops_router: float
    ops_per_expert: float
    ops_fp8_cast: float
    dispatcher: str
    dispatch_ops: float
    copy_passes: Num
    deduplicates: bool
    host_sync: bool
    comm_sm_share: Num
    dispatch_fp8: bool
    ep_1f1b_overlap: bool
    tp_comm_overlap: bool
    dp_overlap: bool
    pp_overlap: bool
    collective_fraction: Num
    overlap_sm_share: Num
    """Share of compute lost while overlapped TP, CP, PP and DP collectives run beside it."""
    grad_reduce_bytes: float
    reserve_bytes: Num
    act_offload_mask: int = 0
    """Modules the search offloads (a mask over OFFLOAD_MODULES); 0: not searched."""

    def captured(self, part: str) -> bool:
        """Whether graphs remove the host cost of ``part`` (attention, router, dispatch, ...)."""
        return self.graphs == "full" or (self.graphs == "partial" and part in self.graph_scope)


def nominal(fig: Any) -> Num:
    return fig.value


def stack_from_spec(
    spec: StackSpec, options: StackOptions | None = None,
    value: Callable[[Any], Num] = nominal, where: str = "stack",
) -> Stack:
    """Convert a validated spec to base units with the run's options applied, once."""
    opts = options or StackOptions()
    k, h, m = spec.kernels, spec.host, spec.moe
    kind = opts.dispatcher or m.dispatcher
    if kind not in m.dispatchers:
        raise InputError("--dispatcher", None,
                         f"stack {spec.name} has no {kind!r} dispatcher; it offers "
                         f"{', '.join(m.dispatchers)}")
    graphs = opts.graphs or h.graphs
    if graphs not in GRAPHS:
        raise InputError("--graphs", None, f"expected none, partial or full, got {graphs!r}")
    if opts.cross_entropy is not None and opts.cross_entropy not in CROSS_ENTROPY:
        raise InputError("cross_entropy", None,
                         f"expected unfused, fused or te, got {opts.cross_entropy!r}")
    d = m.dispatchers[kind]  # type: ignore[index]
    return Stack(
        name=spec.name, vendor=spec.vendor,
        gemm_fraction=value(k.gemm_fraction), gemm_half_rows=value(k.gemm_half_rows),
        gemm_half_depth=value(k.gemm_half_depth),
        attention_fraction=value(k.attention_fraction),
        cross_entropy=opts.cross_entropy or k.cross_entropy.implementation,
        host_op_s=to_base("op_us", value(h.op_us)), sync_s=to_base("sync_us", value(h.sync_us)),
        bwd_ops_ratio=value(h.backward_ops_per_forward_op), graphs=graphs,
        graph_scope=frozenset(h.partial_graph_scope),
        ops_attention=h.ops.attention.value, ops_mla_extra=h.ops.mla_extra.value,
        ops_mlp=h.ops.mlp.value, ops_router=h.ops.router.value,
        ops_per_expert=h.ops.per_local_expert.value, ops_fp8_cast=h.ops.fp8_cast_per_gemm.value,
        dispatcher=kind, dispatch_ops=d.host_ops.value, copy_passes=value(d.copy_passes),
        deduplicates=d.deduplicates, host_sync=d.host_sync and not opts.sync_free,
        comm_sm_share=value(d.comm_sm_share),
        dispatch_fp8=m.dispatch_fp8 if opts.dispatch_fp8 is None else opts.dispatch_fp8,
        ep_1f1b_overlap=spec.overlap.ep_1f1b,
        tp_comm_overlap=spec.overlap.tp_comm if opts.tp_comm_overlap is None
        else opts.tp_comm_overlap,
        pp_overlap=spec.overlap.pp_p2p if opts.pp_overlap is None else opts.pp_overlap,
        dp_overlap=spec.overlap.dp if opts.dp_overlap is None else opts.dp_overlap,
        collective_fraction=value(spec.collectives.bandwidth_fraction),
        overlap_sm_share=value(spec.collectives.overlap_sm_share),
        act_offload_mask=module_mask(tuple(spec.overlap.activation_offload.modules),
                                     OFFLOAD_MODULES),
        grad_reduce_bytes=4.0 if spec.collectives.grad_reduce == "fp32" else 2.0,
        reserve_bytes=to_base("reserve_gb", value(spec.memory.reserve_gb)),
    )


def load_stack_spec(name_or_path: str, overrides: dict[str, str] | None = None,
                    option: str = "--stack") -> StackSpec:
    """A stack profile from a catalog name or a YAML path, with ``section.field`` overrides."""
    from moebench.inputs.overrides import apply_overrides

    path: Path = catalog.resolve("stacks", name_or_path, option)

    def build() -> StackSpec:
        data = load_mapping(path)
        if overrides:
            data = apply_overrides(data, overrides, str(path), "stack")
        return validate(StackSpec, data, str(path))

    return cached_record("stack", path, overrides, build)


def check_vendor(spec: StackSpec, chip_vendor: str, chip_name: str) -> None:
    """A vendor stack runs only on its vendor's chips (``any`` runs everywhere)."""
    if spec.vendor != "any" and spec.vendor.lower() != chip_vendor.lower():
        raise InputError("--stack", None,
                         f"stack {spec.name} is for {spec.vendor} chips; {chip_name} is "
                         f"{chip_vendor}; pick a {chip_vendor} stack, generic or hardware-limit")


def load_stack(
    name_or_path: str | None, chip_vendor: str, chip_name: str, default: str,
    options: StackOptions | None = None, overrides: dict[str, str] | None = None,
) -> Stack:
    """The stack a chip runs: ``name_or_path``, or the hardware profile's default stack."""
    spec = load_stack_spec(name_or_path or default, overrides)
    check_vendor(spec, chip_vendor, chip_name)
    return stack_from_spec(spec, options)
