"""The clip pipeline: from a :class:`Sample` of any length to a fixed-size, corrupted training or
test clip, with its clean counterpart for completion losses and restoration metrics.

Order (see ``docs/protocol.md``)::

    uniform temporal sampling to clip_len   (train: random offset per segment; test: centres)
    -> temporal corruption                   (train: rng(seed, epoch, index); test: test_rng)
    -> normalisation                         (parameters from the corrupted clip's OBSERVED joints,
                                              applied to the corrupted and the clean clip)
    -> augmentation                          (train only, the same transform on both)
    -> gap filler                            (optional)
    -> features                              (joint / bone / motion / bone_motion)

Training randomness comes from one generator ``np.random.default_rng([seed, epoch, index])``
used in a fixed order (sampling offsets, mixed level, corruption, augmentation); test mode has no
randomness except the pure :func:`~finetec.data.corruption.test_rng` of the corruption.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Sequence

import numpy as np
import torch

from finetec.data.dataset import SkeletonDataset
from finetec.data.corruption import LEVELS, check_level, check_pattern, corrupt, draw_level, test_rng
from finetec.data.fillers import check_filler, fill
from finetec.data.sample import Sample
from finetec.data.transforms import (
    apply_augmentation, apply_normalization, check_features, features as make_features,
    normalization_params, random_augmentation, uniform_indices,
)
from finetec.errors import FinetecError
from finetec.layouts import Layout, get_layout

__all__ = ["PipelineConfig", "ClipPipeline", "PipelineDataset", "collate", "select_persons"]


@dataclass
class PipelineConfig:
    """What the pipeline does to each clip (all fields are plain values, YAML-friendly)."""

    clip_len: int = 64
    level: str = "clean"
    pattern: str = "random"
    mixed: bool = False
    filler: str = "none"
    features: tuple[str, ...] = ("joint",)
    normalize: bool = True
    align_view: bool = False
    augment: bool = False
    flip_prob: float = 0.5  # chance of a left/right flip when augmenting; 0 for classes that differ by side
    max_persons: int | None = None
    mixed_levels: tuple[str, ...] = field(default_factory=lambda: tuple(LEVELS))

    def __post_init__(self) -> None:
        if isinstance(self.features, str):
            self.features = (self.features,)
        self.features = check_features(self.features)
        self.mixed_levels = tuple(self.mixed_levels)
        if not isinstance(self.clip_len, (int, np.integer)) or isinstance(self.clip_len, bool) or self.clip_len < 1:
            raise FinetecError(f"pipeline.clip_len must be a positive integer, got {self.clip_len!r}")
        check_level(self.level)
        if not self.mixed_levels or any(lv not in LEVELS for lv in self.mixed_levels):
            raise FinetecError(f"pipeline.mixed_levels must be a non-empty list of {', '.join(LEVELS)}, "
                               f"got {list(self.mixed_levels)!r}")
        check_pattern(self.pattern)
        check_filler(self.filler)
        if self.max_persons is not None and (not isinstance(self.max_persons, (int, np.integer)) or self.max_persons < 1):
            raise FinetecError(f"pipeline.max_persons must be a positive integer or null, got {self.max_persons!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PipelineConfig":
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise FinetecError(f"unknown pipeline option(s): {', '.join(unknown)}")
        return cls(**d)


def select_persons(keypoint: np.ndarray, mask: np.ndarray, M: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Pad (mask False, zeros) or cut the person axis to ``M``; when cutting, keep the persons with
    the most observed joints (ties: original order), in their original order."""
    if M is None or keypoint.shape[0] == M:
        return keypoint, mask
    n = keypoint.shape[0]
    if n > M:
        counts = mask.reshape(n, -1).sum(axis=1)
        keep = np.sort(np.argsort(-counts, kind="stable")[:M])
        return keypoint[keep], mask[keep]
    kp = np.zeros((M,) + keypoint.shape[1:], dtype=keypoint.dtype)
    mk = np.zeros((M,) + mask.shape[1:], dtype=bool)
    kp[:n], mk[:n] = keypoint, mask
    return kp, mk


class ClipPipeline:
    """Turns a :class:`Sample` into model inputs; ``pipe(sample, index, epoch) -> dict``.

    Output (NumPy):
      keypoint   float32 (M, T, V, C * len(features))  corrupted [+ filled] features
      mask       bool    (M, T, V)  observed after corruption (real holes AND dropped frames)
      clean      float32 (M, T, V, C)  the uncorrupted clip, normalised like the input
      clean_mask bool    (M, T, V)  observed in the original clip
      label      int     (-1 when unlabelled; after a left/right flip, the mirror class's label)
      index      int     the ``index`` argument
    M is ``cfg.max_persons`` or ``num_persons`` (padding/cutting), else the sample's own.
    ``mirror_labels`` (K,): the label of a flipped clip of each class
    (:func:`finetec.data.mirror.mirror_labels`; default: every class is its own mirror image).
    """

    def __init__(self, layout: Layout | str, cfg: PipelineConfig | None = None, train: bool = False, seed: int = 0,
                 *, dim: int | None = None, num_persons: int | None = None,
                 mirror_labels: np.ndarray | None = None):
        self.layout = get_layout(layout)
        self.cfg = cfg if cfg is not None else PipelineConfig()
        self.train = bool(train)
        self.seed = int(seed)
        self.dim = dim
        self.num_persons = self.cfg.max_persons if self.cfg.max_persons is not None else num_persons
        self.mirror_labels = None if mirror_labels is None else np.asarray(mirror_labels, dtype=np.int64)

    @property
    def in_channels(self) -> int:
        """Channels of ``keypoint`` in the output: C * number of features."""
        if self.dim is None:
            raise FinetecError("the pipeline does not know the coordinate dimension yet (pass dim=)")
        return int(self.dim) * len(self.cfg.features)

    def level_for(self, rng: np.random.Generator | None) -> str:
        """The corruption level of one clip: drawn from ``cfg.mixed_levels`` in mixed training."""
        if self.train and self.cfg.mixed and rng is not None:
            return draw_level(rng, self.cfg.mixed_levels)
        return self.cfg.level

    def __call__(self, sample: Sample, index: int, epoch: int = 0) -> dict[str, Any]:
        cfg = self.cfg
        if sample.num_joints != self.layout.num_joints:
            raise FinetecError(f"clip {sample.id!r} has {sample.num_joints} joints, layout {self.layout.name!r} "
                               f"has {self.layout.num_joints}", sample.source)
        if self.dim is None:
            self.dim = sample.dim
        rng = np.random.default_rng([self.seed, int(epoch), int(index)]) if self.train else None
        kp, mk = select_persons(sample.keypoint, sample.mask, self.num_persons)
        # 1. temporal sampling
        idx = uniform_indices(kp.shape[1], cfg.clip_len, rng)
        clean, clean_mask = kp[:, idx], mk[:, idx]
        # 2. corruption
        level = self.level_for(rng)
        crng = rng if self.train else test_rng(self.seed, sample.id or str(index), level, cfg.pattern)
        x, m = corrupt(clean, clean_mask, level, cfg.pattern, crng)
        # 3. normalisation from the corrupted clip's observed joints
        if cfg.normalize:
            params = normalization_params(x, m, self.layout, align_view=cfg.align_view)
            x = apply_normalization(x, m, params)
            clean = apply_normalization(clean, clean_mask, params)
        else:
            clean = np.where(clean_mask[..., None], clean, 0).astype(np.float32)
            x = x.astype(np.float32)
        # 4. augmentation (train only), same transform on both; a flip changes a mirror class's label
        label = -1 if sample.label is None else int(sample.label)
        if self.train and cfg.augment:
            aug = random_augmentation(rng, x.shape[-1], flip_prob=cfg.flip_prob)
            x, m = apply_augmentation(x, m, aug, self.layout)
            clean, clean_mask = apply_augmentation(clean, clean_mask, aug, self.layout)
            if aug.flip and label >= 0 and self.mirror_labels is not None:
                label = int(self.mirror_labels[label])
        # 5. gap filling, 6. features
        feat_mask = m
        if cfg.filler != "none":
            x = fill(x, m, cfg.filler)
            if cfg.filler != "zero":  # every joint of a person with an observation is now defined
                feat_mask = np.broadcast_to(m.reshape(m.shape[0], -1).any(axis=1)[:, None, None], m.shape)
        feats = make_features(x, feat_mask, self.layout, cfg.features)
        return {
            "keypoint": feats,
            "mask": np.ascontiguousarray(m),
            "clean": np.ascontiguousarray(clean, dtype=np.float32),
            "clean_mask": np.ascontiguousarray(clean_mask),
            "label": label,
            "index": int(index),
        }

    pipe = __call__


def _pad_persons(a: np.ndarray, M: int) -> np.ndarray:
    if a.shape[0] == M:
        return a
    out = np.zeros((M,) + a.shape[1:], dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def collate(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack pipeline outputs into torch tensors: keypoint/clean float32 (N, M, T, V, *),
    mask/clean_mask bool (N, M, T, V), label/index int64 (N,). Persons are padded to the batch's
    largest M."""

    if not batch:
        raise ValueError("empty batch")
    M = max(b["mask"].shape[0] for b in batch)
    out: dict[str, Any] = {}
    for key in ("keypoint", "mask", "clean", "clean_mask"):
        out[key] = torch.from_numpy(np.stack([_pad_persons(b[key], M) for b in batch]))
    for key in ("label", "index"):
        out[key] = torch.tensor([int(b[key]) for b in batch], dtype=torch.int64)
    return out


def _torch_dataset_base():
    try:
        from torch.utils.data import Dataset

        return Dataset
    except ImportError:  # pragma: no cover - torch is a dependency
        return object


class PipelineDataset(_torch_dataset_base()):
    """A torch ``Dataset`` over the clips ``indices`` of a SkeletonDataset, through a pipeline.

    Item ``i`` is ``pipeline(ds[indices[i]], index=indices[i], epoch)``: the randomness of a clip
    depends on its index in the dataset, not on its position in the subset. Call
    ``set_epoch(e)`` before each training epoch (with DataLoader workers, create the iterator
    after ``set_epoch``; do not use persistent workers).
    """

    def __init__(self, ds: SkeletonDataset, indices: Sequence[int] | np.ndarray | None, pipeline: ClipPipeline):
        self.ds = ds
        self.indices = np.arange(len(ds)) if indices is None else np.asarray(indices, dtype=np.int64)
        self.pipeline = pipeline
        self.epoch = 0
        if pipeline.dim is None:
            pipeline.dim = ds.dim
        if pipeline.num_persons is None:
            pipeline.num_persons = ds.max_persons

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, Any]:
        j = int(self.indices[i])
        return self.pipeline(self.ds[j], index=j, epoch=self.epoch)
