"""The memory-mapped canonical dataset: a folder ``NAME.finetec/`` of flat ``.npy`` parts.

It holds the same fields as the ``.finetec.npz`` file (see :mod:`finetec.data.dataset`), one
part per field, so that opening it costs the same for 100 clips or 10 million and reading a
clip touches only that clip's bytes::

    index.json            format, version, sizes, layout, class names, dataset metadata, and for
                          every part its byte size and the SHA-256 of its array data
    keypoint.npy          float32 (F, M, V, C)   frames of every clip, concatenated
    mask.npy              bool    (F, M, V)
    score.npy             float32 (F, M, V)      (optional)
    offsets.npy           int64   (N + 1,)       clip i is frames offsets[i]:offsets[i+1]
    persons.npy           int16   (N,)
    label.npy             int64   (N,)           -1 where unknown
    id.npy                <U{w}   (N,)
    split__<name>.npy     int64   index arrays
    clip_meta.jsonl       one JSON object per clip (optional), with
    clip_meta_offsets.npy int64   (N + 1,)       byte offsets of each line
    extra__<name>.npy     per-frame extras (e.g. a completion's ``filled`` mask)

Every ``.npy`` part opens with ``np.load(part, mmap_mode="r")``; no pickle anywhere.

Trust: the content is validated once, when the folder is written (:class:`DatasetWriter`, the
same checks as a freshly read dataset). Opening checks the index, that every part exists with its
recorded size, dtype and shape, that the offset table increases from 0 to the number of frames,
and the value range (a min and a max) of the persons, labels and splits (vectorised passes over
the small per-clip arrays, a millisecond or two at NTU-120 scale); reading a clip checks again
that its offsets lie inside the data (the parts are memory-mapped, so a file changed after opening
is seen). ``verify`` (``finetec inspect --verify``)
re-checks everything: checksums and content. A damaged folder is a one-line
:class:`~finetec.errors.FinetecError` naming the part.

Memory: ``keypoint``/``mask``/``score`` of the opened dataset are read-only memory maps (whole-
dataset code such as ``inspect`` pages through them); ``ds[i]`` reads the clip with positioned
reads (``os.preadv``) into fresh arrays, so a process's resident memory does not grow with the
number of clips it has read.
"""
from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from finetec.errors import FinetecError
from finetec.layouts import Layout, get_layout

FORMAT = "finetec-dataset"
VERSION = 1
SUFFIX = ".finetec"
INDEX = "index.json"
HEADER_BYTES = 128        # .npy header of the streamed parts (fixed, rewritten with the final shape)
MAX_INDEX_BYTES = 256 << 20
CHUNK_FRAMES = 1 << 16    # frames per step when scanning a whole part
HASH_BLOCK = 8 << 20

__all__ = ["ClipStream", "DatasetWriter", "FORMAT", "SUFFIX", "is_store", "read_store", "verify", "write_store"]


def is_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with an ``index.json`` of this format."""
    p = Path(path)
    if not (p / INDEX).is_file():
        return False
    try:
        with open(p / INDEX, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return FORMAT.encode() in head


# -- writing --------------------------------------------------------------------------------------
def _npy_header(dtype: np.dtype, shape: tuple[int, ...], size: int = HEADER_BYTES) -> bytes:
    """A version-1.0 ``.npy`` header of exactly ``size`` bytes."""
    d = repr({"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": tuple(int(s) for s in shape)}).encode("latin1")
    room = size - 10
    if len(d) + 1 > room:
        raise ValueError("npy header too long")
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", room) + d + b" " * (room - len(d) - 1) + b"\n"


class _StreamedArray:
    """A ``.npy`` file written row block by row block; the shape's first axis is set at close."""

    def __init__(self, path: Path, dtype: Any, tail: tuple[int, ...]):
        self.path, self.dtype, self.tail = path, np.dtype(dtype), tuple(tail)
        self.rows = 0
        self.sha = hashlib.sha256()
        self.f = open(path, "wb", buffering=1 << 20)
        self.f.write(b"\0" * HEADER_BYTES)

    def write(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.tail:
            raise ValueError(f"{self.path.name}: rows of shape {block.shape[1:]}, expected {self.tail}")
        data = memoryview(block).cast("B")
        self.sha.update(data)
        self.f.write(data)
        self.rows += block.shape[0]

    def close(self) -> dict[str, Any]:
        self.f.seek(0)
        self.f.write(_npy_header(self.dtype, (self.rows, *self.tail)))
        self.f.close()
        return {"bytes": self.path.stat().st_size, "sha256": self.sha.hexdigest()}

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.f.close()


def _save_small(path: Path, arr: np.ndarray) -> dict[str, Any]:
    """Write a small array as ``.npy`` (same fixed header) and return its part record."""
    arr = np.ascontiguousarray(arr)
    s = _StreamedArray(path, arr.dtype, arr.shape[1:])
    s.write(arr)
    return s.close()


@contextlib.contextmanager
def _atomic_folder(path: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder beside ``path``, renamed onto it on success (an existing ``path`` is
    replaced only with ``overwrite``); removed on any error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists() or path.is_symlink():
            if not overwrite:
                raise FinetecError("already exists (use --overwrite to replace it)", path)
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            os.replace(path, old / "x")  # a file or a folder, moved aside in one step
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class DatasetWriter:
    """Write a memory-mapped dataset clip by clip, in bounded memory.

    ``max_persons`` (M) and ``dim`` (C) fix the frame layout; clips with fewer persons are padded
    (mask False). Each clip is checked as it is added (the checks of a freshly read dataset: shape,
    joint count, NaN/Inf at observed joints, label range, unique id). Memory: the open file
    buffers (a few MB) plus about 200 bytes per clip for the index (offsets, persons, labels, ids
    and the set of ids seen), whatever the size of the clips.
    Use as a context manager, or call :meth:`close` / :meth:`abort`; nothing is left at ``path``
    unless :meth:`close` succeeds.

        with DatasetWriter("ntu.finetec", layout, names, max_persons=2, dim=3) as w:
            for s in samples:
                w.add(s)
            w.close(splits={"train": [...]}, meta={...})
    """

    def __init__(self, path: str | os.PathLike, layout: Any, class_names: Sequence[str], *,
                 max_persons: int, dim: int, score: bool = False, overwrite: bool = False,
                 source: str | None = None):

        self.path = Path(path)
        self.layout = get_layout(layout)
        self.class_names = [str(c) for c in class_names]
        self.M, self.V, self.C = int(max_persons), self.layout.num_joints, int(dim)
        if self.M < 1 or self.C not in (2, 3):
            raise FinetecError(f"cannot write a dataset with M={self.M}, C={self.C}", self.path)
        self.has_score = bool(score)
        self.source = source
        self._ctx = _atomic_folder(self.path, overwrite)
        self.dir = self._ctx.__enter__()
        self._closed = False
        M, V, C = self.M, self.V, self.C
        self._kp = _StreamedArray(self.dir / "keypoint.npy", np.float32, (M, V, C))
        self._mk = _StreamedArray(self.dir / "mask.npy", np.bool_, (M, V))
        self._sc = _StreamedArray(self.dir / "score.npy", np.float32, (M, V)) if score else None
        self._meta_f = open(self.dir / "clip_meta.jsonl", "wb", buffering=1 << 20)
        self._meta_sha = hashlib.sha256()
        self._meta_off = array.array("q", [0])
        self._any_meta = False
        self._offsets = array.array("q", [0])
        self._persons = array.array("h")
        self._labels = array.array("q")
        self._ids: list[str] = []
        self._seen: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._closed:
            self.abort(exc)

    def add(self, sample: Any) -> None:
        """Append one :class:`~finetec.data.sample.Sample` (checked; its error names its file)."""
        src = sample.source or self.source
        where = f"clip {sample.id!r}"
        kp, mk = sample.keypoint, sample.mask
        m, T, V, C = kp.shape
        if V != self.V:
            raise FinetecError(f"{where} has {V} joints but layout {self.layout.name!r} has {self.V}", src)
        if C != self.C:
            raise FinetecError(f"{where} has C={C}, others C={self.C}", src)
        if m > self.M:
            raise FinetecError(f"{where} has {m} persons, more than M={self.M}", src)
        if sample.id in self._seen:
            raise FinetecError(f"clip ids are not unique ({sample.id!r} twice)", src)
        check_clip(kp, mk, sample.score, src, where)
        K = len(self.class_names)
        lab = -1 if sample.label is None else int(sample.label)
        if lab < -1 or (K and lab >= K):
            raise FinetecError(f"{where}: label {lab} outside 0..{K - 1}", src)
        block = np.zeros((T, self.M, V, C), np.float32)
        block[:, :m] = kp.transpose(1, 0, 2, 3)
        self._kp.write(block)
        mblock = np.zeros((T, self.M, V), bool)
        mblock[:, :m] = mk.transpose(1, 0, 2)
        self._mk.write(mblock)
        if self._sc is not None:
            sc = sample.score if sample.score is not None else mk.astype(np.float32)
            sblock = np.zeros((T, self.M, V), np.float32)
            sblock[:, :m] = sc.transpose(1, 0, 2)
            self._sc.write(sblock)
        elif sample.score is not None:
            raise FinetecError(f"{where} has scores but the dataset was opened without them", src)
        line = (json.dumps(sample.meta, sort_keys=True) + "\n").encode() if sample.meta else b"{}\n"
        self._any_meta |= bool(sample.meta)
        self._meta_f.write(line)
        self._meta_sha.update(line)
        self._meta_off.append(self._meta_off[-1] + len(line))
        self._offsets.append(self._offsets[-1] + T)
        self._persons.append(m)
        self._labels.append(lab)
        self._ids.append(str(sample.id))
        self._seen.add(str(sample.id))

    def close(self, splits: dict[str, Sequence[int]] | None = None, meta: dict[str, Any] | None = None,
              extra: dict[str, np.ndarray] | None = None) -> Path:
        """Finish: write the index parts and ``index.json``, then move the folder into place."""
        n = len(self._ids)
        if n == 0:
            raise FinetecError("no clips found", self.source)
        parts: dict[str, Any] = {}
        parts["keypoint.npy"] = self._kp.close()
        parts["mask.npy"] = self._mk.close()
        if self._sc is not None:
            parts["score.npy"] = self._sc.close()
        self._meta_f.close()
        if self._any_meta:
            parts["clip_meta.jsonl"] = {"bytes": (self.dir / "clip_meta.jsonl").stat().st_size,
                                        "sha256": self._meta_sha.hexdigest()}
            parts["clip_meta_offsets.npy"] = _save_small(self.dir / "clip_meta_offsets.npy",
                                                         np.frombuffer(self._meta_off, np.int64))
        else:
            (self.dir / "clip_meta.jsonl").unlink()
        parts["offsets.npy"] = _save_small(self.dir / "offsets.npy", np.frombuffer(self._offsets, np.int64))
        parts["persons.npy"] = _save_small(self.dir / "persons.npy", np.frombuffer(self._persons, np.int16))
        parts["label.npy"] = _save_small(self.dir / "label.npy", np.frombuffer(self._labels, np.int64))
        parts["id.npy"] = _save_small(self.dir / "id.npy", np.array(self._ids, dtype=str))
        for name, idx in (splits or {}).items():
            idx = np.asarray(idx, dtype=np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise FinetecError(f"split {name!r} refers to clips outside 0..{n - 1}", self.source)
            parts[f"split__{name}.npy"] = _save_small(self.dir / f"split__{name}.npy", idx)
        F = int(self._offsets[-1])
        for name, arr in (extra or {}).items():
            arr = np.asarray(arr)
            if arr.shape[:1] != (F,):
                raise ValueError(f"extra array {name!r} must have one row per frame ({F})")
            parts[f"extra__{name}.npy"] = _save_small(self.dir / f"extra__{name}.npy", arr)
        index = {
            "format": FORMAT, "version": VERSION,
            "num_clips": n, "num_frames": F, "max_persons": self.M, "num_joints": self.V, "dim": self.C,
            "layout": self.layout.to_dict(), "class_names": self.class_names,
            "meta": dict(meta or {}), "parts": parts,
        }
        try:
            text = json.dumps(index, indent=1, allow_nan=False)  # "format" first: see is_store
        except (TypeError, ValueError) as e:
            raise ValueError(f"dataset metadata is not JSON-serialisable: {e}") from None
        (self.dir / INDEX).write_text(text, encoding="utf-8")
        self._closed = True
        self._ctx.__exit__(None, None, None)
        return self.path

    def abort(self, exc: BaseException | None = None) -> None:
        """Drop everything written so far."""
        if self._closed:
            return
        self._closed = True
        for s in (self._kp, self._mk, self._sc):
            if s is not None:
                s.abort()
        with contextlib.suppress(OSError):
            self._meta_f.close()
        e = exc if exc is not None else FinetecError("aborted")
        with contextlib.suppress(BaseException):
            self._ctx.__exit__(type(e), e, None)


def write_store(ds: Any, path: str | os.PathLike, extra: dict[str, np.ndarray] | None = None,
                overwrite: bool = True) -> Path:
    """Write a :class:`~finetec.data.dataset.SkeletonDataset` as a memory-mapped folder."""
    with DatasetWriter(path, ds.layout, ds.class_names, max_persons=ds.max_persons, dim=ds.dim,
                       score=ds.score is not None, overwrite=overwrite, source=ds.source) as w:
        for i in range(len(ds)):
            w.add(ds[i])
        return w.close(splits=ds.splits, meta=ds.meta, extra=extra)


# -- checks shared by writing, loading and verifying ----------------------------------------------
def check_clip(kp: np.ndarray, mk: np.ndarray, score: np.ndarray | None, src: Any, where: str) -> None:
    """The content checks of one clip (M, T, V, C): boolean mask of matching shape, finite
    observed coordinates, finite scores."""
    if mk.dtype != np.bool_:
        raise FinetecError(f"{where}: mask must be boolean, got {mk.dtype}", src)
    if mk.shape != kp.shape[:3]:
        raise FinetecError(f"{where}: mask shape {mk.shape} does not match keypoint shape {kp.shape}", src)
    if kp.shape[1] < 1:
        raise FinetecError(f"{where}: clip is empty (0 frames)", src)
    if not np.isfinite(kp).all() and not np.isfinite(kp[mk]).all():  # the cheap test first
        raise FinetecError(f"{where}: NaN or Inf in observed keypoints", src)
    if score is not None and not np.isfinite(score).all():
        raise FinetecError(f"{where}: NaN or Inf in scores", src)


def check_arrays(ds: Any, src: Any = None) -> None:
    """Every content check of a whole dataset, in chunks of frames (bounded memory): dtypes, person
    counts within 1..M, nothing observed in padding persons, finite observed coordinates and
    scores. Errors name the first bad clip."""
    src = src if src is not None else ds.source
    kp, mk, sc = ds.keypoint, ds.mask, ds.score
    if not np.issubdtype(kp.dtype, np.floating):
        raise FinetecError(f"keypoint must be a float array, got {kp.dtype}", src)
    if mk.dtype != np.bool_:
        raise FinetecError(f"mask must be boolean, got {mk.dtype}", src)
    if sc is not None and (not np.issubdtype(sc.dtype, np.floating) or sc.shape != mk.shape):
        raise FinetecError(f"score must be a float array shaped like mask, got {sc.dtype} {sc.shape}", src)
    persons = np.asarray(ds.persons)
    if not np.issubdtype(persons.dtype, np.integer):
        raise FinetecError(f"persons must be integers, got {persons.dtype}", src)
    M = kp.shape[1]
    bad = (persons < 1) | (persons > M)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FinetecError(f"clip {str(ds.ids[i])!r}: person count {int(persons[i])} outside 1..{M} "
                           f"(M = {M})", src)
    offsets = np.asarray(ds.offsets)
    F = kp.shape[0]
    reader = getattr(ds, "store", None)  # a memory-mapped folder: positioned reads, bounded memory

    def rows(name: str, arr: np.ndarray, a: int, b: int) -> np.ndarray:
        return reader.rows(name, a, b) if reader is not None else np.asarray(arr[a:b])

    for a in range(0, F, CHUNK_FRAMES):
        b = min(F, a + CHUNK_FRAMES)
        k, m = rows("keypoint.npy", kp, a, b), rows("mask.npy", mk, a, b)
        clip = np.searchsorted(offsets, np.arange(a, b), side="right") - 1
        padding = np.arange(M)[None, :] >= persons[clip][:, None]               # (f, M)
        bad_frame = (m.any(axis=2) & padding).any(axis=1)
        what = "joints of a padding person (beyond its person count) are marked observed"
        if not bad_frame.any():
            bad_frame = ~np.isfinite(k).all(axis=-1)
            bad_frame = (bad_frame & m).reshape(len(m), -1).any(axis=1)
            what = "NaN or Inf in observed keypoints"
        if not bad_frame.any() and sc is not None:
            bad_frame = ~np.isfinite(rows("score.npy", sc, a, b)).reshape(b - a, -1).all(axis=1)
            what = "NaN or Inf in scores"
        if bad_frame.any():
            i = int(clip[int(np.flatnonzero(bad_frame)[0])])
            raise FinetecError(f"clip {str(ds.ids[i])!r}: {what}", src)


def check_index(ds: Any, src: Any = None) -> None:
    """The O(N) checks of the per-clip arrays: offsets, lengths, labels, ids, splits."""
    src = src if src is not None else ds.source
    n = len(ds)
    offsets = np.asarray(ds.offsets)
    if not np.issubdtype(offsets.dtype, np.integer):
        raise FinetecError(f"offsets must be integers, got {offsets.dtype}", src)
    if offsets.ndim != 1 or len(offsets) < 2 or offsets[0] != 0 or np.any(np.diff(offsets) < 1):
        raise FinetecError("offsets are not an increasing sequence from 0 (every clip needs a frame)", src)
    if offsets[-1] != ds.keypoint.shape[0]:
        raise FinetecError(f"offsets point to {int(offsets[-1])} frames but the data holds "
                           f"{ds.keypoint.shape[0]}", src)
    for name, arr in (("persons", ds.persons), ("label", ds.label), ("id", ds.ids)):
        if len(arr) != n:
            raise FinetecError(f"{name} has {len(arr)} entries for {n} clips", src)
    label = np.asarray(ds.label)
    if not np.issubdtype(label.dtype, np.integer):
        raise FinetecError(f"labels must be integers, got {label.dtype}", src)
    if ds.ids.dtype.kind != "U":
        raise FinetecError(f"clip ids must be strings, got {ds.ids.dtype}", src)
    K = len(ds.class_names)
    bad = (label < -1) | (label >= K) if K else label < -1
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise FinetecError(f"clip {str(ds.ids[i])!r}: label {int(label[i])} outside 0..{K - 1}", src)
    for name, idx in ds.splits.items():
        idx = np.asarray(idx)
        if not np.issubdtype(idx.dtype, np.integer) and idx.size:
            raise FinetecError(f"split {name!r} must hold integers, got {idx.dtype}", src)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise FinetecError(f"split {name!r} refers to clips outside 0..{n - 1}", src)
    if len(np.unique(np.asarray(ds.ids))) != n:
        raise FinetecError("clip ids are not unique", src)
    if ds.clip_meta is not None and len(ds.clip_meta) != n:
        raise FinetecError(f"per-clip metadata has {len(ds.clip_meta)} entries for {n} clips", src)


# -- reading --------------------------------------------------------------------------------------
class ClipMeta(Sequence):
    """Per-clip metadata read line by line from ``clip_meta.jsonl`` (no whole-file parse)."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path, self.offsets = path, offsets
        self._fd: int | None = None

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        raw = os.pread(self._fd, b - a, a) if b > a else b""
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):
            raise FinetecError(f"damaged part clip_meta.jsonl (line {i + 1} is not JSON)", self.path) from None
        if not isinstance(value, dict):
            raise FinetecError(f"damaged part clip_meta.jsonl (line {i + 1} is not an object)", self.path)
        return value

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "offsets": self.offsets, "_fd": None}

    def __del__(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)


class ClipReader:
    """Positioned reads of one clip's rows from the streamed parts (one file descriptor each)."""

    def __init__(self, folder: Path, parts: dict[str, np.memmap]):
        self.folder = folder
        # per part: (data offset in the file, bytes per frame, frame shape, dtype)
        self.layout = {name: (int(arr.offset), arr.dtype.itemsize * int(np.prod(arr.shape[1:])),
                              tuple(arr.shape[1:]), arr.dtype) for name, arr in parts.items()}
        self._fds: dict[str, int] = {}  # pread ignores the file position: safe to share after fork

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            fd = self._fds[name] = os.open(self.folder / name, os.O_RDONLY)
        return fd

    def rows(self, name: str, a: int, b: int) -> np.ndarray:
        """Frames ``a:b`` of a part, read into a new array."""
        start, row, tail, dtype = self.layout[name]
        out = np.empty((b - a, *tail), dtype)
        want = (b - a) * row
        got = os.preadv(self._fd(name), [out], start + a * row) if want else 0
        if got != want:
            raise _part_error(self.folder, name, f"truncated (short read at frame {a})")
        return out

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "layout": self.layout, "_fds": {}}

    def __del__(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)


def _part_error(folder: Path, name: str, problem: str) -> FinetecError:
    return FinetecError(f"dataset part: {problem}", folder / name)


def _read_index(folder: Path) -> dict[str, Any]:
    p = folder / INDEX
    try:
        size = p.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise FinetecError(f"{INDEX} is {size} bytes (more than {MAX_INDEX_BYTES})", p)
        index = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise _part_error(folder, INDEX, "missing") from None
    except OSError as e:
        raise FinetecError(f"cannot read ({e.strerror or e})", p) from None
    except (ValueError, RecursionError, UnicodeDecodeError) as e:
        raise FinetecError(f"damaged part {INDEX} (not JSON: {type(e).__name__})", p) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise FinetecError(f"not a finetec dataset folder ({INDEX} does not say format {FORMAT!r})", p)
    if index.get("version") != VERSION:
        raise FinetecError(f"dataset format version {index.get('version')!r} is not supported "
                           f"(this finetec reads version {VERSION})", p)
    types = {"num_clips": int, "num_frames": int, "max_persons": int, "num_joints": int, "dim": int,
             "layout": dict, "class_names": list, "meta": dict, "parts": dict}
    for key, t in types.items():
        if not isinstance(index.get(key), t) or isinstance(index.get(key), bool):
            raise FinetecError(f"damaged part {INDEX}: field {key!r} missing or not a {t.__name__}", p)
    for name, rec in index["parts"].items():
        if (not isinstance(name, str) or "/" in name or "\\" in name or name.startswith(".")
                or not isinstance(rec, dict) or not isinstance(rec.get("bytes"), int)
                or not isinstance(rec.get("sha256"), str)):
            raise FinetecError(f"damaged part {INDEX}: bad record for part {name!r}", p)
    if not all(isinstance(c, str) for c in index["class_names"]):
        raise FinetecError(f"damaged part {INDEX}: class_names must be strings", p)
    return index


def _open_part(folder: Path, name: str, rec: dict[str, Any], dtype: Any, shape: tuple[int, ...] | None,
               kind: str | None = None) -> np.memmap:
    path = folder / name
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise _part_error(folder, name, "missing") from None
    except OSError as e:
        raise _part_error(folder, name, f"cannot read ({e.strerror or e})") from None
    if size != rec["bytes"]:
        what = "truncated" if size < rec["bytes"] else "longer than recorded"
        raise _part_error(folder, name, f"{what} ({size} bytes, {INDEX} records {rec['bytes']})")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - a damaged header makes numpy raise almost anything
        raise _part_error(folder, name, f"not a readable .npy array ({type(e).__name__})") from None
    if dtype is not None and arr.dtype != np.dtype(dtype):
        raise _part_error(folder, name, f"dtype {arr.dtype}, expected {np.dtype(dtype)}")
    if kind is not None and arr.dtype.kind != kind:
        raise _part_error(folder, name, f"dtype {arr.dtype} is not of the expected kind")
    if shape is not None and tuple(arr.shape) != tuple(shape):
        raise _part_error(folder, name, f"shape {tuple(arr.shape)}, {INDEX} says {tuple(shape)}")
    return arr


def read_store(path: str | os.PathLike) -> tuple[dict[str, Any], "ClipReader"]:
    """Open a memory-mapped dataset folder: the fields of its
    :class:`~finetec.data.dataset.SkeletonDataset` (memory-mapped arrays) and the reader of single
    clips; :func:`finetec.data.dataset.open_store` makes the dataset of them.

    O(1) in the number of clips: reads ``index.json``, checks every part's size, dtype and shape
    and the ends of the offset table; clip data stays on disk until read.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FinetecError("no such dataset folder", folder)
    index = _read_index(folder)
    parts = index["parts"]
    n, F, M = index["num_clips"], index["num_frames"], index["max_persons"]
    V, C = index["num_joints"], index["dim"]
    if n < 1 or F < n or M < 1 or C not in (2, 3) or V < 1:
        raise FinetecError(f"damaged part {INDEX}: impossible sizes (N={n}, F={F}, M={M}, V={V}, C={C})",
                           folder / INDEX)

    def need(name: str) -> dict[str, Any]:
        if name not in parts:
            raise FinetecError(f"damaged part {INDEX}: no record of part {name}", folder / INDEX)
        return parts[name]

    arrays = {
        "keypoint.npy": _open_part(folder, "keypoint.npy", need("keypoint.npy"), np.float32, (F, M, V, C)),
        "mask.npy": _open_part(folder, "mask.npy", need("mask.npy"), np.bool_, (F, M, V)),
    }
    if "score.npy" in parts:
        arrays["score.npy"] = _open_part(folder, "score.npy", parts["score.npy"], np.float32, (F, M, V))
    offsets = _open_part(folder, "offsets.npy", need("offsets.npy"), np.int64, (n + 1,))
    if int(offsets[0]) != 0 or int(offsets[-1]) != F:
        raise _part_error(folder, "offsets.npy", f"the offset table spans frames {int(offsets[0])}.."
                                                 f"{int(offsets[-1])}, the data holds 0..{F}")
    if n > 1 and int(np.diff(offsets).min()) < 1:
        i = int(np.flatnonzero(np.diff(offsets) < 1)[0])
        raise _part_error(folder, "offsets.npy", f"the offset table is not increasing (clip {i}: frames "
                                                 f"{int(offsets[i])}:{int(offsets[i + 1])})")
    persons = _open_part(folder, "persons.npy", need("persons.npy"), np.int16, (n,))
    label = _open_part(folder, "label.npy", need("label.npy"), np.int64, (n,))
    ids = _open_part(folder, "id.npy", need("id.npy"), None, (n,), kind="U")
    splits = {name[len("split__"):-len(".npy")]: _open_part(folder, name, rec, np.int64, None)
              for name, rec in parts.items() if name.startswith("split__") and name.endswith(".npy")}
    clip_meta = None
    if "clip_meta.jsonl" in parts:
        _open_size(folder, "clip_meta.jsonl", parts["clip_meta.jsonl"])
        moff = _open_part(folder, "clip_meta_offsets.npy", need("clip_meta_offsets.npy"), np.int64, (n + 1,))
        if int(moff[0]) != 0 or int(moff[-1]) != parts["clip_meta.jsonl"]["bytes"]:
            raise _part_error(folder, "clip_meta_offsets.npy", "offsets point outside clip_meta.jsonl")
        clip_meta = ClipMeta(folder / "clip_meta.jsonl", moff)
    layout = Layout.from_dict(index["layout"], origin=str(folder / INDEX))
    if layout.num_joints != V:
        raise FinetecError(f"damaged part {INDEX}: layout has {layout.num_joints} joints, data {V}",
                           folder / INDEX)
    # value ranges of the small per-clip arrays (a min and a max each: about a millisecond at
    # NTU-120 scale), so that a damaged one is an error here and not a wrong answer later
    K = len(index["class_names"])
    for name, arr, lo, hi in (("persons.npy", persons, 1, M), ("label.npy", label, -1, K - 1 if K else None),
                              *((f"split__{k}.npy", v, 0, n - 1) for k, v in splits.items())):
        if arr.size and (int(arr.min()) < lo or (hi is not None and int(arr.max()) > hi)):
            raise _part_error(folder, name, f"values outside {lo}..{hi if hi is not None else ''} "
                                            f"({int(arr.min())}..{int(arr.max())})")
    # per-clip arrays as plain ndarray views of their maps: still paged in lazily, but indexing a
    # plain array costs a fraction of np.memmap's Python-level __getitem__ (ds[i] does five)
    offsets, persons, label, ids = (np.asarray(a) for a in (offsets, persons, label, ids))
    splits = {k: np.asarray(v) for k, v in splits.items()}
    fields = dict(
        keypoint=arrays["keypoint.npy"], mask=arrays["mask.npy"], offsets=offsets, persons=persons,
        label=label, ids=ids, layout=layout, class_names=list(index["class_names"]), splits=splits,
        score=arrays.get("score.npy"), meta=dict(index["meta"]), clip_meta=clip_meta, source=str(folder))
    return fields, ClipReader(folder, arrays)


def _open_size(folder: Path, name: str, rec: dict[str, Any]) -> None:
    try:
        size = (folder / name).stat().st_size
    except FileNotFoundError:
        raise _part_error(folder, name, "missing") from None
    if size != rec["bytes"]:
        raise _part_error(folder, name, f"{'truncated' if size < rec['bytes'] else 'longer than recorded'} "
                                        f"({size} bytes, {INDEX} records {rec['bytes']})")


def _data_start(path: Path) -> int:
    """Byte offset of the array data in a ``.npy`` file (0 for other files)."""
    if path.suffix != ".npy":
        return 0
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def part_checksum(path: Path) -> str:
    """SHA-256 of a part's data (after the ``.npy`` header), read in blocks."""
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(_data_start(path))
        while block := f.read(HASH_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def verify(ds: Any) -> dict[str, Any]:
    """Re-check an opened dataset folder (``SkeletonDataset.load(folder)``) completely: every
    part's checksum, then the content checks of writing time. Returns
    ``{"parts": n, "clips": n, "frames": n, "bytes": n}``; FinetecError naming the part (or clip)
    otherwise."""
    if ds.store is None:
        raise FinetecError("not a memory-mapped dataset folder", ds.source)
    folder = Path(ds.source)
    index = _read_index(folder)
    extra_parts = sorted(p.name for p in folder.iterdir() if p.name not in index["parts"] and p.name != INDEX)
    if extra_parts:
        raise FinetecError(f"files not listed in {INDEX}: {', '.join(extra_parts)}", folder)
    total = 0
    for name, rec in sorted(index["parts"].items()):
        _open_size(folder, name, rec)
        if part_checksum(folder / name) != rec["sha256"]:
            raise _part_error(folder, name, "checksum mismatch (the data was altered or damaged)")
        total += rec["bytes"]
    check_index(ds)
    check_arrays(ds)
    if ds.clip_meta is not None:
        for i in range(len(ds)):
            ds.clip_meta[i]
    return {"parts": len(index["parts"]), "clips": len(ds), "frames": int(ds.keypoint.shape[0]),
            "bytes": total}


# -- streams of clips: readers that can hand clips over one at a time ------------------------------
class ClipStream:
    """Clips of a dataset as they are read, for writing them without holding the dataset.

    ``clips`` yields :class:`~finetec.data.sample.Sample` objects once; ``finish()`` (after the
    clips are consumed) returns ``(splits, meta)``. ``max_persons``, ``dim`` and ``has_score``
    are known before the first clip (a clip may have fewer persons; it is padded).
    """

    def __init__(self, clips: Iterable[Any], *, layout: Any, class_names: Sequence[str], max_persons: int,
                 dim: int, has_score: bool, finish: Any, source: str | None = None):
        self.clips, self.layout, self.class_names = clips, layout, list(class_names)
        self.max_persons, self.dim, self.has_score = int(max_persons), int(dim), bool(has_score)
        self.finish, self.source = finish, source

    @classmethod
    def of_dataset(cls, ds: Any) -> "ClipStream":
        """The clips of a dataset already in memory."""
        return cls((ds[i] for i in range(len(ds))), layout=ds.layout, class_names=ds.class_names,
                   max_persons=ds.max_persons, dim=ds.dim, has_score=ds.score is not None,
                   finish=lambda: (ds.splits, ds.meta), source=ds.source)

    def write(self, path: str | os.PathLike, overwrite: bool = False,
              extra_meta: dict[str, Any] | None = None) -> Path:
        """Write the clips as they come into a memory-mapped folder (see :class:`DatasetWriter`)."""
        with DatasetWriter(path, self.layout, self.class_names, max_persons=self.max_persons, dim=self.dim,
                           score=self.has_score, overwrite=overwrite, source=self.source) as w:
            for s in self.clips:
                w.add(s)
            splits, meta = self.finish()
            return w.close(splits=splits, meta={**meta, **(extra_meta or {})})
