"""The software settings of a run: given, the release's default, or searched (``--search``).

Predicting a run and finding the best plan are different questions. A setting the run does not
give takes its release's default (:attr:`Release.defaults`): the release's recipes, what a run
of it does when nothing is said. Only the settings named in ``--search`` are searched, and only
over what the release implements. Plan dimensions (TP, PP, VPP, EP, CP, micro-batch, recompute,
sharding, offload) are always searched within the release when not given.

Two kinds of setting: the schedule and the pipeline layout are plan fields, searched as plan
arrays; the others (dispatcher, overlaps, graphs, loss, FP8 dispatch, sync-free) choose the
stack, so searching them evaluates each choice. Those that can only speed a step up (graphs,
the loss kernel, TP/DP/PP overlap, sync-free dispatch: each removes host, HBM or exposed
communication time and adds nothing) take the most capable option the release implements;
the dispatcher, 1F1B all-to-all overlap and FP8 dispatch trade one cost for another and are
tried one by one.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any, get_args

from moebench.errors import InputError
from moebench.inputs.release import SETTINGS, Release
from moebench.inputs.release_spec import CrossEntropy, Dispatcher, Graphs
from moebench.inputs.stack import StackOptions

PLAN_SETTINGS = ("schedule", "pipeline_layout")
# Settings whose options never slow a step down, best first (searched: the best implemented).
NEVER_SLOWER: dict[str, tuple[Any, ...]] = {
    "graphs": ("full", "partial", "none"), "cross_entropy": ("te", "fused", "unfused"),
    "tp_overlap": (True, False), "dp_overlap": (True, False), "pp_overlap": (True, False),
    "sync_free": (True, False), "sequence_parallel": (True, False),
    "grouped_gemm": (True, False),
}
SEARCHABLE = tuple(SETTINGS)
ALIASES = {"layout": "pipeline_layout", "overlaps": "ep_overlap,tp_overlap,dp_overlap,pp_overlap",
           "all": ",".join(SETTINGS)}


def parse_search(text: str | None, option: str = "--search") -> frozenset[str]:
    """``--search dispatcher,schedule`` as a set of setting names (``all``: every one)."""
    if not text:
        return frozenset()
    names: list[str] = []
    for item in text.replace(" ", ",").split(","):
        item = item.strip()
        if item:
            names += ALIASES.get(item, item).split(",")
    unknown = [n for n in names if n not in SEARCHABLE]
    if unknown:
        raise InputError(option, None, f"unknown setting {unknown[0]!r}; searchable: "
                         f"{', '.join(SEARCHABLE)}, layout, overlaps or all")
    return frozenset(names)


# Settings a run gives by name (--settings NAME=VALUE,...): every one but the plan's (schedule
# and layout have their own options), each with the values it takes (a bool: on or off).
GIVEN_SETTINGS: dict[str, tuple[str, ...]] = {
    name: {"dispatcher": get_args(Dispatcher), "graphs": get_args(Graphs),
           "cross_entropy": get_args(CrossEntropy)}.get(name, ("on", "off"))
    for name in SETTINGS if name not in PLAN_SETTINGS}
_BOOLS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


def parse_settings(text: str | None, option: str = "--settings") -> dict[str, Any]:
    """``--settings tp_overlap=off,cross_entropy=te`` as {setting: value} (bools for on/off
    settings). Whether the release implements each value is checked when the stack is built
    (:meth:`~moebench.inputs.release.Release.settings`)."""
    out: dict[str, Any] = {}
    for item in (text or "").replace(" ", ",").split(","):
        if not item.strip():
            continue
        name, sep, value = (part.strip() for part in item.partition("="))
        name, value = name.replace("-", "_"), value.lower()
        if not sep or not value:
            raise InputError(option, None, f"{item.strip()!r}: give NAME=VALUE, e.g. "
                                           "tp_overlap=off")
        if name not in GIVEN_SETTINGS:
            raise InputError(option, None, f"unknown setting {name!r}; settable: "
                                           f"{', '.join(GIVEN_SETTINGS)}")
        if name in out:
            raise InputError(option, None, f"{name} is given twice")
        allowed = GIVEN_SETTINGS[name]
        if allowed == ("on", "off"):
            if value not in _BOOLS:
                raise InputError(option, None, f"{name}={value}: expected on or off")
            out[name] = _BOOLS[value]
        elif value in allowed:
            out[name] = value
        else:
            raise InputError(option, None, f"{name}={value}: expected one of "
                                           f"{', '.join(allowed)}")
    return out


def merge_settings(flags: dict[str, Any], settings: dict[str, Any],
                   option: str = "--settings") -> dict[str, Any]:
    """The settings given by their own flags (--dispatcher, --graphs, --ep-overlap) and by
    ``--settings``; a setting given both ways must agree."""
    for name, value in settings.items():
        if flags.get(name) is not None and flags[name] != value:
            raise InputError(option, None, f"{name} is given twice, {flags[name]!r} by its own "
                                           f"flag and {value!r} here; give it once")
    return {**{k: v for k, v in flags.items() if v is not None}, **settings}


def plan_defaults(release: Release, given: dict[str, Any], search: frozenset[str]
                  ) -> dict[str, Any]:
    """The plan settings a run takes from its release: its default schedule and pipeline layout
    unless given or searched (then left open for the plan search)."""
    out = {}
    for name in PLAN_SETTINGS:
        if given.get(name) is None and name not in search:
            out[name] = release.defaults[name]
    return out


def option_variants(release: Release, options: StackOptions, search: frozenset[str]
                    ) -> list[StackOptions]:
    """The stack settings to evaluate: ``options`` as given (the rest at the release's
    defaults), with each searched setting not given set to the best option that never slows a
    step, or tried in turn (the first variant is the release default's)."""
    given = options.as_dict()
    fixed: dict[str, Any] = {}
    tried: dict[str, tuple[Any, ...]] = {}
    for name in sorted(search - set(PLAN_SETTINGS) - set(given)):
        choices = release.options(name)
        if name in NEVER_SLOWER:
            fixed[name] = next(v for v in NEVER_SLOWER[name] if v in choices)
        else:
            default = release.defaults[name]
            tried[name] = (default, *[c for c in choices if c != default])
    base = replace(options, **fixed)
    return [replace(base, **dict(zip(tried, combo, strict=True)))
            for combo in itertools.product(*tried.values())] or [base]
