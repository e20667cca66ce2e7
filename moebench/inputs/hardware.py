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

from pydantic import Field

from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.schema import (
    CountFigure,
    Figure,
    FractionFigure,
    MoneyFigure,
    Record,
    ShareFigure,
    validate,
)
from moebench.inputs.yamlio import load_mapping
from moebench.units import to_base


class ComputeSpec(Record):
    bf16_dense_tflops: Figure
    fp8_dense_tflops: Figure | None = Field(
        description="null when the chip has no FP8 tensor path"
    )
    bf16_gemm_efficiency: FractionFigure
    fp8_gemm_efficiency: FractionFigure | None
    attention_efficiency: FractionFigure
    overlap_compute_loss: ShareFigure = Field(
        description="share of compute lost while communication kernels run alongside it"
    )
    kernel_launch_us: Figure = Field(
        description="fixed cost of launching one kernel; a kernel never takes less"
    )


class MemorySpec(Record):
    hbm_capacity_gb: Figure
    hbm_bandwidth_tb_per_s: Figure
    hbm_efficiency: FractionFigure
    reserve_gb: Figure


class LinkSpec(Record):
    technology: str = Field(min_length=2)
    bandwidth_gb_per_s: Figure = Field(description="per chip, one direction")
    efficiency: FractionFigure
    latency_us: Figure


class ScaleUpSpec(LinkSpec):
    domain_size: CountFigure


class PowerSpec(Record):
    chip_tdp_w: Figure
    host_share_w: Figure


class PriceSpec(Record):
    rental_per_chip_hour: MoneyFigure
    purchase_per_chip: MoneyFigure


class ReliabilitySpec(Record):
    mtbf_hours: Figure


class LingDevice(Record):
    device: Literal["A", "B", "C", "D", "E"]
    fair_cost_per_hour: MoneyFigure
    match: str = Field(min_length=10, description="why this profile is taken to be that device")


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
    ling_device: LingDevice | None = None


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
    fp8_gemm_eff: Num | None
    attention_eff: Num
    overlap_compute_loss: Num
    kernel_launch: Num
    """Minimum time of one kernel (launch and dispatch), s."""
    hbm_bytes: Num
    hbm_bw: Num
    """HBM bandwidth, byte/s."""
    hbm_eff: Num
    reserve_bytes: Num
    up_domain: int
    up_bw: Num
    """Scale-up bandwidth per chip, one direction, byte/s."""
    up_eff: Num
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
    ling_device: str | None
    ling_cost_per_hour: float | None
    ling_currency: str | None

    @property
    def supports_fp8(self) -> bool:
        return self.fp8_flops is not None

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
        attention_eff=value(c.attention_efficiency),
        overlap_compute_loss=value(c.overlap_compute_loss),
        kernel_launch=_v(c, "kernel_launch_us"),
        hbm_bytes=_v(m, "hbm_capacity_gb"),
        hbm_bw=_v(m, "hbm_bandwidth_tb_per_s"),
        hbm_eff=value(m.hbm_efficiency),
        reserve_bytes=_v(m, "reserve_gb"),
        up_domain=int(up.domain_size.value),
        up_bw=_v(up, "bandwidth_gb_per_s"),
        up_eff=value(up.efficiency),
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
        ling_device=spec.ling_device.device if spec.ling_device else None,
        ling_cost_per_hour=spec.ling_device.fair_cost_per_hour.value if spec.ling_device else None,
        ling_currency=spec.ling_device.fair_cost_per_hour.currency if spec.ling_device else None,
    )


def fp8_consistent(spec: HardwareSpec, where: str) -> None:
    """FP8 peak and FP8 efficiency are given together or not at all."""
    if (spec.compute.fp8_dense_tflops is None) != (spec.compute.fp8_gemm_efficiency is None):
        raise InputError(
            where, "compute.fp8_gemm_efficiency",
            "give fp8_gemm_efficiency exactly when fp8_dense_tflops is not null",
        )


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``FIELD=VALUE`` strings as a mapping; an InputError for a malformed one."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError("--set", None, f"expected FIELD=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(data: dict[str, Any], overrides: dict[str, str], where: str) -> dict[str, Any]:
    """A copy of a raw hardware mapping with ``section.field=value`` overrides applied.

    An override replaces the figure's value (and marks it ``kind: estimate`` with a zero-width
    range, sourced to the command line) so that the output can say what was changed.
    """
    import copy

    data = copy.deepcopy(data)
    for key, raw in overrides.items():
        parts = key.split(".")
        node: Any = data
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise InputError("--set", key, f"no such hardware field in {where}")
            node = node[p]
        leaf = parts[-1]
        if not isinstance(node, dict) or leaf not in node:
            raise InputError("--set", key, f"no such hardware field in {where}")
        try:
            value = float(raw)
        except ValueError:
            raise InputError("--set", key, f"expected a number, got {raw!r}") from None
        old = node[leaf]
        if isinstance(old, dict) and "value" in old:
            node[leaf] = {
                **{k: v for k, v in old.items() if k not in ("low", "high", "note")},
                "value": value, "kind": "estimate", "low": value, "high": value,
                "source": f"override on the command line: --set {key}={raw}",
            }
        else:
            raise InputError("--set", key, "is not a numeric figure")
    return data


def load_spec(path: Path, overrides: dict[str, str] | None = None) -> HardwareSpec:
    where = str(path)
    data = load_mapping(path)
    if overrides:
        data = apply_overrides(data, overrides, where)
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

