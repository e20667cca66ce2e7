"""Questions over the shipped stack catalog as a whole (which stacks offer what)."""

from __future__ import annotations

from moebench.inputs import catalog
from moebench.inputs.release import newest
from moebench.inputs.stack import load_stack_spec


def releases_with_schedule(schedule: str, vendor: str) -> list[str]:
    """The shipped vendor stacks (``vendor``'s own, not generic or hardware-limit) whose newest
    release implementing ``schedule`` is named, as ``family@release``: where to go when the
    chosen release lacks a schedule (DeepSeek's DualPipe is hai-llm's, not Megatron's)."""
    found = []
    for name in catalog.catalog_names("stacks"):
        spec = load_stack_spec(name)
        if spec.vendor.lower() != vendor.lower():
            continue
        offering = {n: r for n, r in spec.releases_resolved.items()
                    if schedule in r.caps.schedules}
        if offering:
            found.append(newest(offering).label)
    return found
