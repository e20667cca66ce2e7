"""Plausible ranges for hardware figures, so ``profiles check`` catches a unit slip.

A profile may be valid and still wrong by a factor of 1000 (HBM in GB/s typed into a TB/s
field). These ranges are deliberately wide, several times beyond any chip shipped or announced
by 2026 (each range names its anchor), so a warning means "check the unit", never "this chip
is unusual". A warning does not stop a run; ``profiles check --strict`` makes it fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from moebench.inputs import catalog
from moebench.inputs.hardware import HardwareSpec


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    unit: str
    why: str
    """The anchor the bounds come from, in a few words."""


PLAUSIBLE: dict[str, Range] = {
    "compute.bf16_dense_tflops": Range(5, 20_000, "TFLOPS",
                                       "V100 125, B200 2,250 dense (datasheets)"),
    "compute.fp8_dense_tflops": Range(10, 40_000, "TFLOPS", "H100 1,979, B200 4,500 dense"),
    "compute.min_kernel_us": Range(0.5, 100, "us", "CUDA launch about 2-5 us"),
    "memory.hbm_capacity_gb": Range(8, 2_000, "GB", "A100 40, MI355X 288"),
    "memory.hbm_bandwidth_tb_per_s": Range(0.2, 60, "TB/s", "A100 1.6, B200 8"),
    "scale_up.bandwidth_gb_per_s": Range(5, 10_000, "GB/s per direction",
                                         "PCIe 4 x16 32, NVLink 5 900"),
    "scale_up.domain_size": Range(1, 2_048, "chips", "HGX 8, NVL72 72, CloudMatrix 384"),
    "scale_up.latency_us": Range(0.1, 200, "us", "NVLink about 1-3 us"),
    "scale_out.bandwidth_gb_per_s": Range(1, 1_000, "GB/s per direction",
                                          "100 Gb/s NIC 12.5, 800 Gb/s NIC 100"),
    "scale_out.latency_us": Range(0.5, 500, "us", "InfiniBand about 2-10 us"),
    "power.chip_tdp_w": Range(50, 5_000, "W", "H20 400, B200 1,000, GB300 1,400"),
    "power.host_share_w": Range(0, 5_000, "W", "server CPUs, NICs and fans per chip"),
    "host.link_bandwidth_gb_per_s": Range(2, 2_000, "GB/s per direction",
                                          "PCIe Gen4 x16 32, Gen5 64, NVLink-C2C 450"),
    "host.dram_per_chip_gb": Range(8, 8_000, "GB per chip", "DGX H100 2 TB / 8 GPUs = 256"),
    "host.adam_gparams_per_s": Range(0.01, 100, "billion Adam updates/s per chip",
                                     "CPU Adam on a chip's share of a server: about 1-5"),
    "reliability.mtbf_hours": Range(500, 10_000_000, "hours",
                                    "Llama 3 on H100: about 50,000 per GPU"),
}
# Prices depend on the currency: bounds in USD, CNY at 7.2 per USD (wide on purpose).
PRICE_USD = {
    "price.rental_per_chip_hour": Range(0.05, 100, "per chip-hour", "cloud H100 about 2-4 USD"),
    "price.purchase_per_chip": Range(500, 500_000, "per chip", "H100 about 25,000-40,000 USD"),
    "ling_device.fair_cost_per_hour": Range(0.05, 100, "per chip-hour",
                                            "Ling report: 7-27.5 CNY"),
}
CNY_PER_USD = 7.2


def _value(spec: HardwareSpec, dotted: str) -> tuple[float, str | None] | None:
    section, name = dotted.split(".")
    part = getattr(spec, section)
    fig = None if part is None else getattr(part, name)
    if fig is None:
        return None
    return float(fig.value), getattr(fig, "currency", None)


def implausible_figures(spec: HardwareSpec, where: str) -> list[str]:
    """One warning per figure outside its plausible range, with the range and its anchor."""
    out = []
    for dotted, r in {**PLAUSIBLE, **PRICE_USD}.items():
        found = _value(spec, dotted)
        if found is None:
            continue
        value, currency = found
        scale = CNY_PER_USD if currency == "CNY" else 1.0
        low, high = r.low * scale, r.high * scale
        if not low <= value <= high:
            unit = f"{currency} {r.unit}" if currency else r.unit
            out.append(f"{where}: {dotted}: {value:g} is outside the plausible "
                       f"{low:g}-{high:g} {unit} ({r.why}); check the unit")
    return out


def inherited_ling_price(spec: HardwareSpec, path: Path) -> list[str]:
    """A profile outside the catalog that claims a Ling device: usually copied from a shipped
    profile, so it would silently carry that chip's Ling fair cost."""
    if spec.ling_device is None:
        return []
    shipped = catalog.catalog_dir("hardware").resolve()
    if path.resolve().parent == shipped:
        return []
    d = spec.ling_device
    return [f"{path}: ling_device: device {d.device} at {d.fair_cost_per_hour.value:g} "
            f"{d.fair_cost_per_hour.currency}/h is the Ling report's price for the chips it "
            f"measured; delete ling_device unless {spec.name} is device {d.device}"]
