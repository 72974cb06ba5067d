"""Online recognition of a skeleton stream, one frame at a time.

:class:`StreamRecognizer` keeps the last ``window`` frames in a sliding window (a lost frame is
kept as a fully masked frame, so time is never compressed) and classifies the window every
``every`` frames once it is warm.

Cadence rule (the one documented in ``docs/cli/stream.md``): after the ``n``-th pushed frame
(1-based, lost frames included) a prediction is made when ``n >= warmup`` and
``(n - warmup) % every == 0``; ``warmup`` defaults to ``window``. With ``window=10, every=10``,
30 frames give predictions after frames 10, 20 and 30.

:func:`parse_frame` turns one decoded JSON value (one line of ``finetec stream``'s input) into a
frame array; it accepts

- ``null`` (or ``{"people": []}`` / an empty list): a lost frame;
- a list of joints, each ``[x, y]``, ``[x, y, z]`` or the same with a trailing confidence score
  (``null`` for a missing joint);
- ``{"keypoints": [...]}``: a COCO-style flat list ``[x, y, s, x, y, s, ...]`` (or a list of
  joints, or a list of persons);
- ``{"people": [{"keypoints": [...]} | {"pose_keypoints_2d": [...]}, ...]}`` (OpenPose style).

Joints with a non-finite coordinate, or a score ``<= min_score``, are missing.

By default every prediction runs the whole window (preprocessing and network; the predictor's
network has its BatchNorms folded): the prediction is the one ``finetec predict`` gives for that
window. Reusing the previous window's activations exactly is not possible with the GCN backbones
(per-window normalisation, zero padding at both window edges, stride-2 phases; see
``docs/models.md``, "Streaming and incremental computation").

``incremental=True`` (ST-GCN / ST-GCN++ checkpoints) computes each frame once instead
(:class:`finetec.models.incremental.IncrementalGCN`): the normalisation is fixed from the window
of the first prediction (whose frames are preprocessed exactly as a window is), a later frame is
normalised with it, a missing joint keeps its last value (what the interpolating gap fillers do
at a window's end; zero for the other fillers), and the network, with per-block caches,
computes the whole stream so far as one clip: final activations once, those near the newest
frame (which depend on where the stream ends) again for each prediction, spread over ``spread``
frames. Not the full-window mode's numbers; its agreement with them is measured by
``benchmarks/bench_stream.py``.
"""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from finetec.data.fillers import fill, model_mask
from finetec.data.transforms import apply_normalization, features, normalization_params
from finetec.errors import FinetecError
from finetec.models.incremental import IncrementalGCN, check_incremental

__all__ = ["FrameError", "IncrementalStream", "StreamPrediction", "StreamRecognizer", "parse_frame"]


class FrameError(ValueError):
    """One stream frame could not be understood (the stream goes on)."""


@dataclass
class StreamPrediction:
    """One prediction of the stream.

    frame:           1-based index of the last frame in the window.
    top_k:           [(class_name, probability)], most probable first; empty when the window
                     held no observed joint.
    latency_ms:      wall time of this prediction (preprocessing + model), milliseconds.
    observed_frames: frames of the window with at least one observed joint.
    window:          frames in the window.
    """

    frame: int
    top_k: list[tuple[str, float]]
    latency_ms: float
    observed_frames: int
    window: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.frame,
            "top_k": [{"class": c, "prob": round(float(p), 6)} for c, p in self.top_k],
            "latency_ms": round(self.latency_ms, 3),
            "observed_frames": self.observed_frames,
            "window": self.window,
        }


# -- parsing -------------------------------------------------------------------------------
def _joint_rows(flat: list, num_joints: int, dim: int) -> list[list]:
    """Split a flat COCO-style list into per-joint rows of ``dim`` or ``dim + 1`` numbers."""
    n = len(flat)
    for stride in (dim + 1, dim):
        if n == num_joints * stride:
            return [flat[i:i + stride] for i in range(0, n, stride)]
    raise FrameError(
        f"a flat keypoint list needs {num_joints * dim} or {num_joints * (dim + 1)} numbers "
        f"({num_joints} joints x {dim} coordinates [+ score]), got {n}")


def _person(obj: Any, num_joints: int, dim: int, min_score: float) -> np.ndarray:
    """(V, C) float32 with NaN rows for missing joints."""
    if isinstance(obj, dict):
        for key in ("keypoints", "pose_keypoints_2d", "pose_keypoints_3d"):
            if key in obj:
                return _person(obj[key], num_joints, dim, min_score)
        raise FrameError("a person object needs a 'keypoints' list")
    if not isinstance(obj, list):
        raise FrameError(f"expected a list of joints, got {type(obj).__name__}")
    if obj and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in obj):
        obj = _joint_rows(obj, num_joints, dim)
    if len(obj) != num_joints:
        raise FrameError(f"expected {num_joints} joints, got {len(obj)}")
    out = np.full((num_joints, dim), np.nan, dtype=np.float32)
    for j, row in enumerate(obj):
        if row is None:
            continue
        if not isinstance(row, list) or len(row) not in (dim, dim + 1):
            raise FrameError(f"joint {j}: expected {dim} coordinates (+ optional score), got {row!r}"[:200])
        try:
            vals = [np.nan if v is None else float(v) for v in row]
        except (TypeError, ValueError):
            raise FrameError(f"joint {j}: not a number in {row!r}"[:200]) from None
        if len(vals) == dim + 1 and not vals[dim] > min_score:
            continue
        out[j] = vals[:dim]
    return out


def _split_persons(obj: list, num_joints: int, dim: int) -> list:
    """A list that is one person (flat numbers or joint rows) -> [obj]; a list of persons -> obj."""
    def scalar(v: Any) -> bool:
        return not isinstance(v, (list, dict))

    if all(scalar(v) for v in obj):
        return [obj]  # a flat list
    rows = all(v is None or (isinstance(v, list) and all(scalar(x) for x in v)) for v in obj)
    if rows and (len(obj) == num_joints or all(v is None or len(v) <= dim + 1 for v in obj)):
        return [obj]  # a list of joint rows
    return obj


def parse_frame(obj: Any, num_joints: int, dim: int, max_persons: int = 1,
                min_score: float = 0.0) -> np.ndarray | None:
    """One decoded JSON frame -> (M, V, C) float32 (NaN = missing joint) or None (lost frame).

    ``M`` is the number of persons in the frame, at most ``max_persons`` (the first ones kept).
    Raises :class:`FrameError` for anything malformed.
    """
    if obj is None:
        return None
    if isinstance(obj, dict):
        key = "people" if "people" in obj else "keypoints" if "keypoints" in obj else None
        if key is None:
            raise FrameError("a frame object needs 'keypoints' or 'people'")
        obj = obj[key]
        if obj is None:
            return None
        if not isinstance(obj, list):
            raise FrameError(f"'{key}' must be a list")
        persons = obj if key == "people" else _split_persons(obj, num_joints, dim)
    elif isinstance(obj, list):
        persons = _split_persons(obj, num_joints, dim)
    else:
        raise FrameError(f"a frame must be a list, an object or null, got {type(obj).__name__}")
    persons = [p for p in persons if p not in (None, [])][:max(1, max_persons)]
    if not persons:
        return None
    frame = np.stack([_person(p, num_joints, dim, min_score) for p in persons])
    if np.isnan(frame).all():
        return None
    return frame


# -- incremental mode --------------------------------------------------------------------------
class IncrementalStream:
    """The preprocessing and network of the incremental mode (see the module doc).

    predictor: a :class:`finetec.api.Predictor` of an ST-GCN / ST-GCN++ checkpoint on the torch
               backend (anything else: FinetecError naming ``--incremental`` and the alternative).
    """

    def __init__(self, predictor: Any, window: int, delay: int = 0, spread: int | None = None) -> None:
        if getattr(predictor, "backend", "torch") != "torch":
            raise FinetecError(f"--incremental runs the PyTorch model; use --backend torch, or omit --incremental "
                               f"to stream with --backend {predictor.backend}")
        model = getattr(predictor, "model", None)
        check_incremental(model)
        cfg = predictor.pipeline_config
        motion = [f for f in cfg.features if "motion" in f]
        if motion:
            raise FinetecError(f"--incremental supports the joint and bone features; this checkpoint uses "
                               f"{', '.join(motion)} (the next frame's difference); omit --incremental")
        self.predictor = predictor
        self.cfg = cfg
        self.layout = predictor.layout
        self.persons = max(1, int(predictor.max_persons or 1))
        self.net = IncrementalGCN(model, delay=delay, window=window, spread=spread)
        self.reset()

    def reset(self) -> None:
        self.net.reset()
        self.params = None
        self.anchored = False
        self.held: np.ndarray | None = None    # (M, V, C) last value of each joint (normalised)
        self.seen: np.ndarray | None = None    # (M, V) joint observed at least once

    def _arrays(self, frames: list) -> tuple[np.ndarray, np.ndarray]:
        """Raw frames (None or (M_f, V, C) with NaN) -> kp (M, T, V, C) zeros where missing, mask (M, T, V)."""
        V, C = self.layout.num_joints, self.predictor.dim
        kp = np.zeros((self.persons, len(frames), V, C), dtype=np.float32)
        mask = np.zeros((self.persons, len(frames), V), dtype=bool)
        for t, f in enumerate(frames):
            if f is None:
                continue
            m = min(self.persons, f.shape[0])
            ok = np.isfinite(f[:m]).all(axis=-1)
            kp[:m, t] = np.where(ok[..., None], f[:m], 0.0)
            mask[:m, t] = ok
        return kp, mask

    def _normalised(self, kp: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if self.params is None:
            return np.where(mask[..., None], kp, 0.0).astype(np.float32)
        return apply_normalization(kp, mask, self.params)

    def _model_inputs(self, x: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Filled, normalised clip -> the network's input features and mask (as the pipeline)."""
        filler = self.cfg.filler
        feat_mask = mask
        if filler not in ("none", "zero"):
            feat_mask = np.broadcast_to(mask.reshape(mask.shape[0], -1).any(axis=1)[:, None, None], mask.shape)
        feats = features(x, feat_mask, self.layout, self.cfg.features)
        mm = model_mask(torch.from_numpy(np.ascontiguousarray(mask))[None], filler)[0].numpy()
        return feats, mm

    def anchor(self, frames: list) -> bool:
        """Start the stream on ``frames`` (the window of the first prediction), preprocessed as a
        window is: normalisation from their observed joints (kept for the rest of the stream),
        the checkpoint's gap filler. False (nothing done) when no joint is observed."""
        kp, mask = self._arrays(frames)
        if not mask.any():
            return False
        if self.cfg.normalize:
            self.params = normalization_params(kp, mask, self.layout, align_view=self.cfg.align_view)
        x = self._normalised(kp, mask)
        if self.cfg.filler != "none":
            x = fill(x, mask, self.cfg.filler)
        self.seen = mask.any(axis=1)
        self.held = x[:, -1].copy()
        self.net.push(*self._model_inputs(x, mask))
        self.anchored = True
        return True

    def extend(self, frames: list) -> None:
        """Frames after the anchor: normalised with its parameters; a missing joint keeps its last
        value under an interpolating filler (a joint not seen yet: its person's centroid of this
        frame's known joints), zero otherwise."""
        if not frames:
            return
        kp, mask = self._arrays(frames)
        x = self._normalised(kp, mask)
        if self.cfg.filler not in ("none", "zero"):
            for t in range(x.shape[1]):
                ok = mask[:, t]
                self.held[ok] = x[:, t][ok]
                self.seen |= ok
                for m in range(x.shape[0]):
                    if self.seen[m].any() and not self.seen[m].all():
                        self.held[m, ~self.seen[m]] = self.held[m, self.seen[m]].mean(axis=0)
                known = self.seen.any(axis=1)[:, None] & ~ok
                x[:, t][known] = self.held[known]
                mask[:, t] |= self.seen.any(axis=1)[:, None]   # the filled persons are present
        self.net.push(*self._model_inputs(x, mask))

    def logits(self, present: np.ndarray) -> np.ndarray | None:
        """(K,) logits, or None while the network has no output frame yet (``delay``)."""
        if not self.net.ready():
            return None
        return self.net.logits(present).float().cpu().numpy()


# -- recognizer ----------------------------------------------------------------------------
class StreamRecognizer:
    """Sliding-window recognition over a stream of frames.

    predictor: a :class:`finetec.api.Predictor` (anything with ``layout``, ``dim``,
               ``max_persons``, ``clip_len`` and ``predict(keypoint, mask, top_k)``).
    window:    frames in the sliding window (default: the checkpoint's clip length).
    every:     predict every ``every`` frames once warm (default 1).
    warmup:    frames needed before the first prediction (default: ``window``).
    incremental: compute each frame once (:class:`IncrementalStream`; ST-GCN / ST-GCN++ on the
               torch backend) instead of re-running the window for every prediction.
    delay, spread: with ``incremental``, see :class:`finetec.models.incremental.IncrementalGCN`
               (defaults: 0 and the network's total stride, 4 for the presets).
    """

    def __init__(self, predictor: Any, window: int | None = None, every: int = 1,
                 warmup: int | None = None, top_k: int = 5, incremental: bool = False,
                 delay: int | None = None, spread: int | None = None) -> None:

        self.predictor = predictor
        self.window = int(window if window is not None else predictor.clip_len)
        self.every = int(every)
        self.warmup = int(warmup if warmup is not None else self.window)
        self.top_k = int(top_k)
        if self.window < 1:
            raise FinetecError(f"--window must be at least 1, got {self.window}")
        if self.every < 1:
            raise FinetecError(f"--every must be at least 1, got {self.every}")
        if not 1 <= self.warmup:
            raise FinetecError(f"--warmup must be at least 1, got {self.warmup}")
        for v, what in ((delay, "--delay"), (spread, "--spread")):
            if v is not None and not incremental:
                raise FinetecError(f"{what} applies to --incremental; add --incremental or omit {what}")
        self.num_joints = predictor.layout.num_joints
        self.dim = predictor.dim
        self._buf: deque = deque(maxlen=self.window)
        self.count = 0
        self.incremental = IncrementalStream(predictor, self.window, 0 if delay is None else delay,
                                             spread) if incremental else None
        self._pending: list = []   # incremental: frames not yet given to the network
        self._present: deque = deque(maxlen=self.window)

    def warm_up(self) -> None:
        """Run one prediction on a still dummy window so that the first real prediction's latency
        does not include one-time costs (lazy imports, first-call allocations)."""
        V, C = self.num_joints, self.dim
        kp = np.ones((1, max(2, min(self.window, 8)), V, C), dtype=np.float32)
        kp += np.arange(V, dtype=np.float32)[None, None, :, None] * 0.1
        self.predictor.predict(kp, np.ones(kp.shape[:3], dtype=bool), top_k=1)
        if self.incremental is not None:
            self.incremental.anchor([kp[:, t] for t in range(kp.shape[1])])
            self.incremental.extend([kp[:, -1]] * 4)
            self.incremental.reset()

    def reset(self) -> None:
        """Forget the stream (the incremental mode anchors again at the next prediction)."""
        self._buf.clear()
        self._pending.clear()
        self._present.clear()
        self.count = 0
        if self.incremental is not None:
            self.incremental.reset()

    def due(self, n: int) -> bool:
        """Whether a prediction is made after the ``n``-th frame (1-based)."""
        return n >= self.warmup and (n - self.warmup) % self.every == 0

    def push(self, frame: np.ndarray | None) -> StreamPrediction | None:
        """Add one frame ((V, C) or (M, V, C); NaN = missing joint; None = lost frame).

        Returns a :class:`StreamPrediction` when one is due (see the cadence rule), else None.
        """

        t0 = time.perf_counter()
        if frame is not None:
            f = np.asarray(frame, dtype=np.float32)
            if f.ndim == 2:
                f = f[None]
            if f.ndim != 3 or f.shape[1:] != (self.num_joints, self.dim):
                raise FinetecError(
                    f"a frame must be ({self.num_joints}, {self.dim}) or (M, {self.num_joints}, {self.dim}), "
                    f"got {tuple(np.shape(frame))}")
            frame = None if np.isnan(f).all() else f
        self._buf.append(frame)
        if self.incremental is not None:
            # person slots with an observed joint in this frame (the persons averaged over the window)
            seen = np.zeros(self.incremental.persons, dtype=bool)
            if frame is not None:
                m = min(len(seen), frame.shape[0])
                seen[:m] = np.isfinite(frame[:m]).all(axis=-1).any(axis=-1)
            self._present.append(seen)
            if self.incremental.anchored:
                self._pending.append(frame)
        self.count += 1
        if not self.due(self.count):
            return None
        return self._predict(t0)

    def window_arrays(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The window as (keypoint (M, T, V, C), mask (M, T, V)), or None when nothing is observed."""
        frames = list(self._buf)
        present = [f for f in frames if f is not None]
        if not present:
            return None
        M = min(max(f.shape[0] for f in present), max(1, int(getattr(self.predictor, "max_persons", 0) or 99)))
        T, V, C = len(frames), self.num_joints, self.dim
        kp = np.zeros((M, T, V, C), dtype=np.float32)
        mask = np.zeros((M, T, V), dtype=bool)
        for t, f in enumerate(frames):
            if f is None:
                continue
            m = min(M, f.shape[0])
            ok = np.isfinite(f[:m]).all(axis=-1)
            kp[:m, t] = np.where(ok[..., None], f[:m], 0.0)
            mask[:m, t] = ok
        if not mask.any():
            return None
        return kp, mask

    def _predict(self, t0: float) -> StreamPrediction:
        if self.incremental is not None:
            return self._predict_incremental(t0)
        arrays = self.window_arrays()
        if arrays is None:
            return StreamPrediction(self.count, [], (time.perf_counter() - t0) * 1e3, 0, len(self._buf))
        kp, mask = arrays
        top = self.predictor.predict(kp, mask, top_k=self.top_k)
        observed = int(mask.any(axis=(0, 2)).sum())
        return StreamPrediction(self.count, top, (time.perf_counter() - t0) * 1e3, observed, len(self._buf))

    def _predict_incremental(self, t0: float) -> StreamPrediction:
        inc = self.incremental
        if inc.anchored:
            inc.extend(self._pending)
        else:
            inc.anchor(list(self._buf))
        self._pending.clear()
        frames = list(self._buf)
        observed = sum(f is not None for f in frames)
        logits = inc.logits(np.any(list(self._present), axis=0)) if observed else None
        top: list = []
        if logits is not None:
            z = np.exp(logits - logits.max())
            top = self.predictor.top_k((z / z.sum())[None], self.top_k)[0]
        return StreamPrediction(self.count, top, (time.perf_counter() - t0) * 1e3, observed, len(frames))
