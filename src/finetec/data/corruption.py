"""The temporal corruption protocol: which frames of a clip a pose estimator "lost".

A corruption level is the fraction of the T clip frames that is dropped; a pattern says which
frames. A dropped frame keeps its position in the clip: its mask is False for every joint of every
person and its coordinates are zeroed. See ``docs/protocol.md`` for the exact rules.

Levels (fraction of frames dropped)::

    clean 0.00   minor 0.25   moderate 0.50   severe 0.75

Number of dropped frames for a clip of T frames at ratio r: ``n_drop = floor(T * r + 0.5)``
(round half up), then capped so that at least ``min(2, T)`` frames are kept.

Patterns:

- ``random``   (default, as in the paper): the kept frames are a uniform sample without
  replacement of ``T - n_drop`` frames;
- ``periodic``: ``n_keep = T - n_drop`` evenly spaced frames, frame ``i`` of the kept set at
  ``floor((p + i * T) / n_keep)`` with a random phase ``p`` in ``0..T-1`` (so the period is
  ``T / n_keep``: every 2nd frame at moderate, every 4th at severe, every 4th dropped at minor
  when T is a multiple of 4);
- ``prefix``: the first ``n_drop`` frames are dropped;
- ``suffix``: the last ``n_drop`` frames are dropped;
- ``middle``: one contiguous block of ``n_drop`` frames centred in the clip, starting at
  ``(T - n_drop) // 2``.

Test-time corruption is a pure function of ``(seed, sample id, level, pattern)`` through
:func:`test_rng`, so every method sees the identical corrupted test set.
"""
from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import TYPE_CHECKING, Sequence

import numpy as np

from finetec.errors import FinetecError

if TYPE_CHECKING:
    from finetec.data.dataset import SkeletonDataset

LEVELS: dict[str, float] = {"clean": 0.0, "minor": 0.25, "moderate": 0.5, "severe": 0.75}
PATTERNS: tuple[str, ...] = ("random", "periodic", "prefix", "suffix", "middle")
MIN_KEPT = 2

__all__ = [
    "LEVELS", "PATTERNS", "drop_ratio", "num_dropped", "keep_frames", "corrupt", "test_rng",
    "draw_level", "corrupt_dataset", "check_level", "check_pattern",
]


def check_level(level: str | float) -> str | float:
    """Validate a level name (or a drop ratio in [0, 1)); FinetecError otherwise."""
    if isinstance(level, str):
        if level not in LEVELS:
            raise FinetecError(f"unknown corruption level {level!r}; choose from {', '.join(LEVELS)}")
        return level
    r = float(level)
    if not 0.0 <= r < 1.0:
        raise FinetecError(f"a drop ratio must be in [0, 1), got {level!r}")
    return r


def check_pattern(pattern: str) -> str:
    """Validate a pattern name; FinetecError otherwise."""
    if pattern not in PATTERNS:
        raise FinetecError(f"unknown corruption pattern {pattern!r}; choose from {', '.join(PATTERNS)}")
    return pattern


def drop_ratio(level: str | float) -> float:
    """The fraction of frames dropped at ``level`` (a name from LEVELS or a ratio in [0, 1))."""
    level = check_level(level)
    return LEVELS[level] if isinstance(level, str) else float(level)


def num_dropped(T: int, level: str | float) -> int:
    """Frames dropped from a clip of ``T`` frames: round-half-up of ``T * ratio``, keeping >= 2."""
    if T < 0:
        raise ValueError(f"T must be >= 0, got {T}")
    n = int(np.floor(T * drop_ratio(level) + 0.5))
    return max(0, min(n, T - min(MIN_KEPT, T)))


def keep_frames(T: int, level: str | float, pattern: str, rng: np.random.Generator) -> np.ndarray:
    """(T,) bool: True for the frames that survive the corruption.

    ``level`` is a name from :data:`LEVELS` or a drop ratio in [0, 1); ``rng`` is used by the
    ``random`` and ``periodic`` patterns only (the others are deterministic).
    """
    check_pattern(pattern)
    n_drop = num_dropped(T, level)
    keep = np.ones(T, dtype=bool)
    if n_drop == 0:
        return keep
    n_keep = T - n_drop
    if pattern == "random":
        keep[:] = False
        keep[rng.choice(T, size=n_keep, replace=False)] = True
    elif pattern == "periodic":
        phase = int(rng.integers(0, T))
        keep[:] = False
        keep[(phase + np.arange(n_keep) * T) // n_keep] = True
    elif pattern == "prefix":
        keep[:n_drop] = False
    elif pattern == "suffix":
        keep[T - n_drop:] = False
    else:  # middle
        start = (T - n_drop) // 2
        keep[start:start + n_drop] = False
    return keep


def corrupt(
    keypoint: np.ndarray, mask: np.ndarray, level: str | float, pattern: str, rng: np.random.Generator,
    frame_axis: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Drop frames of one clip.

    keypoint: (M, T, V, C), mask: (M, T, V) (frames on ``frame_axis``, 1 by default).
    Returns new arrays: on dropped frames the mask is False for every joint of every person and
    the coordinates are zero; other entries are unchanged.
    """
    kp = np.array(keypoint, copy=True)
    mk = np.array(mask, dtype=bool, copy=True)
    T = kp.shape[frame_axis]
    keep = keep_frames(T, level, pattern, rng)
    if keep.all():
        return kp, mk
    shape = [1] * mk.ndim
    shape[frame_axis] = T
    mk &= keep.reshape(shape)
    kp[~mk] = 0
    return kp, mk


def test_rng(seed: int, sample_id: str, level: str | float, pattern: str) -> np.random.Generator:
    """The generator for the test-time corruption of one clip: a pure function of its arguments.

    The tuple is hashed with SHA-256 (stable across processes and Python versions, unlike
    ``hash()``) and the digest seeds a PCG64 generator.
    """
    key = f"finetec-corruption|{int(seed)}|{sample_id}|{level}|{pattern}".encode("utf-8")
    digest = hashlib.sha256(key).digest()
    words = np.frombuffer(digest, dtype="<u4").astype(np.uint64)
    return np.random.default_rng(words.tolist())


test_rng.__test__ = False  # not a pytest test when imported into a test module


def draw_level(rng: np.random.Generator, levels: Sequence[str] = tuple(LEVELS)) -> str:
    """One level drawn uniformly from ``levels`` (the ``mixed`` training mode)."""
    if len(levels) == 0:
        raise FinetecError("mixed training needs at least one level")
    return str(levels[int(rng.integers(0, len(levels)))])


def corrupt_dataset(ds: "SkeletonDataset", level: str | float, pattern: str = "random", seed: int = 0
                    ) -> "SkeletonDataset":
    """A new :class:`~finetec.data.dataset.SkeletonDataset` with every clip corrupted.

    Each clip (at its native length) is corrupted with ``test_rng(seed, clip id, level, pattern)``;
    the number of frames is unchanged, dropped frames have mask False and zero coordinates (and
    zero score). Dataset metadata records the corruption under ``"corruption"``. A clip whose only
    observed joints fall in dropped frames is left with nothing observed (a valid
    :class:`~finetec.data.sample.Sample`).
    """
    check_level(level)
    check_pattern(pattern)
    keep = np.ones(ds.keypoint.shape[0], dtype=bool)
    for i in range(len(ds)):
        a, b = int(ds.offsets[i]), int(ds.offsets[i + 1])
        keep[a:b] = keep_frames(b - a, level, pattern, test_rng(seed, str(ds.ids[i]), level, pattern))
    mask = ds.mask & keep[:, None, None]
    kp = ds.keypoint.copy()
    kp[~mask] = 0
    score = None
    if ds.score is not None:
        score = ds.score.copy()
        score[~keep] = 0
    history = list(ds.meta.get("corruption", [])) if isinstance(ds.meta.get("corruption"), list) else []
    history.append({"level": level, "pattern": pattern, "seed": int(seed)})
    out = replace(ds, keypoint=kp, mask=mask, score=score, meta={**ds.meta, "corruption": history},
                  splits={k: v.copy() for k, v in ds.splits.items()})
    out.validate()
    return out
