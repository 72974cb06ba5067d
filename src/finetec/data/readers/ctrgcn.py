"""CTR-GCN's preprocessed NTU files (``NTU60_CS.npz`` and friends).

Arrays: ``x_train`` (N, T, 150), ``y_train`` one-hot (N, K) (integer labels (N,) accepted),
``x_test``, ``y_test``. 150 = 2 persons x 25 joints x 3 coordinates (layout ``ntu25``). Every clip
is zero-padded to T frames.

- A person-frame whose 75 values are all zero is missing (CTR-GCN's way of writing an absent
  second person or a padding frame); within an observed person-frame every joint is observed
  (CTR-GCN centres the data, so one joint can legitimately sit exactly at the origin).
- Trailing frames with nothing observed (the padding) are trimmed; an absent second person is
  dropped.
- Splits ``train`` / ``test``; ids ``train_000000`` ... / ``test_000000`` ...
- Class names: NTU's when K is 60 or 120, else ``class_0`` ...

The arrays are streamed from the archive in chunks, so a 10 GB file is converted without loading
it whole.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    check_npz, class_names_option, describe, generic_class_names, iter_chunks, make_sample, progress_counter,
    trim_persons, trim_trailing_frames,
)
from finetec.data.readers.names import NTU120_CLASSES
from finetec.errors import FinetecError

NAME = "ctrgcn"
DESCRIPTION = "CTR-GCN preprocessed NTU .npz (x_train/y_train/x_test/y_test, 2x25x3)"
CHUNK = 256


def _members(path: Path) -> set[str]:
    with zipfile.ZipFile(path) as z:
        return {n[:-4] for n in z.namelist() if n.endswith(".npy")}


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix == ".npz"):
        return False
    try:
        names = _members(path)
    except (zipfile.BadZipFile, OSError):
        return False
    return bool({"x_train", "x_test"} & names) and not {"offsets", "layout"} <= names


def _header(f: Any) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    return np.lib.format.read_array_header_2_0(f)


def _stream_rows(path: Path, name: str, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (start row, rows) of array ``name`` from the archive, ``chunk`` rows at a time."""
    with zipfile.ZipFile(path) as z, z.open(name + ".npy") as f:
        shape, fortran, dtype = _header(f)
        if dtype.hasobject:
            raise FinetecError(f"array {name!r} holds Python objects (refused: no pickle)", path)
        if fortran or len(shape) == 0:  # rare: fall back to one full read
            with np.load(path, allow_pickle=False) as zz:
                arr = zz[name]
            for a, b in iter_chunks(len(arr), chunk):
                yield a, arr[a:b]
            return
        row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for a, b in iter_chunks(shape[0], chunk):
            buf = f.read(row * (b - a))
            if len(buf) != row * (b - a):
                raise FinetecError(f"array {name!r} is truncated", path)
            yield a, np.frombuffer(buf, dtype=dtype).reshape((b - a, *shape[1:]))


def _labels(path: Path, name: str) -> tuple[np.ndarray, int]:
    with np.load(path, allow_pickle=False) as z:
        y = np.asarray(z[name])
    if y.ndim == 2:
        if y.shape[1] < 1:
            raise FinetecError(f"{name!r} has no classes", path)
        return y.argmax(axis=1).astype(np.int64), y.shape[1]
    if y.ndim == 1 and np.issubdtype(y.dtype, np.integer):
        return y.astype(np.int64), int(y.max()) + 1 if y.size else 0
    raise FinetecError(f"{name!r} must be one-hot (N, K) or integer labels (N,), got shape {y.shape}", path)


def read(path: Path, *, class_names: str | None = None, progress_bar: bool | None = None) -> SkeletonDataset:
    """Read a CTR-GCN ``.npz`` (see the module docstring)."""
    check_npz(path)
    try:
        names = _members(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise FinetecError(f"cannot read .npz archive ({describe(e)})", path) from None
    parts = [p for p in ("train", "test") if f"x_{p}" in names]
    if not parts:
        raise FinetecError("not a CTR-GCN file: no x_train or x_test array", path)
    labels: dict[str, np.ndarray] = {}
    K = 0
    for p in parts:
        if f"y_{p}" not in names:
            raise FinetecError(f"x_{p} has no matching y_{p}", path)
        labels[p], k = _labels(path, f"y_{p}")
        K = max(K, k)
    cls = class_names_option(class_names, path)
    if cls is None:
        cls = list(NTU120_CLASSES[:K]) if K in (60, 120) else generic_class_names(K)
    samples, splits = [], {}
    try:
        for p in parts:
            start = len(samples)
            n = len(labels[p])
            bar = progress_counter(n, f"CTR-GCN {p}", progress_bar)
            for a, rows in _stream_rows(path, f"x_{p}", CHUNK):
                bar.update(len(rows))
                if rows.ndim != 3 or rows.shape[2] != 150:
                    raise FinetecError(f"x_{p} must be (N, T, 150) = 2 persons x 25 joints x 3, got rows "
                                       f"of shape {rows.shape[1:]}", path)
                if a + len(rows) > n:
                    raise FinetecError(f"x_{p} has more clips than y_{p} ({n})", path)
                for j, x in enumerate(rows):
                    kp = x.reshape(x.shape[0], 2, 25, 3).transpose(1, 0, 2, 3).astype(np.float32)
                    present = (kp != 0).any(axis=(2, 3))                      # (2, T)
                    mask = np.repeat(present[:, :, None], 25, axis=2)          # (2, T, 25)
                    kp, mask, _ = trim_trailing_frames(kp, mask)
                    kp, mask, _ = trim_persons(kp, mask)
                    samples.append(make_sample(kp, mask, id=f"{p}_{a + j:06d}", source=path,
                                               label=int(labels[p][a + j]), num_classes=len(cls)))
            bar.close()
            if len(samples) - start != n:
                raise FinetecError(f"x_{p} has {len(samples) - start} clips but y_{p} has {n}", path)
            splits[p] = np.arange(start, len(samples))
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise FinetecError(f"damaged .npz archive ({describe(e)})", path) from None
    return SkeletonDataset.from_samples(samples, "ntu25", cls, splits=splits,
                                        meta={"dataset": path.stem, "units": "metres"}, source=str(path))
