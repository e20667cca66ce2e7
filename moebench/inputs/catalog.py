"""Where the shipped profiles live and how a name or a path becomes a file."""

from __future__ import annotations

import os
from pathlib import Path

from moebench.errors import InputError


def profiles_root() -> Path:
    """The profiles folder: $MOEBENCH_PROFILES, the installed copy, or the source tree's."""
    env = os.environ.get("MOEBENCH_PROFILES")
    if env:
        return Path(env)
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "profiles", package.parent / "profiles"):
        if candidate.is_dir():
            return candidate
    raise InputError("moebench", None, "cannot find the profiles folder; set MOEBENCH_PROFILES")


def catalog_dir(kind: str) -> Path:
    """Folder of one kind of profile: hardware, models, scenarios or validation."""
    return profiles_root() / kind


def catalog_names(kind: str) -> list[str]:
    """Names of the shipped profiles of one kind, sorted."""
    return sorted(p.stem for p in catalog_dir(kind).glob("*.yaml"))


def resolve(kind: str, name_or_path: str, option: str) -> Path:
    """A catalog name (``h800``) or a file path, as a path to an existing file."""
    if not name_or_path or not name_or_path.strip():
        raise InputError(option, None, "is empty; give a catalog name or a file path")
    looks_like_path = any(s in name_or_path for s in ("/", "\\")) or name_or_path.endswith(
        (".yaml", ".yml", ".json")
    )
    if looks_like_path:
        return Path(name_or_path)
    path = catalog_dir(kind) / f"{name_or_path}.yaml"
    if not path.is_file():
        names = ", ".join(catalog_names(kind))
        raise InputError(option, None, f"unknown {kind} profile {name_or_path!r}; known: {names}")
    return path
