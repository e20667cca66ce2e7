"""One measured run's predictions, every way :func:`moebench.commands.validation.validation.
validate` makes them, beside what was measured (the record every validation summary reads)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

SPLIT_DATE = datetime.date(2025, 7, 1)
"""The time split: fit on runs published before it, predict the later ones."""


@dataclass(frozen=True, kw_only=True)
class RunComparison:
    id: str
    model: str
    chip: str
    vendor: str
    moe: bool
    num_chips: int
    stack: str
    """``family@release``."""
    source_id: str
    published: str | None
    sweep: str | None
    metric: str
    measured: float
    faster_is_larger: bool
    tokens_per_step: float
    """Global batch x sequence length: what a step of this run trains."""
    physics_error: float
    """Speed error with the hardware-limit stack (positive: the prediction is faster)."""
    calibrated_error: float
    loo_error: float
    loso_error: float
    split_error: float
    """Error when fitted only on runs published before SPLIT_DATE (NaN: not a later run)."""
    published_error: float = float("nan")
    """Leave-one-source-out error of the run given only the plan its source publishes
    (:meth:`MeasuredRun.as_published`): the family fitted without the source, as above."""
    param_sd: float
    """Standard deviation of the log prediction over the family's fitted-figure uncertainty."""
    fits_memory: bool
    production: bool
    source: str
    keeps_headroom: bool = True
    """The plan would fit even at the top of the stack's measured allocator hold (else it is
    tight: it fits only at the typical hold, and ran)."""
    memory_kind: str | None = None
    """What the published peak memory counts (None: not published)."""
    memory_measured_gib: float = float("nan")
    memory_predicted_gib: float = float("nan")
    """The model's figure of the same kind for the run's plan."""
    memory_terms_gib: dict[str, float] | None = None
    """The predicted breakdown by term."""

    @property
    def memory_error(self) -> float:
        """Predicted over published peak memory, minus one (NaN: none published)."""
        return self.memory_predicted_gib / self.memory_measured_gib - 1.0
