"""Stack caveats every table shows: a stack's out-of-source error beside its rows, and a mark
with a footnote where it is above its target or has no measured runs to check it against."""

from __future__ import annotations

from collections.abc import Iterable

from moebench.inputs.stack import StackSpec, ValidationSummary, load_stack_spec

VALIDATION_MARK = "*"
NO_RUNS_MARK = "**"


def _spec(name: str, specs: dict[str, StackSpec] | None) -> StackSpec:
    """The spec given in ``specs`` (a stack loaded from a file), else the catalog's."""
    return (specs or {}).get(name) or load_stack_spec(name)


def out_of_source_error(v: ValidationSummary) -> float | None:
    """A stack's headline error: leave-one-source-out, else (a user's stack) leave-one-out."""
    return v.loso_mean_abs_error if v.loso_mean_abs_error is not None else v.loo_mean_abs_error


def stack_error(name: str, specs: dict[str, StackSpec] | None = None) -> str:
    """A stack's name with its validation error, as the footer's stacks line shows it."""
    v = _spec(name, specs).validation
    err = None if v is None else out_of_source_error(v)
    if v is None or v.runs == 0 or err is None:
        return f"{name} (no measured runs)"
    pinned = f"; fitted on a bound: {', '.join(v.pinned)}" if v.pinned else ""
    return f"{name} ({100 * err:.0f}% mean error over {v.runs} runs{pinned})"


def stacks_line(entries: Iterable[tuple[str, str]],
                specs: dict[str, StackSpec] | None = None) -> str:
    """The footer line naming each (entry, stack) with the stack's error; a mixed entry's stack
    is its types' stacks joined by '+'."""
    return "stacks (out-of-source speed error, moebench validate): " + "; ".join(
        f"{entry} " + " + ".join(stack_error(s, specs) for s in stack.split("+"))
        for entry, stack in entries)


def caveats_for(stacks: Iterable[str], specs: dict[str, StackSpec] | None = None,
                interval_note: str = "") -> dict[str, tuple[str, str]]:
    """:func:`stack_caveats` by stack name (see :func:`_spec`); ``interval_note`` ends the
    footnote of a stack with no measured runs (where its interval is, if the report has one)."""
    read = f"; {interval_note}" if interval_note else ""
    out: dict[str, tuple[str, str]] = {}
    for name in dict.fromkeys(stacks):
        v = _spec(name, specs).validation
        if v is None:
            continue
        err = out_of_source_error(v)
        if v.runs == 0 or err is None:
            out[name] = (NO_RUNS_MARK, f"{NO_RUNS_MARK} {name}: no public training runs to "
                                       f"validate against ({v.note}){read}")
        elif err > v.target:
            how = ("each source predicted by the stack fitted without it"
                   if v.loso_mean_abs_error is not None else "leave-one-out")
            out[name] = (VALIDATION_MARK,
                         f"{VALIDATION_MARK} {name}: predictions are off by "
                         f"{100 * err:.0f}% on average over {v.runs} measured "
                         f"runs ({how}), above the {100 * v.target:.0f}% target: read "
                         "these rows with care (moebench validate)")
    return out
