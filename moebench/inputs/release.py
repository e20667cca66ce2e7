"""Releases of a software stack: what each one implements and what its runs do by default.

A stack profile (``profiles/stacks/<family>.yaml``) describes one framework family: the physical
figures its kernels, host and collectives reach on a chip (fitted across all its releases) and
its dated ``releases``. A release states, each item with its source:

* ``implements``: the schedules, dispatchers, sharding modes, offloads, graph scopes, overlaps,
  context-parallel kinds and loss kernels it has. The plan search never leaves them.
* ``defaults``: what a run of that release does when nothing is said (dispatcher, overlaps,
  graphs, loss, pipeline split, schedule). A prediction takes them unless a setting is given or
  asked to be searched.

A release lists only what changed since the release it comes ``after``; the first lists
everything. ``refit``: figures refitted on the release's own runs (scripts/calibrate_stacks.py).
``--stack NAME@RELEASE`` picks one; the bare name is the newest.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, fields, replace
from typing import Any

from moebench.errors import InputError
from moebench.inputs.release_spec import (
    OPTIONAL_DEFAULTS,
    Claim,
    Defaults,
    Implements,
    PlatformDefaults,
    ReleaseSpec,
)
from moebench.inputs.schema import Figure


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a release implements, resolved (the search reads this)."""

    schedules: tuple[str, ...]
    virtual_pipeline: bool
    dispatchers: tuple[str, ...]
    sharding: tuple[str, ...]
    optimizer_offload: bool
    activation_offload: tuple[str, ...]
    graphs: tuple[str, ...]
    partial_graph_scope: tuple[str, ...]
    ep_overlap: bool
    tp_overlap: bool
    dp_overlap: bool
    pp_overlap: bool
    cp_kinds: tuple[str, ...]
    expert_tp: bool
    cross_entropy: tuple[str, ...]
    sync_free: bool
    dispatch_fp8: bool
    moe: bool
    sequence_parallel: bool
    grouped_gemm: bool
    recompute: tuple[str, ...]
    moe_tp_cp: bool


# Settings: software choices a run makes within what its release implements. Each has a
# release default; given or searched (--search) otherwise. The capability that bounds each.
SETTINGS: dict[str, str] = {
    "schedule": "schedules", "dispatcher": "dispatchers", "ep_overlap": "ep_overlap",
    "tp_overlap": "tp_overlap", "dp_overlap": "dp_overlap", "pp_overlap": "pp_overlap",
    "graphs": "graphs", "cross_entropy": "cross_entropy", "pipeline_layout": "",
    "dispatch_fp8": "dispatch_fp8", "sync_free": "sync_free",
    "sequence_parallel": "sequence_parallel", "grouped_gemm": "grouped_gemm",
}


# The option that gives each setting a stack's StackOptions can hold (named in errors): its own
# flag, else --settings NAME=VALUE.
OPTION_FLAGS = {"dispatcher": "--dispatcher or --settings", "graphs": "--graphs or --settings",
                "ep_overlap": "--ep-overlap or --settings",
                "tp_overlap": "--settings", "dp_overlap": "--settings",
                "pp_overlap": "--settings", "cross_entropy": "--settings",
                "dispatch_fp8": "--settings", "sync_free": "--settings",
                "sequence_parallel": "--settings", "grouped_gemm": "--settings",
                "graph_scope": "--graph-scope"}


def without_tp_overlap_conflict(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings with TP overlap dropped where sequence parallelism is off: the overlap needs it
    (Megatron-LM arguments.py asserts it), and NeMo drops a default overlap so."""
    if settings.get("tp_overlap") and not settings.get("sequence_parallel", True):
        return {**settings, "tp_overlap": False}
    return settings


@dataclass(frozen=True, kw_only=True)
class Release:
    """One release, resolved along its ``after`` chain."""

    family: str
    name: str
    date: datetime.date
    framework: str
    source: str
    caps: Capabilities
    defaults: dict[str, Any]
    """Setting name -> default value (every setting of :data:`SETTINGS`, and offload_modules)."""
    sources: dict[str, str]
    """``implements.X`` / ``defaults.X`` -> the source of that claim (of the release that set
    it)."""
    refit: dict[str, Figure]
    platforms: tuple[PlatformDefaults, ...] = ()
    """Defaults of the release's recipes on given chips and precisions (:meth:`on`)."""
    platform: str = ""
    """Where the recipe defaults applied come from: ``on gb200 fp8``, or ``for MODEL on h100
    fp8`` where the recipe names the model ("" none; :meth:`on`)."""
    platform_settings: frozenset[str] = frozenset()
    """The settings that recipe set."""

    @property
    def label(self) -> str:
        return f"{self.family}@{self.name}"

    def on(self, chip: str, precision: str, model: str, moe: bool) -> Release:
        """The release as a run of ``model`` (an MoE one if ``moe``) on ``chip`` at
        ``precision`` takes it: the first platform entry that covers the run sets its settings'
        defaults (and their sources)."""
        for p in self.platforms:
            if p.covers(chip, precision, model, moe):
                given = p.settings()
                return replace(self, defaults={**self.defaults, **given},
                               sources={**self.sources,
                                        **{f"defaults.{k}": p.source for k in given}},
                               platform=(f"for {model} on {chip} {precision}"
                                         if model in p.models else f"on {chip} {precision}"),
                               platform_settings=frozenset(given))
        return self

    def check_model(self, model: str, moe: bool, option: str = "--stack") -> None:
        """An MoE model on a release that trains dense models only is refused in one line."""
        if moe and not self.caps.moe:
            raise InputError(option, None, f"{self.label} trains dense models only, and {model} "
                             f"is an MoE model; pick another (moebench stacks show {self.family})")

    def allows(self, setting: str, value: Any) -> bool:
        """Whether ``value`` of a setting is within what the release implements."""
        if setting == "graph_scope":
            return set(value) <= set(self.caps.partial_graph_scope)
        cap = SETTINGS.get(setting, "")
        if not cap:
            return True
        have = getattr(self.caps, cap)
        if isinstance(have, bool):
            return have or value is False
        return value in have

    def settings(self, given: dict[str, Any]) -> dict[str, Any]:
        """A run's settings: each given one (checked against what the release implements), else
        the release's default. An InputError names the setting and what the release offers.
        TP overlap needs sequence parallelism: given both on and off it is refused, and a
        default overlap is dropped when the run turns sequence parallelism off."""
        defaults = {"graph_scope": self.caps.partial_graph_scope, **self.defaults}
        out = {k: given.get(k, defaults[k]) for k in OPTION_FLAGS}
        for k, v in given.items():
            if not self.allows(k, v):
                offers = ", ".join(_word(o) for o in self.options(k))
                shown = ",".join(v) if isinstance(v, tuple) else _word(v)
                raise InputError(OPTION_FLAGS[k], None,
                                 f"{self.label} does not implement {k} {shown} (it offers "
                                 f"{offers}); pick another release (moebench stacks show "
                                 f"{self.family})")
        if out["tp_overlap"] and not out["sequence_parallel"] and "tp_overlap" in given:
            raise InputError("--settings", None, f"{self.label}: TP overlap needs sequence "
                             "parallelism (Megatron-LM asserts it); give "
                             "sequence_parallel=on, or tp_overlap=off")
        out = without_tp_overlap_conflict(out)
        if "graph_scope" in given and "graphs" not in given and out["graphs"] != "partial":
            raise InputError("--graph-scope", None,
                             f"a graph scope applies to partial graphs, and {self.label} "
                             f"runs graphs {out['graphs']} by default; give --graphs partial")
        return out

    def options(self, setting: str) -> tuple[Any, ...]:
        """The values a setting may take in this release (what ``--search`` tries)."""
        cap = SETTINGS.get(setting, "")
        if setting == "graph_scope":
            return self.caps.partial_graph_scope
        if setting == "pipeline_layout":
            return ("even", "balanced", "even_where_divisible")
        have = getattr(self.caps, cap)
        if isinstance(have, bool):
            return (False, True) if have else (False,)
        return tuple(have)


def resolve_releases(family: str, specs: list[ReleaseSpec]) -> dict[str, Release]:
    """Every release of a family resolved along its ``after`` chain; ValueError names the first
    problem (a missing item in the first release, an unknown ``after``, a default the release
    does not implement)."""
    out: dict[str, Release] = {}
    for i, spec in enumerate(specs):
        if spec.name in out:
            raise ValueError(f"release {spec.name!r} is listed twice")
        if spec.after is None:
            if i:
                raise ValueError(f"release {spec.name!r}: every release after the first names "
                                 "the release it changes (after: NAME)")
            caps_claims: dict[str, Claim[Any]] = {}
            default_claims: dict[str, Claim[Any]] = {}
        else:
            if spec.after not in out:
                raise ValueError(f"release {spec.name!r}: after {spec.after!r} is not an "
                                 "earlier release of the list")
            base = out[spec.after]
            caps_claims = {k: Claim[Any](value=v, source=base.sources[f"implements.{k}"])
                           for k, v in cap_values(base.caps).items()}
            default_claims = {k: Claim[Any](value=v, source=base.sources[f"defaults.{k}"])
                              for k, v in base.defaults.items()}
            if spec.date < base.date:
                raise ValueError(f"release {spec.name!r} ({spec.date}) is dated before "
                                 f"{base.name!r} ({base.date}), which it comes after")
        caps_claims.update({k: v for k, v in spec.implements if v is not None})
        default_claims.update({k: v for k, v in spec.defaults if v is not None})
        for k, (value, why) in OPTIONAL_DEFAULTS.items():
            default_claims.setdefault(k, Claim[Any](value=value, source=why))
        missing = [f"implements.{k}" for k in Implements.model_fields if k not in caps_claims]
        missing += [f"defaults.{k}" for k in Defaults.model_fields if k not in default_claims]
        if missing:
            raise ValueError(f"release {spec.name!r} does not say {', '.join(missing)} (the "
                             "first release states every item)")
        caps = Capabilities(**{k: _frozen(c.value) for k, c in caps_claims.items()})
        defaults = {k: _frozen(c.value) for k, c in default_claims.items()}
        release = Release(
            family=family, name=spec.name, date=spec.date, framework=spec.framework,
            source=spec.source, caps=caps, defaults=defaults,
            sources={**{f"implements.{k}": c.source for k, c in caps_claims.items()},
                     **{f"defaults.{k}": c.source for k, c in default_claims.items()}},
            refit=dict(spec.refit),
            platforms=tuple(spec.platforms) if spec.platforms is not None else (
                () if spec.after is None else out[spec.after].platforms))
        _check_defaults(release)
        _check_platforms(release)
        if spec.after is not None:
            _check_new_choices(out[spec.after], release, spec)
        out[spec.name] = release
    return out


def _check_platforms(r: Release) -> None:
    """Every platform's recipe settings are within what the release implements."""
    for p in r.platforms:
        for setting, value in p.settings().items():
            if not r.allows(setting, value):
                raise ValueError(f"release {r.name!r}: its platform {'+'.join(p.chips)} sets "
                                 f"{setting} {value!r}, which the release does not implement")
        graphs = p.graphs or r.defaults["graphs"]
        if p.graph_scope is not None and graphs != "partial":
            raise ValueError(f"release {r.name!r}: its platform {p.label} sets a graph scope "
                             f"but runs graphs {graphs}; a scope applies to partial graphs")


def _check_new_choices(base: Release, r: Release, spec: ReleaseSpec) -> None:
    """A setting that had one option (its default forced: "not implemented") and has more in
    ``r`` must have its default restated with the source that says what runs of ``r`` do."""
    stated = {k for k, v in spec.defaults if v is not None}
    for setting in SETTINGS:
        if setting != "pipeline_layout" and setting not in stated and \
                len(base.options(setting)) == 1 < len(r.options(setting)):
            raise ValueError(f"release {r.name!r} implements more {setting} options than "
                             f"{base.name!r} ({', '.join(map(str, r.options(setting)))}): "
                             f"state defaults.{setting}, what its runs do when not told, "
                             "with its source")


def _word(value: Any) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def _frozen(value: Any) -> Any:  # lists as tuples: a resolved release is immutable
    return tuple(value) if isinstance(value, list | tuple) else value


def cap_values(caps: Capabilities) -> dict[str, Any]:
    return {f.name: getattr(caps, f.name) for f in fields(caps)}


def _check_defaults(r: Release) -> None:
    for setting in SETTINGS:
        value = r.defaults[setting]
        if not r.allows(setting, value):
            raise ValueError(f"release {r.name!r}: its default {setting} {value!r} is not "
                             "among what it implements")
    if extra := set(r.defaults["offload_modules"]) - set(r.caps.activation_offload):
        raise ValueError(f"release {r.name!r}: default offload_modules {sorted(extra)} are not "
                         "among the modules it can offload")


def newest(releases: dict[str, Release]) -> Release:
    """The newest release by date (the last listed among equal dates)."""
    return max(enumerate(releases.values()), key=lambda ir: (ir[1].date, ir[0]))[1]
