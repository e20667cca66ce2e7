"""Scenarios: a named comparison (model, chips, tokens, run, prices), as YAML in
``profiles/scenarios``. Command-line options override any field."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from pydantic import Field, field_validator, model_validator

from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.fabric import DEFAULT_FABRIC
from moebench.inputs.mix import parse_mix
from moebench.inputs.release_spec import GraphScope
from moebench.inputs.schema import Currency, Figure, MoneyFigure, Record, validate
from moebench.inputs.stack import CrossEntropy, Dispatcher, Graphs, StackOptions
from moebench.inputs.yamlio import load_mapping

# Sanity bounds on a scenario's scale: the cluster-size search stops at 2^20 chips, and no
# training run comes near a quadrillion tokens (the largest published are tens of trillions).
MAX_CHIPS = 1 << 20
MAX_TOKENS = 1e15


class PlanFields(Record):
    tp: int | None = Field(default=None, gt=0)
    pp: int | None = Field(default=None, gt=0)
    vpp: int | None = Field(default=None, gt=0)
    ep: int | None = Field(default=None, gt=0)
    etp: int | None = Field(default=None, gt=0)
    cp: int | None = Field(default=None, gt=0)
    micro_batch: int | None = Field(default=None, gt=0)
    recompute: Literal["none", "selective", "full"] | None = None
    recompute_modules: list[Literal["core_attn", "moe_act", "layernorm", "mla_up_proj", "mlp",
                                    "moe", "shared_experts"]] | None = None
    schedule: Literal["1f1b", "dualpipe", "zb1p", "dualpipev"] | None = None
    sharding: Literal["zero-0", "zero-1", "zero-2", "zero-3", "hsdp"] | None = None
    shard_group: int | None = Field(default=None, gt=0)
    cp_kind: Literal["ring", "ulysses"] | None = None
    offload_modules: list[Literal["attn_norm", "qkv_linear", "core_attn", "attn_proj",
                                  "mlp_norm", "expert_fc1", "moe_act"]] | None = Field(
        default=None, description="activation offload modules ([] none; omitted: searched)")
    pipeline_layout: str | None = Field(
        default=None, description="balanced, even, a Megatron layout string, layers per rank "
                                  "or first=N,last=M (moebench.engine.layout)")
    optimizer_offload: float | None = Field(
        default=None, ge=0, le=1, allow_inf_nan=False,
        description="fraction of the optimizer states offloaded to the host (0 to 1)")


class StackOptionsSpec(Record):
    """Software settings the scenario's run used, applied to every chip's stack."""

    dispatcher: Dispatcher | None = None
    graphs: Graphs | None = None
    graph_scope: list[GraphScope] | None = Field(
        default=None, description="what partial graphs capture (omitted: all the release can)")
    dispatch_fp8: bool | None = None
    sync_free: bool | None = None
    tp_overlap: bool | None = None
    dp_overlap: bool | None = None
    pp_overlap: bool | None = None
    sequence_parallel: bool | None = None
    grouped_gemm: bool | None = None
    cross_entropy: CrossEntropy | None = None

    def options(self) -> StackOptions:
        """These settings as a stack's options (each field is a StackOptions field)."""
        given = self.model_dump()
        if self.graph_scope is not None:
            given["graph_scope"] = tuple(self.graph_scope)
        return StackOptions(**given)


class TcoSpec(Record):
    """The parts of owning a chip beyond the accelerator, the same for every chip: what a
    purchase price of each scope leaves out is added, and the capital is charged at a cost of
    capital (moebench.commands.shared.pricing.tco_parts)."""

    server_share: Figure = Field(description="the rest of the server (CPUs, memory, chassis, "
                                             "power supplies) as a share of the accelerators' "
                                             "price; added to chip-scope prices")
    network_per_chip: MoneyFigure = Field(description="scale-out network per accelerator "
                                                      "(NICs, switches, optics, cables)")
    facility_per_kw: MoneyFigure = Field(description="data-centre construction per kW of IT "
                                                     "load")
    cost_of_capital: Figure = Field(description="annual rate the capital is charged at")


class Pricing(Record):
    basis: Literal["ling", "rental", "ownership", "market"] = Field(
        description="one price basis for every chip: the Ling report's fair cost (devices A-E "
                    "only), rental prices, ownership (a TCO: accelerator, server share, "
                    "network and facility at a cost of capital, + power), or one "
                    "buyer's market (market: rental prices and availability there)")
    market: Literal["cn", "us"] | None = Field(
        default=None, description="the buyer's market of the market basis: cn or us")
    currency: Currency
    cny_per_usd: Figure
    prices: dict[str, MoneyFigure] = Field(
        default_factory=dict, description="rental prices per chip on the rental basis")
    pue: Figure
    electricity_per_kwh: MoneyFigure
    amortisation_years: Figure
    utilisation: Figure
    carbon_kg_per_kwh: Figure
    tco: TcoSpec | None = Field(default=None, description="ownership's parts beyond the "
                                                          "accelerator; without it, ownership "
                                                          "is the purchase price alone")

    @model_validator(mode="after")
    def _market(self) -> Pricing:
        if (self.basis == "market") != (self.market is not None):
            raise ValueError("the market basis needs a market (cn or us), and a market needs "
                             "basis: market")
        return self


class GoodputSpec(Record):
    checkpoint_write_gb_per_s: Figure = Field(description="per chip, to the checkpoint store")
    restart_minutes: Figure


class MixOptionsSpec(Record):
    """How the scenario's mixed clusters are searched and which strategy each row shows."""

    fabric: str = Field(default=DEFAULT_FABRIC, min_length=1,
                        description="fabric profile between chip types (profiles/fabrics)")
    placement: Literal["same-site", "separate-sites"] = Field(
        default="same-site", description="where the chip types sit: data parallel and pipeline "
                                         "traffic rides the shared fabric, or the WAN")
    sync_every_steps: int = Field(default=100, ge=1,
                                  description="local SGD: steps between outer synchronizations")
    strategy: Literal["auto", "hetero-dp", "hetero-pipeline", "local-sgd"] = Field(
        default="auto", description="auto: the best synchronous strategy; or one by name")
    choose: Literal["fastest", "cheapest"] = "fastest"


class ScenarioSpec(Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    source: str = Field(min_length=3)
    models: list[str] = Field(min_length=1)
    chips: list[str] = Field(min_length=1)
    baseline: str
    tokens: float = Field(gt=0, le=MAX_TOKENS, allow_inf_nan=False)
    seq_len: int = Field(gt=0)
    global_batch: int = Field(gt=0)
    num_chips: int = Field(gt=0, le=MAX_CHIPS, description="at most a million chips, where the "
                                                          "cluster-size search stops")
    precision: Literal["bf16", "fp8", "auto"]
    ep_overlap: bool | None = Field(
        default=None, description="1F1B all-to-all overlap (omitted: each stack release's "
                                  "default; DualPipe always overlaps)")
    expert_imbalance: Figure
    plan: PlanFields = Field(default_factory=PlanFields)
    stack_options: StackOptionsSpec = Field(default_factory=StackOptionsSpec)
    search: list[str] = Field(
        default_factory=list, description="settings searched instead of taken from each stack "
                                          "release's defaults (moebench.inputs.settings: "
                                          "dispatcher, schedule, layout, overlaps, all, ...)")
    pricing: Pricing
    goodput: GoodputSpec
    mixes: list[str] = Field(default_factory=list, description="mixed clusters compared beside "
                             "the chips, each CHIP:COUNT+CHIP:COUNT")
    mix_options: MixOptionsSpec = Field(default_factory=MixOptionsSpec)

    def settings(self) -> StackOptions:
        """The software settings the scenario gives (None: each release's default)."""
        return replace(self.stack_options.options(), ep_overlap=self.ep_overlap)

    @field_validator("mixes")
    @classmethod
    def _mixes(cls, v: list[str]) -> list[str]:
        for text in v:
            try:
                parse_mix(text, "mixes")
            except InputError as exc:
                raise ValueError(exc.message) from None
        return v

    @field_validator("baseline")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("baseline must name a chip")
        return v


DEFAULT_SCENARIO = "ling-plus-1t"
"""What ``moebench compare`` runs with no options (and where a mix estimate takes its prices)."""


def load_scenario(name_or_path: str) -> ScenarioSpec:
    path = catalog.resolve("scenarios", name_or_path, "--scenario")
    return validate(ScenarioSpec, load_mapping(path), str(path))
