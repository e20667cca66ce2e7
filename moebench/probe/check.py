"""Measured against catalog: does this chip reach its datasheet?

One row per figure the probe measured (its source starts with "moebench probe"), and the
rates they make (peak x efficiency): catalog value, measured value, ratio. A max-achievable rate
well under the catalog's points at clocks held down, a power cap, heat, another job on the
device or a misconfigured node.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moebench.commands.shared.report import Report
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import HardwareSpec, load_spec
from moebench.inputs.stack import StackSpec, load_stack_spec
from moebench.probe.profile import BASE_MARK, PROBE, stack_path

Spec = HardwareSpec | StackSpec


def figure(spec: Spec, dotted: str) -> Any:
    node: Any = spec
    for part in dotted.split("."):
        node = None if node is None else getattr(node, part)
    return node


def probed(spec: Spec, dotted: str) -> bool:
    fig = figure(spec, dotted)
    return fig is not None and fig.kind == "measured" and fig.source.startswith(PROBE)


def value(spec: Spec, dotted: str) -> float | None:
    fig = figure(spec, dotted)
    return None if fig is None else float(fig.value)


def product(*dotted: str) -> Callable[[Spec], float | None]:
    """A rate made of figures: peak x efficiency."""
    def read(spec: Spec) -> float | None:
        values = [value(spec, d) for d in dotted]
        if any(v is None for v in values):
            return None
        out = 1.0
        for v in values:
            out *= v  # type: ignore[operator]
        return out
    return read


@dataclass(frozen=True)
class Row:
    label: str
    reads: tuple[str, ...]
    """The figures it is made of; the row is shown when any of them was probed."""
    get: Callable[[Spec], float | None]


def _row(label: str, dotted: str) -> Row:
    return Row(label, (dotted,), lambda s: value(s, dotted))


def _rate(label: str, *dotted: str) -> Row:
    return Row(label, dotted, product(*dotted))


HARDWARE_ROWS = [
    _row("BF16 peak, TFLOPS", "compute.bf16_dense_tflops"),
    _rate("max-achievable BF16 GEMM, TFLOPS", "compute.bf16_dense_tflops",
          "compute.bf16_gemm_efficiency"),
    _row("BF16 GEMM efficiency", "compute.bf16_gemm_efficiency"),
    _rate("max-achievable FP8 GEMM, TFLOPS", "compute.fp8_dense_tflops",
          "compute.fp8_gemm_efficiency"),
    _row("FP8 GEMM efficiency", "compute.fp8_gemm_efficiency"),
    _row("kernel floor, us", "compute.min_kernel_us"),
    _row("memory capacity, GB", "memory.hbm_capacity_gb"),
    _rate("memory bandwidth achieved, TB/s", "memory.hbm_bandwidth_tb_per_s",
          "memory.hbm_efficiency"),
    _row("memory bandwidth efficiency", "memory.hbm_efficiency"),
    _rate("scale-up bus bandwidth, GB/s", "scale_up.bandwidth_gb_per_s", "scale_up.efficiency"),
    _row("scale-up efficiency", "scale_up.efficiency"),
    _row("scale-up latency per step, us", "scale_up.latency_us"),
]
STACK_ROWS = [
    _row("GEMM rows half-point m_half", "kernels.gemm_half_rows"),
    _row("GEMM depth half-point k_half", "kernels.gemm_half_depth"),
    _row("attention fraction", "kernels.attention_fraction"),
    _row("host us per op", "host.op_us"),
]


def compare_rows(measured: Spec, catalog_spec: Spec, rows: list[Row],
                 scope: str) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if not any(probed(measured, d) for d in row.reads):
            continue
        cat, got = row.get(catalog_spec), row.get(measured)
        out.append({"figure": row.label, "profile": scope, "catalog": cat, "measured": got,
                    "ratio": got / cat if cat and got is not None else None})
    return out


def comparison(measured: HardwareSpec, catalog_hw: HardwareSpec,
               measured_stack: StackSpec | None = None, catalog_stack: StackSpec | None = None,
               footer: list[str] | None = None, payload: dict[str, Any] | None = None) -> Report:
    """The table of figure, catalog value, measured value, ratio."""
    rows = compare_rows(measured, catalog_hw, HARDWARE_ROWS, "hardware")
    if measured_stack is not None and catalog_stack is not None:
        rows += compare_rows(measured_stack, catalog_stack, STACK_ROWS,
                             f"stack vs {catalog_stack.name}")
    notes = [f"catalog: {catalog_hw.name} ({catalog_hw.display_name})"
             + (f" and stack {catalog_stack.name}" if catalog_stack else ""),
             "ratio = measured / catalog; a max-achievable rate well under 1 points at clocks, "
             "a power cap, heat, another job on the device or a misconfigured node"]
    df = pd.DataFrame(rows, columns=["figure", "profile", "catalog", "measured", "ratio"])
    data = {"measured": measured.name, "catalog": catalog_hw.name, "rows": rows,
            **(payload or {})}
    return Report(f"{measured.name} measured against {catalog_hw.name}", df, data,
                  notes + (footer or []), optional=("profile",))


def base_of(spec: HardwareSpec, given: str | None) -> str:
    """The catalog profile to compare with: ``--base``, else the one the notes name, else the
    profile's own name or the longest catalog name it starts with (h200-2026-03-01: h200)."""
    if given:
        return given
    names = catalog.catalog_names("hardware")
    found = re.search(re.escape(BASE_MARK) + r"\s*([a-z0-9][a-z0-9._-]*)", spec.notes or "")
    if found and found.group(1) in names:
        return found.group(1)
    if spec.name in names:
        return spec.name
    prefixes = [n for n in names if spec.name.startswith(f"{n}-")]
    if prefixes:
        return max(prefixes, key=len)
    raise InputError("--check", None, f"profile {spec.name} names no catalog profile to compare "
                                      f"with; give --base NAME")


def check_profile(path: Path, base: str | None) -> Report:
    """``moebench probe --check``: a measured profile (and its stack file beside it, if there)
    against the catalog's."""
    if not path.is_file():
        raise InputError("--check", None, f"{path} is not a file")
    measured = load_spec(path)
    catalog_hw = load_spec(catalog.resolve("hardware", base_of(measured, base), "--base"))
    stack_file = stack_path(path)
    measured_stack = catalog_stack = None
    if stack_file.is_file():
        measured_stack = load_stack_spec(str(stack_file), option="--check")
        # The stack the measured one was built from: its profile's default stack.
        catalog_stack = load_stack_spec(measured.default_stack, option="--check")
    if not any(probed(measured, r) for row in HARDWARE_ROWS for r in row.reads):
        raise InputError(str(path), None, f"no figure was measured by {PROBE}; nothing to check")
    return comparison(measured, catalog_hw, measured_stack, catalog_stack)
