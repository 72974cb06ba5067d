"""PYSKL / mmaction2 skeleton pickles, the FineTec Gym288 release, and export to that layout.

Layout of the file::

    {"split": {name: [frame_dir, ...]},
     "annotations": [{"frame_dir": str, "label": int, "keypoint": (M, T, V, C),
                      "keypoint_score": (M, T, V) (2D only), "total_frames": T,
                      "img_shape": (H, W), ...}, ...]}

(a bare list of annotations is accepted too). The file is read with the restricted unpickler
(:mod:`finetec.data.safe_pickle`): a pickle that names anything but plain data and NumPy arrays is
refused.

Missing data:

- 2D: a joint is missing when its score is 0 and its coordinates are 0 (PYSKL's padding of absent
  persons and frames); ``score_threshold=t`` (> 0) additionally marks joints with score <= t missing.
  Scores are kept as the sample's ``score``.
- 3D (float16 in PYSKL's NTU files): joints whose coordinates are all zero are missing.
- Persons never observed in a clip are dropped (at least one is kept). A clip with nothing
  observed is an error unless ``skip_empty=true`` (then it is left out and listed in
  ``meta["skipped"]``; its split entries are counted as absent).

FineTec Gym288 release (documented choice): annotations may carry ``kp_w_gt`` (T, 17, 3) and
``kp_wo_gt`` (same layout), both ``x, y, score``. ``kp_w_gt`` is read as the ground-truth keypoint
sequence, ``kp_wo_gt`` as the corrupted one (its dropped frames are all-zero, hence missing).
``gym288_field`` picks ``keypoint``, ``kp_w_gt`` or ``kp_wo_gt``; by default ``keypoint`` when
present, else ``kp_w_gt``.

Class names: the ``class_names`` option; else a ``class_names`` list stored in the file (written by
:func:`write_pyskl`); else the NTU names when every ``frame_dir`` is an NTU sample name; else
``class_0``, ``class_1``, ...
"""
from __future__ import annotations

import math
import os
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from finetec.data import safe_pickle
from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    as_bool, as_float, as_int, as_label, choose_layout, class_names_option, generic_class_names, make_sample,
    nonzero_mask, progress, trim_persons,
)
from finetec.data.readers.names import NTU120_CLASSES
from finetec.data.readers.ntu import parse_name
from finetec.data.sample import Sample
from finetec.data.store import ClipStream
from finetec.errors import FinetecError
from finetec.fileio import atomic_path
from finetec.layouts import Layout

NAME = "pyskl"
USUAL_LAYOUTS = {17: "coco17"}   # PYSKL's 2D files (HRNet keypoints) are COCO-17
DESCRIPTION = "PYSKL / mmaction2 skeleton pickle (.pkl), incl. the FineTec Gym288 release"
GYM288_FIELDS = ("keypoint", "kp_w_gt", "kp_wo_gt")


def sniff(path: Path) -> bool:
    if not path.is_file() or path.suffix not in (".pkl", ".pickle"):
        return False
    with open(path, "rb") as f:
        head = f.read(2)
    return len(head) == 2 and head[0] == 0x80  # a binary pickle (protocol >= 2)


def _ann_field(ann: dict[str, Any], key: str, src: Path, i: int) -> np.ndarray:
    try:
        return np.asarray(ann[key])
    except KeyError:
        raise FinetecError(f"annotation {i} ({ann.get('frame_dir', '?')!r}) has no {key!r}", src) from None
    except (ValueError, TypeError):
        raise FinetecError(f"annotation {i}: {key!r} is not a rectangular array", src) from None


def _clip_arrays(ann: dict[str, Any], field: str, threshold: float, src: Path, i: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(keypoint (M,T,V,C), mask (M,T,V), score (M,T,V) or None) of one annotation."""
    kp = _ann_field(ann, field, src, i)
    if not np.issubdtype(kp.dtype, np.number):
        raise FinetecError(f"annotation {i}: {field!r} is not a numeric array", src)
    kp = kp.astype(np.float32)
    if kp.ndim == 3:
        kp = kp[None]
    if kp.ndim != 4:
        raise FinetecError(f"annotation {i}: {field!r} must be (M, T, V, C), got shape {kp.shape}", src)
    score = None
    if field != "keypoint":  # Gym288 fields: x, y, score
        if kp.shape[-1] != 3:
            raise FinetecError(f"annotation {i}: {field!r} must hold x, y, score, got shape {kp.shape}", src)
        kp, score = kp[..., :2], kp[..., 2]
    elif "keypoint_score" in ann:
        score = np.asarray(ann["keypoint_score"], dtype=np.float32)
        if score.ndim == 2:
            score = score[None]
        if score.shape != kp.shape[:3]:
            raise FinetecError(f"annotation {i}: keypoint_score shape {score.shape} does not match "
                               f"keypoint shape {kp.shape}", src)
    if kp.shape[-1] not in (2, 3):
        raise FinetecError(f"annotation {i}: keypoints must have 2 or 3 coordinates, got {kp.shape[-1]}", src)
    mask = nonzero_mask(kp)
    if score is not None:
        mask |= score != 0
        if threshold > 0:
            mask &= score > threshold
    return kp, mask, score


def _class_names(data: Any, option: Any, anns: list[dict[str, Any]], labels: list[int | None],
                 num_classes: Any, src: Path) -> list[str]:
    names = class_names_option(option, src)
    if names is None and isinstance(data, dict) and isinstance(data.get("class_names"), (list, tuple)):
        names = [str(c) for c in data["class_names"]]
    top = max((lab for lab in labels if lab is not None), default=-1)
    if names is None:
        K = as_int(num_classes, "num_classes", 1) if num_classes is not None else top + 1
        is_ntu = all(parse_name(str(a.get("frame_dir", ""))) for a in anns)
        if is_ntu and K <= 120:
            if num_classes is None:
                K = 60 if top < 60 else 120
            names = list(NTU120_CLASSES[:K])
        else:
            names = generic_class_names(K)
    if top >= len(names):
        raise FinetecError(f"label {top} outside 0..{len(names) - 1} ({len(names)} class names)", src)
    return names


def stream(path: Path, *, layout: str | None = None, score_threshold: float | str = 0.0,
           gym288_field: str | None = None, class_names: str | None = None,
           num_classes: int | str | None = None, skip_empty: bool | str = False,
           progress_bar: bool | None = None) -> ClipStream:
    """The clips of a PYSKL pickle one at a time (see the module docstring for the choices made).

    A pickle is one object: it is unpickled whole (peak memory about twice the file: its bytes
    while unpickling, plus the arrays; see docs/formats.md). Each annotation's arrays are released
    as soon as its clip has been handed over, so converting to a ``.finetec`` folder makes no
    further copy of the data.

    skip_empty: leave out clips with no frame, no person or nothing observed (listed in
    ``meta["skipped"]``) instead of stopping with an error.
    """
    skip = as_bool(skip_empty, "skip_empty")
    threshold = as_float(score_threshold, "score_threshold")
    if gym288_field is not None and gym288_field not in GYM288_FIELDS:
        raise FinetecError(f"option gym288_field={gym288_field!r}: choose one of {', '.join(GYM288_FIELDS)}")
    data = safe_pickle.load(path)
    if isinstance(data, dict) and "annotations" in data:
        anns, split = data["annotations"], data.get("split") or {}
    elif isinstance(data, list):
        anns, split = data, {}
    else:
        raise FinetecError("not a PYSKL pickle: expected a dict with 'annotations' or a list of annotations",
                           path)
    if not isinstance(anns, list) or not anns:
        raise FinetecError("the pickle holds no annotations", path)
    if not isinstance(split, dict):
        raise FinetecError("'split' must map split names to lists of frame_dir", path)
    # a first pass over what is cheap (fields, labels, shapes) fixes the sizes before any clip
    fields, labels, max_persons, has_score, shape = [], [], 1, False, None
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise FinetecError(f"annotation {i} is not a dict", path)
        field = gym288_field or ("kp_w_gt" if "keypoint" not in ann and "kp_w_gt" in ann else "keypoint")
        fields.append(field)
        lab = as_label(ann.get("label"), f"annotation {i}", path)
        labels.append(None if lab is None or lab < 0 else lab)
        kp_shape = np.shape(_ann_field(ann, field, path, i))
        if len(kp_shape) == 4:
            max_persons = max(max_persons, int(kp_shape[0]))
        if shape is None and len(kp_shape) in (3, 4):
            shape = kp_shape
        has_score |= field != "keypoint" or "keypoint_score" in ann
    if shape is None:
        raise FinetecError(f"annotation 0: {fields[0]!r} must be (M, T, V, C)", path)
    V, C = int(shape[-2]), (2 if fields[0] != "keypoint" else int(shape[-1]))
    stored = data.get("finetec_layout") if isinstance(data, dict) else None
    lay = choose_layout(layout if layout is not None else
                        (Layout.from_dict(stored, origin=str(path)) if isinstance(stored, dict) else None),
                        V, path, usual=USUAL_LAYOUTS)
    names = _class_names(data, class_names, anns, labels, num_classes, path)
    index: dict[str, int] = {}
    skipped: list[str] = []

    def clips() -> Iterator[Sample]:
        for i, ann in enumerate(progress(anns, "PYSKL clips", progress_bar)):
            kp, mask, score = _clip_arrays(ann, fields[i], threshold, path, i)
            cid = str(ann.get("frame_dir", f"clip_{i:06d}"))
            if skip and not mask.any():
                skipped.append(cid)
                continue
            kp, mask, score = trim_persons(kp, mask, score)
            meta = {k: [int(v) for v in np.asarray(ann[k]).ravel()] for k in ("img_shape", "original_shape")
                    if k in ann}
            index.setdefault(cid, len(index))
            anns[i] = None  # this annotation's arrays are no longer needed
            yield make_sample(kp, mask, score=score, id=cid, source=path, label=labels[i],
                              num_classes=len(names), meta=meta)

    def finish() -> tuple[dict[str, Any], dict[str, Any]]:
        if not index:
            raise FinetecError("every clip was skipped (nothing observed)", path)
        splits, absent = {}, {}
        for name, members in split.items():
            if not isinstance(members, (list, tuple, np.ndarray)):
                raise FinetecError(f"split {name!r} must be a list of frame_dir names", path)
            idx = [index[str(m)] for m in members if str(m) in index]
            splits[str(name)] = idx
            if len(idx) != len(members):
                absent[str(name)] = len(members) - len(idx)
        meta: dict[str, Any] = {"dataset": Path(path).stem}
        if gym288_field:
            meta["gym288_field"] = gym288_field
        if absent:
            meta["split_entries_without_clip"] = absent
        if skipped:
            meta["skipped"] = skipped
        return splits, meta

    return ClipStream(clips(), layout=lay, class_names=names, max_persons=max_persons, dim=C,
                      has_score=has_score, finish=finish, source=str(path))


def read(path: Path, **options: Any) -> SkeletonDataset:
    """Read a PYSKL pickle into memory; the options are those of :func:`stream`."""
    return SkeletonDataset.from_stream(stream(path, **options))


def _img_shape(sample_kp: np.ndarray, mask: np.ndarray, meta: dict[str, Any]) -> list[int]:
    """[H, W] from the clip's metadata, else the smallest frame that contains every joint."""
    for key in ("img_shape", "original_shape"):
        if key in meta and len(meta[key]) >= 2:
            return [int(meta[key][0]), int(meta[key][1])]
    pts = sample_kp[mask]
    if pts.size == 0:
        return [1, 1]
    return [int(math.ceil(float(pts[:, 1].max()))) + 1, int(math.ceil(float(pts[:, 0].max()))) + 1]


def write_pyskl(ds: SkeletonDataset, path: str | os.PathLike) -> Path:
    """Export ``ds`` as a PYSKL pickle (atomic write).

    Keypoints are float32 (M, T, V, C) with missing joints zeroed; 2D clips get
    ``keypoint_score`` (the stored score, or 1 for observed / 0 for missing joints) and
    ``img_shape``; unlabelled clips have no ``label``. Splits become lists of ``frame_dir``.
    Two extra top-level keys keep what PYSKL has no place for: ``class_names`` and
    ``finetec_layout`` (the layout as a plain dict); :func:`read` uses both.
    """
    anns = []
    for s in ds:
        kp = np.where(s.mask[..., None], s.keypoint, 0.0).astype(np.float32)
        ann: dict[str, Any] = {"frame_dir": s.id, "total_frames": s.num_frames, "keypoint": kp}
        if s.label is not None:
            ann["label"] = s.label
        if s.dim == 2:
            score = s.score if s.score is not None else s.mask.astype(np.float32)
            ann["keypoint_score"] = np.where(s.mask, score, 0.0).astype(np.float32)
            shape = _img_shape(kp, s.mask, s.meta)
            ann["img_shape"] = tuple(shape)
            ann["original_shape"] = tuple(shape)
        anns.append(ann)
    data = {
        "split": {name: [str(ds.ids[i]) for i in idx] for name, idx in ds.splits.items()},
        "annotations": anns,
        "class_names": list(ds.class_names),
        "finetec_layout": ds.layout.to_dict(),
    }
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            pickle.dump(data, f, protocol=4)
    return Path(path)
