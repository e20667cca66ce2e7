"""The measured hardware profile and its stack profile, built, validated and written whole.

Every figure the probe measured has kind ``measured`` and a source naming moebench's version, the
date, the backend, the device, its driver and runtime, and how the figure was obtained. Every
other figure comes from the ``--base`` profile (or its default stack) unchanged in value and
kind, its source starting "from --base NAME, not measured". A host CPU has no catalog
datasheet, so a CPU profile's peaks are its best measured rates (efficiency 1 by construction).

The profile's ``bf16_gemm_efficiency`` is the best measured shape over the peak, as the
catalog's figures are (so calibrated stacks keep their meaning); the fitted curve's large-shape
rate R is printed and named in the source. The stack file carries the shape half-points, the
attention fraction and the host cost per op; the framework figures it cannot measure
(gemm_fraction, collective fraction, op counts) stay the base stack's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from moebench import __version__
from moebench.commands.shared.report import atomic_target
from moebench.errors import InputError
from moebench.inputs.hardware import HardwareSpec, fp8_consistent
from moebench.inputs.schema import Figure, validate
from moebench.inputs.stack import StackSpec
from moebench.probe.fit import link_efficiency, per_step_latency_s
from moebench.probe.results import Fitted
from moebench.probe.runner import GemmPoint, Measurements

PROBE = "moebench probe"
BASE_MARK = "base profile:"
"""How the notes name the base profile (read back by ``--check``)."""


def sig(value: float, digits: int = 4) -> float:
    """``value`` to ``digits`` significant figures (monotone, so low <= value <= high holds)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{digits}g}")


class Sources:
    """Source texts: measured figures name the run; inherited ones name the base."""

    def __init__(self, meas: Measurements, date: str, base: str) -> None:
        self.run = (f"{PROBE} {__version__}, {date}, {meas.backend} backend, "
                    f"{meas.devices} device(s): {meas.info.describe()}")
        self.base = base

    def measured(self, value: float, how: str, low: float | None = None,
                 high: float | None = None) -> dict[str, Any]:
        fig: dict[str, Any] = {"value": sig(value), "kind": "measured",
                               "source": f"{self.run}; {how}"}
        if low is not None and high is not None:
            fig.update(low=sig(min(low, value)), high=sig(max(high, value)))
        return fig

    def inherited(self, fig: Figure | None, base_kind: str = "--base") -> dict[str, Any] | None:
        if fig is None:
            return None
        data = {k: v for k, v in fig.model_dump(mode="json").items() if v is not None}
        data["source"] = f"from {base_kind} {self.base}, not measured by {PROBE}: {fig.source}"
        return data


def _timing(p: GemmPoint) -> str:
    t = p.timing
    return (f"median of {t.runs} runs x {t.inner} calls, spread {t.spread:.1%} (IQR/median)")


def _fraction(ratio: float, what: str) -> tuple[float, str]:
    """A measured ratio as a fraction: above 1 it is written as 1 and the source says so."""
    if ratio <= 1.0:
        return ratio, ""
    return 1.0, f"; measured {ratio:.3f} of the {what}, above 1: the --base figure is too low"


def build_hardware(base: HardwareSpec, meas: Measurements, fit: Fitted, name: str,
                   date: str) -> dict[str, Any]:
    """The hardware profile as YAML-ready data."""
    src = Sources(meas, date, base.name)
    c, mem, up = base.compute, base.memory, base.scale_up
    host = meas.info.vendor == "host CPU"
    best, r_max = fit.best, fit.curve.rate_max.value
    shape = f"m x k x n = {best.m} x {best.k} x {best.n}"
    if host:
        peak = best.flops_per_s
        compute: dict[str, Any] = {
            "bf16_dense_tflops": src.measured(
                peak / 1e12, f"best {meas.precision} GEMM of the grid ({shape}, {_timing(best)}), "
                "taken as the peak: a host CPU has no datasheet in the catalog"
                + ("; numpy has no bfloat16" if meas.backend == "numpy" else "")),
            "fp8_dense_tflops": None,
            "bf16_gemm_efficiency": src.measured(
                1.0, f"1 by construction (the peak is the best measured rate); the fitted "
                     f"large-shape rate R is {r_max / peak:.3f} of it"),
            "fp8_gemm_efficiency": None,
        }
    else:
        peak = c.bf16_dense_tflops.value * 1e12
        eff, over = _fraction(best.flops_per_s / peak, "--base peak")
        compute = {
            "bf16_dense_tflops": src.inherited(c.bf16_dense_tflops),
            "fp8_dense_tflops": src.inherited(c.fp8_dense_tflops),
            "bf16_gemm_efficiency": src.measured(
                eff, f"max-achievable matmul: best BF16 GEMM of the grid, "
                     f"{best.flops_per_s / 1e12:.1f} TFLOPS at {shape} ({_timing(best)}) over "
                     f"the {peak / 1e12:g} TFLOPS peak; fitted large-shape rate R = "
                     f"{r_max / peak:.3f} of the peak{over}"),
            "fp8_gemm_efficiency": src.inherited(c.fp8_gemm_efficiency),
        }
        if fit.fp8_best is not None and c.fp8_dense_tflops is not None:
            f8, fp8_peak = fit.fp8_best, c.fp8_dense_tflops.value * 1e12
            eff8, over8 = _fraction(f8.flops_per_s / fp8_peak, "--base FP8 peak")
            compute["fp8_gemm_efficiency"] = src.measured(
                eff8, f"best FP8 GEMM (torch._scaled_mm, e4m3, per-tensor scales), "
                      f"{f8.flops_per_s / 1e12:.1f} TFLOPS at m x k x n = {f8.m} x {f8.k} x "
                      f"{f8.n} ({_timing(f8)}) over the {fp8_peak / 1e12:g} TFLOPS peak{over8}")
    compute["min_kernel_us"] = src.measured(
        fit.kernel_floor_s * 1e6, "device time per one-element add, back to back with the host "
                                  "ahead (median per op)")

    copied = f"copy of {meas.copy_bytes // 2 / 2**20:.0f} MiB, read + write bytes over time"
    memory: dict[str, Any] = {
        "hbm_capacity_gb": (src.measured(meas.info.memory_bytes / 1e9, meas.info.memory_source)
                            if meas.info.memory_bytes > 0 else src.inherited(mem.hbm_capacity_gb)),
    }
    if host:
        memory["hbm_bandwidth_tb_per_s"] = src.measured(
            fit.copy_bw / 1e12, f"{copied}, taken as the peak: host memory, not HBM")
        memory["hbm_efficiency"] = src.measured(1.0, "1 by construction: the bandwidth above is "
                                                     "the measured copy rate")
    else:
        bw = mem.hbm_bandwidth_tb_per_s.value * 1e12
        eff, over = _fraction(fit.copy_bw / bw, "--base bandwidth")
        memory["hbm_bandwidth_tb_per_s"] = src.inherited(mem.hbm_bandwidth_tb_per_s)
        memory["hbm_efficiency"] = src.measured(
            eff, f"{copied}: {fit.copy_bw / 1e12:.3f} TB/s over {bw / 1e12:g} TB/s "
                 f"({meas.copy.runs} runs, spread {meas.copy.spread:.1%}){over}")

    scale_up = up.model_dump(mode="json")
    for key in ("domain_size", "bandwidth_gb_per_s", "efficiency", "latency_us", "links",
                "alltoall_efficiency"):
        scale_up[key] = src.inherited(getattr(up, key))
    for key in ("links", "alltoall_efficiency"):
        if scale_up[key] is None:
            del scale_up[key]
    ranks = meas.devices
    mesh = int(up.links.value) if up.topology == "full_mesh" and up.links else None
    # Each collective's bus bandwidth over the base's link: the all-reduce gives the scale-up
    # efficiency and latency, the all-to-all its own efficiency (MoE dispatch and combine).
    for op, key, label in (("all_reduce", "efficiency", "all-reduce"),
                           ("all_to_all", "alltoall_efficiency", "all-to-all")):
        link = fit.links.get(op)
        if link is None:
            continue
        eff, over = _fraction(link_efficiency(link.bus_bw, up.bandwidth_gb_per_s.value * 1e9,
                                              ranks, mesh), "--base scale-up bandwidth")
        scale_up[key] = src.measured(
            eff, f"{label} over {ranks} devices, alpha-beta fit over message sizes: bus "
                 f"bandwidth {link.bus_bw / 1e9:.1f} GB/s (best point {link.peak_bus_bw / 1e9:.1f})"
                 f" over the {up.bandwidth_gb_per_s.value:g} GB/s of --base{over}")
    reduce = fit.links.get("all_reduce")
    if reduce is not None:
        scale_up["latency_us"] = src.measured(
            max(per_step_latency_s("all_reduce", reduce.alpha_s, ranks) * 1e6, 1e-3),
            f"all-reduce alpha {reduce.alpha_s * 1e6:.1f} us over its 2(n-1) ring steps")

    sections = ("scale_out", "power", "price", "reliability")
    data: dict[str, Any] = {
        "name": name,
        "display_name": f"{meas.info.device} (measured by {PROBE}, {date})",
        "vendor": meas.info.vendor,
        "notes": (f"Measured by {PROBE} {__version__} on {date} with the {meas.backend} backend "
                  f"on {meas.devices} device(s) in {meas.elapsed_s:.0f} s: "
                  f"{meas.info.describe()}. {BASE_MARK} {base.name} (figures not measured come "
                  f"from it and say so)."),
        "compute": compute, "memory": memory, "scale_up": scale_up,
    }
    for section in sections + ("host",):
        part = getattr(base, section)
        if part is None:  # a base without a host section: no offload figures to inherit
            continue
        data[section] = {k: (src.inherited(getattr(part, k)) if isinstance(getattr(part, k),
                                                                           Figure) else v)
                         for k, v in part.model_dump(mode="json").items()}
    same_vendor = base.vendor.lower() == meas.info.vendor.lower()
    data["default_stack"] = base.default_stack if same_vendor else "generic"
    return data


def _mark_inherited(node: Any, stack: str) -> Any:
    """Copy of a stack's data with every figure's source saying it comes from ``stack``."""
    if isinstance(node, dict):
        if {"value", "kind", "source"} <= set(node):
            fig = {k: v for k, v in node.items() if v is not None}
            fig["source"] = f"from stack {stack}, not measured by {PROBE}: {node['source']}"
            return fig
        return {k: _mark_inherited(v, stack) for k, v in node.items() if v is not None}
    return node


def build_stack(base_stack: StackSpec, meas: Measurements, fit: Fitted, name: str, date: str,
                base: str) -> dict[str, Any]:
    """The stack profile: the base's default stack with the shape, attention and host figures
    measured."""
    src = Sources(meas, date, base)
    data = _mark_inherited(base_stack.model_dump(mode="json"), base_stack.name)
    data.pop("validation", None)  # its error figures were for the base stack's runs
    curve = fit.curve
    fitted = (f"fitted R x m/(m+m_half) x k/(k+k_half) over {curve.points} dense and grouped "
              f"{meas.precision} GEMMs (bounded least squares on log rate, interval +-2 standard "
              f"errors, rms error {curve.rms_rel_error:.1%}); R = {curve.rate_max.value / 1e12:.4g}"
              f" TFLOPS")
    kernels = data["kernels"]
    kernels["gemm_half_rows"] = src.measured(curve.m_half.value, fitted, curve.m_half.low,
                                             curve.m_half.high)
    kernels["gemm_half_depth"] = src.measured(curve.k_half.value, fitted, curve.k_half.low,
                                              curve.k_half.high)
    if fit.attention is not None:
        a = fit.attention
        gemm = fit.best.flops_per_s
        frac, over = _fraction(a.flops_per_s / gemm, "best GEMM rate")
        kernels["attention_fraction"] = src.measured(
            frac, f"causal attention forward + backward (heads {a.heads}, s {a.seq}, d "
                  f"{a.head_dim}), FLOPs as the step model counts them, "
                  f"{a.flops_per_s / 1e12:.4g} TFLOPS over the best GEMM's "
                  f"{gemm / 1e12:.4g}{over}")
    data["host"]["op_us"] = src.measured(
        fit.host_op_s * 1e6, "host time to issue a one-element add in a Python loop (bare "
                             f"{meas.backend}; a framework's own Python layers add to it: stack "
                             f"{base_stack.name} has {base_stack.host.op_us.value:g})")
    data["name"] = name
    data["display_name"] = f"{base_stack.display_name}, kernels measured on {meas.info.device}"
    data["notes"] = (f"{PROBE} {__version__} on {date}: gemm_half_rows, gemm_half_depth, "
                     f"attention_fraction and host.op_us measured ({meas.info.describe()}); "
                     f"everything else is stack {base_stack.name}'s.")
    return data


def _check(cls: type[Any], data: dict[str, Any], where: str) -> None:
    """The probe's own output must validate; if not, that is a bug in the probe."""
    try:
        spec = validate(cls, data, where)
        if isinstance(spec, HardwareSpec):
            fp8_consistent(spec, where)
    except InputError as exc:
        raise RuntimeError(f"moebench probe built an invalid profile: {exc}") from None


def to_yaml(data: dict[str, Any], title: str) -> str:
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100_000,
                          allow_unicode=True)
    return f"# {title}\n{body}"


def stack_path(output: Path) -> Path:
    """Where the stack profile goes: beside the hardware profile, ``NAME.stack.yaml``."""
    return output.with_name(f"{output.stem}.stack{output.suffix}")


def write_profiles(output: Path, hardware: dict[str, Any], stack: dict[str, Any]) -> Path:
    """Both files whole or neither: validated first, written to temporary files, renamed."""
    stack_out = stack_path(output)
    _check(HardwareSpec, hardware, str(output))
    _check(StackSpec, stack, str(stack_out))
    title = f"Written by {PROBE} {__version__}"
    with atomic_target(output, "--output") as hw_tmp, \
            atomic_target(stack_out, "--output") as stack_tmp:
        Path(hw_tmp).write_text(to_yaml(hardware, f"{title}: measured hardware profile."),
                                encoding="utf-8")
        Path(stack_tmp).write_text(
            to_yaml(stack, f"{title}: use it with --stack {stack_out.name}."),
            encoding="utf-8")
    return stack_out
