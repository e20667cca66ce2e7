"""Software stacks: what a training framework gets out of a chip, kept apart from the chip.

A hardware profile says what the silicon and its links sustain (peak, max-achievable GEMM rate,
HBM and link bandwidth). A stack profile, ``profiles/stacks/<name>.yaml``, says what one software
stack reaches on top of that: the share of the max-achievable GEMM rate its training GEMMs get,
how GEMM efficiency falls when a GEMM has few rows, its attention kernel, the host (CPU) time it
spends dispatching each operation and syncing with the device, its MoE token dispatchers, its
collectives and its memory reserve: the physics, fitted across every release of the family. Its
dated ``releases`` (:mod:`moebench.inputs.release`) say what each release implements and what
its runs do by default; ``NAME@RELEASE`` selects one, the bare name the newest.

``hardware-limit`` is the ideal stack: no host cost, every kernel at the chip's max-achievable
rate, every feature implemented. Fitted figures have kind ``calibrated`` (``moebench
calibrate``) and carry their interval as low/high. :class:`StackSpec` is the file's shape (one
release selected); :class:`Stack` is the record the equations read, in base units, with the
run's settings (given, else the release's defaults) applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.release import Release
from moebench.inputs.run import OFFLOAD_MODULES, module_mask
from moebench.inputs.schema import validate
from moebench.inputs.stack_spec import (  # the profile records, re-exported
    CALIBRATABLE,
    CROSS_ENTROPY,
    DISPATCHERS,
    GRAPHS,
    CollectiveSpec,
    CrossEntropy,
    Dispatcher,
    DispatcherSpec,
    Graphs,
    HostSpec,
    KernelSpec,
    MoeSpec,
    OpCounts,
    StackMemorySpec,
    StackSpec,
    ValidationSummary,
)
from moebench.inputs.yamlio import cached_record, load_mapping
from moebench.units import to_base

__all__ = ["CALIBRATABLE", "CROSS_ENTROPY", "CollectiveSpec", "CrossEntropy", "DISPATCHERS",
           "Dispatcher", "DispatcherSpec", "GRAPHS", "Graphs", "HostSpec", "KernelSpec",
           "MoeSpec", "OpCounts", "StackMemorySpec", "StackSpec", "ValidationSummary", "Stack",
           "StackOptions", "load_stack", "load_stack_spec", "stack_from_spec"]

Num = Any  # float, or a numpy array (uncertainty samples, calibration candidates)


@dataclass(frozen=True, kw_only=True)
class StackOptions:
    """Settings a run gives (None: the release's default). Names as in
    :data:`moebench.inputs.release.SETTINGS`."""

    dispatcher: str | None = None
    graphs: str | None = None
    dispatch_fp8: bool | None = None
    ep_overlap: bool | None = None
    """1F1B all-to-all overlap across micro-batches (DualPipe and DualPipeV always overlap)."""
    tp_overlap: bool | None = None
    pp_overlap: bool | None = None
    dp_overlap: bool | None = None
    sync_free: bool | None = None
    """True: the dispatcher keeps token counts on the device (no host sync), as Primus's
    sync-free MoE or a padded per-rank buffer does."""
    cross_entropy: str | None = None
    """unfused, fused or te: the loss implementation the run used."""
    sequence_parallel: bool | None = None
    """Megatron's --sequence-parallel beside TP (a release without it: False only)."""
    grouped_gemm: bool | None = None
    """Megatron's --moe-grouped-gemm: the local experts' GEMMs in one call, not a loop."""
    graph_scope: tuple[str, ...] | None = None  # what partial graphs capture (None: all it can)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class Stack:
    """A stack release with the run's settings applied, in base units (seconds, bytes)."""

    name: str
    """``family@release``."""
    family: str
    release: Release
    vendor: str
    gemm_fraction: Num
    gemm_half_rows: Num
    gemm_half_depth: Num
    attention_fraction: Num
    cross_entropy: str  # unfused, fused or te (terms.compute.CROSS_ENTROPY_BYTES)
    host_op_s: Num
    expert_gemm_s: Num  # host seconds per expert GEMM a grouped call issues
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
    ops_checkpoint: float
    dispatcher: str
    dispatch_ops: float
    copy_passes: Num
    deduplicates: bool
    per_rank: bool
    """The dispatcher sends a token once per destination rank, not once per expert."""
    host_sync: bool
    comm_sm_share: Num
    dispatch_fp8: bool
    probs_in_activation: bool = True
    """The router probabilities multiply the expert activation: no expert output is kept for
    their gradient (the release's default; Megatron-Core 0.13 on)."""
    fp8_weight_cache: bool = False
    """Under FP8, the weights' FP8 copies (row- and column-wise) are kept across micro-batches
    (the release's default: Transformer Engine)."""
    keeps_stage_outputs: bool = False
    """Each in-flight micro-batch's stage output is kept until its backward (the release's
    default: DeepSpeed's pipeline engine)."""
    grouped_gemm: bool = True  # routed experts' GEMMs as one grouped call (host: once a block)
    flash_attention: bool = True  # a fused attention kernel that keeps no scores (default)
    attention_head_dim_limit: int | None = None
    """The largest query-key or value head dim the fused attention takes on the run's chip
    (the release's ``fused_attention_head_dim``; None: no limit): beyond it, unfused."""
    mla_attention_pad: str = "none"
    """MLA head dims as the attention kernel gets them (the release's default): none, v (the
    value padded to the query-key dim) or 256 (all three padded to 256)."""
    sequence_parallel: bool = True
    """With TP, hidden-size activations split over the tensor-parallel ranks (the release's
    default)."""
    main_grads: str = "fp32"
    """Where gradients accumulate (the release's default): fp32, bf16, half or half+fp32
    (:class:`moebench.inputs.release_spec.Defaults`)."""
    swiglu_fp8_store: bool = False
    """Under FP8, the SwiGLU input is kept in FP8 for the backward (the release's default)."""
    ep_1f1b_overlap: bool
    """The run overlaps all-to-all across micro-batches under 1F1B."""
    tp_comm_overlap: bool
    dp_overlap: bool
    pp_overlap: bool
    collective_fraction: Num
    overlap_sm_share: Num
    """Share of compute lost while overlapped TP, CP, PP and DP collectives run beside it."""
    grad_reduce_bytes: float
    reserve_bytes: Num
    fragmentation: Num = 0.0
    """Allocator reserve over the peak of live tensors (a fraction of it)."""
    fragmentation_high: Num = 0.0  # the same at its range's top: the headroom search prefers
    cache_growth: Num = 0.0
    """What the caching allocator's cache adds beyond that when the device has room (a
    fraction of the live tensors): in the device-level figure only, never in what must fit."""
    act_offload_mask: int = 0
    """Modules a plan offloads when it needs activation offload (a mask over OFFLOAD_MODULES);
    0: not searched."""

    @property
    def caps(self) -> Any:
        """What the release implements (:class:`moebench.inputs.release.Capabilities`)."""
        return self.release.caps

    def captured(self, part: str) -> bool:
        """Whether graphs remove the host cost of ``part`` (attention, router, dispatch, ...)."""
        return self.graphs == "full" or (self.graphs == "partial" and part in self.graph_scope)


def nominal(fig: Any) -> Num:
    return fig.value


def stack_from_spec(
    spec: StackSpec, options: StackOptions | None = None,
    value: Callable[[Any], Num] = nominal, where: str = "stack",
) -> Stack:
    """Convert a validated spec to base units with the run's settings applied, once."""
    rel = spec.release
    s = rel.settings((options or StackOptions()).as_dict())
    k, h, m, af = spec.kernels, spec.host, spec.moe, spec.memory.allocator_factor
    d = m.dispatchers[s["dispatcher"]]
    fig = spec.figure
    return Stack(
        name=rel.label, family=spec.name, release=rel, vendor=spec.vendor,
        gemm_fraction=value(fig("gemm_fraction")), gemm_half_rows=value(fig("gemm_half_rows")),
        gemm_half_depth=value(k.gemm_half_depth),
        attention_fraction=value(fig("attention_fraction")),
        cross_entropy=s["cross_entropy"],
        host_op_s=to_base("op_us", value(fig("host_op_us"))),
        sync_s=to_base("sync_us", value(h.sync_us)),
        expert_gemm_s=to_base("expert_gemm_us", value(h.expert_gemm_us)),
        bwd_ops_ratio=value(h.backward_ops_per_forward_op), graphs=s["graphs"],
        graph_scope=frozenset(s["graph_scope"]),
        ops_attention=h.ops.attention.value, ops_mla_extra=h.ops.mla_extra.value,
        ops_mlp=h.ops.mlp.value, ops_router=h.ops.router.value,
        ops_per_expert=h.ops.per_local_expert.value, ops_fp8_cast=h.ops.fp8_cast_per_gemm.value,
        ops_checkpoint=h.ops.checkpoint.value,
        dispatcher=s["dispatcher"], dispatch_ops=d.host_ops.value,
        copy_passes=value(d.copy_passes), deduplicates=d.deduplicates, per_rank=d.per_rank,
        host_sync=d.host_sync and not s["sync_free"], comm_sm_share=value(d.comm_sm_share),
        dispatch_fp8=s["dispatch_fp8"], ep_1f1b_overlap=s["ep_overlap"],
        probs_in_activation=rel.defaults["probs_in_activation"],
        swiglu_fp8_store=rel.defaults["swiglu_fp8_store"],
        mla_attention_pad=rel.defaults["mla_attention_pad"],
        main_grads=rel.defaults["main_grads"],
        sequence_parallel=s["sequence_parallel"],
        flash_attention=rel.defaults["flash_attention"],
        attention_head_dim_limit=rel.defaults["fused_attention_head_dim"].get(
            spec.platform_chip),
        keeps_stage_outputs=rel.defaults["keeps_stage_outputs"],
        grouped_gemm=s["grouped_gemm"],
        fp8_weight_cache=rel.defaults["fp8_weight_cache"],
        tp_comm_overlap=s["tp_overlap"], pp_overlap=s["pp_overlap"], dp_overlap=s["dp_overlap"],
        collective_fraction=value(fig("collective_fraction")),
        overlap_sm_share=value(fig("overlap_sm_share")),
        act_offload_mask=module_mask(tuple(rel.defaults["offload_modules"]), OFFLOAD_MODULES),
        # A BF16 main-gradient buffer is reduced as it is kept, whatever the stack's habit.
        grad_reduce_bytes=2.0 if rel.defaults["main_grads"] == "bf16" else
        4.0 if spec.collectives.grad_reduce == "fp32" else 2.0,
        reserve_bytes=to_base("reserve_gb", value(spec.memory.reserve_gb)),
        fragmentation=value(af) - 1.0, fragmentation_high=(af.high or af.value) - 1.0,
        cache_growth=0.0 if spec.memory.cache_factor is None else np.maximum(
            value(spec.memory.cache_factor) - value(af), 0.0),
    )


def with_calibrated(stack: Stack, values: dict[str, Num]) -> Stack:
    """``stack`` with calibratable figures (:data:`CALIBRATABLE` names, profile units) set to
    ``values`` (numbers, or arrays of candidates evaluated at once)."""
    fields = {"gemm_fraction": "gemm_fraction", "gemm_half_rows": "gemm_half_rows",
              "attention_fraction": "attention_fraction", "collective_fraction":
              "collective_fraction", "overlap_sm_share": "overlap_sm_share"}
    changes = {fields[k]: v for k, v in values.items() if k in fields}
    if "host_op_us" in values:
        changes["host_op_s"] = to_base("op_us", values["host_op_us"])
    return replace(stack, **changes)


def split_release(name_or_path: str) -> tuple[str, str | None]:
    """``NAME@RELEASE`` as (NAME, RELEASE); a bare name or path as (it, None)."""
    base, at, release = name_or_path.rpartition("@")
    if not at or not base:
        return name_or_path, None
    return base, release


def load_stack_spec(name_or_path: str, overrides: dict[str, str] | None = None,
                    option: str = "--stack") -> StackSpec:
    """A stack profile from a catalog name or a YAML path, optionally ``@RELEASE`` (else its
    newest release), with ``section.field`` overrides."""
    from moebench.inputs.overrides import apply_overrides

    base, release = split_release(name_or_path)
    if release is not None and not release.strip():
        raise InputError(option, None, f"{name_or_path!r}: give a release after '@'")
    path: Path = catalog.resolve("stacks", base, option)

    def build() -> StackSpec:
        data = load_mapping(path)
        if overrides:
            data = apply_overrides(data, overrides, str(path), "stack")
        return validate(StackSpec, data, str(path))

    return cached_record("stack", path, overrides, build).select(release, option)


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
