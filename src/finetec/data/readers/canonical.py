"""The canonical ``.finetec.npz`` file, so that every entry point can read it by detection."""
from __future__ import annotations

import zipfile
from pathlib import Path

from finetec.data.dataset import SkeletonDataset

NAME = "finetec"
DESCRIPTION = "finetec canonical dataset file (.finetec.npz)"


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.name.endswith(".npz")):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return path.name.endswith(".finetec.npz")  # damaged: let the loader say what is wrong
    return {"offsets.npy", "layout.npy"} <= names


def read(path: Path) -> SkeletonDataset:
    """Load a canonical dataset file (see :mod:`finetec.data.dataset`)."""
    return SkeletonDataset.load(path)
