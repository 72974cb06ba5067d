"""Data: the Sample type, the canonical dataset file, readers, transforms, corruption.

``open_dataset(spec, fmt=None, options=None)`` (defined in :mod:`finetec.data.readers`) is the one
entry point the rest of finetec uses to get clips:

- ``synthetic`` / ``synthetic:coco17`` / ``synthetic:ntu25?clips=600&seed=3``: the built-in
  procedural dataset (see :mod:`finetec.data.synthetic`);
- a canonical ``.finetec.npz`` file (see :mod:`finetec.data.dataset`) or memory-mapped
  ``.finetec`` folder (see :mod:`finetec.data.store`);
- anything a reader understands (see :mod:`finetec.data.readers`), with ``fmt`` to force one.
"""
from __future__ import annotations

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers import open_dataset
from finetec.data.sample import Sample

__all__ = ["Sample", "SkeletonDataset", "open_dataset"]
