"""The canonical dataset, so that every entry point can read it by detection: the single file
``NAME.finetec.npz`` or the memory-mapped folder ``NAME.finetec/`` (see
:mod:`finetec.data.dataset` and :mod:`finetec.data.store`)."""
from __future__ import annotations

import zipfile
from pathlib import Path

from finetec.data.dataset import SkeletonDataset
from finetec.data.store import is_store

NAME = "finetec"
DESCRIPTION = "finetec canonical dataset: a .finetec.npz file or a memory-mapped .finetec folder"


def sniff(path: Path) -> bool:
    if path.is_dir():
        # a damaged folder named *.finetec is still ours: the loader says which part is wrong
        return is_store(path) or path.name.endswith(".finetec")
    if not (path.is_file() and path.name.endswith(".npz")):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
    except (zipfile.BadZipFile, OSError):
        return path.name.endswith(".finetec.npz")  # damaged: let the loader say what is wrong
    return {"offsets.npy", "layout.npy"} <= names


def read(path: Path) -> SkeletonDataset:
    """Open a canonical dataset (a memory-mapped folder opens in O(1); a file is read whole)."""
    return SkeletonDataset.load(path)
