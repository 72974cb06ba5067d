"""CPU execution settings: the memory allocator, native bf16.

* :func:`keep_freed_memory` - glibc returns every large freed buffer (> 128 KiB by default) to
  the operating system, so each activation of a GCN is a fresh ``mmap``: every page is faulted in
  and zeroed again at every layer of every step. Raising glibc's mmap and trim thresholds keeps
  freed memory in the process for reuse. Measured by ``benchmarks/bench_backbones.py``
  (``--allocator``); peak memory is unchanged (the same buffers, reused), the resident size stays
  at its peak instead of shrinking between steps.
* :func:`require_native_bf16` - bf16 autocast on a CPU without native bf16 instructions is
  emulated (slower than fp32): refused with a one-line error naming the option.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

from finetec.errors import FinetecError

__all__ = ["cpu_flags", "keep_freed_memory", "native_bf16", "require_native_bf16"]

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


@functools.lru_cache(maxsize=1)
def keep_freed_memory(threshold_bytes: int = 1 << 30) -> bool:
    """Keep freed buffers up to ``threshold_bytes`` in the process (glibc ``mallopt``). Returns
    whether the setting took effect (False off glibc, e.g. macOS or musl)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    ok = mallopt(_M_MMAP_THRESHOLD, int(threshold_bytes)) == 1
    return bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok)


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The instruction-set flags of the first CPU in /proc/cpuinfo (empty when unknown)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16() -> bool:
    """Whether the CPU computes in bf16 natively (AVX512-BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def require_native_bf16(option: str = "--bf16", alternative: str | None = None) -> None:
    """Raise a one-line :class:`FinetecError` naming ``option`` and the fp32 ``alternative``
    (default: leave out ``option``) when bf16 would only be emulated on this CPU."""
    if not native_bf16():
        raise FinetecError(f"{option}: this CPU has no native bf16 (no avx512_bf16 / amx_bf16 flag), so bf16 "
                           f"would be emulated and slower; run in fp32 ({alternative or 'leave out ' + option})")
