"""Training checkpoints: the model checkpoint of :mod:`finetec.models.checkpoint` plus the
training state, written so that a kill never leaves a mixed folder.

The training state for ``--resume`` (optimizer, schedule position, epoch) lives beside the
model files in ``train_state.pt``, written with ``torch.save`` of plain tensors and dicts and
read back with ``weights_only=True``. Training writes each checkpoint into a temporary folder and
renames it into place, keeping the previous ``last/`` as ``previous/``; ``--resume`` uses the
newest complete one of the two (see :func:`resumable`).

The model side (``model.safetensors``, ``checkpoint.json``, the ``complete.json`` record,
:func:`load_model`, :func:`build_model`...) is :mod:`finetec.models.checkpoint`; its names are
re-exported here for the engine's callers.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from finetec.errors import FinetecError
from finetec.fileio import atomic_path, staging_dir
from finetec.models import checkpoint as _model_ckpt
from finetec.models.checkpoint import (INFO, MAX_INFO_BYTES, MAX_MODEL_SIZE, RECORD, WEIGHTS, build_model,
                                       check_metadata, load_model, read_info, record_of, unwrap, verify, write_record)

TRAIN_STATE = "train_state.pt"


def save_checkpoint(directory: str | os.PathLike, model: Any, info: dict[str, Any],
                    train_state: dict[str, Any] | None = None, step: int | None = None) -> Path:
    """:func:`finetec.models.checkpoint.save_checkpoint`, with ``train_state.pt`` when
    ``train_state`` is given (written before ``checkpoint.json`` and the record)."""
    extra = None if train_state is None else (lambda out: save_train_state(out, train_state))
    return _model_ckpt.save_checkpoint(directory, model, info, step, extra)


def publish(stage: Path, target: Path, previous: Path | None = None) -> None:
    """Move the finished checkpoint folder ``stage`` to ``target``.

    The old ``target`` becomes ``previous`` (replacing it) when given, else it is deleted. Between
    the two renames a kill leaves no ``target``, never a mixed one; :func:`resumable` then finds
    ``previous``.
    """
    if target.exists():
        if previous is not None:
            if previous.exists():
                shutil.rmtree(previous)
            os.replace(target, previous)
        else:
            old = staging_dir(target)
            os.replace(target, old / "old")
            shutil.rmtree(old)
    os.replace(stage, target)


def save_run_checkpoint(target: str | os.PathLike, model: Any, info: dict[str, Any],
                        train_state: dict[str, Any] | None = None, step: int | None = None,
                        previous: str | os.PathLike | None = None) -> Path:
    """:func:`save_checkpoint` into a temporary folder beside ``target``, then :func:`publish`."""
    target = Path(target)
    stage = staging_dir(target)
    try:
        save_checkpoint(stage, model, info, train_state, step)
        publish(stage, target, None if previous is None else Path(previous))
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return target


def resumable(candidates: list[Path]) -> tuple[Path | None, list[str]]:
    """The first complete checkpoint with a training state among ``candidates`` and, for each
    one passed over, a line saying why."""
    notes = []
    for c in candidates:
        problem = verify(c, required=(WEIGHTS, INFO, TRAIN_STATE))
        if problem is None:
            return c, notes
        if problem != "missing":
            notes.append(f"{c}: {problem}")
    return None, notes


def save_train_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` plain tensors/dicts (optimizer, step, epoch, best metric) atomically."""
    out = Path(directory) / TRAIN_STATE
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    return out


def load_train_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``train_state.pt`` with ``weights_only=True`` (no code runs from the file)."""
    f = Path(directory) / TRAIN_STATE
    if not f.exists():
        raise FinetecError("train_state.pt is missing (cannot resume)", f)
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means an unusable file
        raise FinetecError(f"cannot read training state ({type(e).__name__})", f) from None



__all__ = ["save_checkpoint", "save_run_checkpoint", "load_model", "read_info", "build_model", "check_metadata",
           "save_train_state", "load_train_state", "unwrap", "verify", "write_record", "record_of", "publish",
           "resumable", "WEIGHTS", "INFO", "TRAIN_STATE", "RECORD", "MAX_MODEL_SIZE", "MAX_INFO_BYTES"]
