"""Fit the shipped vendor stacks to the shipped measured runs, and derive the generic stack.

Physics first: everything the step model can know comes from hardware profiles and component
measurements; this script fits only the named, bounded stack parameters below, on the runs of
profiles/validation/measured-runs.csv that ran on each stack (at most one parameter per three
runs), and writes them into profiles/stacks/<stack>.yaml as kind ``calibrated``. The generic
stack (chips with no public training runs) then spans the fitted vendor stacks.

Run:  python scripts/calibrate_stacks.py        (deterministic; rerun after changing the model)
"""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from moebench.commands.calibrate import PARAMETERS, calibrate
from moebench.commands.calibrate_report import replace_figure, write_stack
from moebench.commands.measured_runs import load_runs, run_stack, shipped_runs_path
from moebench.inputs import catalog
from moebench.inputs.stack import load_stack_spec

# Which parameters each vendor stack fits, chosen by leave-one-out error among physically
# meaningful sets that respect the one-parameter-per-three-runs rule (see the README).
FITS: dict[str, tuple[str, ...]] = {
    "megatron-core-nvidia": ("gemm_fraction", "host_op_us", "collective_fraction",
                             "attention_fraction"),
    "modellink-ascend": ("gemm_fraction", "attention_fraction", "collective_fraction"),
    "mindspeed-ascend": ("collective_fraction",),
    "primus-amd": ("attention_fraction", "host_op_us"),
}
# A stack with too few runs for its kernel figures takes them from an earlier generation's fit
# (written into its YAML before it is fitted; FITS order puts the source first).
INHERIT: dict[str, tuple[str, tuple[str, ...]]] = {
    "mindspeed-ascend": ("modellink-ascend", ("gemm_fraction", "attention_fraction")),
}
GENERIC = "generic"
TEMPLATE = "megatron-core-nvidia"
# Figures the vendor stacks estimate differently (not fitted) that the generic stack spans too.
SPANNED_ESTIMATES: tuple[tuple[str, str], ...] = (("collectives", "overlap_sm_share"),)


def runs_by_stack() -> dict[str, list]:
    out: dict[str, list] = {}
    for run in load_runs():
        out.setdefault(run_stack(run), []).append(run)
    return out


def span_line(figs: dict[str, Any], whose: str) -> str:
    """One figure spanning the stacks' ``figs``: their median, from the lowest low to the
    highest high."""
    low = min(f.low if f.low is not None else f.value for f in figs.values())
    high = max(f.high if f.high is not None else f.value for f in figs.values())
    value = float(np.median([f.value for f in figs.values()]))
    detail = ", ".join(f"{s} {f.value:.4g}" for s, f in figs.items())
    return (f"{{value: {value:.4g}, kind: estimate, low: {low:.4g}, high: {high:.4g}, "
            f"source: \"median and span of {whose} ({detail}): a chip with no public training "
            "runs may sit anywhere in it\"}")


def generic_text(date: datetime.date) -> str:
    """The template stack with every calibratable figure spanning the fitted vendor stacks."""
    text = catalog.resolve("stacks", TEMPLATE, "--stack").read_text(encoding="utf-8")
    specs = {name: load_stack_spec(name) for name in FITS}
    for param in PARAMETERS.values():
        fitted = {s: param.figure(spec) for s, spec in specs.items()
                  if param.figure(spec).kind == "calibrated"}
        if fitted:
            text = replace_figure(text, param.field, span_line(
                fitted, f"the vendor stacks that calibrate it, {date.isoformat()}"))
    for section, name in SPANNED_ESTIMATES:
        figs = {s: getattr(getattr(spec, section), name) for s, spec in specs.items()}
        text = replace_figure(text, name, span_line(figs, "the vendor stacks' estimates"))
    text = text.replace(f"name: {TEMPLATE}", f"name: {GENERIC}", 1)
    text = re.sub(r"^vendor: .*$", "vendor: any", text, count=1, flags=re.MULTILINE)
    text = re.sub(r"^display_name: .*$",
                  "display_name: Generic stack (a chip with no public training runs)", text,
                  count=1, flags=re.MULTILINE)
    text = re.sub(r"^framework: .*$", 'framework: "unknown: spans the calibrated vendor stacks"',
                  text, count=1, flags=re.MULTILINE)
    # Software features are not spanned but claimed: the generic stack's own releases,
    # written by hand with their sources, stay as they are.
    physics = text.split("\nreleases:", 1)[0]
    own = (catalog.resolve("stacks", GENERIC, "--stack").read_text(encoding="utf-8")
           .split("\nreleases:", 1)[1].split("\nvalidation:", 1)[0])
    text = f"{physics}\nreleases:{own}\nvalidation: {{}}\n"
    head = ("# A stack for chips with no public training runs (T-Head PPU, Gaudi 3): the\n"
            "# Megatron-Core operation inventory, with every calibrated figure spanning the\n"
            "# vendor stacks, so that --uncertainty shows how little is known. Written by\n"
            "# scripts/calibrate_stacks.py.\n")
    body = text.split("\nname:", 1)[1]
    body = re.sub(r"^validation:.*$", 'validation: {runs: 0, target: 0.2, note: "no public '
                  'training runs of the chips it serves: T-Head PPU, Gaudi 3"}', body,
                  flags=re.MULTILINE)
    return head + "name:" + body


def inherit(stack: str, source: str, names: tuple[str, ...], root: Path,
            date: datetime.date) -> None:
    """Copy ``names``' fitted figures from stack ``source`` into ``stack``'s YAML, as estimates
    (fitted elsewhere: this stack's own leave-one-out refits only what it fits itself)."""
    spec = load_stack_spec(source)
    path = root / f"{stack}.yaml"
    text = path.read_text(encoding="utf-8")
    for name in names:
        param = PARAMETERS[name]
        f = param.figure(spec)
        line = (f"{{value: {f.value:.4g}, kind: estimate, low: {f.low:.4g}, "
                f"high: {f.high:.4g}, source: \"inherited from {source}'s fit (too few "
                f"{stack} runs to fit it; the same operator library generation), "
                f"{date.isoformat()}\"}}")
        text = replace_figure(text, param.field, line)
    path.write_text(text, encoding="utf-8")


def main() -> int:
    date = datetime.date.today()
    groups = runs_by_stack()
    root = catalog.catalog_dir("stacks")
    for stack, names in FITS.items():
        if stack in INHERIT:
            inherit(stack, *INHERIT[stack], root, date)
        runs = groups.get(stack, [])
        spec, result = calibrate(runs, stack, names, str(shipped_runs_path()))
        write_stack(spec, result, shipped_runs_path(), root / f"{stack}.yaml", date)
        fitted = ", ".join(f"{n} {result.fit.values[n]:.4g}" for n in names)
        print(f"{stack}: {len(runs)} runs; {fitted}; mean absolute speed error "
              f"{100 * np.mean(np.abs(result.fit.errors)):.1f}% in sample, "
              f"{100 * np.mean(np.abs(result.loo_errors)):.1f}% leave-one-out")
    (root / f"{GENERIC}.yaml").write_text(generic_text(date), encoding="utf-8")
    print(f"{GENERIC}: spans {', '.join(FITS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
