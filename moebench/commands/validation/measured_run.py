"""One measured training run, validated (:func:`~moebench.commands.validation.measured_runs.
load_runs` reads a file of them), and what a prediction of it reads: the stack it ran on and
its job settings."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, replace
from typing import Any

from moebench.engine.plan import PlanRequest
from moebench.inputs.stack import StackOptions

# Metrics where a larger value means faster training; the others (times, chip-hours) invert.
FASTER_IS_LARGER = {"tokens_per_s_per_chip": True, "model_tflops_per_chip": True, "mfu": True,
                    "step_time_s": False, "chip_hours_per_1e12_tokens": False}


# What a published peak-memory figure counts: live tensors (torch max_memory_allocated),
# what the caching allocator holds (max_memory_reserved), or the whole device as nvidia-smi or
# npu-smi shows it (with the runtime and communication buffers).
MEMORY_KINDS = ("allocated", "reserved", "device")


@dataclass(frozen=True, kw_only=True)
class MeasuredRun:
    """One measured run, validated."""

    id: str
    model: str
    chip: str
    num_chips: int
    precision: str
    plan: PlanRequest
    seq_len: int
    global_batch: int
    stack: str | None
    """The stack it ran on; None: the chip's default stack."""
    options: StackOptions
    capacity_factor: float | None
    expert_imbalance: float
    routing: str
    """How its router placed a token's experts (random, or a fake gate's contiguous)."""
    pipeline_flushes: int
    """Pipeline schedule runs per optimizer step (gradient accumulation outside the schedule)."""
    optimizer_states: str | None
    metric: str
    measured: float
    production: bool
    """A whole training run's average (restarts, ramp-up) rather than a steady-state figure."""
    source: str
    source_id: str
    """The publication or table it comes from (runs left out together in validation)."""
    published: datetime.date | None
    """When the figure was first published (None: not given)."""
    sweep: str | None
    """The published plan sweep it belongs to (None: none)."""
    row: int
    """Line of the file (for messages)."""
    memory_bytes: float | None = None
    """Published peak memory per device (None: not published)."""
    memory_kind: str | None = None
    """What it counts (:data:`MEMORY_KINDS`)."""
    hardware_set: tuple[tuple[str, str], ...] = ()
    """Figures of the cluster it ran on where the source states them apart from the chip's
    profile (``section.field``, value), as ``--set`` takes them: e.g. the scale-out network."""

    def as_published(self) -> MeasuredRun:
        """The run as a user who has only the plan its source publishes gives it (issue 21's
        test): chip, count, model, TP/PP/VPP/EP/CP, micro-batch, recompute, schedule,
        pipeline layout, precision, batch, sequence and the dispatcher; every other setting
        and plan field is left to the stack release (its recipe on the run's platform) and
        to the search."""
        plan = replace(self.plan, etp=None, sharding=None, shard_group=None, cp_kind=None,
                       optimizer_offload=None, offload_modules=None)
        return replace(self, plan=plan, optimizer_states=None,
                       options=StackOptions(dispatcher=self.options.dispatcher))


def run_stack(run: MeasuredRun) -> str:
    """The stack a run ran on: the one its row names, else its chip's default."""
    from moebench.inputs.hardware import load_chip

    return run.stack or load_chip(run.chip).default_stack


def run_setting(run: MeasuredRun) -> dict[str, Any]:
    """The run's job settings as keyword arguments of
    :func:`moebench.commands.shared.setup.job_inputs`."""
    return {
        "model": run.model, "chip": run.chip, "stack": run.stack, "options": run.options,
        "seq_len": run.seq_len, "global_batch": run.global_batch, "precision": run.precision,
        "expert_imbalance": run.expert_imbalance, "routing": run.routing,
        "pipeline_flushes": run.pipeline_flushes,
        "capacity_factor": run.capacity_factor, "optimizer_states": run.optimizer_states,
        "overrides": dict(run.hardware_set),
    }
