"""Northwestern-UCLA Multiview Action3D: ``all_sqe/a{action}_s{subject}_e{episode}_v{view}.json``.

Each file is ``{"file_name": str, "skeletons": T x 20 x 3, "label": 1..10}`` (Kinect v1 SDK joint
order: layout ``kinect_v1``, metres). Cross-view protocol: views 1 and 2 train (``xview_train``,
alias ``train``: 1020 clips), view 3 test (``xview_test``, alias ``test``: 464 clips).
Joints whose coordinates are exactly zero are missing.

Speed: the whole set (1484 files, 39 MB) parses in about a second: ``orjson`` when installed,
else the standard library, then one ``np.asarray`` per file.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    find_folder, load_json, make_sample, nonzero_mask, numbered_files, progress,
)
from finetec.data.readers.names import NW_UCLA_CLASSES
from finetec.errors import FinetecError

NAME = "nw_ucla"
DESCRIPTION = "NW-UCLA all_sqe/a*_s*_e*_v*.json (3D, 20 joints, cross-view split)"
_FILE = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_v(\d+)\.json$")
TRAIN_VIEWS = (1, 2)


def sniff(path: Path) -> bool:
    if not path.is_dir():
        return False
    folder = find_folder(path, "all_sqe", "a*_s*_e*_v*.json")
    return folder is not None and any(_FILE.match(p.name) for p in folder.glob("a*_s*_e*_v*.json"))


def read(path: Path, *, progress_bar: bool | None = None) -> SkeletonDataset:
    """Read the NW-UCLA ``all_sqe`` folder (or the folder containing it)."""
    folder = find_folder(path, "all_sqe", "a*_s*_e*_v*.json")
    if folder is None:
        raise FinetecError("not a NW-UCLA folder (expected all_sqe/a*_s*_e*_v*.json files)", path)
    entries = numbered_files(folder, "a*_s*_e*_v*.json", _FILE)
    K = len(NW_UCLA_CLASSES)
    samples, views = [], []
    for (a, s, e, v), f in progress(entries, "NW-UCLA", progress_bar):
        d = load_json(f)
        if not isinstance(d, dict) or "skeletons" not in d or "label" not in d:
            raise FinetecError("NW-UCLA file must be an object with 'skeletons' and 'label'", f)
        try:
            kp = np.asarray(d["skeletons"], dtype=np.float32)
        except (ValueError, TypeError):
            raise FinetecError("'skeletons' is not a T x 20 x 3 array of numbers", f) from None
        if kp.size == 0:
            raise FinetecError("clip is empty (0 frames)", f)
        if kp.ndim != 3 or kp.shape[2] != 3:
            raise FinetecError(f"'skeletons' must be T x 20 x 3, got shape {kp.shape}", f)
        if kp.shape[1] != 20:
            raise FinetecError(f"wrong joint count: expected 20 joints, got {kp.shape[1]}", f)
        label = d["label"]
        if not isinstance(label, int) or isinstance(label, bool) or not 1 <= label <= K:
            raise FinetecError(f"label {label!r} outside 1..{K}", f)
        kp = kp[None]
        samples.append(make_sample(kp, nonzero_mask(kp), id=f.stem, source=f, label=label - 1,
                                   num_classes=K, meta={"subject": s, "episode": e, "view": v}))
        views.append(v)
    vw = np.array(views)
    train = np.flatnonzero(np.isin(vw, TRAIN_VIEWS))
    test = np.flatnonzero(~np.isin(vw, TRAIN_VIEWS))
    return SkeletonDataset.from_samples(
        samples, "kinect_v1", NW_UCLA_CLASSES,
        splits={"xview_train": train, "xview_test": test, "train": train, "test": test},
        meta={"dataset": "NW-UCLA", "units": "metres"}, source=str(folder))
