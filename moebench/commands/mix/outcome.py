"""One configuration of a mixed cluster's chips, as every mix table shows it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One configuration of the chips: a mixed strategy, one type alone, or the types apart."""

    configuration: str
    kind: str
    """strategy, alone or apart."""
    num_chips: int
    """Chips that take part and are paid for."""
    status: str = "ok"
    step_time_s: float | None = None
    tokens_per_s: float | None = None
    tokens_per_s_per_chip: float | None = None
    mfu: float | None = None
    mfu_bf16: float | None = None
    days: float | None = None
    chip_hours: float | None = None
    goodput: float | None = None
    cost: float | None = None
    energy_mwh: float | None = None
    co2_tonnes: float | None = None
    parts: list[dict[str, Any]] = field(default_factory=list)
    cross_type: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
