"""The releases section of a stack profile as written: each release's claims of what it
implements and what its runs do by default, each with its source (resolved along the ``after``
chain into :class:`moebench.inputs.release.Release`)."""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import Field, field_validator

from moebench.inputs.schema import Figure, Record

T = TypeVar("T")


Schedule = Literal["1f1b", "dualpipe", "zb1p", "dualpipev"]


ShardingName = Literal["zero-0", "zero-1", "zero-2", "zero-3", "hsdp"]


CpKind = Literal["ring", "ulysses"]


GraphScope = Literal["attention", "router", "dispatch", "shared", "mlp"]
GRAPH_SCOPES: tuple[str, ...] = get_args(GraphScope)


Dispatcher = Literal["alltoall", "allgather", "deepep", "hybridep"]


MlaPad = Literal["none", "v", "256"]
# Where gradients accumulate (Defaults.main_grads).
MainGrads = Literal["fp32", "bf16", "half", "half+fp32"]


Graphs = Literal["none", "partial", "full"]


CrossEntropy = Literal["unfused", "fused", "te"]


OffloadModule = Literal["attn_norm", "qkv_linear", "core_attn", "attn_proj", "mlp_norm",
                        "expert_fc1", "moe_act"]


LayoutDefault = Literal["even", "balanced", "even_where_divisible"]


class Claim(Record, Generic[T]):
    """What a release implements or does, and where that is documented."""

    value: T
    source: str = Field(min_length=3)
    kind: Literal["documented", "estimate"] = Field(
        default="documented",
        description="documented: release notes, code or recipes say so; estimate: inferred")


class Implements(Record):
    """What a release implements (each optional after the first release: unchanged)."""

    schedules: Claim[list[Schedule]] | None = Field(
        default=None, description="pipeline schedules: 1f1b (interleaved when vpp > 1), "
                                  "dualpipe, zb1p, dualpipev")
    virtual_pipeline: Claim[bool] | None = Field(
        default=None, description="interleaved 1F1B with virtual stages (vpp > 1)")
    dispatchers: Claim[list[Dispatcher]] | None = Field(
        default=None, description="MoE token dispatchers: alltoall, allgather, deepep, hybridep")
    sharding: Claim[list[ShardingName]] | None = Field(
        default=None, description="training-state sharding: zero-0 ... zero-3, hsdp")
    optimizer_offload: Claim[bool] | None = Field(
        default=None, description="optimizer states in host memory, stepped on the CPU")
    activation_offload: Claim[list[OffloadModule]] | None = Field(
        default=None, description="modules whose saved inputs it can offload to host memory")
    graphs: Claim[list[Graphs]] | None = Field(
        default=None, description="graph-capture scopes: none, partial, full")
    partial_graph_scope: Claim[list[GraphScope]] | None = Field(
        default=None, description="what partial graphs capture")
    ep_overlap: Claim[bool] | None = Field(
        default=None, description="1F1B all-to-all overlap across micro-batches")
    tp_overlap: Claim[bool] | None = Field(
        default=None, description="TP collectives overlapped with the GEMMs they feed (TE "
                                  "userbuffers; Ascend MC2)")
    dp_overlap: Claim[bool] | None = Field(
        default=None, description="gradient reduce and parameter gather overlapped")
    pp_overlap: Claim[bool] | None = Field(
        default=None, description="pipeline sends and receives overlapped with compute")
    cp_kinds: Claim[list[CpKind]] | None = Field(
        default=None, description="context parallelism: ring, ulysses ([]: none)")
    expert_tp: Claim[bool] | None = Field(
        default=None, description="expert tensor parallelism set apart from TP (else = TP)")
    cross_entropy: Claim[list[CrossEntropy]] | None = Field(
        default=None, description="loss kernels: unfused, fused, te")
    sync_free: Claim[bool] | None = Field(
        default=None, description="dropless MoE without a device-to-host sync")
    dispatch_fp8: Claim[bool] | None = Field(
        default=None, description="MoE dispatch in FP8 under FP8 training")
    moe: Claim[bool] | None = Field(
        default=None, description="MoE layers with expert parallelism at all (a dense-only "
                                  "release is refused an MoE model)")
    recompute: Claim[list[Literal["none", "selective", "full"]]] | None = Field(
        default=None, description="activation recompute it implements: none, selective "
                                  "(Megatron's per-module set) and full (whole layers)")
    moe_tp_cp: Claim[bool] | None = Field(
        default=None, description="tensor and context parallelism of MoE models (NeMo "
                                  "AutoModel's MoE parallelizer has neither)")
    grouped_gemm: Claim[bool] | None = Field(
        default=None, description="the routed experts' GEMMs as one grouped call per "
                                  "projection (Megatron --moe-grouped-gemm, MindSpeed npu_gmm)")
    sequence_parallel: Claim[bool] | None = Field(
        default=None, description="sequence parallelism beside TP (Megatron "
                                  "--sequence-parallel): the norms, residuals and layer inputs "
                                  "split along the sequence over the tensor-parallel ranks")


class Defaults(Record):
    """What a run of the release does when nothing is said (optional after the first)."""

    schedule: Claim[Schedule] | None = None
    dispatcher: Claim[Dispatcher] | None = None
    ep_overlap: Claim[bool] | None = None
    tp_overlap: Claim[bool] | None = None
    dp_overlap: Claim[bool] | None = None
    pp_overlap: Claim[bool] | None = None
    graphs: Claim[Graphs] | None = None
    cross_entropy: Claim[CrossEntropy] | None = None
    pipeline_layout: Claim[LayoutDefault] | None = Field(
        default=None, description="even (Megatron's default split: layers divide pp x vpp), "
                                  "balanced (any split of whole layers) or even_where_divisible "
                                  "(even, else the recipe's uneven layout)")
    dispatch_fp8: Claim[bool] | None = None
    sync_free: Claim[bool] | None = None
    offload_modules: Claim[list[OffloadModule]] | None = Field(
        default=None, description="the modules a plan offloads when it needs activation "
                                  "offload to fit")
    optimizer_states: Claim[Literal["fp32", "bf16", "pure-bf16"]] | None = Field(
        default=None, description="Adam moment precision its runs use unless told (FP32 "
                                  "master weights beside them), or pure-bf16 (the BF16 "
                                  "weights stepped in place, BF16 moments and gradients)")
    probs_in_activation: Claim[bool] | None = Field(
        default=None, description="router probabilities applied inside the expert's "
                                  "activation, so no expert output is kept for their gradient")
    fp8_weight_cache: Claim[bool] | None = Field(
        default=None, description="under FP8, each GEMM weight's FP8 copy and its transpose "
                                  "kept across micro-batches (Transformer Engine)")
    grouped_gemm: Claim[bool] | None = Field(
        default=None, description="the routed experts' GEMMs issued as one grouped call per "
                                  "projection (Megatron's --moe-grouped-gemm, MindSpeed's "
                                  "npu_gmm, Primus-Turbo): the host dispatches each block once, "
                                  "not once per local expert (a Python loop over experts)")
    keeps_stage_outputs: Claim[bool] | None = Field(
        default=None, description="each in-flight micro-batch's pipeline-stage output kept "
                                  "until its backward (DeepSpeed's pipeline engine); Megatron "
                                  "frees its data once sent")
    flash_attention: Claim[bool] | None = Field(
        default=None, description="a fused attention kernel that keeps no s x s scores "
                                  "(FlashAttention, cuDNN or TE fused attention); memory only")
    sequence_parallel: Claim[bool] | None = Field(
        default=None, description="whether a run with TP splits the norms, residuals and layer "
                                  "inputs over the tensor-parallel ranks along the sequence "
                                  "(Megatron --sequence-parallel) unless told, as the "
                                  "release's recipes run")
    main_grads: Claim[MainGrads] | None = Field(
        default=None, description="fp32: gradients accumulate in a full-size FP32 buffer "
                                  "(Megatron's main_grad); bf16: that buffer in BF16, reduced "
                                  "in BF16 (Megatron with grad_reduce_in_fp32 off); half: in "
                                  "the model's precision, FP32 only for the rank's optimizer "
                                  "shard (DeepSpeed ZeRO); half+fp32: half-precision gradients "
                                  "beside a full FP32 accumulation buffer (DeepSpeed's BF16 "
                                  "optimizer). Memory, the data-parallel bytes (bf16: 2 per "
                                  "gradient), and the HBM pass per micro-batch that half and "
                                  "half+fp32 spend adding gradients up (fp32, bf16: inside "
                                  "the GEMM)")
    swiglu_fp8_store: Claim[bool] | None = Field(
        default=None, description="under FP8, the SwiGLU input (gate/up output) kept in FP8 "
                                  "for the backward")
    fused_attention_head_dim: Claim[dict[str, Annotated[int, Field(gt=0)]]] | None = Field(
        default=None, description="chip profile name -> the largest query-key or value head "
                                  "dim the release's fused attention kernels take on that "
                                  "chip; a model with a larger one runs unfused attention "
                                  "there (every score written, read and kept). Chips not "
                                  "listed, and releases that never say: no limit known")
    mla_attention_pad: Claim[MlaPad] | None = Field(
        default=None, description="what MLA's attention kernel is handed: none (the query-key "
                                  "and value head dims as they are), v (the value padded to "
                                  "the query-key head dim) or 256 (query, key and value padded "
                                  "to 256): the padded dims cost matmul time, not model FLOPs")


# Defaults a family may leave unsaid, with what that means (limits moebench knows of only
# where a release states them).
OPTIONAL_DEFAULTS: dict[str, tuple[Any, str]] = {
    "fused_attention_head_dim": ({}, "not stated by the family: no head-dim limit known"),
}


class PlatformDefaults(Record):
    """What the release's performance recipes run on some chips at some precision: a run on
    them takes these instead of the release's own defaults (NVIDIA's recipes are per chip and
    precision: Megatron-Bridge scripts/performance configs, perf_recipes)."""

    chips: list[str] = Field(min_length=1, description="hardware profile names")
    precision: list[Literal["bf16", "fp8"]] = Field(
        default=["bf16", "fp8"], min_length=1, description="the run precisions it covers")
    models: list[str] = Field(
        default=["moe", "dense"], min_length=1,
        description="the models whose recipes say so: kinds (moe, dense) or model profile "
                    "names (recipes are per model: Megatron-Bridge's configs name each)")
    source: str = Field(min_length=3, description="the recipes that say so")
    dispatcher: Dispatcher | None = None
    graphs: Graphs | None = None
    graph_scope: list[GraphScope] | None = None
    ep_overlap: bool | None = None
    sync_free: bool | None = None
    mla_attention_pad: MlaPad | None = None
    grouped_gemm: bool | None = None
    main_grads: MainGrads | None = None
    cross_entropy: CrossEntropy | None = None

    @field_validator("models")
    @classmethod
    def _known_models(cls, models: list[str]) -> list[str]:
        from moebench.inputs.catalog import catalog_names

        known = set(catalog_names("models"))
        unknown = [m for m in models if m not in MODEL_KINDS and m not in known]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is neither a model kind ({', '.join(MODEL_KINDS)})"
                             " nor a model profile (moebench models list)")
        return models

    def covers(self, chip: str, precision: str, model: str, moe: bool) -> bool:
        """Whether these recipes cover a run of ``model`` (an MoE one if ``moe``) on ``chip``
        at ``precision``: the model named, or its kind."""
        return chip in self.chips and precision in self.precision and (
            model in self.models or ("moe" if moe else "dense") in self.models)

    @property
    def label(self) -> str:
        """Where the recipes apply: ``gb200+gb300 fp8 moe``."""
        return f"{'+'.join(self.chips)} {'+'.join(self.precision)} {'+'.join(self.models)}"

    def settings(self) -> dict[str, Any]:
        """The settings these recipes set (:data:`PLATFORM_SETTINGS` stated), by name."""
        out = {k: getattr(self, k) for k in PLATFORM_SETTINGS if getattr(self, k) is not None}
        if "graph_scope" in out:
            out["graph_scope"] = tuple(out["graph_scope"])
        return out


# The settings a platform may set (the fields of PlatformDefaults beyond chips, precision and
# source).
PLATFORM_SETTINGS = ("dispatcher", "graphs", "graph_scope", "ep_overlap", "sync_free",
                     "mla_attention_pad", "grouped_gemm", "main_grads", "cross_entropy")

# What a platform's ``models`` may name besides model profiles.
MODEL_KINDS = ("moe", "dense")


class ReleaseSpec(Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    date: datetime.date = Field(description="release date, YYYY-MM-DD")
    framework: str = Field(min_length=3, description="versions it pairs, e.g. Megatron-Core 0.15")
    source: str = Field(min_length=3, description="where the release is documented")
    after: str | None = Field(default=None,
                              description="the release this one changes (unlisted items kept)")
    notes: str | None = None
    implements: Implements = Field(default_factory=Implements)
    defaults: Defaults = Field(default_factory=Defaults)
    platforms: list[PlatformDefaults] | None = Field(
        default=None, description="defaults of the release's recipes on given chips and "
                                  "precisions, first match wins (omitted: the previous "
                                  "release's; [] none)")
    refit: dict[str, Figure] = Field(
        default_factory=dict,
        description="physical figures refitted on this release's own runs, by calibration "
                    "parameter name (scripts/calibrate_stacks.py)")
