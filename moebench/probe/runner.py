"""What the probe measures, in which order, within the time budget.

Shapes are per backend (:data:`TORCH_PLAN` for accelerators, :data:`NUMPY_PLAN` small enough
for a laptop CPU). Dense GEMMs sweep rows at full depth and depth at full rows (the curve is a
product of a rows factor and a depth factor, so the two sweeps identify it) plus a diagonal;
grouped GEMMs sweep tokens per expert. Each point gets a share of the budget: repetitions adapt
to it, within the minimum and maximum runs of the plan's :class:`Repeats`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from moebench.errors import InputError
from moebench.probe.backends import Backend, DeviceInfo
from moebench.probe.collectives import CollectivePoint
from moebench.probe.fit import attention_flops, gemm_flops
from moebench.probe.timing import Budget, Repeats, Timing, measure

Progress = Callable[[str], None]
"""Called after each step with the step's label."""


@dataclass(frozen=True)
class ProbePlan:
    dense_n: int
    dense_rows: tuple[int, ...]
    dense_depths: tuple[int, ...]
    groups: int
    grouped_k: int
    grouped_n: int
    grouped_rows: tuple[int, ...]
    fp8_shapes: tuple[tuple[int, int, int], ...]
    copy_bytes: int
    attention_heads: int
    attention_head_dim: int
    attention_seqs: tuple[int, ...]
    collective_bytes: tuple[int, ...]
    collective_runs: int
    repeats: Repeats
    clock_warmup_s: float
    """Seconds of large GEMMs first, so clocks and power reach their steady state."""

    def dense_shapes(self) -> list[tuple[int, int, int]]:
        """(m, k, n): rows at full depth, depth at full rows, and the diagonal, once each."""
        m_max, k_max, n = max(self.dense_rows), max(self.dense_depths), self.dense_n
        shapes = [(m, k_max, n) for m in self.dense_rows]
        shapes += [(m_max, k, n) for k in self.dense_depths]
        shapes += [(x, x, n) for x in self.dense_rows if x in self.dense_depths]
        return list(dict.fromkeys(shapes))


MIB = 1 << 20
TORCH_PLAN = ProbePlan(
    dense_n=8192, dense_rows=(16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    dense_depths=(64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384),
    groups=8, grouped_k=4096, grouped_n=2048,
    grouped_rows=(8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
    fp8_shapes=((4096, 4096, 4096), (8192, 8192, 8192), (16384, 8192, 8192),
                (8192, 16384, 8192)),
    copy_bytes=2048 * MIB, attention_heads=64, attention_head_dim=128,
    attention_seqs=(1024, 2048, 4096),
    collective_bytes=(MIB, 4 * MIB, 16 * MIB, 64 * MIB, 256 * MIB, 1024 * MIB),
    collective_runs=10, repeats=Repeats(warmup=3, min_runs=5, max_runs=30, min_run_s=2e-3),
    clock_warmup_s=2.0,
)
NUMPY_PLAN = ProbePlan(
    dense_n=256, dense_rows=(4, 8, 16, 32, 64, 128, 256, 512),
    dense_depths=(8, 16, 32, 64, 128, 256, 512),
    groups=4, grouped_k=256, grouped_n=256, grouped_rows=(4, 8, 16, 32, 64, 128, 256),
    fp8_shapes=(), copy_bytes=64 * MIB, attention_heads=4, attention_head_dim=64,
    attention_seqs=(64, 128, 256), collective_bytes=(), collective_runs=0,
    repeats=Repeats(warmup=2, min_runs=3, max_runs=15, min_run_s=2e-3), clock_warmup_s=0.2,
)


@dataclass(frozen=True)
class GemmPoint:
    m: int
    k: int
    n: int
    groups: int
    precision: str
    timing: Timing

    @property
    def flops_per_s(self) -> float:
        return self.timing.rate(gemm_flops(self.m, self.k, self.n, self.groups))


@dataclass(frozen=True)
class AttentionPoint:
    heads: int
    seq: int
    head_dim: int
    timing: Timing

    @property
    def flops_per_s(self) -> float:
        return self.timing.rate(attention_flops(self.heads, self.seq, self.head_dim))


@dataclass(frozen=True)
class Measurements:
    backend: str
    precision: str
    info: DeviceInfo
    devices: int
    dense: list[GemmPoint]
    grouped: list[GemmPoint]
    fp8: list[GemmPoint]
    copy_bytes: int
    """Bytes one copy call moves (read + write)."""
    copy: Timing
    kernel_floor: Timing
    """Device seconds per one-element op, back to back."""
    host_op: Timing
    """Host seconds to issue one one-element op."""
    attention: list[AttentionPoint]
    collectives: list[CollectivePoint]
    elapsed_s: float
    skipped: dict[str, str] = field(default_factory=dict)
    """Measurements not made, and why."""


# Budget weights per step kind: the GEMM curve is what the step model leans on most.
WEIGHTS = {"clocks": 1.0, "dense": 1.0, "grouped": 1.0, "fp8": 1.0, "copy": 1.0, "floor": 0.5,
           "host": 0.5, "attention": 1.5, "collectives": 8.0}


def run_probe(backend: Backend, plan: ProbePlan, budget_s: float, devices: int = 1,
              progress: Progress | None = None) -> Measurements:
    """Every measurement of ``plan`` on ``backend``; collectives when ``devices`` > 1."""
    dense_shapes = plan.dense_shapes()
    fp8_shapes = plan.fp8_shapes if backend.fp8 else ()
    steps = (["clocks"] + ["dense"] * len(dense_shapes) + ["grouped"] * len(plan.grouped_rows)
             + ["fp8"] * len(fp8_shapes) + ["copy", "floor", "host"]
             + ["attention"] * len(plan.attention_seqs)
             + (["collectives"] if devices > 1 else []))
    budget = Budget(budget_s, [WEIGHTS[s] for s in steps])
    started = time.monotonic()
    tell = progress or (lambda label: None)
    reps = plan.repeats
    skipped: dict[str, str] = {}

    def gemm_point(m: int, k: int, n: int, groups: int = 1, fp8: bool = False) -> GemmPoint:
        kernel = (backend.grouped_gemm(groups, m, k, n) if groups > 1
                  else backend.gemm(m, k, n, fp8=fp8))
        timing = measure(kernel, budget.next_share_s(), reps)
        label = f"{'grouped ' if groups > 1 else ''}{'fp8 ' if fp8 else ''}GEMM {m}x{k}x{n}"
        tell(label)
        return GemmPoint(m, k, n, groups, "fp8" if fp8 else backend.precision, timing)

    big = max(plan.dense_rows)
    warm = backend.gemm(big, max(plan.dense_depths), plan.dense_n)
    share = min(budget.next_share_s(), plan.clock_warmup_s)
    until = time.monotonic() + share
    while time.monotonic() < until:
        warm(1)
    del warm  # frees the largest operands before the grid
    tell("clock warm-up")

    dense = [gemm_point(m, k, n) for m, k, n in dense_shapes]
    grouped = [gemm_point(m, plan.grouped_k, plan.grouped_n, plan.groups)
               for m in plan.grouped_rows]
    fp8: list[GemmPoint] = []
    if not backend.fp8:
        skipped["fp8"] = f"the {backend.name} backend offers no FP8 GEMM on this device"
    try:
        fp8 = [gemm_point(m, k, n, fp8=True) for m, k, n in fp8_shapes]
    except (RuntimeError, ValueError) as exc:  # an FP8 path that passed its trial, then failed
        fp8 = []
        skipped["fp8"] = f"FP8 GEMM failed: {_gist(exc)}"

    copy_kernel, copy_bytes = backend.copy(plan.copy_bytes)
    copy = measure(copy_kernel, budget.next_share_s(), reps)
    del copy_kernel  # frees the buffers
    tell(f"copy {copy_bytes // 2 // MIB} MiB")
    floor = measure(backend.tiny_op(), budget.next_share_s(), reps)
    tell("kernel floor")
    host = measure(backend.host_loop, budget.next_share_s(), reps)
    tell("host dispatch")

    attention: list[AttentionPoint] = []
    try:
        for seq in plan.attention_seqs:
            kernel = backend.attention(plan.attention_heads, seq, plan.attention_head_dim)
            attention.append(AttentionPoint(plan.attention_heads, seq, plan.attention_head_dim,
                                            measure(kernel, budget.next_share_s(), reps)))
            tell(f"attention s={seq}")
    except (RuntimeError, NotImplementedError) as exc:
        attention = []
        skipped["attention"] = f"attention failed: {_gist(exc)}"

    collectives: list[CollectivePoint] = []
    if devices > 1:
        from moebench.probe.collectives import measure_collectives

        budget.next_share_s()  # the runs are fixed: every rank must run the same number
        try:
            collectives = measure_collectives(getattr(backend, "kind", "cpu"), devices,
                                              plan.collective_bytes, plan.collective_runs)
        except Exception as exc:  # noqa: BLE001 - a worker's error, re-raised by the spawner
            raise InputError("--devices", None, f"collectives on {devices} devices failed: "
                                                f"{_gist(exc)}") from None
        tell(f"collectives on {devices} devices")
    else:
        skipped["collectives"] = "one device: links need --devices 2 or more"

    return Measurements(
        backend=backend.name, precision=backend.precision, info=backend.info, devices=devices,
        dense=dense, grouped=grouped, fp8=fp8, copy_bytes=copy_bytes, copy=copy,
        kernel_floor=floor, host_op=host, attention=attention, collectives=collectives,
        elapsed_s=time.monotonic() - started, skipped=skipped)


def _gist(exc: BaseException) -> str:
    """The last line of an error: a spawned worker's traceback ends with its cause."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(exc).__name__


def step_count(backend: Backend, plan: ProbePlan, devices: int) -> int:
    """Steps :func:`run_probe` reports through ``progress`` (for a progress bar's total)."""
    return (1 + len(plan.dense_shapes()) + len(plan.grouped_rows)
            + (len(plan.fp8_shapes) if backend.fp8 else 0) + 3 + len(plan.attention_seqs)
            + (1 if devices > 1 else 0))
