"""What the user sees on the terminal: paths as typed, model names, a stdout kept for results.

- :func:`shown_path`: a path as the user would write it (relative to the working folder when it
  lies near it), for logs, headers and figure titles; the code keeps the resolved path.
- :func:`run_name`: the name of a model, taken from its training run folder (``runs/x/best`` ->
  ``x``), never ``best``.
- :func:`quiet_stdout`: silences what native libraries print to file descriptor 1 (the ONNX
  exporter writes whole graphs there), so that a command's stdout holds only its own output.
"""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Iterator

CHECKPOINT_PARTS = ("best", "last", "model.safetensors", "checkpoint.json")


def shown_path(path: str | os.PathLike | None) -> str:
    """``path`` relative to the working folder when that is not longer than the absolute path
    (``/work/shared/data/x`` seen from ``/work/proj`` -> ``../shared/data/x``, how a config or a
    user writes it); a relative path or a synthetic spec as given."""
    if path is None:
        return ""
    s = os.fspath(path)
    if not os.path.isabs(s) or s.startswith("synthetic"):
        return s
    try:
        rel = os.path.relpath(s)
    except ValueError:  # another drive (Windows)
        return s
    return rel if len(rel) <= len(s) else s


def run_name(path: str | os.PathLike | None) -> str:
    """The model's name: its training run folder (``runs/stgcnpp/best`` -> ``stgcnpp``), else the
    checkpoint folder's own name."""
    if not path:
        return "model"
    p = Path(os.fspath(path))
    while p.name in CHECKPOINT_PARTS:
        parent = p.parent
        if parent.name in ("", ".", ".."):
            parent = p.resolve().parent
        if parent == p:
            break
        p = parent
    return p.name or "model"


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send everything written to file descriptor 1 (where native libraries write, whatever
    sys.stdout is) to the null device for the duration; sys.stdout is flushed before and after."""
    fd = 1
    sys.stdout.flush()
    saved = os.dup(fd)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
        yield
    finally:
        try:
            sys.stdout.flush()
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            os.close(null)


__all__ = ["shown_path", "run_name", "quiet_stdout"]
