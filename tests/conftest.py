"""Shared test fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("FINETEC_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def shared_data(name: str) -> Path:
    """Path to a dataset in ../shared/data; skips the test with a reason when it is absent."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real dataset not available: {p} (tests on real data need ../shared/data)")
    return p


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Unit tests use tiny tensors: one intra-op thread avoids spin-waiting threads, which made
    the suite several times slower on 2 shared cores. Benchmarks choose their own thread count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_dataset_file(folder: Path, *, clips: int, seed: int, per_class: int) -> Path:
    """A small canonical file: `per_class` synthetic clips of classes 0-2, each in 'train' and 'test'."""
    import numpy as np

    from finetec.data import open_dataset

    ds = open_dataset(f"synthetic:coco17?clips={clips}&seed={seed}")
    pick = np.concatenate([np.flatnonzero(ds.label == c)[:per_class] for c in (0, 1, 2)])
    sub = ds.subset(pick)
    sub.splits = {"train": np.arange(len(sub)), "test": np.arange(len(sub))}
    path = folder / "tiny.finetec.npz"
    sub.save(path)
    return path
