"""Collective bus bandwidth by message size: torch.distributed, one process per device.

The parent spawns one worker per device (NCCL on CUDA and ROCm, HCCL on Ascend, gloo on the
CPU), each worker times all-reduce, all-gather, reduce-scatter and all-to-all at every size
between device events after a barrier, and the slowest rank's time of each run is taken (a
collective finishes when its last rank does). Rank 0 writes the points to a file the parent
reads. Sizes follow nccl-tests: the all-reduce buffer, the all-gather output, the
reduce-scatter input, the all-to-all buffer. torch is imported inside the functions only.
"""

from __future__ import annotations

import json
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moebench.probe.fit import bus_bytes
from moebench.probe.timing import Timing, summarize

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
WARMUP_CALLS = 3
INNER_BYTES = 1 << 26
"""Back-to-back calls per timed run: enough to move about 64 MiB, at most 20."""
DIST_BACKEND = {"cuda": "nccl", "npu": "hccl", "cpu": "gloo"}


@dataclass(frozen=True)
class CollectivePoint:
    op: str
    nbytes: int
    ranks: int
    timing: Timing

    @property
    def bus_bytes(self) -> float:
        return bus_bytes(self.op, self.nbytes, self.ranks)

    @property
    def bus_bw(self) -> float:
        """Bus bandwidth at the median time, byte/s (nccl-tests' busbw)."""
        return self.bus_bytes / self.timing.median_s


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_collectives(kind: str, ranks: int, sizes: tuple[int, ...],
                        runs: int) -> list[CollectivePoint]:
    """Every collective at every size on ``ranks`` devices of ``kind`` (cuda, npu or cpu)."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="moebench-probe-") as folder:
        out = Path(folder) / "collectives.json"
        mp.spawn(_worker, args=(ranks, _free_port(), kind, list(sizes), runs, str(out)),
                 nprocs=ranks, join=True)
        rows = json.loads(out.read_text(encoding="utf-8"))
    return [CollectivePoint(op=r["op"], nbytes=r["nbytes"], ranks=ranks,
                            timing=summarize(r["per_call_s"], r["inner"])) for r in rows]


def _buffers(op: str, nbytes: int, ranks: int, torch: Any, device: Any,
             dtype: Any) -> tuple[Any, int]:
    """The call of one collective on buffers of about ``nbytes``, and the exact bytes."""
    import torch.distributed as dist

    size = torch.tensor([], dtype=dtype).element_size()
    count = max(ranks, nbytes // size // ranks * ranks)  # divisible by the ranks

    def empty(n: int) -> Any:
        return torch.ones(n, device=device, dtype=dtype)

    if op == "all_reduce":
        x = empty(count)
        return (lambda: dist.all_reduce(x)), count * size
    # torch 2.13 renamed the tensor forms *_single and deprecated the old names.
    gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    if op == "all_gather":
        shard, full = empty(count // ranks), empty(count)
        return (lambda: gather(full, shard)), count * size
    if op == "reduce_scatter":
        full, shard = empty(count), empty(count // ranks)
        return (lambda: scatter(shard, full)), count * size
    send, receive = empty(count), empty(count)
    return (lambda: dist.all_to_all_single(receive, send)), count * size


def _worker(rank: int, ranks: int, port: int, kind: str, sizes: list[int], runs: int,
            out: str) -> None:
    import torch
    import torch.distributed as dist

    if kind == "npu":
        import torch_npu  # noqa: F401 - registers torch.npu
    api = None if kind == "cpu" else getattr(torch, kind)
    if api is not None:
        api.set_device(rank)
    device = torch.device("cpu") if api is None else torch.device(f"{kind}:{rank}")
    # gloo reduces bfloat16 slowly or not at all; accelerators run collectives in BF16.
    dtype = torch.float32 if api is None else torch.bfloat16
    dist.init_process_group(DIST_BACKEND[kind], init_method=f"tcp://127.0.0.1:{port}",
                            rank=rank, world_size=ranks)
    rows = []
    try:
        for op in OPS:
            for nbytes in sizes:
                call, exact = _buffers(op, nbytes, ranks, torch, device, dtype)
                inner = max(1, min(20, INNER_BYTES // exact))
                per_call = _time(call, inner, runs, api, torch, device, dist)
                rows.append({"op": op, "nbytes": exact, "inner": inner, "per_call_s": per_call})
        if rank == 0:
            Path(out).write_text(json.dumps(rows), encoding="utf-8")
    finally:
        dist.destroy_process_group()


def _time(call: Any, inner: int, runs: int, api: Any, torch: Any, device: Any,
          dist: Any) -> list[float]:
    """Seconds per call of the slowest rank, one value per timed run."""
    for _ in range(WARMUP_CALLS):
        call()
    start = end = None
    if api is not None:
        api.synchronize()
        start, end = api.Event(enable_timing=True), api.Event(enable_timing=True)
    per_call = []
    for _ in range(runs):
        dist.barrier()
        if api is not None and start is not None and end is not None:
            api.synchronize()
            start.record()
            for _ in range(inner):
                call()
            end.record()
            end.synchronize()
            seconds = float(start.elapsed_time(end)) / 1e3
        else:
            t0 = time.perf_counter()
            for _ in range(inner):
                call()
            seconds = time.perf_counter() - t0
        slowest = torch.tensor([seconds / inner], device=device, dtype=torch.float64)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        per_call.append(float(slowest.item()))
    return per_call
