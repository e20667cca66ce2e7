"""Hardware profiles: one chip and the cluster it sits in.

``profiles/hardware/<name>.yaml`` is validated into :class:`HardwareSpec` (the file's own shape:
sourced figures, units in field names) and converted once into :class:`Chip`, which holds plain
numbers in base units (FLOP/s, byte, byte/s, second, watt) for the equations. A Chip's numeric
fields may also be numpy arrays of samples (uncertainty mode); the equations broadcast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware_compute import ComputeSpec
from moebench.inputs.hardware_costs import (
    LingDevice,
    MarketSpec,
    PowerSpec,
    PriceSpec,
    ReliabilitySpec,
)
from moebench.inputs.overrides import apply_overrides
from moebench.inputs.schema import (
    CountFigure,
    Figure,
    FractionFigure,
    Record,
    validate,
)
from moebench.inputs.yamlio import cached_record, load_mapping
from moebench.units import to_base


class MemorySpec(Record):
    hbm_capacity_gb: Figure
    hbm_bandwidth_tb_per_s: Figure
    hbm_efficiency: FractionFigure


class LinkSpec(Record):
    technology: str = Field(min_length=2)
    bandwidth_gb_per_s: Figure = Field(description="per chip, one direction")
    efficiency: FractionFigure
    latency_us: Figure


class ScaleUpSpec(LinkSpec):
    domain_size: CountFigure
    topology: Literal["switched", "full_mesh"] = Field(
        description="switched: any pair gets the full bandwidth; full_mesh: one direct link per "
                    "peer, so a group of g chips uses g-1 of the links")
    links: CountFigure | None = Field(
        default=None, description="direct links per chip in a full mesh (bandwidth / links each)")
    alltoall_efficiency: FractionFigure | None = Field(
        default=None,
        description="share of the link an all-to-all's remote bytes reach (bus bandwidth), where "
                    "measured apart from the other collectives; efficiency when absent")

    @model_validator(mode="after")
    def _mesh_links(self) -> ScaleUpSpec:
        if self.topology == "full_mesh" and self.links is None:
            raise ValueError("a full_mesh scale-up needs links: the direct links per chip")
        return self


class HostSpec(Record):
    """The host a chip sits in, per chip: what optimizer-state and activation offload use.

    Megatron-Core's ``--optimizer-cpu-offload`` keeps (a fraction of) the FP32 master weights and
    Adam moments in host memory, copies gradients over the host link, runs Adam on the CPU and
    copies the updated parameters back; fine-grained activation offload parks activations in
    host memory between forward and backward. Each needs the figures below.
    """

    link_technology: str = Field(min_length=2, description="host-device link, e.g. PCIe Gen5 x16")
    link_bandwidth_gb_per_s: Figure = Field(
        description="host-device link per chip, one direction (PCIe Gen5 x16: 64)")
    link_efficiency: FractionFigure = Field(
        description="pinned-memory copy rate over the link's bandwidth")
    dram_per_chip_gb: Figure = Field(description="host memory per chip (the server's / chips)")
    adam_gparams_per_s: Figure = Field(
        description="Adam parameter updates per second on the chip's share of the host CPUs "
                    "and memory, in billions")


class HardwareSpec(Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    display_name: str
    vendor: str
    notes: str | None = None
    compute: ComputeSpec
    memory: MemorySpec
    scale_up: ScaleUpSpec
    scale_out: LinkSpec
    power: PowerSpec
    price: PriceSpec
    reliability: ReliabilitySpec
    host: HostSpec | None = Field(
        default=None, description="host link, memory and CPU optimizer rate; without it "
                                  "no plan offloads to the host")
    ling_device: LingDevice | None = None
    markets: dict[Literal["cn", "us"], MarketSpec] = Field(
        default_factory=dict, description="per buyer's market (cn, us): availability and "
                                          "rental price, each sourced")
    default_stack: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*(@[a-z0-9][a-z0-9._-]*)?$",
                               description="software stack used unless --stack says otherwise")


Num = Any  # float, or a numpy array of samples in uncertainty mode


@dataclass(frozen=True, kw_only=True)
class Chip:
    """One accelerator and its links, in base units."""

    name: str
    display_name: str
    vendor: str
    bf16_flops: Num
    """Dense BF16 tensor peak, FLOP/s."""
    fp8_flops: Num | None
    """Dense FP8 tensor peak, FLOP/s; None when unsupported."""
    bf16_gemm_eff: Num
    """Max-achievable BF16 matmul rate over the peak."""
    fp8_gemm_eff: Num | None
    min_kernel: Num
    """Device-side floor of one kernel, s."""
    exp_rate: Num | None
    """Exponentials per second on the special-function units; None when unknown."""
    hbm_bytes: Num
    hbm_bw: Num
    """HBM bandwidth, byte/s."""
    hbm_eff: Num
    up_domain: int
    up_mesh_links: int | None
    """Direct links per chip when the scale-up domain is a full mesh; None when switched."""
    up_bw: Num
    """Scale-up bandwidth per chip, one direction, byte/s."""
    up_eff: Num
    up_a2a_eff: Num
    """Share of the scale-up link an all-to-all's remote bytes reach."""
    up_latency: Num
    out_bw: Num
    """Scale-out bandwidth per chip, one direction, byte/s."""
    out_eff: Num
    out_latency: Num
    tdp_w: Num
    host_w: Num
    rental_per_hour: Num
    rental_currency: str
    purchase: Num
    purchase_currency: str
    mtbf_s: Num
    host_bw: Num | None = None
    """Host-device link per chip, one direction, byte/s; None when the profile has no host."""
    host_link_eff: Num | None = None
    host_dram: Num | None = None
    """Host memory per chip, byte."""
    host_adam: Num | None = None
    """Adam parameter updates per second on the chip's share of the host."""
    gemm_tile: tuple[int, int, int] | None = None
    """(SMs, tile rows, tile columns) of the BLAS's large GEMMs; None: no quantization term."""
    ling_device: str | None
    ling_cost_per_hour: float | None
    ling_currency: str | None
    default_stack: str

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_flops is not None

    @property
    def has_host(self) -> bool:
        """The profile gives the host figures offload needs."""
        return self.host_bw is not None

    @property
    def wall_w(self) -> Num:
        """Power at the wall per chip, before PUE: chip plus its share of host and network."""
        return self.tdp_w + self.host_w


def nominal(fig: Any) -> Num:
    """A figure's stated value (the default reading of a profile)."""
    return fig.value


def chip_from_spec(spec: HardwareSpec, value: Callable[[Any], Num] = nominal) -> Chip:
    """Convert a validated spec to base units, once.

    ``value`` reads each figure: its stated value by default, or an array of samples from its
    range in uncertainty mode.
    """
    c, m, up, out = spec.compute, spec.memory, spec.scale_up, spec.scale_out
    fp8 = c.fp8_dense_tflops
    host = spec.host

    def _v(section: Record, field: str) -> Num:
        return to_base(field, value(getattr(section, field)))

    return Chip(
        name=spec.name,
        display_name=spec.display_name,
        vendor=spec.vendor,
        bf16_flops=_v(c, "bf16_dense_tflops"),
        fp8_flops=None if fp8 is None else to_base("fp8_dense_tflops", value(fp8)),
        bf16_gemm_eff=value(c.bf16_gemm_efficiency),
        fp8_gemm_eff=None if c.fp8_gemm_efficiency is None else value(c.fp8_gemm_efficiency),
        min_kernel=_v(c, "min_kernel_us"),
        exp_rate=None if c.sfu_exp_tera_per_s is None else _v(c, "sfu_exp_tera_per_s"),
        hbm_bytes=_v(m, "hbm_capacity_gb"),
        hbm_bw=_v(m, "hbm_bandwidth_tb_per_s"),
        hbm_eff=value(m.hbm_efficiency),
        up_domain=int(up.domain_size.value),
        up_mesh_links=int(up.links.value) if up.topology == "full_mesh" and up.links else None,
        up_bw=_v(up, "bandwidth_gb_per_s"),
        up_eff=value(up.efficiency),
        up_a2a_eff=value(up.efficiency if up.alltoall_efficiency is None
                         else up.alltoall_efficiency),
        up_latency=_v(up, "latency_us"),
        out_bw=_v(out, "bandwidth_gb_per_s"),
        out_eff=value(out.efficiency),
        out_latency=_v(out, "latency_us"),
        tdp_w=value(spec.power.chip_tdp_w),
        host_w=value(spec.power.host_share_w),
        rental_per_hour=value(spec.price.rental_per_chip_hour),
        rental_currency=spec.price.rental_per_chip_hour.currency,
        purchase=value(spec.price.purchase_per_chip),
        purchase_currency=spec.price.purchase_per_chip.currency,
        mtbf_s=_v(spec.reliability, "mtbf_hours"),
        host_bw=None if host is None else _v(host, "link_bandwidth_gb_per_s"),
        host_link_eff=None if host is None else value(host.link_efficiency),
        host_dram=None if host is None else _v(host, "dram_per_chip_gb"),
        host_adam=None if host is None else _v(host, "adam_gparams_per_s"),
        gemm_tile=None if c.gemm_tile is None else (
            int(c.gemm_tile.sms.value), int(c.gemm_tile.rows.value), int(c.gemm_tile.cols.value)),
        ling_device=spec.ling_device.device if spec.ling_device else None,
        ling_cost_per_hour=spec.ling_device.fair_cost_per_hour.value if spec.ling_device else None,
        ling_currency=spec.ling_device.fair_cost_per_hour.currency if spec.ling_device else None,
        default_stack=spec.default_stack,
    )


def fp8_consistent(spec: HardwareSpec, where: str) -> None:
    """FP8 peak and FP8 efficiency are given together or not at all."""
    if (spec.compute.fp8_dense_tflops is None) != (spec.compute.fp8_gemm_efficiency is None):
        raise InputError(
            where, "compute.fp8_gemm_efficiency",
            "give fp8_gemm_efficiency exactly when fp8_dense_tflops is not null",
        )


def load_spec(path: Path, overrides: dict[str, str] | None = None) -> HardwareSpec:
    """The validated hardware profile at ``path`` with ``overrides`` (frozen; built once per
    file content and overrides)."""
    return cached_record("hardware", path, overrides, lambda: _load_spec(path, overrides))


def _load_spec(path: Path, overrides: dict[str, str] | None) -> HardwareSpec:
    where = str(path)
    data = load_mapping(path)
    if overrides:
        data = apply_overrides(data, overrides, where, "hardware")
    spec = validate(HardwareSpec, data, where)
    fp8_consistent(spec, where)
    return spec


def load_chip(name_or_path: str, overrides: dict[str, str] | None = None) -> Chip:
    """A chip from a catalog name or a hardware YAML path."""
    path = catalog.resolve("hardware", name_or_path, "--chip")
    return chip_from_spec(load_spec(path, overrides))


def chip_with(chip: Chip, **changes: Any) -> Chip:
    """A copy of ``chip`` with some base-unit fields changed (what-ifs, invariants)."""
    known = {f.name for f in fields(Chip)}
    unknown = set(changes) - known
    if unknown:
        raise KeyError(f"unknown Chip fields: {sorted(unknown)}")
    return replace(chip, **changes)

