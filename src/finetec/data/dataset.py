"""The canonical dataset file and its in-memory form, :class:`SkeletonDataset`.

All clips live in a few flat arrays so that a dataset at NTU-60 scale (56k clips) fits in memory
and loads in one read, with no pickle anywhere:

    keypoint  float32 (F, M, V, C)   frames of every clip, concatenated (F = total frames)
    mask      bool    (F, M, V)
    score     float32 (F, M, V)      optional
    offsets   int64   (N + 1,)       clip i is frames offsets[i]:offsets[i+1]
    persons   int16   (N,)           persons actually present in clip i (<= M; the rest is padding)
    label     int64   (N,)           -1 where unknown
    id        str     (N,)
    split__<name>  int64 index arrays (e.g. split__train, split__test)
    class_names str   (K,)
    layout    str     the layout as JSON
    meta      str     JSON: dataset-level metadata; per-clip metadata under "clips" (optional)

The file is an uncompressed ``.npz`` (``np.load(..., allow_pickle=False)``), suffix
``.finetec.npz`` by convention. It is read whole into memory and checked completely on load
(the checks of a freshly read dataset).

The same fields can be stored as a memory-mapped folder ``NAME.finetec/`` (one ``.npy`` part per
field, see :mod:`finetec.data.store`) for datasets larger than memory: :meth:`SkeletonDataset.save`
and :meth:`SkeletonDataset.load` choose by the name (a path ending in ``.finetec`` is the folder,
any other path the file) and by what is there (a folder is opened as the memory-mapped form).
"""
from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from finetec.errors import FinetecError
from finetec.fileio import atomic_path
from finetec.layouts import Layout, find_joint_map, get_layout
from finetec.data.sample import Sample
from finetec.data.store import ClipStream, check_arrays, check_index, read_store, write_store

FORMAT_VERSION = 1
SUFFIX = ".finetec.npz"


@dataclass
class SkeletonDataset:
    """A collection of clips sharing one layout, with class names and named splits."""

    keypoint: np.ndarray
    mask: np.ndarray
    offsets: np.ndarray
    persons: np.ndarray
    label: np.ndarray
    ids: np.ndarray
    layout: Layout
    class_names: list[str]
    splits: dict[str, np.ndarray] = field(default_factory=dict)
    score: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    clip_meta: Sequence[dict[str, Any]] | None = None
    source: str | None = None
    # set by open_store: positioned reads of one clip; not copied by replace()
    store: Any = field(default=None, init=False, repr=False, compare=False)

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_stream(cls, clips: ClipStream) -> "SkeletonDataset":
        """All clips of a :class:`~finetec.data.store.ClipStream` in memory."""
        samples = list(clips.clips)
        splits, meta = clips.finish()
        return cls.from_samples(samples, clips.layout, clips.class_names, splits=splits, meta=meta,
                                source=clips.source)

    @classmethod
    def from_samples(
        cls,
        samples: Iterable[Sample],
        layout: Layout | str,
        class_names: Sequence[str],
        splits: dict[str, Sequence[int]] | None = None,
        meta: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> "SkeletonDataset":
        """Pack samples into flat arrays (persons padded to the largest M, mask False)."""
        layout = get_layout(layout)
        samples = list(samples)
        if not samples:
            raise FinetecError("no clips found", source)
        V, C = samples[0].num_joints, samples[0].dim
        M = max(s.num_persons for s in samples)
        for s in samples:
            if s.num_joints != layout.num_joints:
                raise FinetecError(
                    f"clip {s.id!r} has {s.num_joints} joints but layout {layout.name!r} has {layout.num_joints}",
                    s.source or source)
            if s.dim != C:
                raise FinetecError(f"clip {s.id!r} has C={s.dim}, others C={C}", s.source or source)
        lengths = np.array([s.num_frames for s in samples], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        F = int(offsets[-1])
        kp = np.zeros((F, M, V, C), dtype=np.float32)
        mk = np.zeros((F, M, V), dtype=bool)
        has_score = any(s.score is not None for s in samples)
        sc = np.zeros((F, M, V), dtype=np.float32) if has_score else None
        for i, s in enumerate(samples):
            a, b, m = offsets[i], offsets[i + 1], s.num_persons
            kp[a:b, :m] = s.keypoint.transpose(1, 0, 2, 3)
            mk[a:b, :m] = s.mask.transpose(1, 0, 2)
            if sc is not None:
                sc[a:b, :m] = (s.score if s.score is not None else s.mask.astype(np.float32)).transpose(1, 0, 2)
        ds = cls(
            keypoint=kp, mask=mk, offsets=offsets,
            persons=np.array([s.num_persons for s in samples], dtype=np.int16),
            label=np.array([-1 if s.label is None else s.label for s in samples], dtype=np.int64),
            ids=np.array([s.id for s in samples], dtype=str),
            layout=layout, class_names=[str(c) for c in class_names],
            splits={k: np.asarray(v, dtype=np.int64) for k, v in (splits or {}).items()},
            score=sc, meta=dict(meta or {}),
            clip_meta=[dict(s.meta) for s in samples] if any(s.meta for s in samples) else None,
            source=source,
        )
        ds.validate()
        return ds

    def validate(self) -> None:
        """The structural checks (O(clips)): offsets, per-clip arrays, labels, ids, splits, layout."""
        src = self.source
        if self.keypoint.ndim != 4 or self.keypoint.shape[2] != self.layout.num_joints:
            raise FinetecError(
                f"keypoints of shape {self.keypoint.shape} do not have the {self.layout.num_joints} joints "
                f"of layout {self.layout.name!r}", src)
        if self.mask.shape != self.keypoint.shape[:3]:
            raise FinetecError("mask shape does not match keypoints", src)
        check_index(self, src)

    def validate_content(self) -> None:
        """Every check of a freshly read dataset, on the stored arrays (in chunks of frames):
        :meth:`validate`, then dtypes, person counts within 1..M, nothing observed in padding
        persons, no NaN/Inf at observed joints or in scores."""
        self.validate()
        check_arrays(self)

    # -- access ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def dim(self) -> int:
        return int(self.keypoint.shape[-1])

    @property
    def max_persons(self) -> int:
        return int(self.keypoint.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def clip_part(self, flat: np.ndarray, i: int) -> np.ndarray:
        """Clip ``i``'s part of a per-frame array shaped like :attr:`mask` ((F, M, ...), e.g. a
        completion's ``filled``): (persons, frames, ...) like a :class:`Sample`'s arrays."""
        a, b, m = int(self.offsets[i]), int(self.offsets[i + 1]), int(self.persons[i])
        part = np.asarray(flat[a:b, :m])
        return part.transpose((1, 0) + tuple(range(2, part.ndim)))

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i = i % len(self)
        a, b, m = int(self.offsets[i]), int(self.offsets[i + 1]), int(self.persons[i])
        if self.store is not None:  # memory-mapped folder: checked when written; read only this clip
            F = self.keypoint.shape[0]
            if not 0 <= a < b <= F or not 1 <= m <= self.max_persons:
                raise FinetecError(f"part offsets.npy/persons.npy: clip {i} points to frames {a}:{b} with "
                                   f"{m} person(s), outside the data ({F} frames, M={self.max_persons})",
                                   self.source)
            kp = self.store.rows("keypoint.npy", a, b)[:, :m].transpose(1, 0, 2, 3)
            mk = self.store.rows("mask.npy", a, b)[:, :m].transpose(1, 0, 2)
            sc = None if self.score is None else self.store.rows("score.npy", a, b)[:, :m].transpose(1, 0, 2)
        else:
            kp = np.asarray(self.keypoint[a:b, :m], dtype=np.float32).transpose(1, 0, 2, 3)
            mk = self.mask[a:b, :m].transpose(1, 0, 2)
            sc = None if self.score is None else np.asarray(self.score[a:b, :m], np.float32).transpose(1, 0, 2)
        lab = int(self.label[i])
        # the dataset was checked as a whole (on load, or when written): no per-clip re-validation
        return Sample.trusted(
            keypoint=kp, mask=mk, score=sc, label=lab, id=str(self.ids[i]),
            meta=self.clip_meta[i] if self.clip_meta is not None else {},
            num_classes=self.num_classes or None, source=self.source,
        )

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        """One line (the arrays are summarised, never printed)."""
        splits = ", ".join(f"{k}: {len(v)}" for k, v in sorted(self.splits.items())) or "none"
        src = f", source {self.source!r}" if self.source else ""
        n = len(self)
        return (f"SkeletonDataset({n} clip{'s' * (n != 1)}, {int(self.lengths.sum())} frames, layout {self.layout.name} "
                f"({self.layout.num_joints} joints, {self.dim}D), {self.num_classes} classes, "
                f"splits {{{splits}}}{src})")

    def index_of(self, clip_id: str) -> int:
        """Position of the clip with id ``clip_id``; a FinetecError naming the data otherwise."""
        ids = [str(x) for x in self.ids.tolist()]
        try:
            return ids.index(str(clip_id))
        except ValueError:
            shown = ", ".join(repr(x) for x in ids[:3]) + (", ..." if len(ids) > 3 else "")
            raise FinetecError(f"no clip with id {str(clip_id)!r} (of {len(ids)} clip{'s' * (len(ids) != 1)}: "
                               f"{shown})", self.source) from None

    def split_indices(self, name: str) -> np.ndarray:
        if name in ("all", None):
            return np.arange(len(self))
        if name not in self.splits:
            raise FinetecError(
                f"no split named {name!r}; available: {', '.join(sorted(self.splits)) or 'none'}", self.source)
        return self.splits[name]

    def subset(self, indices: Sequence[int] | np.ndarray | str) -> "SkeletonDataset":
        """A new dataset with the given clips (or a split by name); splits are dropped."""
        idx = self.split_indices(indices) if isinstance(indices, str) else np.asarray(indices, dtype=np.int64)
        return SkeletonDataset.from_samples(
            [self[int(i)] for i in idx], self.layout, self.class_names, meta=self.meta, source=self.source)

    def to_layout(self, layout: Layout | str) -> "SkeletonDataset":
        """The dataset moved onto another layout through its joint map
        (:func:`finetec.layouts.find_joint_map`; FinetecError naming the file when there is none);
        joints the map cannot supply are missing. ``self`` when the joints are already the same, or
        when the layouts have the same name (a different joint order under one name is not mapped:
        the checks of the dataset against a model report it)."""
        if get_layout(layout).name == self.layout.name:
            return self
        try:
            jmap = find_joint_map(self.layout, layout)
        except FinetecError as e:
            raise FinetecError(e.problem, self.source) from None
        if self.layout.joints == jmap.target.joints:
            return self
        kp, mk, sc = jmap.apply(self.keypoint, self.mask, self.score)
        return SkeletonDataset(
            keypoint=kp, mask=mk, offsets=self.offsets, persons=self.persons, label=self.label, ids=self.ids,
            layout=jmap.target, class_names=self.class_names, splits=self.splits, score=sc,
            meta={**self.meta, "mapped_from": self.layout.name}, clip_meta=self.clip_meta, source=self.source)

    # -- persistence -------------------------------------------------------------------
    def save(self, path: str | os.PathLike, extra: dict[str, np.ndarray] | None = None) -> Path:
        """Write the canonical file atomically; ``extra`` arrays (e.g. a completion's ``filled``
        mask) are stored beside the canonical ones under their own names. A path ending in
        ``.finetec`` is written as a memory-mapped folder (:mod:`finetec.data.store`); any other
        path as the single ``.npz`` file."""
        if os.fspath(path).rstrip("/").endswith(".finetec"):
            return write_store(self, path, extra=extra)
        clip_meta = None if self.clip_meta is None else list(self.clip_meta)
        arrays: dict[str, np.ndarray] = {
            "format_version": np.array(FORMAT_VERSION),
            "keypoint": self.keypoint, "mask": self.mask, "offsets": self.offsets,
            "persons": self.persons, "label": self.label, "id": self.ids.astype(str),
            "class_names": np.array(self.class_names, dtype=str),
            "layout": np.array(self.layout.to_json()),
            "meta": np.array(json.dumps({**self.meta, "clips": clip_meta}, sort_keys=True)),
        }
        if self.score is not None:
            arrays["score"] = self.score
        for k, v in self.splits.items():
            arrays[f"split__{k}"] = v
        for k, v in (extra or {}).items():
            if k in arrays or k.startswith("split__"):
                raise ValueError(f"extra array name {k!r} clashes with a canonical field")
            arrays[k] = np.asarray(v)
        with atomic_path(path, suffix=".npz") as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "SkeletonDataset":
        """Open a canonical dataset: a memory-mapped folder (O(1), see :mod:`finetec.data.store`)
        or a ``.npz`` file (read whole and checked completely, as a freshly read dataset)."""
        p = Path(path)
        if p.is_dir():
            return open_store(p)
        try:
            with np.load(p, allow_pickle=False) as z:
                files = set(z.files)
                need = {"keypoint", "mask", "offsets", "persons", "label", "id", "class_names", "layout"}
                if not need <= files:
                    raise FinetecError(
                        f"not a finetec dataset file (missing {', '.join(sorted(need - files))})", p)
                d = {k: z[k] for k in files}
        except FinetecError:
            raise
        except FileNotFoundError:
            raise FinetecError("file not found", p) from None
        except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError) as e:
            raise FinetecError(f"cannot read dataset file ({type(e).__name__}: {e})", p) from None
        meta = _json_field(d, "meta", p, dict) if "meta" in d else {}
        clip_meta = meta.pop("clips", None)
        if clip_meta is not None and not (isinstance(clip_meta, list) and all(isinstance(c, dict) for c in clip_meta)):
            raise FinetecError("field meta: 'clips' must be a list of objects, one per clip", p)
        for key in ("offsets", "persons", "label", "split__"):
            for k in d:
                if k == key or (key == "split__" and k.startswith(key)):
                    if d[k].ndim != 1 or not np.issubdtype(d[k].dtype, np.integer):
                        raise FinetecError(f"field {k} must be a 1-D integer array, got {d[k].dtype} "
                                           f"{d[k].shape}", p)
        for key in ("id", "class_names"):
            if d[key].ndim != 1 or d[key].dtype.kind != "U":
                raise FinetecError(f"field {key} must be a 1-D array of strings, got {d[key].dtype}", p)
        if d["keypoint"].ndim != 4:
            raise FinetecError(f"field keypoint must be (F, M, V, C), got shape {d['keypoint'].shape}", p)
        ds = cls(
            keypoint=d["keypoint"], mask=d["mask"], offsets=d["offsets"].astype(np.int64),
            persons=d["persons"], label=d["label"].astype(np.int64), ids=d["id"],
            layout=Layout.from_dict(_json_field(d, "layout", p, dict), origin=str(p)),
            class_names=[str(c) for c in d["class_names"]],
            splits={k[len("split__"):]: d[k].astype(np.int64) for k in d if k.startswith("split__")},
            score=d.get("score"), meta=meta, clip_meta=clip_meta, source=str(p),
        )
        ds.validate_content()
        return ds

    def __reduce_ex__(self, protocol):
        # a memory-mapped dataset travels to worker processes as its path, never as its data
        if self.store is not None:
            return (open_store, (self.source,))
        return super().__reduce_ex__(protocol)


def open_store(path: str | os.PathLike) -> SkeletonDataset:
    """Open a memory-mapped dataset folder (:func:`finetec.data.store.read_store`) as a dataset
    whose clips stay on disk until read."""
    fields, reader = read_store(path)
    ds = SkeletonDataset(**fields)
    ds.store = reader
    return ds


def _json_field(d: dict[str, np.ndarray], key: str, path: Path, kind: type) -> Any:
    """A JSON string field of the ``.npz`` file, parsed and type-checked (FinetecError otherwise)."""
    arr = d[key]
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise FinetecError(f"field {key} must be one JSON string", path)
    try:
        value = json.loads(str(arr))
    except (ValueError, RecursionError):
        raise FinetecError(f"field {key} is not valid JSON", path) from None
    if not isinstance(value, kind):
        raise FinetecError(f"field {key} must be a JSON {kind.__name__}", path)
    return value
