"""Fabric profiles: the network between the chip types of a mixed cluster.

Chips of different vendors share no scale-up link (NVLink, HCCS and Infinity Fabric do not
connect to each other), so every byte that crosses between chip types rides either the site's
shared Ethernet/RoCE/InfiniBand fabric (a bandwidth per chip) or, when the types sit in
different places, the WAN link between the sites (one bandwidth for the whole link).
``profiles/fabrics/<name>.yaml`` is validated into :class:`FabricSpec` (sourced figures, units in
field names) and converted once into :class:`Fabric` (base units: byte/s, second).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from moebench.inputs import catalog
from moebench.inputs.schema import Figure, FractionFigure, Record, validate
from moebench.inputs.yamlio import load_mapping
from moebench.units import to_base

DEFAULT_FABRIC = "roce-400g-wan-100g"
SYNC_BYTES = {"fp32": 4.0, "bf16": 2.0}


class CommonFabricSpec(Record):
    technology: str = Field(min_length=2)
    per_chip_bandwidth_gbit_per_s: Figure = Field(
        description="what one chip's port on the shared fabric carries, one direction")
    efficiency: FractionFigure = Field(
        description="share of the line rate a cross-vendor collective reaches")
    latency_us: Figure


class WanSpec(Record):
    technology: str = Field(min_length=2)
    link_bandwidth_gbit_per_s: Figure = Field(
        description="the whole link between two sites, one direction, shared by every chip")
    efficiency: FractionFigure
    latency_ms: Figure


class OuterSyncSpec(Record):
    precision: Literal["fp32", "bf16"] = Field(
        description="precision of the pseudo-gradient exchanged at a local-SGD outer step")
    source: str = Field(min_length=3)


class FabricSpec(Record):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    description: str
    common: CommonFabricSpec
    wan: WanSpec
    outer_sync: OuterSyncSpec


@dataclass(frozen=True, kw_only=True)
class Fabric:
    """The cross-type network in base units."""

    name: str
    common_bw_per_chip: float
    """Shared fabric, byte/s per chip and direction (line rate)."""
    common_eff: float
    common_latency: float
    """Seconds per message step on the shared fabric."""
    wan_bw: float
    """The inter-site link, byte/s per direction for the whole link (line rate)."""
    wan_eff: float
    wan_latency: float
    sync_bytes_per_param: float
    """Bytes per parameter of a local-SGD outer synchronization."""


def fabric_from_spec(spec: FabricSpec) -> Fabric:
    """Convert a validated spec to base units, once."""
    c, w = spec.common, spec.wan
    return Fabric(
        name=spec.name,
        common_bw_per_chip=to_base("per_chip_bandwidth_gbit_per_s",
                                   c.per_chip_bandwidth_gbit_per_s.value),
        common_eff=c.efficiency.value,
        common_latency=to_base("latency_us", c.latency_us.value),
        wan_bw=to_base("link_bandwidth_gbit_per_s", w.link_bandwidth_gbit_per_s.value),
        wan_eff=w.efficiency.value,
        wan_latency=to_base("latency_ms", w.latency_ms.value),
        sync_bytes_per_param=SYNC_BYTES[spec.outer_sync.precision],
    )


def load_fabric_spec(name_or_path: str, option: str = "--fabric") -> FabricSpec:
    path = catalog.resolve("fabrics", name_or_path, option)
    return validate(FabricSpec, load_mapping(path), str(path))


def load_fabric(name_or_path: str = DEFAULT_FABRIC, option: str = "--fabric") -> Fabric:
    """A fabric from a catalog name or a fabric YAML path."""
    return fabric_from_spec(load_fabric_spec(name_or_path, option))
