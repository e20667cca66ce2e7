"""``--set section.field=VALUE`` overrides of profile figures (hardware and stack)."""

from __future__ import annotations

import copy
from typing import Any

from moebench.errors import InputError


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``FIELD=VALUE`` strings as a mapping; an InputError for a malformed one."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError("--set", None, f"expected FIELD=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def split_chip_overrides(pairs: list[str]) -> dict[str, dict[str, str]]:
    """``CHIP:FIELD=VALUE`` (one chip) or ``FIELD=VALUE`` (every chip, key '*'), by chip."""
    out: dict[str, dict[str, str]] = {}
    for pair in pairs:
        key, _, _ = pair.partition("=")
        chip, sep, _ = key.partition(":")
        target, item = (chip, pair.split(":", 1)[1]) if sep else ("*", pair)
        out.setdefault(target, {}).update(parse_overrides([item]))
    return out


def apply_overrides(
    data: dict[str, Any], overrides: dict[str, str], where: str, kind: str
) -> dict[str, Any]:
    """A copy of a raw profile mapping (hardware or stack) with ``section.field=value``
    overrides applied.

    An override replaces the figure's value (and marks it ``kind: estimate`` with a zero-width
    range, sourced to the command line) so that the output can say what was changed.
    """
    data = copy.deepcopy(data)
    for key, raw in overrides.items():
        parts = key.split(".")
        node: Any = data
        for p in parts[:-1]:
            if not isinstance(node, dict) or p not in node:
                raise InputError("--set", key, f"no such {kind} field in {where}")
            node = node[p]
        leaf = parts[-1]
        if not isinstance(node, dict) or leaf not in node:
            raise InputError("--set", key, f"no such {kind} field in {where}")
        try:
            value = float(raw)
        except ValueError:
            raise InputError("--set", key, f"expected a number, got {raw!r}") from None
        old = node[leaf]
        if isinstance(old, dict) and "value" in old:
            node[leaf] = {
                **{k: v for k, v in old.items() if k not in ("low", "high", "note")},
                "value": value, "kind": "estimate", "low": value, "high": value,
                "source": f"override on the command line: --set {key}={raw}",
            }
        else:
            raise InputError("--set", key, "is not a numeric figure")
    return data
