"""Safe reading of YAML and JSON input files, refusing hostile content with one clear line."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from moebench.errors import InputError

T = TypeVar("T")
MAX_INPUT_BYTES = 1_000_000  # profiles are a few KB; a larger file is a mistake or an attack


class _NoAliasSafeLoader(yaml.SafeLoader):
    """SafeLoader that also refuses anchors/aliases (no "billion laughs" expansion)."""

    def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML aliases (*name) are not accepted "
                "in profiles; write the value out"
            )
        return super().compose_node(parent, index)


# libyaml's safe loader where PyYAML was built with it: the pure-Python parser took 0.6 s of a
# 2.9 s `moebench estimate` (2026-12-07), the C one takes a tenth of that. Same resolver and
# constructor, so the same values.
_C_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", None)


def _load_yaml(text: str) -> Any:
    """The document, refusing aliases (*name) before anything is constructed."""
    if _C_SAFE_LOADER is None:
        return yaml.load(text, Loader=_NoAliasSafeLoader)  # noqa: S506 - safe loader subclass
    # The C loader composes nodes in C, out of _NoAliasSafeLoader's reach: its events first.
    for event in yaml.parse(text, Loader=_C_SAFE_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise yaml.YAMLError(
                f"line {event.start_mark.line + 1}: YAML aliases (*name) are not accepted "
                "in profiles; write the value out")
    return yaml.load(text, Loader=_C_SAFE_LOADER)  # noqa: S506 - libyaml's safe loader


def read_text(path: Path) -> str:
    """The file's text, or an InputError saying why it cannot be read."""
    where = str(path)
    if not path.exists():
        raise InputError(where, None, "file does not exist")
    if path.is_dir():
        raise InputError(where, None, "is a directory; expected a file")
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise InputError(
                where, None, f"file is {size:,} bytes; input files are limited to "
                f"{MAX_INPUT_BYTES:,} bytes"
            )
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(where, None, f"cannot be read ({exc.strerror})") from None
    if b"\x00" in raw:
        raise InputError(where, None, "is binary, not a text file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(where, None, f"is not UTF-8 text (byte {exc.start})") from None


# Parsed files by (path, content digest): a sweep loads the same few profiles at every point,
# and pure-Python YAML parsing was half of its time. A changed file is parsed again.
_PARSED: dict[tuple[str, str], dict[str, Any]] = {}


def file_key(path: Path) -> tuple[str, str] | None:
    """(path, digest of its bytes): what identifies a file's content for the caches here and
    of validated records; a digest, not the modification time, whose granularity can hide a
    rewrite (None when it cannot or should not be read: the loader then says why)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_INPUT_BYTES:
            return None
        return (str(path.resolve()), hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest())
    except OSError:
        return None


_RECORDS: dict[tuple[Any, ...], Any] = {}


def cached_record(kind: str, path: Path, overrides: dict[str, str] | None,
                  build: Callable[[], T]) -> T:
    """A validated, frozen record of ``path`` with ``overrides``: built once per process per
    file content (a sweep loads the same profiles at every point; pydantic validation was a
    tenth of a point's time)."""
    key = file_key(path)
    if key is None:
        return build()
    full = (kind, key, tuple(sorted((overrides or {}).items())))
    if full not in _RECORDS:
        _RECORDS[full] = build()
    return _RECORDS[full]  # type: ignore[no-any-return]


def load_mapping(path: Path) -> dict[str, Any]:
    """Parse a YAML (or JSON) file whose top level must be a mapping (a fresh copy each call;
    an unchanged file is parsed once per process)."""
    key = file_key(path)
    if key is not None and key in _PARSED:
        return copy.deepcopy(_PARSED[key])
    data = _parse_mapping(path)
    if key is not None:
        _PARSED[key] = copy.deepcopy(data)
    return data


def _parse_mapping(path: Path) -> dict[str, Any]:
    text = read_text(path)
    where = str(path)
    try:
        data = json.loads(text) if path.suffix == ".json" else _load_yaml(text)
    except yaml.constructor.ConstructorError as exc:
        tag = getattr(exc, "problem", "") or "unsupported tag"
        raise InputError(
            where, None, f"YAML tag refused ({tag}); profiles hold plain data only"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(where, None, f"malformed YAML: {at}{problem}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InputError(where, None, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(where, None, "expected a mapping of fields at the top level")
    return data
