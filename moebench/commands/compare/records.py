"""The records of a comparison: one row per (model, chip entry) and the table that holds them.

Kept apart from the computation (:mod:`.comparison`) so that the mixed rows
(:mod:`moebench.commands.mix.compare`), break-even prices and guards read them without importing
the search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from moebench.inputs.hardware import Chip, HardwareSpec
from moebench.inputs.run import RunConfig
from moebench.inputs.scenario import ScenarioSpec
from moebench.inputs.stack import StackSpec

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True, kw_only=True)
class CompareRow:
    model: str
    chip: str
    entry: str
    """The chip as asked: CHIP, or CHIP:STACK for another stack than its default."""
    stack: str
    num_chips: int
    precision: str
    plan: dict[str, Any] | None
    step_time_s: float | None
    tokens_per_s_per_chip: float | None
    mfu: float | None
    """Model FLOP/s over the peak of the precision the run uses."""
    mfu_bf16: float | None
    """Model FLOP/s over the dense BF16 peak (the usual published convention)."""
    memory_gib_per_chip: float | None
    fits_memory: bool
    memory_gib_high_hold: float | None = None
    """Device memory if the caching allocator held the top of its measured range."""
    keeps_headroom: bool = True
    """The plan fits at that hold too (else it is tight: it fits only at the typical hold)."""
    headroom_slower_by: float | None = None
    """For a tight plan, how much slower the fastest evaluated plan keeping the headroom is."""
    tight_faster_by: float | None = None
    """For a plan keeping the headroom, how much faster the fastest tight plan is."""
    days: float | None
    chip_hours: float | None
    goodput: float | None
    price_basis: str
    price_per_chip_hour: float | None
    price_source: str
    cost: float | None
    currency: str
    cost_ratio: float | None
    break_even_per_chip_hour: float | None = None
    """The price per chip-hour at which this row costs what the baseline costs (on the table's
    basis): below it this chip is the cheaper one."""
    break_even_price_ratio: float | None = None
    """How many of this chip's hours one baseline hour must cost for the two to tie: this row's
    chip-hours over the baseline's, whatever the prices."""
    price_by_basis: dict[str, float | None] = field(default_factory=dict)
    """This chip's price per chip-hour on every basis, in the table's currency."""
    cost_ratio_by_basis: dict[str, float | None] = field(default_factory=dict)
    """The cost ratio against the baseline on every basis that prices both."""
    energy_mwh: float | None
    co2_tonnes: float | None
    status: str
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    mix: dict[str, Any] | None = None
    assumed: list[dict[str, Any]] = field(default_factory=list)
    """Settings and plan dimensions the scenario did not give (:mod:`..assumptions`)."""
    """A mixed cluster's row: its chosen strategy, parts and alternatives (None for a chip)."""


@dataclass(frozen=True)
class Comparison:
    scenario: ScenarioSpec
    assumptions: dict[str, Any]
    rows: list[CompareRow]
    stacks: dict[str, StackSpec] = field(default_factory=dict)
    """The stacks the entries ran on, by name (a stack given as a file is not in the catalog)."""

    def to_frame(self) -> pd.DataFrame:
        """One row per (model, chip entry), as JSON has it: the plan and the intervals
        flattened one level (``plan.tp``, ``intervals.days`` as [p05, p95])."""
        import pandas as pd

        return pd.json_normalize([row_dict(r) for r in self.rows], max_level=1)


def row_dict(row: CompareRow) -> dict[str, Any]:
    d = asdict(row)
    d["intervals"] = {k: list(v) for k, v in row.intervals.items()}
    return d


@dataclass(frozen=True)
class Entry:
    """One chip entry of the comparison, loaded: hardware spec, chip, stack and run."""

    name: str
    spec: HardwareSpec
    chip: Chip
    stack_spec: StackSpec
    run: RunConfig
