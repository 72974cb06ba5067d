"""finetec: skeleton-based action recognition under temporal corruption.

The public Python API lives here; heavy modules (torch) are imported lazily so that
``import finetec`` and ``finetec --help`` stay fast.
"""
from __future__ import annotations

from finetec.errors import FinetecError
from finetec.version import __version__

__all__ = ["__version__", "FinetecError", "load"]


def load(checkpoint: str, device: str = "cpu", backend: str = "torch", precision: str = "auto"):
    """Load a trained checkpoint and return a :class:`finetec.api.Predictor` (``backend``:
    ``"torch"``, ``"onnxruntime"`` or ``"openvino"``; ``precision``: ``"auto"``, ``"fp32"`` or ``"bf16"``). ``checkpoint``: a checkpoint folder (or run folder, or
    ``.safetensors`` file), or the name of a pretrained model (``finetec models`` lists them;
    its checksums are verified); an existing path wins over a name."""
    from finetec.api import Predictor
    from finetec.zoo import resolve

    return Predictor.from_checkpoint(resolve(checkpoint), device=device, backend=backend, precision=precision)
