"""Evaluation of a trained classifier on fixed corrupted test sets.

The test clips go through the checkpoint's own pipeline (clip length, normalisation, filler,
features) in TEST mode: fixed temporal sampling at segment centres and corruption from the pure
``test_rng(seed, clip id, level, pattern)``, so every method and every run sees the identical
corrupted test set for a given seed.

Multi-clip testing (``clips=K``): clip ``k`` samples each of the ``clip_len`` temporal segments
at relative position ``(k + 0.5) / K`` instead of the centre; the K logit vectors are averaged.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from finetec.data import SkeletonDataset
from finetec.data.corruption import LEVELS, PATTERNS
from finetec.data.fillers import model_mask
from finetec.data.pipeline import collate
from finetec.data.readers import open_with_options
from finetec.data.readers._common import layout_fallback, progress_counter
from finetec.engine.device import autocast
from finetec.errors import FinetecError
from finetec.fileio import atomic_path
from finetec.metrics.classification import classification_report
from finetec.metrics.restoration import GAP_GROUP_NAMES, mpjpe, mpjpe_by_gap, mpjve, n_mpjpe
from finetec.models.checkpoint import CheckpointInfo
from finetec.models.layers import fuse_batchnorm

ALL_LEVELS = tuple(LEVELS)


# -- datasets ------------------------------------------------------------------------------
class MultiClipDataset:
    """Items ``(position, k)``: clip k of ``ds[indices[position]]`` through ``pipeline``.

    Item ``i`` is position ``i // clips``, clip ``i % clips``. Torch-Dataset compatible.
    """

    def __init__(self, ds, indices: Sequence[int] | np.ndarray, pipeline, clips: int = 1):
        self.ds, self.indices, self.pipeline, self.clips = ds, np.asarray(indices, dtype=np.int64), pipeline, clips
        if pipeline.dim is None:
            pipeline.dim = ds.dim
        if pipeline.num_persons is None:
            pipeline.num_persons = ds.max_persons

    def __len__(self) -> int:
        return len(self.indices) * self.clips

    def __getitem__(self, i: int) -> dict[str, Any]:
        pos, k = divmod(int(i), self.clips)
        j = int(self.indices[pos])
        sample = self.ds[j]
        if self.clips > 1:
            T, L = sample.num_frames, self.pipeline.cfg.clip_len
            edges = np.arange(L, dtype=np.float64) * (T / L)
            idx = np.clip(np.floor(edges + (k + 0.5) / self.clips * (T / L)).astype(np.int64), 0, T - 1)
            sample = replace(sample, keypoint=sample.keypoint[:, idx], mask=sample.mask[:, idx],
                             score=None if sample.score is None else sample.score[:, idx])
        return self.pipeline(sample, index=j, epoch=0)


def make_loader(dataset, batch_size: int, num_workers: int = 0, batch_sampler=None, generator=None):
    """A DataLoader with the pipeline's collate (no shuffling here: order comes from the sampler)."""

    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers, collate_fn=collate,
                          generator=generator)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate)


def run_scores(model, loader, device, precision: str, filler: str, progress: str | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (N, K) float64, labels (N,), dataset indices (N,) for every item of ``loader``, the
    forward in ``precision`` (:data:`finetec.engine.device.PRECISIONS`).
    ``progress``: the label of a progress bar on stderr (shown on a terminal for 200 items or more)."""

    fuse_batchnorm(model)   # eval mode, BatchNorms folded (model.train() undoes it)
    scores, labels, index = [], [], []
    bar = progress_counter(len(loader.dataset), progress, enabled=False if progress is None else None)
    with torch.no_grad():
        for batch in loader:
            bar.update(len(batch["index"]))
            x = batch["keypoint"].to(device, non_blocking=True)
            m = model_mask(batch["mask"].to(device), filler)
            with autocast(device, precision):
                out = model(x, m)
            logits = out["logits"] if isinstance(out, dict) else out
            scores.append(logits.float().cpu().numpy().astype(np.float64))
            labels.append(batch["label"].numpy())
            index.append(batch["index"].numpy())
    bar.close()
    if not scores:
        return np.zeros((0, 0)), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(scores), np.concatenate(labels), np.concatenate(index)


# -- checkpoint + data -> pipeline ---------------------------------------------------------
def to_device(batch: dict[str, Any], device) -> dict[str, Any]:
    """The batch's tensors moved to ``device`` (other values as they are)."""
    return {k: (v.to(device, non_blocking=True) if hasattr(v, "to") else v) for k, v in batch.items()}


def completion_errors(model, loader, device, precision: str) -> dict[str, Any]:
    """Pooled MPJPE / N-MPJPE / MPJVE of the model's completion on the entries that are missing
    after corruption but observed in the clean clip (pooled over clips, weighted by entries),
    and ``by_gap``: MPJPE per gap-length group (:func:`finetec.metrics.restoration.mpjpe_by_gap`)."""

    sums = {"mpjpe": 0.0, "n_mpjpe": 0.0, "mpjve": 0.0}
    counts = {"mpjpe": 0, "n_mpjpe": 0, "mpjve": 0}
    groups = GAP_GROUP_NAMES
    gap_sum, gap_n = dict.fromkeys(groups, 0.0), dict.fromkeys(groups, 0)
    model.eval()
    with torch.no_grad():
        for batch in loader:
            b = to_device(batch, device)
            with autocast(device, precision):
                out = model(b["keypoint"], b["mask"])
            pred = out["completed"].float().cpu().numpy()
            gt = batch["clean"].numpy()
            seen = batch["mask"].numpy()
            missing = (~seen) & batch["clean_mask"].numpy()
            valid = batch["clean_mask"].numpy()
            n_pos = int(missing.sum())
            pair = (missing[..., 1:, :] | missing[..., :-1, :]) & valid[..., 1:, :] & valid[..., :-1, :]
            n_vel = int(pair.sum())
            if n_pos:
                sums["mpjpe"] += mpjpe(pred, gt, missing) * n_pos
                sums["n_mpjpe"] += n_mpjpe(pred, gt, missing) * n_pos
                counts["mpjpe"] += n_pos
                counts["n_mpjpe"] += n_pos
                for name, r in mpjpe_by_gap(pred, gt, missing, seen).items():
                    if r["count"]:
                        gap_sum[name] += r["mpjpe"] * r["count"]
                        gap_n[name] += r["count"]
            if n_vel:
                sums["mpjve"] += mpjve(pred, gt, missing, valid) * n_vel
                counts["mpjve"] += n_vel
    res: dict[str, Any] = {k: (sums[k] / counts[k] if counts[k] else float("nan")) for k in sums}
    res["num_missing"] = counts["mpjpe"]
    total = max(counts["mpjpe"], 1)
    res["by_gap"] = {g: {"mpjpe": gap_sum[g] / gap_n[g] if gap_n[g] else float("nan"), "count": gap_n[g],
                         "share": gap_n[g] / total} for g in groups}
    return res


def check_compatible(ds, info: Mapping[str, Any], data_name: str, *, classes: bool = True) -> None:
    """The dataset matches the checkpoint: joint count and order, coordinates, class names
    (``classes=False``: not the class names, for a completion checkpoint)."""
    info = CheckpointInfo.from_dict(info)
    n = info.dims.get("num_joints")
    if n is not None and ds.layout.num_joints != n:
        raise FinetecError(f"the data has {ds.layout.num_joints} joints ({ds.layout.name}) but the model was "
                           f"trained on {n}", data_name)
    if info.layout is not None and list(ds.layout.joints) != list(info.layout.joints):
        raise FinetecError(f"the data's layout {ds.layout.name!r} orders its joints differently from the "
                           f"checkpoint's {info.layout.name!r} (convert the data to the same layout)",
                           data_name)
    if info.coords is not None and ds.dim != info.coords:
        raise FinetecError(f"the data has {ds.dim}D coordinates but the model was trained on {info.coords}D",
                           data_name)
    names = info.class_names
    if classes and names and ds.class_names and list(ds.class_names) != list(names):
        raise FinetecError(f"the data's {len(ds.class_names)} classes differ from the checkpoint's {len(names)} "
                           "(same names in the same order are required)", data_name)


def open_eval_data(info: Mapping[str, Any], data: Any = None):
    """(dataset, its name): ``data`` may be a SkeletonDataset, a spec, or None (training data)."""
    info = CheckpointInfo.from_dict(info)
    if isinstance(data, SkeletonDataset):
        return data, data.source or "<dataset>"
    dcfg = info.data_config
    spec = data if data is not None else dcfg.get("path")
    if not spec:
        raise FinetecError("the checkpoint does not record its data; pass --data", info.path)
    fmt = None if data is not None else dcfg.get("format")
    options = {} if data is not None else dict(dcfg.get("options") or {})
    with layout_fallback(info.layout):
        return open_with_options(os.fspath(spec), fmt, options), os.fspath(spec)


def evaluate(model, info: dict[str, Any], data: Any = None, level: str = "clean", pattern: str = "random", *,
             seed: int = 0, split: str | None = None, clips: int = 1, batch_size: int = 64, device: Any = None,
             num_workers: int = 0, precision: str = "auto", progress: bool = False) -> dict[str, Any]:
    """Top-1, top-5, mean-class accuracy and confusion matrix at one corruption level.

    Args:
        model, info: from :func:`finetec.engine.checkpoint.load_model`.
        data: a SkeletonDataset, anything ``open_dataset`` reads, or None for the training data.
        level, pattern: the corruption (``finetec.data.corruption.LEVELS`` / ``PATTERNS``).
        seed: seed of the fixed corrupted test set (``test_rng``); 0 is the benchmark's.
        split: split name (default: the config's ``data.test_split``; ``all`` for every clip).
        clips: number of temporal clips per sample (logits averaged).
        precision: ``auto`` (bf16 autocast on CUDA, fp32 on a CPU), ``fp32`` or ``bf16``
            (:func:`finetec.engine.device.resolve_precision`).
        progress: a progress bar on stderr (on a terminal, for 200 clips or more).
    Returns:
        {"level", "pattern", "num_clips" (test clips), "clips_per_sample", "split", "top1", "top5",
        "mean_class", "confusion"
        (K x K list), "scores" (N, K) logits, "label" (N,), "id" (N,) str}.
    """

    if level not in LEVELS:
        raise FinetecError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}, all")
    if pattern not in PATTERNS:
        raise FinetecError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")
    if clips < 1:
        raise FinetecError(f"--clips must be >= 1, got {clips}")
    info = CheckpointInfo.from_dict(info)
    ds, name = open_eval_data(info, data)
    check_compatible(ds, info, name)
    split = split or info.test_split
    idx = ds.split_indices(split)
    if idx.size == 0:
        raise FinetecError(f"split {split!r} is empty", name)
    labels = ds.label[idx]
    if (labels < 0).any():
        raise FinetecError(f"{int((labels < 0).sum())} clip(s) of split {split!r} have no label; "
                           "evaluation needs labels", name)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    pipe = info.test_pipeline(level, pattern, seed, ds.layout)
    filler = pipe.cfg.filler
    loader = make_loader(MultiClipDataset(ds, idx, pipe, clips), batch_size, num_workers)
    scores, lab, _ = run_scores(model, loader, device, precision, filler, progress=f"eval {level}" if progress else None)
    K = scores.shape[1]
    scores = scores.reshape(len(idx), clips, K).mean(axis=1)
    lab = lab.reshape(len(idx), clips)[:, 0]
    if lab.max() >= K:
        raise FinetecError(f"labels go up to {int(lab.max())} but the model has {K} outputs", name)
    rep = classification_report(scores, lab)
    return {"level": level, "pattern": pattern, "num_clips": int(len(idx)), "clips_per_sample": clips,
            "split": split, **rep,
            "scores": scores, "label": lab.astype(np.int64), "id": ds.ids[idx].astype(str)}


def evaluate_completion(model, info: dict[str, Any], data: Any = None, level: str = "moderate",
                        pattern: str = "random", *, seed: int = 0, split: str | None = None, batch_size: int = 64,
                        device: Any = None, num_workers: int = 0, precision: str = "auto") -> dict[str, Any]:
    """Restoration errors of a completion checkpoint on a corrupted split: MPJPE, N-MPJPE and
    MPJVE pooled over the entries missing after corruption but observed in the clean clip
    (normalised coordinates). Returns {"level", "pattern", "split", "mpjpe", "n_mpjpe", "mpjve",
    "num_missing"}."""

    if level not in LEVELS:
        raise FinetecError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}, all")
    if pattern not in PATTERNS:
        raise FinetecError(f"unknown pattern {pattern!r}; valid: {', '.join(PATTERNS)}")
    info = CheckpointInfo.from_dict(info)
    ds, name = open_eval_data(info, data)
    check_compatible(ds, info, name, classes=False)
    split = split or info.test_split
    idx = ds.split_indices(split)
    if idx.size == 0:
        raise FinetecError(f"split {split!r} is empty", name)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    pipe = info.test_pipeline(level, pattern, seed, ds.layout)
    loader = make_loader(MultiClipDataset(ds, idx, pipe, 1), batch_size, num_workers)
    res = completion_errors(model, loader, device, precision)
    return {"level": level, "pattern": pattern, "split": split, **res}


def save_scores(path: str | os.PathLike, result: dict[str, Any], class_names: Sequence[str],
                extra: dict[str, Any] | None = None) -> None:
    """Score file (.npz): ``scores`` (N, K) logits, ``label`` (N,), ``id`` (N,), ``class_names``."""

    arrays = {"scores": np.asarray(result["scores"], dtype=np.float32), "label": np.asarray(result["label"]),
              "id": np.asarray(result["id"]).astype(str), "class_names": np.asarray(list(class_names), dtype=str)}
    for k, v in (extra or {}).items():
        arrays[k] = np.asarray(v)
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


__all__ = ["ALL_LEVELS", "MultiClipDataset", "evaluate", "evaluate_completion", "check_compatible", "make_loader",
           "open_eval_data", "run_scores", "save_scores"]
