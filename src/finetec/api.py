"""The Python API for using a trained checkpoint: :class:`Predictor`.

    >>> import finetec
    >>> p = finetec.load("runs/stgcnpp_synthetic/best")          # doctest: +SKIP
    >>> p.predict(keypoint)                 # (T, V, C) or (M, T, V, C)  # doctest: +SKIP
    [('jump', 0.91), ('squat', 0.05), ...]
    >>> completed, filled = p.complete(keypoint, mask)            # doctest: +SKIP

Preprocessing is exactly the evaluation pipeline (:class:`finetec.data.pipeline.ClipPipeline` in
test mode at level ``clean``: uniform temporal sampling to the checkpoint's clip length,
normalisation from the observed joints, the checkpoint's gap filler and features), so a clip
gets the same prediction here as in ``finetec eval``.

Missing data: pass ``mask`` (M, T, V) bool, True = observed. Without a mask, a joint with a
non-finite coordinate (NaN) is missing, and so is every joint of a frame whose coordinates are
all exactly zero (the usual "no detection" frame of pose estimators); everything else is observed.
"""
from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import torch

from finetec.data.dataset import SkeletonDataset
from finetec.data.fillers import FILLERS, fill, model_mask
from finetec.data.pipeline import ClipPipeline
from finetec.data.sample import Sample
from finetec.data.transforms import invert_normalization, normalization_params, uniform_indices
from finetec.engine.device import autocast, resolve_device, resolve_precision
from finetec.errors import FinetecError
from finetec.export import BACKENDS, RUNTIMES
from finetec.layouts import Layout, find_joint_map, get_layout
from finetec.models.checkpoint import CheckpointInfo, load_model
from finetec.models.layers import fuse_batchnorm

__all__ = ["Predictor", "infer_mask"]

ArrayLike = Any


def infer_mask(keypoint: np.ndarray) -> np.ndarray:
    """The default mask of a clip given without one.

    keypoint (M, T, V, C) -> (M, T, V) bool: False for joints with a non-finite coordinate and
    for every joint of a frame (per person) whose coordinates are all zero.
    """
    kp = np.asarray(keypoint, dtype=np.float32)
    finite = np.isfinite(kp).all(axis=-1)
    zero_frame = (np.where(np.isfinite(kp), kp, 0.0) == 0).all(axis=(-1, -2)) & finite.all(axis=-1)
    return finite & ~zero_frame[..., None]


class Predictor:
    """A trained checkpoint ready for inference.

    Attributes:
        model:        the ``nn.Module`` in eval mode on ``device``.
        info:         the checkpoint's ``checkpoint.json`` as a dict.
        layout:       the :class:`~finetec.layouts.Layout` the model was trained on.
        class_names:  list of K class names (empty for a completion checkpoint).
        clip_len:     frames per model input clip (T).
        dim:          coordinates per joint (C = 2 or 3).
        in_channels:  channels per joint of the model input (C x number of features).
        max_persons:  persons per model input (M); clips are padded / cut to it.
    """

    def __init__(self, model: Any, info: Mapping[str, Any], device: str = "cpu", backend: str = "torch",
                 precision: str = "auto") -> None:
        self.precision = resolve_precision(precision, device)   # fp32 | bf16 (the forward's autocast)
        if backend != "torch" and self.precision != "fp32":
            raise FinetecError(f"--precision {precision} needs --backend torch ({backend} runs in fp32); "
                               "use --precision fp32")
        if backend not in BACKENDS:
            raise FinetecError(f"unknown --backend {backend!r}; choose from {', '.join(BACKENDS)}")
        if backend != "torch" and str(device) != "cpu":
            raise FinetecError(f"--backend {backend} runs on the CPU; use --device cpu, or --backend torch for {device}")
        self.model = fuse_batchnorm(model)   # eval mode, BatchNorms folded into the convolutions
        self.info = CheckpointInfo.from_dict(info, getattr(model, "config", None))
        self.device = device
        self.backend = backend
        self._onnx: Any = None
        self.path = self.info.path
        self.model_name = self.info.model_name
        if self.info.layout is None:
            raise FinetecError("the checkpoint records no skeleton layout", self.path)
        self.layout = self.info.layout
        self.class_names = list(self.info.class_names)
        # evaluation preprocessing: test mode, no corruption, no augmentation
        self.pipeline_config = self.info.test_pipeline_config("clean")
        self.clip_len = int(self.pipeline_config.clip_len)
        self.in_channels = int(self.info.model_config.get("in_channels", 0)
                               or self.info.dims.get("in_channels", 0)) or None
        dim = self.info.coords
        if dim is None and self.in_channels:
            dim = self.in_channels // (1 if self.is_completion else len(self.pipeline_config.features))
        self.dim = int(dim or 3)
        if self.in_channels is None:
            self.in_channels = self.dim * len(self.pipeline_config.features)
        self.max_persons = self.info.num_persons or 1
        self.seed = self.info.seed

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str = "cpu", backend: str = "torch",
                        precision: str = "auto") -> "Predictor":
        """Load a checkpoint folder (or its ``model.safetensors``, or a training output folder).

        ``backend``: ``"torch"`` (default), ``"onnxruntime"`` or ``"openvino"`` (classification runs
        the recognizer exported to ONNX in that runtime, checked against PyTorch within 1e-4 when
        loading; needs the ``onnx`` or the ``openvino`` extra; CPU only, fp32; completion stays on
        PyTorch; :class:`finetec.export.ExportedRecognizer`). ``precision``: ``auto`` (bf16
        autocast on CUDA, fp32 on a CPU), ``fp32`` or ``bf16`` (a CPU needs native bf16), for the
        classifier's forward (:func:`finetec.engine.device.resolve_precision`)."""
        device = str(resolve_device(device))
        model, info = load_model(path, device=device)
        pred = cls(model, info, device=device, backend=backend, precision=precision)
        if backend != "torch" and not pred.is_completion:
            pred._onnx = RUNTIMES[backend](pred)
        return pred

    def __repr__(self) -> str:
        kind = "completion" if self.is_completion else f"{len(self.class_names)} classes"
        return (f"Predictor({self.model_name}, layout={self.layout.name}, {kind}, clip_len={self.clip_len}, "
                f"M={self.max_persons}, C={self.dim}, device={self.device}"
                + (f", backend={self.backend})" if self.backend != "torch" else ")"))

    # -- properties ----------------------------------------------------------------------
    @property
    def is_completion(self) -> bool:
        """True for a completion-only checkpoint (no classifier)."""
        return self.info.is_completion

    @property
    def has_completion(self) -> bool:
        """Whether ``complete(method="model")`` is available."""
        return self._completion_or_none() is not None

    def _completion_or_none(self) -> Any:
        if self.is_completion:
            return self.model
        sub = getattr(self.model, "completion", None)

        return sub if isinstance(sub, torch.nn.Module) else None

    def completion_module(self) -> Any:
        """The completion network (a completion checkpoint, or a FineTec model's module 1)."""
        sub = self._completion_or_none()
        if sub is None:
            raise FinetecError(
                f"this checkpoint ({self.model_name or 'unknown model'}) has no completion module; "
                "use a completion or FineTec checkpoint, or a gap filler (linear, cubic, copy_lr, copy_rl, zero)",
                self.path)
        return sub

    # -- input handling ------------------------------------------------------------------
    def check_layout(self, layout: Layout | str, source: str | None = None) -> None:
        """FinetecError unless ``layout`` has the checkpoint's joints (same count, same names)."""
        lay = get_layout(layout)
        if lay.num_joints != self.layout.num_joints:
            raise FinetecError(
                f"layout mismatch: the checkpoint expects {self.layout.name!r} ({self.layout.num_joints} joints), "
                f"the input is {lay.name!r} ({lay.num_joints} joints)", source)
        if tuple(lay.joints) != tuple(self.layout.joints):
            diff = next(i for i, (a, b) in enumerate(zip(lay.joints, self.layout.joints)) if a != b)
            raise FinetecError(
                f"layout mismatch: joint {diff} is {lay.joints[diff]!r} in the input ({lay.name!r}) but "
                f"{self.layout.joints[diff]!r} in the checkpoint ({self.layout.name!r})", source)

    def check_dataset(self, ds: SkeletonDataset) -> None:
        """The dataset's layout and coordinate dimension must match the checkpoint."""
        self.check_layout(ds.layout, ds.source)
        if ds.dim != self.dim:
            hint = ("; if it holds x, y, z per joint, read it as 3D with -o dim=3 (see docs/formats.md)"
                    if ds.dim == 2 and self.dim == 3 and ds.meta.get("source_format") == "pose_json" else "")
            raise FinetecError(f"the checkpoint expects {self.dim}D coordinates, the input has {ds.dim}D{hint}",
                               ds.source)

    def to_sample(self, keypoint: ArrayLike, mask: ArrayLike | None = None, id: str = "clip") -> Sample:
        """A :class:`Sample` from an array (T, V, C) or (M, T, V, C) (+ optional mask), checked
        against the checkpoint's layout and dimension.

        An array in which nothing is observed is refused (FinetecError). A :class:`Sample` (e.g.
        a clip of a dataset file) is taken as it is, even with nothing observed: a clip that the
        corruption protocol emptied is then classified from an empty mask, as in evaluation, and
        completing it fills nothing."""
        if isinstance(keypoint, Sample):
            s = keypoint
            if s.num_joints != self.layout.num_joints or s.dim != self.dim:
                self._shape_error(s.keypoint.shape)
            return s
        kp = np.array(keypoint, dtype=np.float32)
        if kp.ndim == 3:
            kp = kp[None]
            if mask is not None:
                mask = np.asarray(mask, dtype=bool)[None] if np.ndim(mask) == 2 else mask
        if kp.ndim != 4 or kp.shape[2] != self.layout.num_joints or kp.shape[3] != self.dim:
            self._shape_error(kp.shape)
        m = infer_mask(kp) if mask is None else np.asarray(mask, dtype=bool)
        if m.shape != kp.shape[:3]:
            raise FinetecError(f"mask shape {m.shape} does not match keypoint shape {kp.shape}")
        m = m & np.isfinite(kp).all(axis=-1)
        kp = np.where(m[..., None], kp, 0.0).astype(np.float32)
        if not m.any():
            raise FinetecError("the clip has no observed joint (every frame is missing)")
        return Sample(keypoint=kp, mask=m, id=id)

    def _shape_error(self, shape: tuple) -> None:
        raise FinetecError(
            f"layout mismatch: expected keypoints (T, {self.layout.num_joints}, {self.dim}) or "
            f"(M, T, {self.layout.num_joints}, {self.dim}) for layout {self.layout.name!r}, got {tuple(shape)}")

    def _samples(self, samples: Any) -> list[Sample]:
        if isinstance(samples, SkeletonDataset):
            self.check_dataset(samples)
            return list(samples)
        if isinstance(samples, np.ndarray) and samples.ndim == 5:
            samples = list(samples)  # (N, M, T, V, C): N clips
        elif isinstance(samples, (Sample, np.ndarray)):
            samples = [samples]
        out = []
        for i, s in enumerate(samples):
            if isinstance(s, tuple):
                out.append(self.to_sample(s[0], s[1] if len(s) > 1 else None, id=f"clip{i}"))
            else:
                out.append(self.to_sample(s, None, id=f"clip{i}"))
        return out

    # -- preprocessing -------------------------------------------------------------------
    def pipeline(self, *, completion: bool = False, clip_len: int | None = None) -> Any:
        """The test-mode :class:`ClipPipeline` used for inference.

        ``completion=True``: positions only, no gap filler, persons kept as given (the completion
        network folds persons into the batch), ``clip_len`` frames (default: the checkpoint's).
        """

        cfg = self.pipeline_config
        if completion:
            cfg = replace(cfg, features=("joint",), filler="none", max_persons=None,
                          clip_len=int(clip_len or cfg.clip_len))
            return ClipPipeline(self.layout, cfg, train=False, seed=self.seed, dim=self.dim)
        return ClipPipeline(self.layout, cfg, train=False, seed=self.seed, dim=self.dim,
                            num_persons=self.max_persons)

    def preprocess(self, samples: Any) -> tuple[np.ndarray, np.ndarray]:
        """Model inputs for clips: (keypoint float32 (N, M, T, V, C_in), mask bool (N, M, T, V)).

        The mask is the one the network receives in evaluation (:func:`finetec.data.fillers.model_mask`):
        the observed joints, or, after an interpolating gap filler, the present persons.
        """
        pipe = self.pipeline()
        outs = [pipe(s, index=i, epoch=0) for i, s in enumerate(self._samples(samples))]
        if not outs:
            raise FinetecError("no clips to predict")
        return self._stack(outs)

    def _stack(self, outs: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([o["keypoint"] for o in outs])
        m = model_mask(torch.from_numpy(np.stack([o["mask"] for o in outs])), self.pipeline_config.filler)
        return x, np.ascontiguousarray(m.numpy())

    # -- classification ------------------------------------------------------------------
    def _require_classifier(self) -> None:
        if self.is_completion or not self.class_names:
            raise FinetecError("this checkpoint is a completion model and does not classify; use complete()",
                               self.path)

    def logits(self, keypoint: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Run the classifier on model inputs (see :meth:`preprocess`): keypoint (N, M, T, V, C_in) and
        mask (N, M, T, V) -> (N, K) logits (in the Predictor's precision; the exported graph
        in onnxruntime / OpenVINO with ``backend="onnxruntime"`` / ``"openvino"``)."""

        self._require_classifier()
        if self._onnx is not None:
            return self._onnx(keypoint, mask).astype(np.float32, copy=False)

        with torch.inference_mode(), autocast(torch.device(self.device), self.precision):
            x = torch.from_numpy(np.ascontiguousarray(keypoint)).to(self.device)
            m = torch.from_numpy(np.ascontiguousarray(mask)).to(self.device)
            out = self.model(x, m)
            if isinstance(out, dict):
                out = out["logits"]
            return out.float().cpu().numpy()

    def probabilities(self, samples: Any, batch_size: int = 32) -> np.ndarray:
        """Class probabilities (N, K) for clips (a list of arrays / (keypoint, mask) tuples /
        Samples, or a SkeletonDataset), processed ``batch_size`` clips at a time."""
        self._require_classifier()
        items = self._samples(samples)
        if not items:
            raise FinetecError("no clips to predict")
        if batch_size < 1:
            raise FinetecError(f"batch size must be at least 1, got {batch_size}")
        pipe = self.pipeline()
        out = []
        for a in range(0, len(items), batch_size):
            batch = [pipe(s, index=a + i, epoch=0) for i, s in enumerate(items[a:a + batch_size])]
            z = self.logits(*self._stack(batch))
            out.append(_softmax(z))
        return np.concatenate(out)

    def top_k(self, probs: np.ndarray, k: int = 5) -> list[list[tuple[str, float]]]:
        """(N, K) probabilities -> per clip the ``k`` most probable (class name, probability)."""
        k = max(1, min(int(k), probs.shape[1]))
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [[(self.class_names[j], float(p[j])) for j in row] for p, row in zip(probs, order)]

    def predict(self, keypoint: ArrayLike, mask: ArrayLike | None = None, top_k: int = 5,
                layout: Layout | str | None = None) -> list[tuple[str, float]]:
        """Classify one clip: keypoint (T, V, C) or (M, T, V, C), mask (same without C) or None.

        ``layout``: the clip's skeleton when it is not the model's (e.g. ``"coco17"``): the clip
        goes through the joint map onto the model's layout (:meth:`map_input`).
        Returns the ``top_k`` (class name, probability) pairs, most probable first.
        """
        if layout is not None:
            keypoint, mask = self.map_input(keypoint, mask, layout)
        return self.top_k(self.probabilities([(keypoint, mask)]), top_k)[0]

    def map_input(self, keypoint: ArrayLike, mask: ArrayLike | None, layout: Layout | str) -> tuple[np.ndarray, np.ndarray]:
        """A clip (T, V', C) or (M, T, V', C) in skeleton ``layout`` moved onto the model's layout
        through the joint map (:func:`finetec.layouts.find_joint_map`): (keypoint, mask) with the
        model's joints; a joint the map cannot supply is missing. Without ``mask``, missing joints
        are found as :func:`infer_mask` does."""
        kp = np.asarray(keypoint, dtype=np.float32)
        m = infer_mask(kp) if mask is None else np.asarray(mask, dtype=bool)
        out, out_mask, _ = find_joint_map(layout, self.layout).apply(kp, m)
        return out, out_mask

    def predict_batch(self, samples: Any, top_k: int = 5, batch_size: int = 32) -> list[list[tuple[str, float]]]:
        """Classify many clips (arrays, (keypoint, mask) tuples, Samples, or a SkeletonDataset)."""
        return self.top_k(self.probabilities(samples, batch_size=batch_size), top_k)

    # -- completion ----------------------------------------------------------------------
    def complete(self, keypoint: ArrayLike, mask: ArrayLike | None = None, method: str = "model", *,
                 with_uncertainty: bool = False) -> tuple[np.ndarray, ...]:
        """Fill the missing frames / joints of one clip.

        keypoint (T, V, C) or (M, T, V, C) in any coordinate frame; mask as for :meth:`predict`.
        ``method``: ``"model"`` (the checkpoint's completion network) or a gap filler name
        (``linear``, ``cubic``, ``copy_lr``, ``copy_rl``, ``zero``; these work on the clip as
        given, at its own length).

        Returns ``(completed, filled)``: ``completed`` float32 with the input's shape, in the
        INPUT's coordinate frame, observed entries bit-identical to the input; ``filled`` bool
        (input shape without C): entries that were missing and now hold a value. A person with
        no observed joint at all (padding) stays zero and unfilled.

        ``method="model"``: the clip goes through the evaluation pipeline (uniform sampling to
        ``clip_len``, normalisation from its observed joints), the network predicts the missing
        entries, the normalisation is undone, and the result is mapped back to the input's
        frames: a missing entry at a frame that was sampled takes the network's value (the mean
        over repeats when a short clip was stretched); a missing entry at a frame that was not
        sampled (clip longer than ``clip_len``) is interpolated linearly in time between its
        nearest known neighbours (observed values and network values).

        ``with_uncertainty=True`` returns ``(completed, filled, uncertainty)``: float32 (input shape
        without C), for each filled entry how unsure the network is there (the spread of its
        retrieved bank motions, or the error its head expects: the module's ``uncertainty``
        output), in the input's units; 0 on observed entries; None for a gap filler or a module
        without one.
        """

        squeeze = np.ndim(keypoint) == 3 if not isinstance(keypoint, Sample) else False
        s = self.to_sample(keypoint, mask)
        kp, m = s.keypoint, s.mask
        present = m.reshape(m.shape[0], -1).any(axis=1)
        filled = ~m & present[:, None, None]
        unc = None
        if method == "model":
            out, unc = self._complete_model(s)
        elif method in FILLERS:
            out = fill(kp, m, method)
        else:
            raise FinetecError(f"unknown completion method {method!r}; choose from model, {', '.join(FILLERS)}")
        out = np.where(m[..., None], kp, out).astype(np.float32)
        out[~present] = 0.0
        res: tuple[Any, ...] = (out, filled)
        if with_uncertainty:
            res += (None if unc is None else np.where(filled, unc, 0.0).astype(np.float32),)
        return tuple(r[0] if squeeze and r is not None else r for r in res)

    def _complete_model(self, s: Sample) -> tuple[np.ndarray, np.ndarray | None]:
        """(M, T_src, V, C) completed clip in the input's frame and the module's uncertainty of each
        entry (M, T_src, V) in the input's units, or None when it has none (see :meth:`complete`)."""

        net = self.completion_module()
        T = int(getattr(net, "T", 0) or self.clip_len)  # the network's own clip length
        pipe = self.pipeline(completion=True, clip_len=T)
        o = pipe(s, index=0, epoch=0)
        x, mk = o["keypoint"], o["mask"]  # (M, T, V, C) normalised, (M, T, V)
        with torch.inference_mode():
            res = net(torch.from_numpy(x[None]).to(self.device), torch.from_numpy(mk[None]).to(self.device))
        pred = (res["completed"] if isinstance(res, dict) else res)[0].float().cpu().numpy()
        unc = res.get("uncertainty") if isinstance(res, dict) else None
        unc = None if unc is None else unc[0].float().cpu().numpy()
        T_src = s.num_frames
        idx = uniform_indices(T_src, T, None)
        kp_s, mk_s = s.keypoint[:, idx], s.mask[:, idx]
        if self.pipeline_config.normalize:
            params = normalization_params(kp_s, mk_s, self.layout, align_view=self.pipeline_config.align_view)
            pred = invert_normalization(pred, params)
            if unc is not None:
                unc = unc * np.float32(params.scale)
        if unc is not None:  # map the expected error back with the coordinates, as one more channel
            pred = np.concatenate([pred, unc[..., None]], axis=-1)
        # map back to the source frames: mean of the network's values over the repeats of a frame
        M, V, C = s.num_persons, s.num_joints, pred.shape[-1]
        acc = np.zeros((M, T_src, V, C), dtype=np.float64)
        cnt = np.zeros(T_src, dtype=np.int64)
        np.add.at(acc, (slice(None), idx), pred.astype(np.float64))
        np.add.at(cnt, idx, 1)
        hit = cnt > 0
        src = s.keypoint if unc is None else np.concatenate([s.keypoint, np.zeros_like(s.keypoint[..., :1])], -1)
        knots = np.where(s.mask[..., None], src, 0.0).astype(np.float32)
        knots[:, hit] = np.where(s.mask[:, hit][..., None], src[:, hit],
                                 (acc[:, hit] / cnt[hit][None, :, None, None]).astype(np.float32))
        known = s.mask | hit[None, :, None]
        if not known.all():
            knots = fill(knots, known, "linear")
        if unc is None:
            return knots, None
        return knots[..., :-1], knots[..., -1]

    # -- misc ----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary of the checkpoint."""
        return {
            "model": self.model_name, "layout": self.layout.name, "num_joints": self.layout.num_joints,
            "dim": self.dim, "clip_len": self.clip_len, "max_persons": self.max_persons,
            "in_channels": self.in_channels, "features": list(self.pipeline_config.features),
            "filler": self.pipeline_config.filler, "class_names": self.class_names,
            "has_completion": self.has_completion, "path": self.path,
        }


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
