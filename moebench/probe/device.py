"""The device a probe measures, and the host facts every backend reads."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceInfo:
    """What was measured, and with which software: named in every measured figure's source."""

    device: str
    """Device name as its runtime reports it."""
    vendor: str
    driver: str
    runtime: str
    """Framework and library versions."""
    memory_bytes: float
    """Memory the device offers (the driver's total; a CPU's physical memory)."""
    memory_source: str

    def describe(self) -> str:
        return f"{self.device} (driver {self.driver}; {self.runtime})"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0.0
