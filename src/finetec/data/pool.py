"""Pooling datasets of one skeleton family for self-supervised training (the completion module).

The completion module learns from any clip, labelled or not. ``data.pool`` in a training config
lists more datasets whose TRAINING clips join the main dataset's training clips: each one is
moved onto the main dataset's layout through its joint map (:meth:`SkeletonDataset.to_layout`;
joints a map cannot supply are missing), its labels are dropped (its classes are not the main
dataset's), and its clip ids are prefixed with its name. Validation and test stay on the main
dataset. A pool member's training clips are those of the split named like the main one's
(``data.train_split``) when it has one, else of its ``train`` split, else of its only split whose
name ends in ``train``
(``xsub_train``, ``xview_train``), else every clip outside its splits whose names end in ``test``,
so that none of its test clips is ever trained on.
"""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers import open_dataset
from finetec.errors import FinetecError

__all__ = ["POOL_SPLIT", "member_train_indices", "pool_datasets"]

#: the split of a pooled dataset that holds the pool members' clips
POOL_SPLIT = "pool"


def member_train_indices(ds: SkeletonDataset, train_split: str) -> np.ndarray:
    """The clips of a pool member to train on (see the module docstring)."""
    splits = ds.splits or {}
    for name in (train_split, "train"):
        if name in splits:
            return ds.split_indices(name)
    trains = [s for s in splits if s.endswith("train")]
    if len(trains) == 1:
        return ds.split_indices(trains[0])
    if len(trains) > 1:
        raise FinetecError(f"pool member has several training splits ({', '.join(sorted(trains))}) and none "
                           f"named {train_split!r}: say which one (convert it with that split name)", ds.source)
    test = np.zeros(len(ds), dtype=bool)
    for s in splits:
        if s.endswith("test"):
            test[ds.split_indices(s)] = True
    return np.flatnonzero(~test)


def _name(spec: str) -> str:
    name = Path(spec.split("?")[0]).name if not spec.startswith("synthetic") else spec.split("?")[0]
    for suffix in (".finetec.npz", ".finetec", ".npz"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def pool_datasets(main: SkeletonDataset, members: Sequence[Any], train_split: str,
                  open_fn=None) -> tuple[SkeletonDataset, np.ndarray]:
    """``main`` plus the training clips of every member moved onto ``main``'s layout.

    ``members``: SkeletonDatasets or specs (anything ``open_fn``, default
    :func:`finetec.data.open_dataset`, reads). Returns ``(pooled, pool_indices)``: main's clips come
    first at their own indices (its splits unchanged), then the members' clips, listed in the
    split :data:`POOL_SPLIT` and returned as ``pool_indices``. FinetecError naming the member's
    file when its layout has no joint map onto main's, its coordinates have another dimension, or
    it has no clip to train on.
    """
    open_fn = open_fn or open_dataset
    samples = [main[i] for i in range(len(main))]
    for spec in members:
        ds = spec if isinstance(spec, SkeletonDataset) else open_fn(os.fspath(spec))
        where = ds.source or (None if isinstance(spec, SkeletonDataset) else os.fspath(spec))
        if ds.dim != main.dim:
            raise FinetecError(f"pool member has {ds.dim}D coordinates, the main dataset "
                               f"({main.source or main.layout.name}) {main.dim}D", where)
        try:
            mapped = ds.to_layout(main.layout)
        except FinetecError as e:
            raise FinetecError(e.problem, where) from None
        idx = member_train_indices(mapped, train_split)
        if idx.size == 0:
            raise FinetecError("pool member has no training clip", where)
        prefix = _name(where or "pool")
        samples += [replace(mapped[int(i)], label=None, id=f"{prefix}/{mapped.ids[int(i)]}") for i in idx]
    pooled = SkeletonDataset.from_samples(
        samples, main.layout, main.class_names,
        splits={**{k: np.asarray(v) for k, v in (main.splits or {}).items()},
                POOL_SPLIT: np.arange(len(main), len(samples))},
        meta={**main.meta, "pool": [os.fspath(getattr(m, "source", None) or m) for m in members]},
        source=main.source)
    return pooled, np.arange(len(main), len(samples), dtype=np.int64)
