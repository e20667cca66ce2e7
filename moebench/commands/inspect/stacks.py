"""Reports for ``moebench stacks list`` and ``moebench stacks show``: what each software stack
assumes, every figure with its kind and source, and which chips take it by default."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel

from moebench.commands.inspect.profiles import figure_row
from moebench.commands.shared.report import Report
from moebench.commands.validation.validation import calibrated_names
from moebench.inputs import catalog
from moebench.inputs.hardware import load_spec
from moebench.inputs.release import Capabilities, Release, cap_values
from moebench.inputs.schema import Figure
from moebench.inputs.stack import StackSpec, load_stack_spec


def _default_for() -> dict[str, list[str]]:
    """Shipped chips by the stack they take when none is named."""
    out: dict[str, list[str]] = {}
    for name in catalog.catalog_names("hardware"):
        spec = load_spec(catalog.resolve("hardware", name, "profile"))
        out.setdefault(spec.default_stack, []).append(name)
    return out


def _chips_on(spec: StackSpec, release: Release, defaults: dict[str, list[str]]) -> list[str]:
    """The chips whose default stack is this release (named, or the family's newest)."""
    chips = list(defaults.get(release.label, []))
    if release.name == spec.select(None).release.name:
        chips += defaults.get(spec.name, [])
    return chips


def _caps_text(caps: Capabilities) -> str:
    """What a release implements beyond 1F1B and the plain dispatchers, in a few words."""
    parts = ["+".join(caps.schedules), "/".join(caps.dispatchers)]
    parts += [name for name, on in (("ep-overlap", caps.ep_overlap),
                                    ("tp-overlap", caps.tp_overlap),
                                    ("opt-offload", caps.optimizer_offload),
                                    ("act-offload", bool(caps.activation_offload))) if on]
    if "zero-3" in caps.sharding:
        parts.append("fsdp")
    return ", ".join(parts)


def stacks_list() -> Report:
    """One row per release of each shipped stack family: date, vendor, the chips it is the
    default of, what it implements and does by default, what was fitted and the family's
    error."""
    defaults = _default_for()
    rows = []
    for name in catalog.catalog_names("stacks"):
        family = load_stack_spec(name)
        v = family.validation
        for release in family.releases_resolved.values():
            d = release.defaults
            rows.append({
                "name": release.label, "family": family.name, "release": release.name,
                "date": release.date.isoformat(), "vendor": family.vendor,
                "framework": release.framework,
                "default_for": ", ".join(_chips_on(family, release, defaults)) or None,
                "implements": _caps_text(release.caps),
                "dispatcher": d["dispatcher"], "ep_overlap": d["ep_overlap"],
                "graphs": d["graphs"], "cross_entropy": d["cross_entropy"],
                "recipes_on": _recipes_on(release),
                "fitted": ", ".join(calibrated_names(family) + tuple(
                    f"{k} (this release)" for k in release.refit)) or None,
                "runs": v.runs if v else 0,
                "loo_error": v.loo_mean_abs_error if v else None,
            })
    return Report("Software stacks and their releases", pd.DataFrame(rows), {"stacks": rows},
                  ["loo_error: the family's mean absolute speed error on its measured runs, "
                   "each predicted by the family fitted without it (moebench validate).",
                   "NAME@RELEASE picks a release (--stack, or CHIP:STACK in compare --chips); "
                   "the bare name is the newest. Any stack runs on any chip of its vendor.",
                   "recipes_on: the chips, and the models or model kinds, where the release's "
                   "recipes set other defaults (moebench stacks show NAME@RELEASE lists each "
                   "entry with its precisions)."],
                  optional=("framework", "graphs", "dispatcher", "cross_entropy", "ep_overlap",
                            "family", "release", "implements", "recipes_on"))


def _settings(node: BaseModel, prefix: str = "") -> list[dict[str, Any]]:
    """Rows for a stack's figures (value, kind, interval, source) and its named choices
    (graphs, dispatcher, loss implementation, overlaps), nested sections as dotted fields."""
    rows: list[dict[str, Any]] = []
    for name in type(node).model_fields:
        value, path = getattr(node, name), f"{prefix}{name}"
        if isinstance(value, Figure):
            rows.append(figure_row(path, value))
        elif isinstance(value, dict):
            for key, sub in value.items():
                rows.extend(_settings(sub, f"{path}.{key}."))
        elif isinstance(value, BaseModel) and "source" in type(value).model_fields:
            # A named choice with its source (cross_entropy, activation_offload).
            source: str = value.model_dump()["source"]
            choice = value.model_dump(exclude={"source", "kind"})
            text = "; ".join(", ".join(v) if isinstance(v, list) else str(v)
                             for v in choice.values())
            rows.append({"field": path, "value": text or "none",
                         "kind": getattr(value, "kind", "setting"), "low": None, "high": None,
                         "source": source})
        elif isinstance(value, BaseModel):
            rows.extend(_settings(value, f"{path}."))
        elif prefix and value is not None:
            text = ", ".join(value) if isinstance(value, list) else value
            rows.append({"field": path, "value": text, "kind": "setting", "low": None,
                         "high": None, "source": ""})
    return rows


def _recipes_on(release: Release) -> str | None:
    """Where a release's recipes set other defaults, in short: ``h100+b200: deepseek-v3, moe``
    (every chip, then every model or kind, its platform entries name)."""
    if not release.platforms:
        return None
    chips = dict.fromkeys(c for p in release.platforms for c in p.chips)
    models = dict.fromkeys(m for p in release.platforms for m in p.models)
    return f"{'+'.join(chips)}: {', '.join(models)}"


def _shown(value: Any) -> Any:
    """A setting's value as a table shows it: a tuple as a comma-separated list."""
    return ", ".join(str(v) for v in value) if isinstance(value, tuple) else value


def release_rows(release: Release) -> list[dict[str, Any]]:
    """What a release implements, does by default and refits, each with its source."""
    rows: list[dict[str, Any]] = [{
        "field": "release", "value": f"{release.name} ({release.date.isoformat()})",
        "kind": "setting", "low": None, "high": None,
        "source": f"{release.framework}; {release.source}"}]
    for part, values in (("implements", cap_values(release.caps)),
                         ("defaults", release.defaults)):
        for key, value in values.items():
            text = _shown(value)
            rows.append({"field": f"{part}.{key}", "value": text if text != "" else "none",
                         "kind": "setting", "low": None, "high": None,
                         "source": release.sources[f"{part}.{key}"]})
    for p in release.platforms:  # recipe defaults on given chips, precisions, models
        rows += [{"field": f"platform {p.label}.{k}", "value": _shown(v), "kind": "setting",
                  "low": None, "high": None, "source": p.source}
                 for k, v in p.settings().items()]
    rows += [figure_row(f"refit.{k}", fig) for k, fig in release.refit.items()]
    return rows


def stack_show(name_or_path: str) -> Report:
    """Every figure of one stack family with its kind and source, and what the selected
    release (the newest unless NAME@RELEASE) implements and does by default."""
    spec: StackSpec = load_stack_spec(name_or_path, option="NAME")
    rows = _settings(spec.model_copy(update={"validation": None, "releases": []}))
    rows += release_rows(spec.release)
    chips = _chips_on(spec, spec.release, _default_for())
    footer = [f"{spec.display_name} ({spec.vendor}): {spec.framework}",
              f"release {spec.release.label} of {', '.join(spec.releases_resolved)}: "
              f"moebench stacks show {spec.name}@RELEASE for another"]
    if chips:
        footer.append(f"default stack of {', '.join(chips)}")
    if spec.validation:
        footer.append(f"validation: {spec.validation.note}")
    payload = {**spec.model_dump(mode="json"), "release": spec.release.name}
    return Report(f"Stack {spec.label}", pd.DataFrame(rows).drop(columns="currency",
                                                              errors="ignore"),
                  payload, footer)
