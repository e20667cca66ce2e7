"""Fit the shipped stack families to the shipped measured runs, derive the inherited and generic
stacks, and record each family's out-of-source error.

Physics first: everything the step model can know comes from hardware profiles and component
measurements; this script fits only the named, bounded stack parameters below, on the runs of
profiles/validation/measured-runs.csv whose stack is a release of each family (at most one
parameter per three runs), and writes them into profiles/stacks/<family>.yaml as kind
``calibrated``. Families with too few runs of their own inherit another family's fit as
estimates. The generic stack (chips with no public training runs) spans the fitted vendor
families. Last, moebench validate's leave-one-source-out errors are written into each family's
``validation`` summary, with the 80% interval compare draws on.

A release refits a family figure (``releases[].refit``) only where at least three of its runs
support it and the family's leave-one-source-out error falls by at least MIN_REFIT_GAIN with
it: ``--select-refits`` chooses them afresh (forward selection, one at a time, best first);
without it the refits the profiles hold are refitted.

Run:  python scripts/calibrate_stacks.py [--select-refits]
      (deterministic; rerun after changing the model)
"""

from __future__ import annotations

import datetime
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from moebench.commands.validation.calibrate import calibrate
from moebench.commands.validation.calibrate_report import (
    VALIDATION_TARGET,
    clear_release_refits,
    replace_figure,
    stack_text,
)
from moebench.commands.validation.fitting import PARAMETERS, RUNS_PER_PARAMETER, prepare
from moebench.commands.validation.measured_run import run_stack
from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path
from moebench.commands.validation.report import interval_quantiles
from moebench.commands.validation.summaries import mean_abs
from moebench.commands.validation.validation import (
    calibrated_names,
    compare_runs,
    early_priors,
    family_errors,
    priors,
)
from moebench.inputs import catalog
from moebench.inputs.stack import load_stack_spec

# Which parameters each family fits, in the order a fold with fewer runs keeps them (one
# parameter per three runs), chosen among physically meaningful sets by out-of-source error.
FITS: dict[str, tuple[str, ...]] = {
    "megatron-core-nvidia": ("gemm_fraction", "host_op_us", "collective_fraction",
                             "attention_fraction"),
    "mindspeed-llm": ("gemm_fraction", "attention_fraction", "collective_fraction"),
    "primus-amd": ("attention_fraction", "host_op_us"),
}
# Families with too few runs to fit take another family's fitted figures, as estimates.
# One publication is too few to fit: leaving it out, as validation does, leaves nothing.
ONE_SOURCE = ("runs come from one publication, too few to fit it out of source; NVIDIA GPUs "
              "and Megatron's kernels both")
INHERIT: dict[str, tuple[str, tuple[str, ...], str]] = {
    "hai-llm": ("megatron-core-nvidia", FITS["megatron-core-nvidia"], ONE_SOURCE),
    "meta-llama3": ("megatron-core-nvidia", FITS["megatron-core-nvidia"], ONE_SOURCE),
    "megatron-deepspeed": ("megatron-core-nvidia", FITS["megatron-core-nvidia"], ONE_SOURCE),
    # torchtitan's attention is PyTorch's FlashAttention-2, not Megatron's cuDNN kernels: its
    # attention_fraction is its own (profiles/stacks/torchtitan.yaml).
    "torchtitan": ("megatron-core-nvidia",
                   tuple(n for n in FITS["megatron-core-nvidia"] if n != "attention_fraction"),
                   "runs come from two publications of one team on one chip, too few to fit it "
                   "out of source; the same cuBLAS GEMMs and NCCL collectives on NVIDIA GPUs"),
    # NeMo AutoModel runs Transformer Engine's GEMMs and cuDNN attention, NCCL and DeepEP, as
    # Megatron-Core does: every fitted figure is inherited.
    "nemo-automodel": ("megatron-core-nvidia", FITS["megatron-core-nvidia"],
                       "runs come from one publication, too few to fit it out of source; the "
                       "same Transformer Engine GEMMs and attention, NCCL collectives and DeepEP "
                       "on NVIDIA GPUs"),
}
# A release's own figure must lower its family's leave-one-source-out error by this much (one
# point of mean absolute error) to be kept: less is within what refitting noise moves.
MIN_REFIT_GAIN = 0.01
GENERIC = "generic"
TEMPLATE = "megatron-core-nvidia"
# Figures the vendor stacks estimate differently (not fitted) that the generic stack spans too.
SPANNED_ESTIMATES: tuple[tuple[str, str], ...] = (("collectives", "overlap_sm_share"),)


def runs_by_family() -> dict[str, list]:
    out: dict[str, list] = {}
    for run in load_runs():
        out.setdefault(run_stack(run).partition("@")[0], []).append(run)
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


def inherit(stack: str, source: str, names: tuple[str, ...], why: str, root: Path,
            date: datetime.date) -> None:
    """Copy ``names``' fitted figures from family ``source`` into ``stack``'s YAML, as
    estimates (fitted elsewhere: this stack's runs never enter that fit)."""
    spec = load_stack_spec(source)
    path = root / f"{stack}.yaml"
    text = path.read_text(encoding="utf-8")
    for name in names:
        param = PARAMETERS[name]
        f = param.figure(spec)
        line = (f"{{value: {f.value:.4g}, kind: estimate, low: {f.low:.4g}, "
                f"high: {f.high:.4g}, source: \"inherited from {source}'s fit ({stack}'s "
                f"{why}), {date.isoformat()}\"}}")
        text = replace_figure(text, param.field, line)
    path.write_text(text, encoding="utf-8")


def validation_line(family: str, comparisons: list, date: datetime.date) -> str | None:
    """The family's validation summary: its runs' leave-one-source-out error and the 80%
    interval of a new prediction (its vendor's out-of-source residuals); None for a family with
    no runs yet (before its first source joins)."""
    from moebench.commands.validation.report import pinned_figures

    mine = [c for c in comparisons if c.stack.partition("@")[0] == family]
    if not mine:
        return None
    vendor = [c for c in comparisons if mine and c.vendor == mine[0].vendor]
    pool = np.log1p([c.loso_error for c in (vendor if len(vendor) >= 15 else comparisons)])
    lo, hi = interval_quantiles(np.asarray(pool), 0.0)
    pinned = [p.split(": ", 1)[1] for p in pinned_figures() if p.startswith(f"{family}:")]
    loo, loso = mean_abs([c.loo_error for c in mine]), mean_abs([c.loso_error for c in mine])
    return (f"validation: {{runs: {len(mine)}, sources: {len({c.source_id for c in mine})}, "
            f"loo_mean_abs_error: {loo:.3f}, loso_mean_abs_error: {loso:.3f}, "
            f"interval_80: [{lo:.3f}, {hi:.3f}], pinned: [{', '.join(pinned)}], "
            f"target: {VALIDATION_TARGET}, note: \"{shipped_runs_path().name}, "
            f"{date.isoformat()}\"}}")


def select_refits(family: str, runs: list) -> tuple[str, ...]:
    """Release refits for ``family``, chosen forward: each round adds the ``param@release``
    (a fitted family figure, a release with RUNS_PER_PARAMETER runs or more) that lowers the
    family's leave-one-source-out error most, while it lowers it by MIN_REFIT_GAIN."""
    own = [prepare(r, str(shipped_runs_path())) for r in runs]
    prior, early = priors(family), early_priors({family: own})[family]

    def loso(names: tuple[str, ...]) -> float:
        return mean_abs(family_errors(own, [], names, prior, early, published=own).loso)
    counts: dict[str, int] = {}
    for p in own:
        counts[p.release] = counts.get(p.release, 0) + 1
    candidates = [f"{n}@{rel}" for rel, k in sorted(counts.items())
                  if k >= RUNS_PER_PARAMETER for n in FITS[family]]
    chosen: tuple[str, ...] = ()
    best = loso(FITS[family])
    print(f"{family}: leave-one-source-out {100 * best:.2f}% without release refits")
    while candidates:
        scores = {c: loso(FITS[family] + chosen + (c,)) for c in candidates}
        pick = min(scores, key=lambda c: scores[c])
        if best - scores[pick] < MIN_REFIT_GAIN:
            break
        print(f"  + {pick}: {100 * scores[pick]:.2f}%")
        chosen, best = chosen + (pick,), scores[pick]
        candidates.remove(pick)
    return chosen


def main(argv: list[str]) -> int:
    date = datetime.date.today()
    groups = runs_by_family()
    root = catalog.catalog_dir("stacks")
    select = "--select-refits" in argv
    for family, base in FITS.items():
        runs = groups.get(family, [])
        path = root / f"{family}.yaml"
        if select:
            path.write_text(clear_release_refits(path.read_text(encoding="utf-8")),
                            encoding="utf-8")
            refits = select_refits(family, runs)
        else:
            refits = tuple(n for n in calibrated_names(load_stack_spec(family)) if "@" in n)
        names = base + refits
        spec, result = calibrate(runs, family, names, str(shipped_runs_path()))
        path.write_text(stack_text(path.read_text(encoding="utf-8"), spec, result,
                                   shipped_runs_path(), date), encoding="utf-8")
        fitted = ", ".join(f"{n} {result.fit.values[n]:.4g}" for n in names)
        print(f"{family}: {len(runs)} runs; {fitted}; mean absolute speed error "
              f"{100 * np.mean(np.abs(result.fit.errors)):.1f}% in sample, "
              f"{100 * np.mean(np.abs(result.loo_errors)):.1f}% leave-one-out")
    for family, (source, names, why) in INHERIT.items():
        inherit(family, source, names, why, root, date)
    (root / f"{GENERIC}.yaml").write_text(generic_text(date), encoding="utf-8")
    print(f"{GENERIC}: spans {', '.join(FITS)}")
    comparisons = compare_runs(load_runs(), str(shipped_runs_path()))
    for family in (*FITS, *INHERIT):
        line = validation_line(family, comparisons, date)
        if line is None:
            continue
        path = root / f"{family}.yaml"
        text = path.read_text(encoding="utf-8")
        text = (re.sub(r"^validation:.*$", line, text, flags=re.MULTILINE)
                if re.search(r"^validation:", text, flags=re.MULTILINE)
                else text.rstrip() + "\n" + line + "\n")
        path.write_text(text, encoding="utf-8")
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
