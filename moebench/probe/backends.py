"""Backends: what runs the microbenchmarks, behind one small protocol.

``numpy`` times the host CPU (float32: numpy has no bfloat16), so the whole probe runs and is
tested anywhere. ``torch`` (:mod:`moebench.probe.torch_backend`) times a CUDA or ROCm GPU, or an
Ascend NPU through torch_npu; it is imported only when chosen, so the base install never needs
torch. Every kernel a backend returns is already synchronized with its device.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from importlib.util import find_spec
from typing import Literal, Protocol

import numpy as np

from moebench.errors import InputError
from moebench.probe.device import DeviceInfo, cpu_name, physical_memory
from moebench.probe.timing import Kernel

BackendName = Literal["auto", "torch", "numpy"]
TORCH_HINT = "pip install 'moebench[probe]'"


class Backend(Protocol):
    """A device to time. Kernels run one operation ``inner`` times and return seconds."""

    name: str
    info: DeviceInfo
    precision: str
    """The GEMM precision it times (bf16 on accelerators, float32 on numpy)."""
    fp8: bool
    """Whether it offers an FP8 GEMM."""
    device_count: int

    def gemm(self, m: int, k: int, n: int, fp8: bool = False) -> Kernel: ...

    def grouped_gemm(self, groups: int, m: int, k: int, n: int) -> Kernel: ...

    def copy(self, nbytes: int) -> tuple[Kernel, int]:
        """A device-memory copy of about ``nbytes`` (fewer if memory is short), and the bytes
        one call moves (read + write)."""
        ...

    def attention(self, heads: int, seq: int, head_dim: int) -> Kernel:
        """Causal attention, forward and backward."""
        ...

    def tiny_op(self) -> Kernel:
        """A one-element add: its device time back to back is the floor of one kernel."""
        ...

    def host_loop(self, ops: int) -> float:
        """Host seconds to issue ``ops`` one-element adds in a Python loop (no sync inside)."""
        ...


def _timed(step: Callable[[], object],
           around: Callable[[], AbstractContextManager[object]] = nullcontext) -> Kernel:
    """A host-synchronous operation (every call finishes before it returns), timed with the
    wall clock; ``around`` is entered outside the timed region (a thread limit)."""

    def run(inner: int) -> float:
        with around():
            start = time.perf_counter()
            for _ in range(inner):
                step()
            return time.perf_counter() - start

    return run


def _blas() -> str:
    try:
        config = np.show_config(mode="dicts")  # type: ignore[call-arg]
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name', 'BLAS')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older numpy: the version is a nicety, not a need
        return "BLAS unknown"


class NumpyBackend:
    """The host CPU through numpy, float32, on a fixed number of BLAS threads.

    One thread by default: a BLAS thread pool waits at a barrier for its slowest thread, so on
    a machine where anything else runs, small multi-threaded GEMMs vary a hundredfold from run
    to run (seen on a 2-core machine beside a test suite) while one thread stays within a few
    percent. The figures are then one core's, and the device name says so.
    """

    name = "numpy"
    precision = "float32"
    fp8 = False
    device_count = 1

    def __init__(self, blas_threads: int = 1) -> None:
        from threadpoolctl import ThreadpoolController

        self._rng = np.random.default_rng(0)
        controller = ThreadpoolController()
        self._limit = lambda: controller.limit(limits=blas_threads, user_api="blas")
        cpus = os.cpu_count() or 1
        self.info = DeviceInfo(
            device=f"{cpu_name()} ({blas_threads} BLAS thread(s) of {cpus} logical CPUs)",
            vendor="host CPU",
            driver=f"{platform.system()} {platform.release()}",
            runtime=f"numpy {np.__version__}, {_blas()}, Python {platform.python_version()}",
            memory_bytes=physical_memory(),
            memory_source="physical memory the OS reports (sysconf)")

    def _rand(self, *shape: int) -> np.ndarray:
        return self._rng.standard_normal(shape, dtype=np.float32)

    def gemm(self, m: int, k: int, n: int, fp8: bool = False) -> Kernel:
        if fp8:
            raise ValueError("numpy has no FP8 GEMM")
        a, b, c = self._rand(m, k), self._rand(k, n), np.empty((m, n), np.float32)
        return _timed(lambda: np.matmul(a, b, out=c), self._limit)

    def grouped_gemm(self, groups: int, m: int, k: int, n: int) -> Kernel:
        a, b = self._rand(groups, m, k), self._rand(groups, k, n)
        c = np.empty((groups, m, n), np.float32)
        return _timed(lambda: np.matmul(a, b, out=c), self._limit)

    def copy(self, nbytes: int) -> tuple[Kernel, int]:
        count = max(1, nbytes // 4)
        src, dst = self._rand(count), np.empty(count, np.float32)
        return _timed(lambda: np.copyto(dst, src)), 2 * 4 * count

    def attention(self, heads: int, seq: int, head_dim: int) -> Kernel:
        q, k, v, d_out = (self._rand(heads, seq, head_dim) for _ in range(4))
        return _timed(lambda: reference_attention(q, k, v, d_out), self._limit)

    def tiny_op(self) -> Kernel:
        x = np.zeros(1, np.float32)
        return _timed(lambda: np.add(x, 1.0, out=x))

    def host_loop(self, ops: int) -> float:
        return self.tiny_op()(ops)


def reference_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                        d_out: np.ndarray) -> tuple[np.ndarray, ...]:
    """Causal softmax attention forward and backward on full s x s matrices (no flash tiling):
    returns the output and the gradients of q, k and v for the output gradient ``d_out``."""
    seq, head_dim = q.shape[-2], q.shape[-1]
    scale = np.float32(1.0 / np.sqrt(head_dim))
    masked = np.triu(np.ones((seq, seq), dtype=bool), 1)
    scores = np.where(masked, -np.inf, (q @ k.transpose(0, 2, 1)) * scale)
    probs = np.exp(scores - scores.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    out = probs @ v
    d_v = probs.transpose(0, 2, 1) @ d_out
    d_probs = d_out @ v.transpose(0, 2, 1)
    # softmax backward: dS = P * (dP - rowsum(dP * P)), with rowsum(dP * P) = rowsum(dO * O)
    d_scores = probs * (d_probs - (d_out * out).sum(axis=-1, keepdims=True)) * scale
    return out, d_scores @ k, d_scores.transpose(0, 2, 1) @ q, d_v


def torch_installed() -> bool:
    return find_spec("torch") is not None


def accelerator_present() -> bool:
    """Whether torch sees a CUDA/ROCm GPU or an Ascend NPU (imports torch: call only when it is
    installed and wanted)."""
    import torch

    if torch.cuda.is_available():
        return True
    if find_spec("torch_npu") is not None:
        try:
            import torch_npu  # noqa: F401 - registers torch.npu
        except ImportError:  # installed without its CANN runtime: no NPU to use
            return False
        return bool(torch.npu.is_available())  # type: ignore[attr-defined]
    return False


def select_backend(name: BackendName) -> Backend:
    """The backend asked for; ``auto``: torch when it is installed and sees an accelerator,
    else numpy."""
    if name == "numpy":
        return NumpyBackend()
    if name == "torch":
        if not torch_installed():
            raise InputError("--backend", None,
                             f"torch is not installed; {TORCH_HINT} (or use --backend numpy)")
        from moebench.probe.torch_backend import TorchBackend

        return TorchBackend()
    if name == "auto":
        if torch_installed() and accelerator_present():
            from moebench.probe.torch_backend import TorchBackend

            return TorchBackend()
        return NumpyBackend()
    raise InputError("--backend", None, f"expected auto, torch or numpy, got {name!r}")
