"""Checks run before training, so that a broken dataset or model fails loudly with a readable
:class:`FinetecError` instead of producing a silent chance-level run or a NaN loss."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from finetec.data.checks import nothing_observed
from finetec.errors import FinetecError


def _clip_list(ids: Sequence[str], limit: int = 3) -> str:
    shown = ", ".join(repr(str(i)) for i in ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def check_split(ds, indices: np.ndarray, split: str, task: str) -> None:
    """The training clips ``indices`` of ``ds`` are usable for ``task``.

    Raises FinetecError for: an empty split; (classification) no class names, fewer than two
    classes, clips without a label or with a label outside the class names; clips with no frame,
    with no observed joint at all, or with NaN/Inf in observed coordinates. (A clip with nothing
    observed is a valid sample elsewhere, e.g. one emptied by ``finetec corrupt``, but there is
    nothing to learn from it.)
    """
    src = ds.source
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        raise FinetecError(f"the training split {split!r} is empty", src)
    ids = ds.ids[idx]
    if task == "classification":
        K = ds.num_classes
        if K == 0:
            raise FinetecError("the dataset has no class names (cannot train a classifier)", src)
        if K < 2:
            raise FinetecError(f"the dataset has {K} class; a classifier needs at least 2", src)
        lab = ds.label[idx]
        bad = (lab < 0) | (lab >= K)
        if bad.any():
            unl = ids[lab < 0].tolist()
            if unl:
                raise FinetecError(f"{len(unl)} clip(s) of split {split!r} have no label: {_clip_list(unl)}", src)
            out = ids[bad].tolist()
            raise FinetecError(f"{len(out)} clip(s) have a label outside 0..{K - 1} "
                               f"(class names): {_clip_list(out)}", src)
        present = np.unique(lab)
        if present.size < 2:
            raise FinetecError(f"split {split!r} holds only one class ({ds.class_names[int(present[0])]!r})", src)
    lengths = ds.lengths[idx]
    empty = ids[lengths == 0].tolist()
    if empty:
        raise FinetecError(f"{len(empty)} clip(s) have no frames: {_clip_list(empty)}", src)
    missing = ids[nothing_observed(ds)[idx]].tolist()
    if missing:
        raise FinetecError(f"{len(missing)} clip(s) have no observed joint in any frame: {_clip_list(missing)}", src)
    if getattr(ds, "store", None) is not None:
        return  # a memory-mapped folder: its content was checked when written (finetec.data.store)
    bad_frame = np.zeros(len(ds.mask), dtype=bool)
    for a in range(0, len(ds.mask), 1 << 16):  # in chunks of frames: no copy of the whole dataset
        finite = np.isfinite(ds.keypoint[a:a + (1 << 16)]).all(axis=-1) | ~ds.mask[a:a + (1 << 16)]
        bad_frame[a:a + (1 << 16)] = ~finite.reshape(len(finite), -1).all(axis=1)
    if bad_frame.any():
        clip_of = np.searchsorted(ds.offsets, np.flatnonzero(bad_frame), side="right") - 1
        bad = np.intersect1d(clip_of, idx)
        if bad.size:
            raise FinetecError(f"{bad.size} clip(s) have NaN or Inf in observed coordinates: "
                               f"{_clip_list(ds.ids[bad].tolist())}", src)


def check_pipeline(task: str, features: Sequence[str], filler: str) -> None:
    """The completion model takes raw corrupted positions: joint features, no gap filler."""
    if task == "completion" and (tuple(features) != ("joint",) or filler != "none"):
        raise FinetecError("task completion needs pipeline.features: [joint] and pipeline.filler: none "
                           f"(got features {list(features)}, filler {filler!r})")


def check_logits(out: Any, num_classes: int, model_name: str) -> None:
    """The model's output on one batch has one logit per class."""
    logits = out["logits"] if isinstance(out, dict) else out
    if logits.ndim != 2 or logits.shape[-1] != num_classes:
        raise FinetecError(f"model {model_name!r} outputs shape {tuple(logits.shape)} but the dataset has "
                           f"{num_classes} classes (check model.num_classes overrides)")


def check_loss(value: float, step: int, epoch: int) -> None:
    """A non-finite loss stops training with a hint instead of corrupting the weights."""
    if not np.isfinite(value):
        raise FinetecError(f"the loss became {value} at epoch {epoch + 1}, step {step} "
                           "(try a lower optim.lr, optim.grad_clip, or runtime.precision: fp32)")


__all__ = ["check_split", "check_pipeline", "check_logits", "check_loss"]
