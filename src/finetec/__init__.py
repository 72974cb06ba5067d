"""finetec: skeleton-based action recognition under temporal corruption.

The public Python API lives here; heavy modules (torch) are imported lazily so that
``import finetec`` and ``finetec --help`` stay fast.
"""
from __future__ import annotations

from finetec.errors import FinetecError
from finetec.version import __version__

__all__ = ["__version__", "FinetecError", "load"]


def load(checkpoint: str, device: str = "cpu", backend: str = "torch"):
    """Load a trained checkpoint and return a :class:`finetec.api.Predictor` (``backend``:
    ``"torch"`` or ``"onnxruntime"``)."""
    from finetec.api import Predictor

    return Predictor.from_checkpoint(checkpoint, device=device, backend=backend)
