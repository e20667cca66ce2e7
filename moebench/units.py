"""Unit suffixes of profile field names and their conversion to base units.

Profiles name their units in the field name (``hbm_bandwidth_tb_per_s``); records hold base units
only: FLOP, FLOP/s, byte, byte/s, second, watt, parameter updates per second. Conversion happens
once, at load, through :func:`to_base`. Decimal prefixes throughout (1 GB = 1e9 bytes), as
vendors' datasheets use them; ``_gib`` is the only binary unit.
"""

from __future__ import annotations

TERA = 1e12
GIGA = 1e9
GIB = 2.0**30
HOUR = 3600.0

# Longest suffixes first, so that "_tb_per_s" is not read as "_s".
SUFFIX_TO_BASE: dict[str, float] = {
    "_tflops": TERA,  # FLOP/s
    "_tera_per_s": TERA,  # operations/s
    "_tb_per_s": TERA,  # byte/s
    "_gb_per_s": GIGA,  # byte/s
    "_gbit_per_s": GIGA / 8,  # byte/s
    "_gparams_per_s": GIGA,  # parameter updates/s
    "_gib": GIB,  # byte
    "_gb": GIGA,  # byte
    "_us": 1e-6,  # second
    "_ms": 1e-3,  # second
    "_minutes": 60.0,  # second
    "_hours": HOUR,  # second
    "_w": 1.0,  # watt
}


def unit_factor(field_name: str) -> float:
    """Factor that converts a value of ``field_name`` to base units (from its suffix)."""
    for suffix, factor in SUFFIX_TO_BASE.items():
        if field_name.endswith(suffix):
            return factor
    raise KeyError(f"field {field_name!r} has no unit suffix")


def to_base(field_name: str, value: float) -> float:
    """``value`` (in the unit its field name states) converted to base units."""
    return value * unit_factor(field_name)
