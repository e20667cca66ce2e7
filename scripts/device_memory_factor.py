"""Derive each stack's ``memory.cache_factor`` (what PyTorch's caching allocator grows to over the
live tensors when the device has room) from device-level peak memory (nvidia-smi, rocm-smi)
published for runs of *other* stacks.

For every measured run whose published memory is device-level (``memory_kind`` device), the
implied factor is (device figure - the stack's reserve) / the model's peak of live tensors for
the run's plan (what ``torch.cuda.max_memory_allocated`` would read). A stack family's figure is
the median (10th-90th percentile) over the runs of the *other* families only, so its own runs stay
out of sample when ``moebench validate`` judges it. The live-tensor peak does not depend on the
factor, so the derivation is not circular.

Run:  python scripts/device_memory_factor.py [FAMILY ...]
      (prints each family's figure and the per-source medians it rests on; the cache_factor of
      megatron-core-nvidia, megatron-deepspeed and primus-amd was written from it, the low end
      floored at the stack's allocator_factor)
"""

from __future__ import annotations

import statistics
import sys
from collections import defaultdict

import numpy as np

from moebench.commands.validation.fitting import prepare
from moebench.commands.validation.measured_runs import load_runs, shipped_runs_path
from moebench.engine.step import evaluate
from moebench.inputs.stack import load_stack_spec


def implied_factors() -> list[tuple[str, str, float]]:
    """(stack family, source id, implied factor) of every device-level memory run."""
    where = str(shipped_runs_path())
    out = []
    for run in load_runs():
        if run.memory_kind != "device" or run.memory_bytes is None:
            continue
        p = prepare(run, where)
        stack = p.stack()
        m = evaluate(p.arch, p.chip, stack, p.config, p.plan).memory
        live = float(m.allocated[0])
        factor = (run.memory_bytes - float(m.reserve[0])) / live
        out.append((p.spec.name, run.source_id, factor))
    return out


def main(families: list[str]) -> None:
    rows = implied_factors()
    by_source: dict[tuple[str, str], list[float]] = defaultdict(list)
    for family, source, f in rows:
        by_source[(family, source)].append(f)
    for (family, source), fs in sorted(by_source.items()):
        print(f"{family:22} {source:40} {len(fs):3} runs, median {statistics.median(fs):.3f}")
    for family in families or sorted({f for f, _, _ in rows}):
        others = [f for fam, _, f in rows if fam != family]
        low, high = np.percentile(others, [10, 90])
        floor = float(load_stack_spec(family).memory.allocator_factor.value)
        print(f"{family}: {statistics.median(others):.2f} ({max(low, floor):.2f}-{high:.2f}) "
              f"from {len(others)} runs of other stacks")


if __name__ == "__main__":
    main(sys.argv[1:])
