"""A calibration as a report, and the fitted stack written as a profile."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from moebench.commands.shared.report import Report, write_atomic
from moebench.commands.validation.calibrate import Calibration
from moebench.commands.validation.fitting import PARAMETERS, split_name
from moebench.inputs.stack import StackSpec

# The mean absolute leave-one-out error a vendor stack should stay within (issue 9's target per
# vendor group); rows on a stack above it carry a caveat in compare.
VALIDATION_TARGET = 0.2


def _sig(x: float) -> float:
    return float(f"{x:.4g}")


def fitted_source(result: Calibration, runs_path: Path, date: datetime.date) -> str:
    loo = 100 * float(np.mean(np.abs(result.loo_errors)))
    ins = 100 * float(np.mean(np.abs(result.fit.errors)))
    return (f"moebench calibrate on {runs_path.name} ({len(result.run_ids)} runs; fitted "
            f"{', '.join(result.names)}; mean absolute speed error {ins:.1f}% in sample, "
            f"{loo:.1f}% leave-one-out), {date.isoformat()}")


def figure_line(name: str, result: Calibration, source: str) -> str:
    value = _sig(result.fit.values[name])
    low, high = (_sig(v) for v in result.fit.intervals[name])
    low, high = min(low, value), max(high, value)
    return (f"{{value: {value}, kind: calibrated, low: {low}, high: {high}, "
            f"source: \"{source}\"}}")


RELEASES = "\nreleases:"


def replace_figure(text: str, field: str, line: str) -> str:
    """``text`` (a profile's YAML) with the one-line figure ``  field: {...}`` set to ``line``,
    comments and layout kept; the field must appear exactly once above the releases (whose
    refits are set by :func:`set_release_refit`)."""
    head, sep, tail = text.partition(RELEASES)
    pattern = re.compile(rf"^(\s+{field}:\s*)\{{.*\}}\s*$", re.MULTILINE)
    if len(pattern.findall(head)) != 1:
        raise ValueError(f"field {field} is not one line in the stack profile")
    match = pattern.search(head)
    assert match is not None
    return head[:match.start()] + match.group(1) + line + head[match.end():] + sep + tail


def _release_span(text: str, release: str) -> tuple[int, int]:
    """Start and end of release ``release``'s entry in a stack profile's ``releases`` list."""
    start = re.search(rf'^  - name: "?{re.escape(release)}"?\s*$', text, re.MULTILINE)
    if start is None:
        raise ValueError(f"release {release} is not in the stack profile")
    end = re.compile(r"^(  - name:|\S)", re.MULTILINE).search(text, start.end())
    return start.start(), end.start() if end else len(text)


def set_release_refit(text: str, release: str, name: str, line: str) -> str:
    """``text`` with release ``release`` refitting parameter ``name`` to the one-line figure
    ``line`` (its ``refit`` mapping created when missing)."""
    a, b = _release_span(text, release)
    entry = text[a:b]
    own = re.compile(rf"^      {name}:.*\n", re.MULTILINE)
    if own.search(entry):
        entry = own.sub(f"      {name}: {line}\n", entry)
    elif re.search(r"^    refit:\s*\n", entry, re.MULTILINE):
        entry = re.sub(r"^(    refit:\s*\n)", rf"\g<1>      {name}: {line}\n", entry,
                       flags=re.MULTILINE)
    else:
        entry = entry.rstrip("\n") + f"\n    refit:\n      {name}: {line}\n"
    return text[:a] + entry + text[b:]


def clear_release_refits(text: str) -> str:
    """``text`` with every release's ``refit`` mapping removed."""
    return re.sub(r"^    refit:\s*\n(      .*\n)*", "", text, flags=re.MULTILINE)


def stack_text(base_text: str, spec: StackSpec, result: Calibration, runs_path: Path,
               date: datetime.date | None = None) -> str:
    """The base stack's YAML with the fitted figures replaced (kind calibrated), comments and
    layout kept; each fitted field must appear once, as ``  field: {...}``."""
    source = fitted_source(result, runs_path, date or datetime.date.today())
    text = base_text
    for name in result.names:
        base, release = split_name(name)
        line = figure_line(name, result, source)
        text = (set_release_refit(text, release, base, line) if release
                else replace_figure(text, PARAMETERS[base].field, line))
    loo = float(np.mean(np.abs(result.loo_errors)))
    summary = (f"validation: {{runs: {len(result.run_ids)}, loo_mean_abs_error: {loo:.3f}, "
               f"target: {VALIDATION_TARGET}, note: \"{runs_path.name}, "
               f"{(date or datetime.date.today()).isoformat()}\"}}")
    existing = re.compile(r"^validation:.*$", re.MULTILINE)
    text = (existing.sub(summary, text) if existing.search(text)
            else text.rstrip() + "\n" + summary + "\n")
    yaml.safe_load(text)  # still valid YAML
    return text


def write_stack(spec: StackSpec, result: Calibration, runs_path: Path, output: Path,
                date: datetime.date | None = None) -> None:
    """Write the fitted stack beside (or over) its base, whole or not at all."""
    from moebench.inputs import catalog

    base = catalog.resolve("stacks", spec.name, "--stack").read_text(encoding="utf-8")
    write_atomic(output, stack_text(base, spec, result, runs_path, date))


def calibration_report(result: Calibration, runs_path: Path, output: Path) -> Report:
    params = [{"parameter": n, "meaning": PARAMETERS[n].meaning,
               "value": result.fit.values[n], "low_90": result.fit.intervals[n][0],
               "high_90": result.fit.intervals[n][1]} for n in result.names]
    rows = [{"run": rid, "in_sample_%": 100 * float(e), "leave_one_out_%": 100 * float(lo)}
            for rid, e, lo in zip(result.run_ids, result.fit.errors, result.loo_errors,
                                  strict=True)]
    table = pd.DataFrame(rows)
    in_sample = float(np.mean(np.abs(result.fit.errors)))
    loo = float(np.mean(np.abs(result.loo_errors)))
    payload = {"stack": result.stack, "parameters": params, "runs": rows,
               "mean_abs_error_in_sample": in_sample, "mean_abs_error_leave_one_out": loo,
               "output": str(output), "data": str(runs_path)}
    footer = [f"{p['parameter']} = {p['value']:.4g} (90% {p['low_90']:.4g}-{p['high_90']:.4g}): "
              f"{p['meaning']}" for p in params]
    footer += [
        f"mean absolute speed error {100 * in_sample:.1f}% in sample, "
        f"{100 * loo:.1f}% leave-one-out over "
        f"{len(rows)} runs",
        f"wrote {output}",
    ]
    return Report(f"Calibration of {result.stack} on {runs_path.name}", table, payload, footer)
