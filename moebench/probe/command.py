"""``moebench probe`` as one library call: check the request, measure, fit, write, report.

Everything that can be refused is refused before a single benchmark runs (options, the output
folder, the backend, the base profile), so a bad request costs nothing and leaves nothing.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from moebench.commands.shared.report import Report
from moebench.errors import InputError
from moebench.inputs import catalog
from moebench.inputs.hardware import HardwareSpec, load_spec
from moebench.inputs.schema import validate
from moebench.inputs.stack import StackSpec, load_stack_spec
from moebench.probe.backends import Backend, BackendName, select_backend
from moebench.probe.check import comparison
from moebench.probe.profile import build_hardware, build_stack, write_profiles
from moebench.probe.results import Fitted, fit_measurements, spreads
from moebench.probe.runner import NUMPY_PLAN, TORCH_PLAN, Measurements, ProbePlan, Progress
from moebench.probe.runner import run_probe as run_plan

MAX_BUDGET_S = 86_400.0
MIN_BUDGET_S = {"numpy": 1.0, "torch": 20.0}
"""Below this even the minimum runs of every point do not fit (a GPU's runtime start included)."""
DEFAULT_BASE = "h800"


def check_budget(budget_s: float) -> None:
    if not math.isfinite(budget_s) or not 0 < budget_s <= MAX_BUDGET_S:
        raise InputError("--budget-s", None, f"must be a number of seconds above 0 and at most "
                                             f"{MAX_BUDGET_S:g}, got {budget_s}")


def check_output(output: Path) -> None:
    """Refuse an output that cannot be written, before measuring for minutes."""
    if output.suffix.lower() not in (".yaml", ".yml"):
        raise InputError("--output", None, f"a hardware profile is YAML: give a .yaml file name, "
                                           f"got {output.name}")
    folder = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise InputError("--output", None, f"{output} is a directory; give a file name")
    if not folder.is_dir():
        raise InputError("--output", None, f"folder {folder} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".check", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise InputError("--output", None, f"cannot write in {folder}: {exc.strerror}") from None


def profile_name(output: Path) -> str:
    """A profile name from the file name: lower case, other characters as '-'."""
    name = re.sub(r"[^a-z0-9._-]+", "-", output.stem.lower()).strip("-._")
    return name or "probed"


def guess_base(device: str) -> str | None:
    """The catalog profile whose name the device name contains (the longest: GB200 before
    B200, H200 before H20), ignoring case, spaces and hyphens."""
    text = re.sub(r"[\s_-]+", "", device.lower())
    found = [n for n in catalog.catalog_names("hardware") if n.replace("-", "") in text]
    return max(found, key=len) if found else None


def choose_base(given: str | None, backend: Backend) -> tuple[HardwareSpec, str]:
    """The base profile and why it was chosen."""
    if given:
        name, why = given, "--base"
    elif backend.info.vendor != "host CPU" and (guess := guess_base(backend.info.device)):
        name, why = guess, f"matched to the device name {backend.info.device!r}; --base overrides"
    else:
        name, why = DEFAULT_BASE, "the default; give --base for your chip's catalog profile"
    return load_spec(catalog.resolve("hardware", name, "--base")), why


def start_backend(name: BackendName, budget_s: float, devices: int) -> Backend:
    check_budget(budget_s)
    if devices < 1:
        raise InputError("--devices", None, f"must be 1 or more, got {devices}")
    backend = select_backend(name)
    if devices > 1 and backend.name == "numpy":
        raise InputError("--devices", None, "the numpy backend times one device, the host CPU; "
                                             "collectives need --backend torch")
    if devices > backend.device_count:
        raise InputError("--devices", None, f"{devices} asked for, {backend.device_count} "
                                            f"visible to {backend.name}")
    floor = MIN_BUDGET_S[backend.name]
    if budget_s < floor:
        raise InputError("--budget-s", None, f"{budget_s:g} s is too short for the {backend.name}"
                                             f" backend's minimum runs; give at least {floor:g}")
    return backend


def plan_for(backend: Backend) -> ProbePlan:
    """Shapes and sizes for the device: small ones on a host CPU."""
    return NUMPY_PLAN if backend.info.vendor == "host CPU" else TORCH_PLAN


def _fit_lines(meas: Measurements, fit: Fitted, peak_flops: float) -> list[str]:
    c = fit.curve
    s = spreads(meas)
    lines = [
        f"GEMM curve ({c.points} points, {meas.precision}): R = {c.rate_max.value / 1e12:.4g} "
        f"TFLOPS (f = {c.rate_max.value / peak_flops:.3f} of the peak), m_half = "
        f"{c.m_half.value:.4g} ({c.m_half.low:.3g}-{c.m_half.high:.3g}), k_half = "
        f"{c.k_half.value:.4g} ({c.k_half.low:.3g}-{c.k_half.high:.3g}), rms error "
        f"{c.rms_rel_error:.1%}",
        f"best GEMM {fit.best.m}x{fit.best.k}x{fit.best.n}: "
        f"{fit.best.flops_per_s / 1e12:.4g} TFLOPS; copy {fit.copy_bw / 1e9:.4g} GB/s; host "
        f"{fit.host_op_s * 1e6:.3g} us/op; kernel floor {fit.kernel_floor_s * 1e6:.3g} us",
        f"timings: median of repeated runs after warm-up; spread (IQR/median) median "
        f"{np.median(s):.1%}, worst {max(s):.1%}, over {len(s)} points",
    ]
    if meas.grouped:
        g = meas.grouped[0]
        rates = ", ".join(f"{p.m}: {p.flops_per_s / 1e12:.3g}" for p in meas.grouped)
        lines.append(f"grouped GEMM ({g.groups} groups, K {g.k}, N {g.n}), TFLOPS by tokens per "
                     f"group: {rates}")
    if fit.attention is not None:
        lines.append(f"attention s={fit.attention.seq}: "
                     f"{fit.attention.flops_per_s / 1e12:.4g} TFLOPS forward + backward")
    for op, link in fit.links.items():
        lines.append(f"{op}: bus {link.bus_bw / 1e9:.4g} GB/s (best point "
                     f"{link.peak_bus_bw / 1e9:.4g}), alpha {link.alpha_s * 1e6:.3g} us")
    lines += [f"not measured: {what}: {why}" for what, why in meas.skipped.items()]
    return lines


def probe(output: Path, backend: Backend, base: str | None, budget_s: float, devices: int = 1,
          progress: Progress | None = None, plan: ProbePlan | None = None,
          date: str | None = None) -> Report:
    """Measure, fit, write the hardware profile and its stack beside it; the comparison with
    the base profile as a report."""
    check_output(output)
    base_spec, why = choose_base(base, backend)
    chosen_plan = plan or plan_for(backend)
    meas = run_plan(backend, chosen_plan, budget_s, devices, progress)
    fit = fit_measurements(meas)
    day = date or dt.datetime.now(dt.UTC).date().isoformat()
    name = profile_name(output)
    hardware = build_hardware(base_spec, meas, fit, name, day)
    stack_base = load_stack_spec(hardware["default_stack"], option="--base")
    stack = build_stack(stack_base, meas, fit, f"{name}-stack", day, base_spec.name)
    stack_out = write_profiles(output, hardware, stack)
    measured_hw = validate(HardwareSpec, hardware, str(output))
    measured_stack = validate(StackSpec, stack, str(stack_out))
    peak = measured_hw.compute.bf16_dense_tflops.value * 1e12
    footer = [f"base {base_spec.name}: {why}"] + _fit_lines(meas, fit, peak) + [
        f"wrote {output} and {stack_out} in {meas.elapsed_s:.0f} s; use them with "
        f"moebench estimate --chip {output} --stack {stack_out}"]
    payload = {"output": str(output), "stack_output": str(stack_out), "base": base_spec.name,
               "measurements": _plain(meas), "fitted": _plain(fit)}
    return comparison(measured_hw, base_spec, measured_stack, stack_base, footer, payload)


def _plain(record: Any) -> Any:
    """A dataclass of measurements as JSON-ready data (points with their timings)."""
    data = asdict(record)
    return _finite(data)


def _finite(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_finite(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node
