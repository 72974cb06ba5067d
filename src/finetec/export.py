"""ONNX export of a trained checkpoint.

Two graphs can be exported from a checkpoint:

- ``recognizer``: inputs ``keypoint`` float32 (N, M, T, V, C_in) and ``mask`` bool (N, M, T, V),
  output ``logits`` (N, K). The input is what :class:`finetec.data.pipeline.ClipPipeline`
  produces in test mode (normalised, gap-filled, features stacked): preprocessing stays in
  Python (see :meth:`finetec.api.Predictor.preprocess`), the network is in the ONNX file.
- ``completion``: inputs ``keypoint`` float32 (N, M, T, V, C) (normalised positions) and
  ``mask``; output ``completed`` (N, M, T, V, C). Available for a completion checkpoint and for a
  FineTec checkpoint (its completion module).

The batch axis N is dynamic; M, T, V, C are fixed at the checkpoint's values. The export uses the
TorchScript-based exporter of ``torch.onnx.export`` (``dynamo=False``), which needs only the
``onnx`` package; when ``onnxruntime`` is installed the exported graph is run on a random input
and compared with PyTorch (the maximum absolute difference is reported).
"""
from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from finetec.errors import FinetecError
from finetec.fileio import atomic_path

WHAT = ("recognizer", "completion")
INSTALL_HINT = "ONNX export needs the optional packages onnx and onnxruntime: pip install finetec[onnx]"

__all__ = ["WHAT", "export_onnx", "onnx_available", "example_inputs"]


def onnx_available() -> bool:
    """Whether the ``onnx`` package (needed to write the file) is importable."""
    return importlib.util.find_spec("onnx") is not None


def _modules():
    import torch

    class Recognizer(torch.nn.Module):
        """(keypoint, mask) -> logits, whatever the wrapped model returns."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, keypoint: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            out = self.model(keypoint, mask)
            return out["logits"] if isinstance(out, dict) else out

    class Completer(torch.nn.Module):
        """(keypoint, mask) -> completed positions."""

        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, keypoint: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            out = self.model(keypoint, mask)
            return out["completed"] if isinstance(out, dict) else out

    return Recognizer, Completer


def example_inputs(predictor: Any, what: str, batch: int = 1, rng: np.random.Generator | None = None):
    """A realistic example input for ``what``: a synthetic-looking normalised clip.

    Returns (keypoint float32 (batch, M, T, V, C_in), mask bool (batch, M, T, V)) as numpy arrays
    with about a quarter of the frames masked, their coordinates zeroed.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    M, T, V = predictor.max_persons, predictor.clip_len, predictor.layout.num_joints
    C = predictor.in_channels if what == "recognizer" else predictor.dim
    x = rng.normal(0.0, 0.5, size=(batch, M, T, V, C)).astype(np.float32)
    mask = np.ones((batch, M, T, V), dtype=bool)
    drop = rng.random((batch, 1, T)) < 0.25
    mask &= ~drop[..., None]
    mask[:, :, 0] = True  # keep at least one frame
    x[~mask] = 0.0
    return x, mask


def export_onnx(predictor: Any, path: str | os.PathLike, what: str = "recognizer",
                opset: int = 17, check: bool = True, rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Write the ``what`` graph of ``predictor`` (a :class:`finetec.api.Predictor`) to ``path``.

    Returns a report dict: ``path``, ``what``, ``inputs`` {name: shape}, ``outputs``,
    ``opset``, ``max_abs_diff`` (None when onnxruntime is absent or ``check`` is False) and
    ``checked_with`` ("onnxruntime" or None). The file is written atomically.
    """
    import torch

    if what not in WHAT:
        raise FinetecError(f"unknown export target {what!r}; choose from {', '.join(WHAT)}")
    if not onnx_available():
        raise FinetecError(INSTALL_HINT)
    Recognizer, Completer = _modules()
    if what == "recognizer":
        if predictor.is_completion:
            raise FinetecError("this checkpoint is a completion model; export it with --what completion",
                               predictor.path)
        net = Recognizer(predictor.model)
        out_name = "logits"
    else:
        net = Completer(predictor.completion_module())
        out_name = "completed"
    net = net.to("cpu").eval()
    x, mask = example_inputs(predictor, what, batch=1, rng=rng)
    xt, mt = torch.from_numpy(x), torch.from_numpy(mask)
    out_path = Path(path)
    with torch.inference_mode():
        ref = net(xt, mt).numpy()
    with atomic_path(out_path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                net, (xt, mt), str(tmp), dynamo=False, opset_version=opset,
                input_names=["keypoint", "mask"], output_names=[out_name],
                dynamic_axes={"keypoint": {0: "batch"}, "mask": {0: "batch"}, out_name: {0: "batch"}},
            )
        except Exception as e:  # noqa: BLE001 - report the exporter's reason in one line
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise FinetecError(f"torch.onnx.export failed for the {what}: {first}", predictor.path) from None
    report: dict[str, Any] = {
        "path": str(out_path), "what": what, "opset": opset,
        "inputs": {"keypoint": ["batch", *x.shape[1:]], "mask": ["batch", *mask.shape[1:]]},
        "outputs": {out_name: ["batch", *ref.shape[1:]]},
        "max_abs_diff": None, "checked_with": None,
    }
    if check and importlib.util.find_spec("onnxruntime") is not None:
        report["max_abs_diff"] = compare_with_onnxruntime(net, out_path, predictor, what, rng)
        report["checked_with"] = "onnxruntime"
    return report


def compare_with_onnxruntime(net: Any, path: str | os.PathLike, predictor: Any, what: str,
                             rng: np.random.Generator | None = None, batch: int = 2) -> float:
    """Run the ONNX file with onnxruntime on a fresh batch (also checks the dynamic batch axis)
    and return the maximum absolute difference from PyTorch."""
    import onnxruntime as ort
    import torch

    rng = rng if rng is not None else np.random.default_rng(1)
    x, mask = example_inputs(predictor, what, batch=batch, rng=rng)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"keypoint": x, "mask": mask}  # an input the graph does not use is pruned by the exporter
    got = sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0]
    with torch.inference_mode():
        ref = net(torch.from_numpy(x), torch.from_numpy(mask)).numpy()
    if got.shape != ref.shape:
        raise FinetecError(f"onnxruntime output shape {got.shape} differs from PyTorch {ref.shape}", path)
    return float(np.max(np.abs(got - ref)))
