"""Where and in which precision a model runs: the one device resolver and the precision option.

:func:`resolve_device` turns a user's device choice (``auto``, ``cpu``, ``cuda``, ``cuda:N``, any
torch device string) into a :class:`torch.device`, for training, evaluation, the benchmark and the
API alike.

Precision (``runtime.precision`` in a config, ``--precision`` on the commands, ``precision=`` in
the API), one of :data:`PRECISIONS`:

* ``fp32``: everything in float32;
* ``bf16``: the forward pass under ``torch.autocast(..., dtype=torch.bfloat16)`` (weights,
  gradients, optimizer state and the loss stay float32), on CUDA or on a CPU with native bf16
  (AVX512-BF16 / AMX-BF16); on a CPU without it a one-line error names the option and the
  alternative, fp32 (emulated bf16 would be slower, and a silent fallback would change the numbers);
* ``auto`` (the default): bf16 on CUDA, fp32 on a CPU.

:func:`resolve_precision` turns a choice into ``fp32`` or ``bf16`` for a device (and refuses);
:func:`autocast` is the context training, evaluation and the API run their forward passes in.

Compilation (``runtime.compile``): :func:`compile_module` wraps a module in ``torch.compile``
(inductor), refusing with a one-line error where torch.compile cannot run.
"""
from __future__ import annotations

import contextlib
import shutil
from typing import Any

import torch

from finetec.cpu import require_native_bf16
from finetec.errors import FinetecError

__all__ = ["PRECISIONS", "autocast", "compile_module", "resolve_device", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "bf16")


def resolve_device(pref: str | None = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device for ``pref``.

    ``auto`` (or None): CUDA when available, else the CPU. ``cuda`` without an index takes GPU
    ``local_rank`` (modulo the GPU count) when a rank is given (one GPU per DDP process).
    An unknown device string, or a CUDA device without a CUDA GPU, is a :class:`FinetecError`.
    """
    if pref is None or pref == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        pref = "cuda"
    try:
        dev = torch.device(str(pref))
    except (RuntimeError, ValueError, TypeError):
        raise FinetecError(f"unknown device {str(pref)[:40]!r} (use cpu, cuda, cuda:N or auto)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise FinetecError(f"device {pref!r} requested but no CUDA GPU is available (use cpu or auto)")
        if dev.index is None and local_rank is not None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def _alternative(option: str, value: str) -> str:
    return f"{option} {value}" if option.startswith("--") else f"{option}: {value}"


def _device_type(device: Any) -> str:
    return device.type if isinstance(device, torch.device) else torch.device(str(device)).type


def resolve_precision(precision: str, device: Any, option: str = "--precision") -> str:
    """``fp32`` or ``bf16``: what ``precision`` (one of :data:`PRECISIONS`) means on ``device``.

    ``auto`` is bf16 on CUDA and fp32 elsewhere. ``bf16`` on a CPU without native bf16, or an
    unknown value, is a one-line :class:`FinetecError` naming ``option`` (``--precision`` or
    ``runtime.precision``) and the alternative.
    """
    if precision not in PRECISIONS:
        raise FinetecError(f"{option} must be one of {', '.join(PRECISIONS)}, got {str(precision)[:40]!r}")
    kind = _device_type(device)
    if precision == "auto":
        return "bf16" if kind == "cuda" else "fp32"
    if precision == "bf16" and kind == "cpu":
        require_native_bf16(option, _alternative(option, "fp32"))
    return precision


def autocast(device: Any, precision: str):
    """The context of a forward pass in ``precision`` on ``device``: bf16 autocast, or a no-op for fp32."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=_device_type(device), dtype=torch.bfloat16)
    return contextlib.nullcontext()


COMPILE_BACKEND = "inductor"   # torch.compile's backend (tests use a cheaper one)


def compile_module(module: torch.nn.Module, option: str = "--compile") -> torch.nn.Module:
    """``torch.compile(module)``; compilation happens at the first call of each input shape.

    Where torch.compile cannot run (no dynamo for this Python; inductor on a CPU without a C++
    compiler), a one-line :class:`FinetecError` naming ``option`` and the alternative.
    """
    import torch._dynamo

    problem = None
    if not torch._dynamo.is_dynamo_supported():
        problem = "torch.compile does not support this Python"
    elif COMPILE_BACKEND == "inductor" and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        problem = "torch.compile (inductor) needs a C++ compiler and none was found (c++, g++, clang++)"
    if problem:
        eager = f"leave out {option}" if option.startswith("--") else f"{option}: false"
        raise FinetecError(f"{option}: {problem}; run eagerly ({eager})")
    return torch.compile(module, backend=COMPILE_BACKEND)
