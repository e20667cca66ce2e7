"""Model profiles: the MoE architecture record and its parameter counts.

A model comes from ``profiles/models/<name>.yaml`` (validated into :class:`ModelSpec`) or from a
Hugging Face ``config.json`` (see :mod:`moebench.inputs.hf_config`). Dense models are the
special case with no ``moe`` section. Parameter counts are exact sums over the weight matrices
(norm weights and biases included), split by component.

Counting conventions, stated in every output:

* ``total_params`` and ``active_params`` include the input embedding and the LM head (counted
  once when tied) and exclude MTP modules, which are reported separately as ``mtp_params``.
* ``active_params`` counts only ``top_k`` routed experts per MoE layer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.attention import MhaAttention, MlaAttention, attention_params
from moebench.inputs.linear_attention import LinearAttention, gated_deltanet_params
from moebench.inputs.schema import Record, validate
from moebench.inputs.yamlio import load_mapping

PosInt = Annotated[int, Field(gt=0, strict=True)]
NonNegInt = Annotated[int, Field(ge=0, strict=True)]


class DenseLayers(Record):
    count: NonNegInt = Field(description="layers with a dense FFN")
    ffn_width: NonNegInt
    placement: Literal["first", "interleaved"] = Field(
        default="first", description="first: the first `count` layers (DeepSeek's "
        "first_k_dense_replace); interleaved: spread among the MoE layers (Llama 4's "
        "interleave_moe_layer_step, Qwen2-MoE's decoder_sparse_step and mlp_only_layers). The "
        "step model spreads dense and MoE layers over pipeline stages in proportion either way: "
        "exact for interleaved layers, the stage average for the first ones")


class MoeLayers(Record):
    num_experts: PosInt
    top_k: PosInt
    expert_width: PosInt
    num_shared_experts: NonNegInt
    shared_expert_width: NonNegInt = Field(description="width of each shared expert")
    max_nodes_per_token: PosInt | None = Field(
        description="node- or device-limited routing: at most this many EP nodes per token"
    )

    @model_validator(mode="after")
    def _k(self) -> MoeLayers:
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k {self.top_k} exceeds num_experts {self.num_experts}")
        return self


class Published(Record):
    total_params_b: float = Field(gt=0, allow_inf_nan=False)
    active_params_b: float = Field(gt=0, allow_inf_nan=False)
    counts_input_embedding: bool = Field(
        description="whether the published active count includes the input embedding"
    )
    counts_lm_head: bool = Field(
        True, description="whether the published active count includes the LM head (false for "
                          "a non-embedding count, without either embedding)")
    source: str = Field(min_length=3)


class ModelSpec(Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str
    source: str = Field(min_length=3, description="where the architecture comes from")
    notes: str | None = None
    num_layers: PosInt
    hidden_size: PosInt
    vocab_size: PosInt
    tied_embeddings: bool
    ffn_activation: Literal["swiglu", "gelu", "squared_relu"] = Field(
        description="swiglu: gated, three matrices per FFN; gelu and squared_relu (Nemotron-4's "
                    "relu(x)^2): two, the activation's input kept for its backward")
    attention: MhaAttention | MlaAttention = Field(discriminator="kind")
    linear_attention: LinearAttention | None = Field(
        None, description="linear-attention layers of a hybrid model; the others use attention")
    dense_layers: DenseLayers
    moe: MoeLayers | None
    mtp_depth: NonNegInt
    published: Published | None = None

    @model_validator(mode="after")
    def _layers(self) -> ModelSpec:
        if self.dense_layers.count > self.num_layers:
            raise ValueError(
                f"dense_layers.count {self.dense_layers.count} exceeds num_layers {self.num_layers}"
            )
        if self.moe is None and self.dense_layers.count != self.num_layers:
            raise ValueError("a model without moe needs dense_layers.count == num_layers")
        if self.dense_layers.count and not self.dense_layers.ffn_width:
            raise ValueError("dense_layers.ffn_width must be > 0 when there are dense layers")
        lin = self.linear_attention
        if lin is not None and lin.count > self.num_layers:
            raise ValueError(
                f"linear_attention.count {lin.count} exceeds num_layers {self.num_layers}")
        windowed = self.sliding_window[1]
        if windowed > self.num_full_attention_layers:
            raise ValueError(f"attention.sliding_window_layers {windowed} exceeds the "
                             f"{self.num_full_attention_layers} attention layers")
        return self

    @property
    def num_linear_attention_layers(self) -> int:
        return self.linear_attention.count if self.linear_attention else 0

    @property
    def num_full_attention_layers(self) -> int:
        return self.num_layers - self.num_linear_attention_layers

    @property
    def sliding_window(self) -> tuple[int | None, int]:
        """Keys of the attention's sliding window and how many layers use it ((None, 0):
        every attention layer sees the whole context)."""
        att = self.attention
        if isinstance(att, MhaAttention):
            return att.sliding_window, att.sliding_window_layers
        return None, 0


# ---------------------------------------------------------------------------------------------
# Parameter counts: small pure functions, one per component.


def ffn_params(hidden: int, width: int, gated: bool) -> int:
    """Weights of one FFN: gated (SwiGLU) has gate, up and down (3hw); GeLU has up, down (2hw)."""
    return (3 if gated else 2) * hidden * width


@dataclass(frozen=True, kw_only=True)
class ParamCounts:
    """Parameter counts by component (whole model, not per chip)."""

    embedding: int
    lm_head: int
    attention: int
    """Full-attention layers (softmax attention, MHA/GQA/MLA)."""
    linear_attention: int
    """Linear-attention layers of a hybrid model (Gated DeltaNet)."""
    norms: int
    dense_ffn: int
    router: int
    routed_experts: int
    routed_experts_active: int
    shared_experts: int
    mtp: int

    @property
    def total(self) -> int:
        return (
            self.embedding + self.lm_head + self.attention + self.linear_attention + self.norms
            + self.dense_ffn
            + self.router + self.routed_experts + self.shared_experts
        )

    @property
    def active(self) -> int:
        return self.total - self.routed_experts + self.routed_experts_active

    @property
    def expert(self) -> int:
        """Parameters sharded over expert parallelism (routed experts)."""
        return self.routed_experts

    @property
    def dense(self) -> int:
        """Parameters replicated across expert-parallel ranks (everything but routed experts)."""
        return self.total - self.routed_experts


@dataclass(frozen=True, kw_only=True)
class ModelArch:
    """A validated architecture with its counts, ready for the workload equations."""

    spec: ModelSpec
    params: ParamCounts

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def gated(self) -> bool:
        return self.spec.ffn_activation == "swiglu"

    @property
    def num_moe_layers(self) -> int:
        return self.spec.num_layers - self.spec.dense_layers.count if self.spec.moe else 0

    @property
    def is_moe(self) -> bool:
        return self.spec.moe is not None


def moe_layer_params(spec: ModelSpec, gated: bool) -> tuple[int, int, int, int]:
    """(router, routed experts, routed active, shared experts) weights of one MoE layer."""
    moe = spec.moe
    if moe is None:
        return 0, 0, 0, 0
    h = spec.hidden_size
    expert = ffn_params(h, moe.expert_width, gated)
    shared = moe.num_shared_experts * ffn_params(h, moe.shared_expert_width, gated)
    return h * moe.num_experts, moe.num_experts * expert, moe.top_k * expert, shared


def count_params(spec: ModelSpec) -> ParamCounts:
    """Exact parameter counts of the main model, plus the MTP modules apart."""
    h = spec.hidden_size
    gated = spec.ffn_activation == "swiglu"
    att = attention_params(spec.attention, h)
    n_moe = spec.num_layers - spec.dense_layers.count if spec.moe else 0
    router, routed, routed_active, shared = moe_layer_params(spec, gated)
    layer_norms = 2 * h
    lin = spec.linear_attention
    # MTP module (DeepSeek-V3 sec. 2.2): projection M (2h x h), two RMSNorms, one MoE layer with
    # full attention (also in Qwen3-Next); embedding and output head are shared with the model.
    mtp_layer = att + layer_norms + router + routed + shared + 2 * h * h + 2 * h
    return ParamCounts(
        embedding=spec.vocab_size * h,
        lm_head=0 if spec.tied_embeddings else spec.vocab_size * h,
        attention=spec.num_full_attention_layers * att,
        linear_attention=lin.count * gated_deltanet_params(lin, h) if lin else 0,
        norms=spec.num_layers * layer_norms + h,
        dense_ffn=spec.dense_layers.count * ffn_params(h, spec.dense_layers.ffn_width, gated),
        router=n_moe * router,
        routed_experts=n_moe * routed,
        routed_experts_active=n_moe * routed_active,
        shared_experts=n_moe * shared,
        mtp=spec.mtp_depth * mtp_layer,
    )


def dense_twin(spec: ModelSpec) -> ModelSpec:
    """A one-expert, top-1 MoE without shared experts is a dense FFN (its router's softmax over
    one expert is the constant 1), so it is modelled as one; anything else is returned as is."""
    moe = spec.moe
    if moe is None or moe.num_experts != 1 or moe.num_shared_experts:
        return spec
    dense = spec.dense_layers
    if dense.count and dense.ffn_width != moe.expert_width:
        return spec
    return spec.model_copy(update={
        "moe": None,
        "dense_layers": DenseLayers(count=spec.num_layers, ffn_width=moe.expert_width),
    })


def arch_from_spec(spec: ModelSpec) -> ModelArch:
    spec = dense_twin(spec)
    return ModelArch(spec=spec, params=count_params(spec))


def spec_from_hf_config(data: dict[str, Any], where: str) -> ModelSpec:
    """A validated ModelSpec from a parsed Hugging Face config.json (:mod:`.hf_config` maps
    its fields; this module owns the record)."""
    from moebench.inputs.hf_config import hf_mapping

    return validate(ModelSpec, hf_mapping(data, where), where)


def load_model(name_or_path: str) -> ModelArch:
    """A model from a catalog name, a model YAML path, or a Hugging Face config.json path (or
    the checkpoint folder that holds it)."""
    path = catalog.resolve("models", name_or_path, "--model")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError("--model", str(path), "is a folder without a config.json; give "
                                                   "a catalog name, a model YAML or a config.json")
        path = path / "config.json"
    data = load_mapping(path)
    if path.suffix == ".json" or "model_type" in data:
        spec = spec_from_hf_config(data, str(path))
    else:
        spec = validate(ModelSpec, data, str(path))
    return arch_from_spec(spec)

