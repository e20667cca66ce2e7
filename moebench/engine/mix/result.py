"""What a mixed-cluster strategy search returns: per strategy, each chip type's part and the
step time, in plain numbers (seconds, bytes) for the cost and report layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DATA_PARALLEL = "hetero-dp"
PIPELINE = "hetero-pipeline"
LOCAL_SGD = "local-sgd"
STRATEGIES = (DATA_PARALLEL, PIPELINE, LOCAL_SGD)
STRATEGY_WORDS = {
    DATA_PARALLEL: "heterogeneous data parallel: each type its own replicas and plan, the batch "
                   "split by speed, gradients reduced within each type then across types",
    PIPELINE: "heterogeneous pipeline: pipeline stages on both types, layers split by speed "
              "within memory, activations crossing between types",
    LOCAL_SGD: "loosely coupled sites: each type trains its own replica and the sites average "
               "their parameters every H steps (local SGD / DiLoCo outer step) over the WAN",
}


@dataclass(frozen=True, kw_only=True)
class PartPlan:
    """One chip type's part in a strategy."""

    chip: str
    stack: str
    count: int
    plan: dict[str, Any] | None
    """The type's plan (the engine's ``plan`` object); None when it gets no work."""
    sequences: int
    """Sequences of the global batch this type processes per step (all of it in a pipeline)."""
    layers: int | None = None
    """Transformer layers on this type (pipeline only)."""
    step_time_s: float
    """The type's own step at its share (data parallel, local SGD), or its pipeline stage's
    seconds per micro-batch (pipeline)."""
    memory_bytes: float
    """Per chip, on its most loaded stage."""
    checkpoint_bytes: float
    """Per chip: weights and optimizer-state shard it writes to a checkpoint."""
    keeps_headroom: bool = True
    """It would still fit at the top of its stack's measured allocator hold (else tight)."""

    @property
    def idle(self) -> bool:
        return self.plan is None


@dataclass(frozen=True, kw_only=True)
class StrategyResult:
    """One strategy on one mix: its step and each type's part, or why it does not apply."""

    strategy: str
    step_time_s: float | None
    parts: tuple[PartPlan, ...] = ()
    cross_s: float = 0.0
    """Exposed cross-type communication, seconds per step."""
    cross_bytes: float = 0.0
    """Bytes each type sends across (and receives) per step, averaged over steps."""
    network: str = ""
    """The link cross-type traffic rides: common fabric or WAN."""
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return self.step_time_s is not None

    @property
    def working(self) -> tuple[PartPlan, ...]:
        """The parts that get work (and are paid for)."""
        return tuple(p for p in self.parts if not p.idle)


def unavailable(strategy: str, reason: str) -> StrategyResult:
    return StrategyResult(strategy=strategy, step_time_s=None, reason=reason)
