"""The :class:`Sample`: one skeleton clip with an explicit missing-data mask.

Missing is the mask, never a magic zero: ``keypoint`` values where ``mask`` is False carry no
meaning (they are kept at zero by convention).

A clip with nothing observed (``mask`` all False) is a valid sample: it is what the corruption
protocol leaves of a clip whose only observed joints fall in dropped frames, and evaluation feeds
it to the model as an empty mask. Code that cannot work without an observed joint checks for it
itself (the training sanity check :func:`finetec.engine.sanity.check_split`, drawing in
:mod:`finetec.viz`); readers of raw formats refuse such clips in their input
(:func:`finetec.data.readers._common.make_sample`).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from finetec.errors import FinetecError


@dataclass
class Sample:
    """One clip.

    keypoint: float32 (M, T, V, C) - persons, frames, joints, coordinates (C = 2 or 3).
    mask:     bool    (M, T, V)    - True where the joint was observed (may be all False: nothing
                                     was observed in the clip).
    score:    float32 (M, T, V) or None - pose-estimator confidence.
    label:    int or None (-1 is accepted as "unlabelled" and stored as None).
    id:       a string unique within its dataset.
    meta:     JSON-serialisable extras (subject, view, source file, ...).
    """

    keypoint: np.ndarray
    mask: np.ndarray
    score: np.ndarray | None = None
    label: int | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = None
    source: str | None = None  # file the sample came from, for error messages

    def __post_init__(self) -> None:
        self.keypoint = np.asarray(self.keypoint, dtype=np.float32)
        self.mask = np.asarray(self.mask, dtype=bool)
        if self.score is not None:
            self.score = np.asarray(self.score, dtype=np.float32)
        if self.label is not None:
            self.label = int(self.label)
            if self.label < 0:
                self.label = None
        self.validate()

    @classmethod
    def trusted(cls, keypoint: np.ndarray, mask: np.ndarray, score: np.ndarray | None = None,
                label: int | None = None, id: str = "", meta: dict[str, Any] | None = None,
                num_classes: int | None = None, source: str | None = None) -> "Sample":
        """A Sample from arrays already checked (a validated dataset's clip): no conversion and
        no validation, so that reading a clip costs only the read. The arrays must already have
        the documented dtypes and shapes."""
        s = cls.__new__(cls)
        s.keypoint, s.mask, s.score = keypoint, mask, score
        s.label = None if label is None or label < 0 else int(label)
        s.id, s.meta, s.num_classes, s.source = id, meta if meta is not None else {}, num_classes, source
        return s

    def _fail(self, problem: str) -> None:
        where = f"clip {self.id!r}: " if self.id else ""
        raise FinetecError(where + problem, self.source)

    def validate(self) -> None:
        kp, m = self.keypoint, self.mask
        if kp.ndim != 4:
            self._fail(f"keypoint must be (M, T, V, C), got shape {kp.shape}")
        M, T, V, C = kp.shape
        if C not in (2, 3):
            self._fail(f"keypoint must have 2 or 3 coordinates, got C={C}")
        if M < 1 or V < 1:
            self._fail(f"keypoint has an empty dimension, shape {kp.shape}")
        if T < 1:
            self._fail("clip is empty (0 frames)")
        if m.shape != (M, T, V):
            self._fail(f"mask shape {m.shape} does not match keypoint shape {kp.shape}")
        if self.score is not None and self.score.shape != (M, T, V):
            self._fail(f"score shape {self.score.shape} does not match keypoint shape {kp.shape}")
        if not np.isfinite(kp).all() and not np.isfinite(kp[m]).all():  # the cheap test first
            self._fail("NaN or Inf in observed keypoints")
        if self.label is not None and self.num_classes is not None and not 0 <= self.label < self.num_classes:
            self._fail(f"label {self.label} outside 0..{self.num_classes - 1}")

    # -- convenience ---------------------------------------------------------------------
    @property
    def num_persons(self) -> int:
        return self.keypoint.shape[0]

    @property
    def num_frames(self) -> int:
        return self.keypoint.shape[1]

    @property
    def num_joints(self) -> int:
        return self.keypoint.shape[2]

    @property
    def dim(self) -> int:
        return self.keypoint.shape[3]

    def replace(self, **changes: Any) -> "Sample":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

