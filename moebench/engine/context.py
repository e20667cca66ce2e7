"""The per-plan context every step term reads: the inputs and what follows from them, once.

Arrays have one entry per plan. In uncertainty and calibration modes a chip or stack figure may
itself be an array (samples or candidate values) evaluated against a single plan; the equations
broadcast either way.

Notation: T tokens per micro-batch and data-parallel replica (mb x s), T_sp = T/(tp cp) tokens
per chip in sequence-parallel regions, k experts per token, E routed experts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from moebench.engine.attention_core import fused_attention
from moebench.engine.collectives import Links
from moebench.engine.layout import StageCounts
from moebench.engine.plan import PlanArrays
from moebench.engine.workload import LayerShapes, layer_shapes
from moebench.inputs.hardware import Chip
from moebench.inputs.model import ModelArch
from moebench.inputs.run import RECOMPUTE_MODULES, SCHEDULES, RunConfig
from moebench.inputs.stack import Stack

BF16 = 2.0  # bytes


@dataclass(frozen=True)
class StepContext:
    arch: ModelArch
    chip: Chip
    stack: Stack
    run: RunConfig
    plans: PlanArrays
    shapes: LayerShapes
    tp: np.ndarray
    pp: np.ndarray
    vpp: np.ndarray
    ep: np.ndarray
    etp: np.ndarray
    cp: np.ndarray
    dp: np.ndarray
    mb: np.ndarray
    recompute: np.ndarray
    """0 none, 1 selective (the modules of ``rc_modules``), 2 full."""
    rc_modules: np.ndarray
    """Bit mask of the modules recomputed (0 unless selective)."""
    dualpipe: np.ndarray
    """DualPipe: two copies of a stage's parameters per rank."""
    dualpipev: np.ndarray
    """DualPipeV: two different stages (chunks) per rank in a V; the first rank holds the
    embedding and the LM head."""
    num_micro: np.ndarray
    tokens: np.ndarray
    """T: tokens per micro-batch per data-parallel replica."""
    tok_sp: np.ndarray
    """T / (tp cp): tokens per chip in sequence-parallel regions."""
    tok_gemm: np.ndarray
    """T / cp: rows of each TP-sharded GEMM."""
    received: np.ndarray
    """Expert-token pairs the busiest expert-parallel rank processes."""
    expert_rows: np.ndarray
    """Rows of the local expert GEMMs (pairs x etp: expert TP gathers its group's pairs)."""
    rows_per_expert: np.ndarray
    local_experts: np.ndarray
    fp8: bool
    weight_bytes: float
    act_bytes: float
    gemm_rate: Any
    """Large-shape GEMM FLOP/s the stack reaches (less the share communication kernels take)."""
    attn_rate: Any
    exp_rate: Any
    """Exponentials per second (softmax in attention; inf where the chip gives no figure)."""
    mem_bw: Any
    """Achievable HBM byte/s."""
    links: Links
    layers_per_stage: np.ndarray
    """Layers on the fullest pipeline rank."""
    moe_layers_per_stage: np.ndarray
    stage: StageCounts
    """Layers on the first, the loss's, the fullest and MTP's rank, and the layout kind."""
    expert_dp: np.ndarray
    """Expert-data-parallel size: the ranks of a stage over ep x etp."""
    ep_overlap: np.ndarray
    """The stack hides EP all-to-all behind another micro-batch (1F1B overlap, DualPipe or
    DualPipeV)."""
    dropless_sync: bool
    """The dispatcher copies token counts to the host every forward (dropless routing)."""
    sharding: np.ndarray
    """Index into SHARDING (0 zero-0 ... 3 zero-3, 4 hsdp)."""
    shard: np.ndarray
    """Ranks the dense state is sharded over (1, dp*cp, or the hsdp group)."""
    expert_shard: np.ndarray
    """Ranks the routed experts' state is sharded over."""
    optimizer_offload: np.ndarray
    """Fraction of each rank's optimizer states in host memory, stepped on the CPU."""
    kv_copies: np.ndarray
    """Copies of each KV head across the tensor-parallel group: tp / kv_heads when tp is wider
    than the KV heads (Megatron-Core replicates them), else 1."""
    act_offload: np.ndarray | int
    """Bit mask of the modules whose saved inputs go to host memory (0: none)."""
    fused_attention: bool = True
    """The attention runs as a fused kernel that keeps no scores
    (:func:`~moebench.engine.attention_core.fused_attention`); else unfused."""

    @property
    def kv_extra(self) -> np.ndarray:
        """Replicated K/V projection weights per layer (before the split over tp)."""
        return self.shapes.kv_proj_params * (self.kv_copies - 1)

    def recomputes(self, module: str) -> np.ndarray:
        """1.0 where selective recompute includes ``module`` (:data:`RECOMPUTE_MODULES`), else
        0.0."""
        bit = 1 << RECOMPUTE_MODULES.index(module)
        return np.where((self.recompute == 1) & (self.rc_modules & bit > 0), 1.0, 0.0)

    @property
    def bidirectional(self) -> np.ndarray:
        """DualPipe or DualPipeV: forward and backward chunks of two micro-batches overlapped
        (F&B), all-to-all hidden behind the other's compute."""
        return self.dualpipe | self.dualpipev

    @property
    def chunks(self) -> np.ndarray:
        """Model chunks per pipeline rank (vpp, or 2 under DualPipeV)."""
        return np.where(self.dualpipev, 2.0, self.vpp)

    @property
    def dense_layers_per_stage(self) -> np.ndarray:
        return self.layers_per_stage - self.moe_layers_per_stage


def gemm_precision(chip: Chip, stack: Stack, run: RunConfig) -> tuple[Any, float, float]:
    """Max-achievable GEMM FLOP/s for the run's precision (times the stack's share), and bytes
    per weight and per GEMM input element."""
    if run.precision == "fp8":
        if chip.fp8_flops is None or chip.fp8_gemm_eff is None:
            raise ValueError(f"{chip.name} has no FP8 path")
        return chip.fp8_flops * chip.fp8_gemm_eff * stack.gemm_fraction, 1.0, 1.0
    return chip.bf16_flops * chip.bf16_gemm_eff * stack.gemm_fraction, BF16, BF16


def build_context(
    arch: ModelArch, chip: Chip, stack: Stack, run: RunConfig, plans: PlanArrays
) -> StepContext:
    """Derive the per-plan quantities shared by the step terms."""
    spec, sh = arch.spec, layer_shapes(arch)
    f = {name: getattr(plans, name).astype(float)
         for name in ("tp", "pp", "vpp", "ep", "etp", "cp", "dp", "mb")}
    tp, cp, ep, etp = f["tp"], f["cp"], f["ep"], f["etp"]
    dualpipe = plans.schedule == SCHEDULES.index("dualpipe")
    dualpipev = plans.schedule == SCHEDULES.index("dualpipev")
    gemm_rate, w_bytes, a_bytes = gemm_precision(chip, stack, run)
    one_f1b_overlap = bool(stack.ep_1f1b_overlap)
    ep_overlap = (dualpipe | dualpipev | one_f1b_overlap) & (ep > 1) & arch.is_moe
    # Communication kernels running beside compute take a share of the chip (DeepEP: 20 of 132
    # SMs in DeepSeek-V3).
    slow = np.where(ep_overlap, 1.0 / (1.0 - stack.comm_sm_share), 1.0)
    tokens = f["mb"] * run.seq_len
    tok_sp = tokens / (tp * cp)
    # The busiest rank's load: the imbalance under dropless routing, none when one rank holds
    # every expert (ep = 1: it receives exactly k copies of each token); exactly the capacity
    # factor under drop-and-pad (every expert computes its padded capacity, at any ep).
    load = (run.capacity_factor if run.capacity_factor is not None
            else np.where(ep > 1, run.expert_imbalance, 1.0))
    received = tok_sp * sh.top_k * load
    local_experts = max(sh.num_experts, 1) / ep
    counts = plans.stage_counts(spec.num_layers)
    layers = counts.fullest
    moe_frac = arch.num_moe_layers / spec.num_layers
    return StepContext(
        arch=arch, chip=chip, stack=stack, run=run, plans=plans, shapes=sh,
        tp=tp, pp=f["pp"], vpp=f["vpp"], ep=ep, etp=etp, cp=cp, dp=f["dp"], mb=f["mb"],
        recompute=plans.recompute, rc_modules=plans.rc_modules,
        dualpipe=dualpipe, dualpipev=dualpipev,
        num_micro=run.global_batch / (f["dp"] * f["mb"]),
        tokens=tokens, tok_sp=tok_sp, tok_gemm=tokens / cp,
        received=received, expert_rows=received * etp,
        rows_per_expert=received * etp / local_experts, local_experts=local_experts,
        fp8=run.precision == "fp8", weight_bytes=w_bytes, act_bytes=a_bytes,
        gemm_rate=gemm_rate / slow,
        attn_rate=chip.bf16_flops * chip.bf16_gemm_eff * stack.attention_fraction / slow,
        exp_rate=(np.inf if chip.exp_rate is None else chip.exp_rate) / slow,
        mem_bw=chip.hbm_bw * chip.hbm_eff,
        links=Links.of(chip, stack.collective_fraction),
        layers_per_stage=layers, moe_layers_per_stage=layers * moe_frac, stage=counts,
        expert_dp=tp * cp * f["dp"] / (ep * etp),
        ep_overlap=ep_overlap,
        dropless_sync=stack.host_sync and run.capacity_factor is None,
        sharding=plans.sharding, shard=plans.shard.astype(float),
        expert_shard=plans.expert_shard,
        optimizer_offload=plans.optimizer_offload.astype(float),
        kv_copies=np.maximum(1.0, tp / sh.kv_heads) if sh.kv_heads else np.ones_like(tp),
        act_offload=0 if plans.act_offload is None else plans.act_offload,
        fused_attention=fused_attention(arch, stack.flash_attention,
                                        stack.attention_head_dim_limit),
    )


def expand(value: Any, index: np.ndarray | None) -> Any:
    """Per-combination results gathered back to every plan (a record's array fields, or an
    array); unchanged when there was nothing to gather."""
    if index is None:
        return value
    if hasattr(value, "__dataclass_fields__"):
        return type(value)(**{k: expand(getattr(value, k), index)
                              for k in value.__dataclass_fields__})
    if isinstance(value, np.ndarray) and value.ndim == 1:
        return value[index]
    return value


def distinct(ctx: StepContext, fields: tuple[str, ...] = ("tp", "cp", "cp_kind", "mb", "ep",
                                                          "etp")
             ) -> tuple[StepContext, np.ndarray | None]:
    """The context of the distinct combinations of the plan ``fields`` (and of all-to-all
    overlap) among the plans, and each plan's index into them.

    Per-layer compute, TP/EP/CP traffic and kernel counts depend only on (tp, cp, micro-batch,
    ep, etp) and on whether all-to-all runs beside compute; activations per layer on (tp, cp,
    micro-batch, ep, etp, recompute). A full search repeats each combination across pipeline
    sizes, virtual stages, recompute and schedules: evaluated once per combination and gathered
    back, they cost a fraction. Only with more than one plan (calibration and sampling evaluate
    one plan against arrays of figures, which must not be gathered).
    """
    if len(ctx.plans) <= 1:
        return ctx, None
    key = ctx.ep_overlap.astype(np.int64)
    for name in fields:
        col = getattr(ctx.plans, name)
        if col is None:  # an optional column not built: the same for every plan
            continue
        key = key * (int(col.max()) + 1) + col
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    small = build_context(ctx.arch, ctx.chip, ctx.stack, ctx.run, ctx.plans.take(first))
    return small, inverse
