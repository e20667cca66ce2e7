"""The Python API's arguments as the CLI takes them: list options as "a,b" text or a list of
text, ``--set``-style items as text, a list or a mapping, each wrong type an InputError
naming the option (:mod:`moebench.api`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moebench.commands.shared.options import search_choice
from moebench.errors import InputError

Overrides = Sequence[str] | Mapping[str, Any] | None
"""``--set``: "FIELD=VALUE" strings (compare also "CHIP:FIELD=VALUE"), or a mapping of them."""


def pairs(overrides: Overrides, option: str = "--set") -> list[str]:
    """``--set``-style "KEY=VALUE" items from text, a list of text or a mapping; anything else
    an InputError naming ``option``."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, Mapping):
        if not all(isinstance(k, str) for k in overrides):
            raise InputError(option, None, f"expected text keys, got {list(overrides)!r}")
        return [f"{k}={v}" for k, v in overrides.items()]
    if texts(overrides):
        return list(overrides)
    raise InputError(option, None, "expected 'KEY=VALUE' text, a list of them or a mapping, "
                                   f"got {overrides!r}")


def texts(value: Any) -> bool:
    """Whether ``value`` is a list or tuple of text (a string itself is not)."""
    return isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)


Settings = str | Mapping[str, Any] | None
"""``--settings``: "NAME=VALUE,..." or a mapping (True/False for on/off settings)."""


def searched(search: str | Sequence[str] | None) -> list[str] | None:
    """``--search`` checked, as a scenario's ``search`` list (None: not given)."""
    searched = search_choice(text(search, "--search"))
    return None if searched is None else sorted(searched)


def text(value: str | Sequence[str] | None, option: str) -> str | None:
    """A list option as the CLI takes it: "a,b" (a list of text is joined); anything else an
    InputError naming ``option``."""
    return value if value is None or isinstance(value, str) else ",".join(items(value, option))


def items(value: str | Sequence[str], option: str) -> list[str]:
    """A repeatable option's values: one text, or a list of them; anything else an InputError
    naming ``option``."""
    if isinstance(value, str):
        return [value]
    if texts(value):
        return list(value)
    raise InputError(option, None, f"expected text or a list of text, got {value!r}")


def vary_text(vary: Mapping[str, Any]) -> dict[str, str]:
    """``sweep``'s grid given as a mapping, FIELD to its values as --vary writes them: "v1,v2"
    text, one number, or a list of values."""
    out = {}
    for key, values in vary.items():
        if isinstance(values, str):
            out[key] = values
        elif isinstance(values, int | float) and not isinstance(values, bool):
            out[key] = str(values)
        elif isinstance(values, list | tuple) and all(
                isinstance(v, str | int | float) and not isinstance(v, bool) for v in values):
            out[key] = ",".join(map(str, values))
        else:
            raise InputError("--vary", key, "expected its values as 'v1,v2' text, a number or a "
                                            f"list of them, got {values!r}")
    return out
