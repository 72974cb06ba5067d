"""UTD-MHAD skeletons: ``Skeleton/a{action}_s{subject}_t{trial}_skeleton.mat``.

Each file holds ``d_skel`` (20, 3, T) in metres (Kinect v1, UTD joint order: layout
``utd_mhad20``). 27 classes; cross-subject protocol: subjects 1, 3, 5, 7 train
(``xsub_train``, alias ``train``), 2, 4, 6, 8 test (``xsub_test``, alias ``test``).
Joints whose three coordinates are exactly zero (untracked) are missing.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    find_folder, load_mat, make_sample, nonzero_mask, numbered_files, progress,
)
from finetec.data.readers.names import UTD_MHAD_CLASSES
from finetec.errors import FinetecError

NAME = "utd_mhad"
DESCRIPTION = "UTD-MHAD Skeleton/a*_s*_t*_skeleton.mat (3D, 20 joints)"
_FILE = re.compile(r"^a(\d+)_s(\d+)_t(\d+)_skeleton\.mat$")
TRAIN_SUBJECTS = (1, 3, 5, 7)


def sniff(path: Path) -> bool:
    return path.is_dir() and find_folder(path, "Skeleton", "a*_s*_t*_skeleton.mat") is not None


def _read_one(f: Path) -> np.ndarray:
    d = load_mat(f, ("d_skel",))
    if "d_skel" not in d:
        raise FinetecError("UTD-MHAD file has no variable 'd_skel'", f)
    sk = np.asarray(d["d_skel"], dtype=np.float64)
    if sk.ndim != 3 or sk.shape[1] != 3:
        raise FinetecError(f"d_skel must be (20, 3, T), got {sk.shape}", f)
    if sk.shape[0] != 20:
        raise FinetecError(f"wrong joint count: expected 20 joints, got {sk.shape[0]}", f)
    return sk.transpose(2, 0, 1)  # (T, 20, 3)


def read(path: Path, *, progress_bar: bool | None = None) -> SkeletonDataset:
    """Read the UTD-MHAD ``Skeleton`` folder (or the folder containing it)."""
    folder = find_folder(path, "Skeleton", "a*_s*_t*_skeleton.mat")
    if folder is None:
        raise FinetecError("not a UTD-MHAD folder (expected Skeleton/a*_s*_t*_skeleton.mat files)", path)
    entries = numbered_files(folder, "a*_s*_t*_skeleton.mat", _FILE)
    K = len(UTD_MHAD_CLASSES)
    samples, subjects = [], []
    for (a, s, t), f in progress(entries, "UTD-MHAD", progress_bar):
        if not 1 <= a <= K:
            raise FinetecError(f"action id {a} outside 1..{K}", f)
        kp = _read_one(f)[None]
        samples.append(make_sample(kp, nonzero_mask(kp), id=f"a{a}_s{s}_t{t}", source=f, label=a - 1,
                                   num_classes=K, meta={"subject": s, "trial": t}))
        subjects.append(s)
    subj = np.array(subjects)
    train = np.flatnonzero(np.isin(subj, TRAIN_SUBJECTS))
    test = np.flatnonzero(~np.isin(subj, TRAIN_SUBJECTS))
    return SkeletonDataset.from_samples(
        samples, "utd_mhad20", UTD_MHAD_CLASSES,
        splits={"xsub_train": train, "xsub_test": test, "train": train, "test": test},
        meta={"dataset": "UTD-MHAD", "units": "metres"}, source=str(folder))
