"""Names of the inference backends of :class:`finetec.api.Predictor` and their ``--backend`` option.

Importing this module costs nothing (no torch): the command line builds its parsers from it. The
runtimes themselves live in :mod:`finetec.export` (``RUNTIMES``).
"""
from __future__ import annotations

from typing import Any

#: ``torch`` runs the PyTorch model; the others run the recognizer exported to ONNX, on the CPU.
BACKENDS = ("torch", "onnxruntime", "openvino")

#: the pip extra each non-torch backend needs (``pip install finetec[EXTRA]``)
EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}

__all__ = ["BACKENDS", "EXTRAS", "add_backend_option"]


def add_backend_option(p: Any) -> None:
    """``--backend NAME`` on a command that classifies."""
    others = " or ".join(f"{b} (needs finetec[{EXTRAS[b]}])" for b in BACKENDS[1:])
    p.add_argument("--backend", default="torch", choices=BACKENDS,
                   help=f"inference engine: torch (default); {others} run the recognizer exported to ONNX "
                        "on the CPU")
