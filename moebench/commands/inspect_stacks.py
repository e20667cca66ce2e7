"""Reports for ``moebench stacks list`` and ``moebench stacks show``: what each software stack
assumes, every figure with its kind and source, and which chips take it by default."""

from __future__ import annotations

from typing import Any

import pandas as pd
from pydantic import BaseModel

from moebench.commands.inspect_profiles import figure_row
from moebench.commands.report import Report
from moebench.commands.validation import calibrated_names
from moebench.inputs import catalog
from moebench.inputs.hardware import load_spec
from moebench.inputs.schema import Figure
from moebench.inputs.stack import StackSpec, load_stack_spec


def _default_for() -> dict[str, list[str]]:
    """Shipped chips by the stack they take when none is named."""
    out: dict[str, list[str]] = {}
    for name in catalog.catalog_names("hardware"):
        spec = load_spec(catalog.resolve("hardware", name, "profile"))
        out.setdefault(spec.default_stack, []).append(name)
    return out


def stacks_list() -> Report:
    """One row per shipped stack: vendor, framework, the chips it is the default of, what was
    fitted, its leave-one-out error and its loss implementation."""
    defaults = _default_for()
    rows = []
    for name in catalog.catalog_names("stacks"):
        spec = load_stack_spec(name)
        v = spec.validation
        rows.append({
            "name": spec.name, "vendor": spec.vendor, "framework": spec.framework,
            "default_for": ", ".join(defaults.get(spec.name, [])) or None,
            "fitted": ", ".join(calibrated_names(spec)) or None,
            "runs": v.runs if v else 0,
            "loo_error": v.loo_mean_abs_error if v else None,
            "dispatcher": spec.moe.dispatcher, "graphs": spec.host.graphs,
            "cross_entropy": spec.kernels.cross_entropy.implementation,
        })
    return Report("Software stacks", pd.DataFrame(rows), {"stacks": rows},
                  ["loo_error: mean absolute leave-one-out speed error on the runs it was "
                   "fitted on (moebench validate).",
                   "Any stack runs on any chip of its vendor: --stack NAME, or CHIP:STACK in "
                   "compare --chips."],
                  optional=("framework", "graphs", "dispatcher", "cross_entropy"))


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


def stack_show(name_or_path: str) -> Report:
    """Every figure and setting of one stack with its kind and source."""
    spec: StackSpec = load_stack_spec(name_or_path, option="NAME")
    rows = _settings(spec.model_copy(update={"validation": None}))
    defaults = _default_for().get(spec.name, [])
    footer = [f"{spec.display_name} ({spec.vendor}): {spec.framework}"]
    if defaults:
        footer.append(f"default stack of {', '.join(defaults)}")
    if spec.validation:
        footer.append(f"validation: {spec.validation.note}")
    return Report(f"Stack {spec.name}", pd.DataFrame(rows).drop(columns="currency"),
                  spec.model_dump(mode="json"), footer)
