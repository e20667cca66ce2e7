"""The torch backend: CUDA and ROCm GPUs, Ascend NPUs through torch_npu, or torch on the CPU.

Imported only when chosen (``import torch`` happens in :class:`TorchBackend`), so the base
install never needs torch.

Device timing. Kernels launch asynchronously: timing a Python loop of launches without a sync
times the launches, not the work. Every timed run here is bracketed by device events recorded on
the stream and ends with ``end.synchronize()``; the elapsed time is the events'. Short kernels
need one more step: the host issues a launch in a few microseconds, as long as a small kernel
runs, so a back-to-back run would time the host. Before each timed run the stream is given a
sleep kernel (``torch.cuda._sleep``) that keeps the device busy while the host queues the whole
run, so the events see kernels back to back on the device.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from importlib.util import find_spec
from typing import Any

from moebench.probe.device import DeviceInfo, cpu_name, physical_memory
from moebench.probe.timing import Kernel

ASSUMED_CLOCK_HZ = 2.0e9
"""Clock that converts the queue-filling sleep to cycles (H100/H200 boost about 1.98 GHz); a
slower clock only sleeps longer, which costs time outside the timed region."""
HOST_AHEAD_S_PER_CALL = 20e-6
"""Host time allowed per queued launch while the device sleeps (a launch takes about 5-10 us;
the sleep is outside the timed region, so erring long costs only wall time)."""
MAX_SLEEP_S = 0.05


def _smi(command: list[str]) -> str | None:
    """First line of a vendor tool's answer mentioning a version, or None."""
    if shutil.which(command[0]) is None:
        return None
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=15, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    for line in lines:
        if "version" in line.lower() and ":" in line:
            return line.split(":", 1)[1].strip()
    return lines[0] if lines and out.returncode == 0 else None


def _device_api(torch: Any) -> tuple[str, Any]:
    """("cuda", torch.cuda) for CUDA and ROCm, ("npu", torch.npu) for Ascend, else CPU."""
    if torch.cuda.is_available():
        return "cuda", torch.cuda
    if find_spec("torch_npu") is not None:
        try:
            import torch_npu  # noqa: F401 - registers torch.npu
        except ImportError:  # installed without its CANN runtime: no NPU to use
            return "cpu", None
        if torch.npu.is_available():
            return "npu", torch.npu
    return "cpu", None


def _describe(torch: Any, kind: str) -> DeviceInfo:
    base = f"torch {torch.__version__}"
    if kind == "cuda" and torch.version.hip:
        props = torch.cuda.get_device_properties(0)
        return DeviceInfo(
            device=props.name, vendor="AMD",
            driver=_smi(["rocm-smi", "--showdriverversion"]) or "unknown",
            runtime=f"{base}, HIP {torch.version.hip}", memory_bytes=float(props.total_memory),
            memory_source="total memory the driver reports (torch.cuda.get_device_properties)")
    if kind == "cuda":
        props = torch.cuda.get_device_properties(0)
        driver = _smi(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        if driver is None:
            try:
                api = int(torch._C._cuda_getDriverVersion())
                driver = f"CUDA driver API {api // 1000}.{api % 1000 // 10}"
            except Exception:  # noqa: BLE001 - a private call; the version is a nicety
                driver = "unknown"
        return DeviceInfo(
            device=props.name, vendor="NVIDIA", driver=driver,
            runtime=f"{base}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}",
            memory_bytes=float(props.total_memory),
            memory_source="total memory the driver reports (torch.cuda.get_device_properties)")
    if kind == "npu":
        import torch_npu

        props = torch.npu.get_device_properties(0)
        return DeviceInfo(
            device=str(torch.npu.get_device_name(0)), vendor="Huawei",
            driver=_smi(["npu-smi", "info"]) or "unknown",
            runtime=f"{base}, torch_npu {torch_npu.__version__}",
            memory_bytes=float(props.total_memory),
            memory_source="total memory the driver reports (torch.npu.get_device_properties)")
    return DeviceInfo(
        device=f"{cpu_name()} (torch on the host CPU)", vendor="host CPU",
        driver=f"{platform.system()} {platform.release()}", runtime=base,
        memory_bytes=physical_memory(), memory_source="physical memory the OS reports")


def _scaled_mm(torch: Any, a: Any, b: Any, scale: Any) -> Any:
    # torch 2.1-2.3 return (out, amax), later versions the output alone.
    out = torch._scaled_mm(a, b, scale_a=scale, scale_b=scale, out_dtype=torch.bfloat16)
    return out[0] if isinstance(out, tuple) else out


class TorchBackend:
    """One device through torch, BF16 (FP8 through torch._scaled_mm where it runs)."""

    name = "torch"
    precision = "bf16"

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.kind, self.api = _device_api(torch)
        if self.api is not None:
            self.api.set_device(0)
            self.device = torch.device(f"{self.kind}:0")
            self.device_count = int(self.api.device_count())
        else:
            self.device = torch.device("cpu")
            self.device_count = 1
        self.info = _describe(torch, self.kind)
        self._sleep = getattr(self.api, "_sleep", None)
        self.fp8_dtype = self._find_fp8()
        self.fp8 = self.fp8_dtype is not None

    # -- timing -------------------------------------------------------------------------------

    def sync(self) -> None:
        if self.api is not None:
            self.api.synchronize()

    def _kernel(self, step: Callable[[], object]) -> Kernel:
        api = self.api
        if api is None:  # torch on the CPU runs each op before returning
            def run_host(inner: int) -> float:
                start = time.perf_counter()
                for _ in range(inner):
                    step()
                return time.perf_counter() - start

            return run_host
        start, end = api.Event(enable_timing=True), api.Event(enable_timing=True)
        sleep = self._sleep

        def run(inner: int) -> float:
            api.synchronize()
            if sleep is not None:
                ahead_s = min(inner * HOST_AHEAD_S_PER_CALL, MAX_SLEEP_S)
                sleep(int(ahead_s * ASSUMED_CLOCK_HZ))
            start.record()
            for _ in range(inner):
                step()
            end.record()
            end.synchronize()
            return float(start.elapsed_time(end)) / 1e3  # events give milliseconds

        return run

    def _randn(self, *shape: int, requires_grad: bool = False) -> Any:
        t = self.torch
        return t.randn(*shape, device=self.device, dtype=t.bfloat16, requires_grad=requires_grad)

    # -- operations ---------------------------------------------------------------------------

    def _find_fp8(self) -> Any:
        """The FP8 dtype torch._scaled_mm runs on this device, or None (tried on 16 x 16)."""
        t = self.torch
        if self.kind != "cuda" or not hasattr(t, "_scaled_mm"):
            return None
        names = ["float8_e4m3fn", "float8_e4m3fnuz"]
        if t.version.hip:  # MI300 (gfx942) uses the fnuz variant
            names.reverse()
        for name in names:
            dtype = getattr(t, name, None)
            if dtype is None:
                continue
            try:
                a = t.zeros(16, 16, device=self.device).to(dtype)
                b = t.zeros(16, 16, device=self.device).to(dtype).t()
                _scaled_mm(t, a, b, t.ones((), device=self.device, dtype=t.float32))
                self.sync()
                return dtype
            except (RuntimeError, TypeError, ValueError):
                continue
        return None

    def gemm(self, m: int, k: int, n: int, fp8: bool = False) -> Kernel:
        t = self.torch
        if fp8:
            if self.fp8_dtype is None:
                raise ValueError("this device offers no FP8 GEMM through torch._scaled_mm")
            a = self._randn(m, k).to(self.fp8_dtype)
            b = self._randn(n, k).to(self.fp8_dtype).t()  # column-major, as _scaled_mm needs
            one = t.ones((), device=self.device, dtype=t.float32)
            return self._kernel(lambda: _scaled_mm(t, a, b, one))
        a, b, c = self._randn(m, k), self._randn(k, n), self._randn(m, n)
        return self._kernel(lambda: t.mm(a, b, out=c))

    def grouped_gemm(self, groups: int, m: int, k: int, n: int) -> Kernel:
        t = self.torch
        a, b, c = self._randn(groups, m, k), self._randn(groups, k, n), self._randn(groups, m, n)
        return self._kernel(lambda: t.bmm(a, b, out=c))

    def _free_bytes(self, wanted: int) -> int:
        info = getattr(self.api, "mem_get_info", None)
        return int(info()[0]) if info is not None else wanted * 4

    def copy(self, nbytes: int) -> tuple[Kernel, int]:
        t = self.torch
        # Two buffers, and room left for the allocator: at most a quarter of free memory.
        count = int(max(1 << 20, min(nbytes, self._free_bytes(nbytes) // 4)))
        src = t.ones(count, device=self.device, dtype=t.uint8)
        dst = t.empty_like(src)
        return self._kernel(lambda: dst.copy_(src)), 2 * count

    def attention(self, heads: int, seq: int, head_dim: int) -> Kernel:
        t = self.torch
        sdpa = t.nn.functional.scaled_dot_product_attention
        q, k, v = (self._randn(1, heads, seq, head_dim, requires_grad=True) for _ in range(3))
        d_out = self._randn(1, heads, seq, head_dim)

        def step() -> object:
            out = sdpa(q, k, v, is_causal=True)
            return t.autograd.grad(out, (q, k, v), d_out)

        return self._kernel(step)

    def tiny_op(self) -> Kernel:
        x = self.torch.zeros(1, device=self.device)
        return self._kernel(lambda: x.add_(1.0))

    def host_loop(self, ops: int) -> float:
        x = self.torch.zeros(1, device=self.device)
        self.sync()
        start = time.perf_counter()
        for _ in range(ops):
            x.add_(1.0)
        host_s = time.perf_counter() - start  # before the sync: the host's side alone
        self.sync()
        return host_s
