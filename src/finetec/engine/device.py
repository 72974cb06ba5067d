"""Where a model runs: the one device resolver and the mixed-precision context.

:func:`resolve_device` turns a user's device choice (``auto``, ``cpu``, ``cuda``, ``cuda:N``, any
torch device string) into a :class:`torch.device`, for training, evaluation, the benchmark and the
API alike; :func:`autocast` is the bf16 autocast used on CUDA by training, evaluation and the API.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch

from finetec.errors import FinetecError

__all__ = ["autocast", "resolve_device"]


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


def autocast(device: Any, amp: bool):
    """bf16 autocast on CUDA when ``amp``; a no-op context elsewhere."""
    if amp and getattr(device, "type", str(device)) == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
