"""CI guards on a comparison: ``--fail-if "CHIP.FIELD OP NUMBER"``."""

from __future__ import annotations

import operator
import re

from moebench.commands.compare.records import Comparison
from moebench.errors import InputError

_OPS = {">=": operator.ge, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
        ">": operator.gt, "<": operator.lt}
GUARD_FIELDS = ("step_time_s", "tokens_per_s_per_chip", "mfu", "mfu_bf16", "memory_gib_per_chip",
                "days", "chip_hours", "goodput", "cost", "cost_ratio", "energy_mwh",
                "co2_tonnes")


def check_guards(cmp: Comparison, guards: list[str]) -> list[str]:
    """Guards like ``t-head-ppu.cost_ratio > 1.0``; returns the ones that tripped."""
    tripped = []
    for guard in guards:
        m = re.fullmatch(r"\s*([A-Za-z0-9._:-]+?)\.([a-z_0-9]+)\s*(>=|<=|==|!=|>|<)\s*(\S+)\s*",
                         guard)
        if not m:
            raise InputError(
                "--fail-if", None,
                f"expected CHIP.FIELD OP NUMBER (e.g. h20.cost_ratio > 1), got {guard!r}")
        chip, fld, op, raw = m.groups()
        if fld not in GUARD_FIELDS:
            raise InputError("--fail-if", None,
                             f"unknown field {fld!r}; one of {', '.join(GUARD_FIELDS)}")
        try:
            limit = float(raw)
        except ValueError:
            raise InputError("--fail-if", None, f"expected a number, got {raw!r}") from None
        rows = [r for r in cmp.rows if (r.entry or r.chip) == chip]
        if not rows:
            raise InputError("--fail-if", None, f"chip {chip!r} is not in the comparison")
        for r in rows:
            value = getattr(r, fld)
            if value is None or _OPS[op](value, limit):
                shown = "no plan fits" if value is None else f"{value:.4g}"
                tripped.append(f"{r.model} on {chip}: {fld} = {shown} ({guard.strip()})")
    return tripped
