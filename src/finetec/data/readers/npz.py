"""The simple ``.npz`` format we document for users' own data.

Arrays (only ``keypoint`` is required):

- ``keypoint`` float (T, V, C) or (M, T, V, C) for one clip, (N, M, T, V, C) for N clips of equal
  padded length; C = 2 or 3.
- ``mask`` bool, the same shape without C: True where observed. Without it every joint is
  observed (``zero_is_missing=true`` marks all-zero joints missing instead). NaN or Inf at an
  observed joint is an error.
- ``score`` float, the shape of ``mask``: confidence.
- ``label`` int: a scalar for one clip, (N,) for N; -1 = unlabelled.
- ``class_names`` str (K,); ``id`` str (N,); ``lengths`` int (N,) valid frames per clip (the
  rest is padding; without it trailing frames with nothing observed are cut).
- Clips of different lengths without padding: ``keypoint`` (T, V, C) or (M, T, V, C) holding the
  clips back to back along T, and ``lengths`` (N,) summing to T (clip i is the next lengths[i]
  frames); ``mask`` / ``score`` likewise.
- ``layout`` str: a built-in layout name, a layout file (a relative path is relative to the
  ``.npz``'s folder) or the layout as JSON; else the ``layout`` option; else guessed from V when
  exactly one layout fits (announced on stderr).
- ``title`` str: the dataset's name for reports (default: the file name).
- ``split__<name>`` int index arrays, e.g. ``split__train``.

``np.savez_compressed`` files are read the same way. The file is opened with
``allow_pickle=False``: arrays of Python objects (a list of differently sized arrays) are refused.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers._common import (
    as_bool, check_npz, choose_layout, class_names_option, describe, generic_class_names, make_sample, nonzero_mask,
    trim_persons, trim_trailing_frames,
)
from finetec.data.readers.pose_json import layout_field
from finetec.errors import FinetecError
from finetec.fileio import atomic_path

NAME = "npz"
DESCRIPTION = "simple .npz: keypoint (+ mask, score, label, layout, class_names, split__*)"


def sniff(path: Path) -> bool:
    if not (path.is_file() and path.suffix == ".npz"):
        return False
    try:
        with zipfile.ZipFile(path) as z:
            names = {n[:-4] for n in z.namelist() if n.endswith(".npy")}
    except (zipfile.BadZipFile, OSError):
        return True  # a damaged .npz: the reader reports what is wrong with it
    return "keypoint" in names and "offsets" not in names


def _load(path: Path) -> dict[str, np.ndarray]:
    check_npz(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e):
            raise FinetecError("the .npz holds Python objects (refused: no pickle); store plain arrays",
                               path) from None
        raise FinetecError(f"damaged .npz file ({describe(e)})", path) from None
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise FinetecError(f"damaged .npz file ({describe(e)})", path) from None


def _batch(arr: np.ndarray, ndim_clip: int, name: str, path: Path) -> np.ndarray:
    """Bring ``arr`` to (N, M, T, V[, C]) given the per-clip rank of (M, T, V[, C])."""
    extra = arr.ndim - ndim_clip
    if extra == -1:
        return arr[None, None]
    if extra == 0:
        return arr[None]
    if extra == 1:
        return arr
    raise FinetecError(f"{name!r} has shape {arr.shape}: expected (T, V, C), (M, T, V, C) or "
                       "(N, M, T, V, C)", path)


def read(path: Path, *, layout: str | None = None, zero_is_missing: bool | str = False,
         class_names: str | None = None) -> SkeletonDataset:
    """Read the simple ``.npz`` format (see the module docstring)."""
    d = _load(path)
    if "keypoint" not in d:
        raise FinetecError("the .npz has no 'keypoint' array", path)
    raw = d["keypoint"]
    if not np.issubdtype(raw.dtype, np.number):
        raise FinetecError(f"'keypoint' must be numeric, got dtype {raw.dtype}", path)
    kp = _batch(raw.astype(np.float32), 4, "keypoint", path)
    N, M, T, V, C = kp.shape
    if C not in (2, 3):
        raise FinetecError(f"'keypoint' must have 2 or 3 coordinates in its last axis, got {C}", path)
    if T == 0 or N == 0:
        raise FinetecError(f"clip is empty: 'keypoint' has shape {raw.shape}", path)
    if "mask" in d:
        mask = _batch(d["mask"].astype(bool), 3, "mask", path)
        if mask.shape != kp.shape[:4]:
            raise FinetecError(f"'mask' shape {d['mask'].shape} does not match 'keypoint' {raw.shape}", path)
    elif as_bool(zero_is_missing, "zero_is_missing"):
        mask = nonzero_mask(kp)
    else:
        mask = np.ones(kp.shape[:4], dtype=bool)
    score = None
    if "score" in d:
        score = _batch(d["score"].astype(np.float32), 3, "score", path)
        if score.shape != kp.shape[:4]:
            raise FinetecError(f"'score' shape {d['score'].shape} does not match 'keypoint' {raw.shape}",
                               path)
    lengths = d["lengths"].reshape(-1).astype(np.int64) if "lengths" in d else None
    ragged = lengths is not None and raw.ndim <= 4 and lengths.size > 1
    if ragged:                            # clips back to back along T: N = len(lengths)
        if (lengths < 1).any() or int(lengths.sum()) != T:
            raise FinetecError(f"'lengths' must be positive and sum to the {T} frames of 'keypoint' "
                               f"(clips stored back to back), got {lengths.size} values summing to "
                               f"{int(lengths.sum())}", path)
        N = int(lengths.size)
        cuts = np.concatenate([[0], np.cumsum(lengths)])
        pieces = [(kp[0][:, a:b], mask[0][:, a:b], None if score is None else score[0][:, a:b])
                  for a, b in zip(cuts[:-1], cuts[1:])]
    else:
        if lengths is not None and (lengths.size != N or (lengths < 1).any() or (lengths > T).any()):
            raise FinetecError(f"'lengths' must be {N} values in 1..{T}", path)
        pieces = []
        for i in range(N):
            k, m, sc = kp[i], mask[i], None if score is None else score[i]
            if lengths is not None:
                k, m, sc = k[:, :lengths[i]], m[:, :lengths[i]], None if sc is None else sc[:, :lengths[i]]
            else:
                k, m, sc = trim_trailing_frames(k, m, sc)
            pieces.append((k, m, sc))
    labels = np.full(N, -1, dtype=np.int64)
    if "label" in d:
        lab = np.asarray(d["label"]).reshape(-1)
        if lab.size != N or not np.issubdtype(lab.dtype, np.integer):
            raise FinetecError(f"'label' must be {N} integer(s), got {d['label'].dtype} "
                               f"shape {d['label'].shape}", path)
        labels = lab.astype(np.int64)
    ids = [str(v) for v in d["id"].reshape(-1)] if "id" in d else (
        [path.name.removesuffix(".npz")] if N == 1 else [f"{path.stem}_{i:05d}" for i in range(N)])
    if len(ids) != N:
        raise FinetecError(f"'id' has {len(ids)} entries for {N} clips", path)
    names = class_names_option(class_names, path)
    if names is None and "class_names" in d:
        names = [str(c) for c in d["class_names"].reshape(-1)]
    if names is None:
        names = generic_class_names(int(labels.max()) + 1) if (labels >= 0).any() else []
    samples = []
    for i, (k, m, sc) in enumerate(pieces):
        k, m, sc = trim_persons(k, m, sc)
        samples.append(make_sample(k, m, score=sc, id=ids[i], source=path, label=int(labels[i]),
                                   num_classes=len(names) or None))
    stored = str(d["layout"]) if "layout" in d else None
    lay = choose_layout(layout, V, path, stored=stored)      # after the data checks
    splits: dict[str, Any] = {k[len("split__"):]: v.reshape(-1).astype(np.int64)
                              for k, v in d.items() if k.startswith("split__")}
    meta: dict[str, Any] = {"dataset": path.stem}
    if "title" in d:
        meta["title"] = str(d["title"])
    return SkeletonDataset.from_samples(samples, lay, names, splits=splits, meta=meta, source=str(path))


def write(path: str | Path, ds: SkeletonDataset, filled: np.ndarray | None = None,
          extra: dict[str, Any] | None = None, per_entry: dict[str, np.ndarray] | None = None) -> None:
    """Write ``ds`` as a plain ``.npz`` (atomically) that :func:`read` reads back: keypoint
    (M, T, V, C) for one clip or (N, M, T, V, C) for several clips of equal length, mask, label,
    id, layout, class_names; ``filled`` (F, M, V) bool (a completion's filled entries, in the
    dataset's frame layout) as ``filled`` of the keypoint's shape without C; ``extra``: more
    entries, each stored as a JSON string; ``per_entry``: more (F, M, V) arrays (e.g. a completion's
    uncertainty), stored like ``filled``."""
    lengths = ds.lengths
    if len(ds) > 1 and len(set(lengths.tolist())) > 1:
        raise FinetecError(f"{len(ds)} clips of different lengths do not fit one plain .npz array; "
                           "write a .finetec.npz instead", path)
    fl_all = np.zeros_like(ds.mask) if filled is None else filled
    clips = [(ds[i].keypoint, ds[i].mask, ds.clip_part(fl_all, i)) for i in range(len(ds))]
    M = max(c[0].shape[0] for c in clips)

    def pad(a: np.ndarray) -> np.ndarray:
        out = np.zeros((M,) + a.shape[1:], dtype=a.dtype)
        out[: a.shape[0]] = a
        return out

    kp = np.stack([pad(c[0]) for c in clips])
    mk = np.stack([pad(c[1]) for c in clips])
    fl = np.stack([pad(c[2]) for c in clips])
    more = {k: np.stack([pad(ds.clip_part(a, i)) for i in range(len(ds))]) for k, a in (per_entry or {}).items()}
    if len(ds) == 1:
        kp, mk, fl = kp[0], mk[0], fl[0]
        more = {k: a[0] for k, a in more.items()}
    arrays = {
        "keypoint": kp.astype(np.float32), "mask": mk, "filled": fl,
        "label": ds.label if len(ds) > 1 else np.array(ds.label[0]),
        "id": ds.ids.astype(str), "layout": np.array(layout_field(ds.layout)),
        "class_names": np.array(ds.class_names, dtype=str),
        **{k: np.array(json.dumps(v)) for k, v in (extra or {}).items()},
        **more,
    }
    if filled is None:
        del arrays["filled"]
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
