"""Data: the Sample type, the canonical dataset file, readers, transforms, corruption.

``open_dataset(spec)`` is the one entry point the rest of finetec uses to get clips:

- ``synthetic`` / ``synthetic:coco17`` / ``synthetic:ntu25?clips=600&seed=3``: the built-in
  procedural dataset (see :mod:`finetec.data.synthetic`);
- a canonical ``.finetec.npz`` file (see :mod:`finetec.data.dataset`) or memory-mapped
  ``.finetec`` folder (see :mod:`finetec.data.store`);
- anything a reader understands (see :mod:`finetec.data.readers`), with ``fmt`` to force one.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl

from finetec.data.dataset import SkeletonDataset
from finetec.data.sample import Sample
from finetec.errors import FinetecError

__all__ = ["Sample", "SkeletonDataset", "open_dataset"]


def open_dataset(spec: str | os.PathLike, fmt: str | None = None) -> SkeletonDataset:
    s = os.fspath(spec)
    if fmt in (None, "synthetic") and (s == "synthetic" or s.startswith("synthetic:")):
        from finetec.data.synthetic import make_dataset

        rest = s.partition(":")[2]
        layout, _, query = rest.partition("?")
        opts: dict[str, object] = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in parse_qsl(query)}
        try:
            return make_dataset(layout=layout or "coco17", **opts)  # type: ignore[arg-type]
        except TypeError as e:
            raise FinetecError(f"bad synthetic dataset options in {s!r}: {e}") from None
    p = Path(s)
    if not p.exists():
        raise FinetecError("no such file or folder", p)
    if fmt in (None, "finetec") and p.is_dir():
        from finetec.data.store import is_store

        if is_store(p) or fmt == "finetec" or p.name.endswith(".finetec"):
            return SkeletonDataset.load(p)
    if fmt in (None, "finetec") and p.is_file() and p.name.endswith(".npz"):
        import numpy as np

        try:
            with np.load(p, allow_pickle=False) as z:
                canonical = "offsets" in z.files and "layout" in z.files
        except Exception:  # noqa: BLE001 - not an npz we can open; let the readers decide
            canonical = False
        if canonical or fmt == "finetec":
            from finetec.data.readers._common import reading

            with reading(p, "dataset file"):
                return SkeletonDataset.load(p)
    from finetec.data.readers import read_dataset

    return read_dataset(p, fmt=fmt)
