"""What machine a measurement ran on: written beside every benchmark number."""
from __future__ import annotations

import os
import platform
import resource


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_description(device: str = "cpu") -> str:
    """e.g. ``AMD EPYC ... (2 cores), CPU only, torch 2.13.0``."""
    import torch

    dev = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else "CPU only"
    return f"{cpu_name()} ({cpu_cores()} cores), {dev}, torch {torch.__version__}"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
