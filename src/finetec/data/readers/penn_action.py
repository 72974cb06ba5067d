"""Penn Action: one MATLAB file per clip, ``labels/0001.mat`` ... ``labels/2326.mat``.

Fields used: ``x``, ``y`` (T, 13) pixels, ``visibility`` (T, 13) 1 visible / 0 occluded, ``action``
(class name), ``pose`` (camera view), ``train`` (1 train, -1 test), ``dimensions`` [H, W, T].
Occluded joints are missing (mask False, coordinates zeroed): about 22 % of joint-frames.
Layout ``penn13``; 15 classes sorted by name; splits ``train`` / ``test`` from the ``train`` field.

One clip (``1516.mat``) marks every joint of every frame occluded although its coordinates are
annotated; a clip whose visibility is entirely zero is read with all its annotated joints observed
and ``meta["visibility_ignored"] = True`` (otherwise it would be an all-missing clip). The option
``visibility=false`` ignores visibility for every clip.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import as_bool, find_folder, load_mat, make_sample, progress
from finetec.errors import FinetecError

NAME = "penn_action"
DESCRIPTION = "Penn Action labels/*.mat (2D, 13 joints, visibility as mask)"
_FILE = re.compile(r"^\d+\.mat$")


def _folder(path: Path) -> Path | None:
    folder = find_folder(path, "labels", "[0-9]*.mat")
    if folder is None:
        return None
    return folder if any(_FILE.match(p.name) for p in folder.glob("*.mat")) else None


def sniff(path: Path) -> bool:
    return path.is_dir() and _folder(path) is not None


def _field(d: dict[str, Any], key: str, f: Path) -> np.ndarray:
    if key not in d:
        raise FinetecError(f"Penn Action file has no field {key!r}", f)
    return np.asarray(d[key])


def _read_one(f: Path) -> dict[str, Any]:
    d = load_mat(f, ("x", "y", "visibility", "action", "pose", "train", "dimensions"))
    x, y, vis = (_field(d, k, f).astype(np.float64) for k in ("x", "y", "visibility"))
    if x.ndim != 2 or x.shape != y.shape or x.shape != vis.shape:
        raise FinetecError(f"x, y, visibility must be (T, 13) of one shape, got {x.shape}, {y.shape}, "
                           f"{vis.shape}", f)
    if x.shape[1] != 13:
        raise FinetecError(f"wrong joint count: expected 13 joints, got {x.shape[1]}", f)
    action = _field(d, "action", f).ravel()
    if action.size != 1:
        raise FinetecError("field 'action' must hold one class name", f)
    train = int(_field(d, "train", f).ravel()[0])
    pose = _field(d, "pose", f).ravel()
    dims = _field(d, "dimensions", f).ravel() if "dimensions" in d else np.zeros(0)
    return {
        "xy": np.stack([x, y], axis=-1), "vis": vis > 0, "action": str(action[0]), "train": train,
        "pose": str(pose[0]) if pose.size else "", "dimensions": [int(v) for v in dims],
    }


def read(path: Path, *, visibility: bool | str = True, progress_bar: bool | None = None) -> SkeletonDataset:
    """Read the Penn Action ``labels`` folder (or the folder containing it).

    visibility: occluded joints (visibility 0) are missing; false keeps every annotated joint.
    """
    use_vis = as_bool(visibility, "visibility")
    folder = _folder(path)
    if folder is None:
        raise FinetecError("not a Penn Action folder (expected labels/NNNN.mat files)", path)
    files = sorted((p for p in folder.glob("*.mat") if _FILE.match(p.name)), key=lambda p: int(p.stem))
    raw = [_read_one(f) for f in progress(files, "Penn Action", progress_bar)]
    class_names = sorted({r["action"] for r in raw})
    index = {c: i for i, c in enumerate(class_names)}
    samples = []
    for f, r in zip(files, raw):
        meta: dict[str, Any] = {"pose": r["pose"], "dimensions": r["dimensions"]}
        mask = r["vis"]
        if not use_vis or not mask.any():
            if use_vis:
                meta["visibility_ignored"] = True
            mask = np.isfinite(r["xy"]).all(-1)
        if len(r["dimensions"]) >= 2:
            meta["img_shape"] = r["dimensions"][:2]  # [H, W]
        samples.append(make_sample(r["xy"][None], mask[None], id=f.stem, source=f,
                                   label=index[r["action"]], num_classes=len(class_names), meta=meta))
    train = [i for i, r in enumerate(raw) if r["train"] == 1]
    test = [i for i, r in enumerate(raw) if r["train"] != 1]
    return SkeletonDataset.from_samples(
        samples, "penn13", class_names, splits={"train": train, "test": test},
        meta={"dataset": "Penn Action", "units": "pixels", "y_axis": "down"}, source=str(folder))
