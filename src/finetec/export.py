"""ONNX export of a trained checkpoint.

Two graphs can be exported from a checkpoint:

- ``recognizer``: inputs ``keypoint`` float32 (N, M, T, V, C_in) and ``mask`` bool (N, M, T, V),
  output ``logits`` (N, K). The input is what :class:`finetec.data.pipeline.ClipPipeline`
  produces in test mode (normalised, gap-filled, features stacked): preprocessing stays in
  Python (see :meth:`finetec.api.Predictor.preprocess`), the network is in the ONNX file.
- ``completion``: inputs ``keypoint`` float32 (N, M, T, V, C) (normalised positions) and
  ``mask``; output ``completed`` (N, M, T, V, C). Available for a completion checkpoint and for a
  FineTec checkpoint (its completion module).

The batch axis N is dynamic where the graph allows it (otherwise fixed at 1: the completion module,
whose gap pre-fill needs the static clip length); M, T, V, C are fixed at the checkpoint's values.
``aten::cummax`` / ``aten::cummin`` (a triangular reduction) and ``aten::diag_embed`` get ONNX
translations here. A FineTec
recognizer exports only with ``perturb_eval: false`` (its evaluation-time perturbations are seeded
per clip from the clip's content, which no static graph can express). The export uses the
TorchScript-based exporter of ``torch.onnx.export`` (``dynamo=False``), which needs only the
``onnx`` package; when ``onnxruntime`` is installed the exported graph is run on a random input
and compared with PyTorch (the maximum absolute difference is reported).

The non-torch inference backends (``RUNTIMES``: onnxruntime, OpenVINO) run the recognizer graph:
:class:`ExportedRecognizer` exports and checks it, a small subclass per runtime loads and runs it.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from finetec.backends import BACKENDS, EXTRAS
from finetec.errors import FinetecError
from finetec.fileio import atomic_path

WHAT = ("recognizer", "completion")
INSTALL_HINT = "ONNX export needs the optional packages onnx and onnxruntime: pip install finetec[onnx]"

__all__ = ["BACKENDS", "ExportedRecognizer", "OnnxRecognizer", "OpenVinoRecognizer", "RUNTIMES", "WHAT",
           "export_onnx", "installed", "onnx_available", "example_inputs"]


def onnx_available() -> bool:
    """Whether the ``onnx`` package (needed to write the file) is importable."""
    return importlib.util.find_spec("onnx") is not None


def installed(package: str) -> bool:
    """Whether the optional ``package`` is importable (``onnx``: :func:`onnx_available`)."""
    return onnx_available() if package == "onnx" else importlib.util.find_spec(package) is not None


def _modules():
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


def _cumulative_symbolic(kind: str, opset: int):
    """ONNX symbolic for ``aten::cummax`` / ``aten::cummin`` (which the TorchScript exporter lacks).

    With T the (static) size of ``dim``: ``out[t] = reduce_{s <= t} x[s]``, computed as a reduction
    over a (T, T) lower-triangular selection in which the masked entries hold ``x[0]`` (always part
    of the prefix, so it never changes the result). The indices output is the first position of the
    extremum within the prefix (torch may report another position on ties).
    """

    reduce_op, arg_op = ("ReduceMax", "ArgMax") if kind == "max" else ("ReduceMin", "ArgMin")

    def symbolic(g, self, dim):
        from torch.onnx import symbolic_helper as sh   # here: torch.onnx costs 0.2 s of every start-up

        sizes = sh._get_tensor_sizes(self)
        d = sh._get_const(dim, "i", "dim")
        if sizes is None or d is None:
            raise RuntimeError(f"cum{kind} export needs a known rank and dimension")
        rank = len(sizes)
        d = d % rank
        T = sizes[d]
        if T is None:
            raise RuntimeError(f"cum{kind} export needs a static size along dim {d}")
        shape = [1] * (rank + 1)
        shape[d], shape[d + 1] = T, T
        tri = torch.from_numpy(np.tril(np.ones((T, T), dtype=bool)).reshape(shape))

        def axes(*a: int):
            return g.op("Constant", value_t=torch.tensor(a, dtype=torch.long))

        a = g.op("Unsqueeze", self, axes(d))                                   # (.., 1, T_s, ..)
        first = g.op("Unsqueeze", g.op("Gather", self, axes(0), axis_i=d), axes(d + 1))  # (.., 1, 1, ..)
        sel = g.op("Where", g.op("Constant", value_t=tri), a, first)          # (.., T_t, T_s, ..)
        if opset >= 18:
            values = g.op(reduce_op, sel, axes(d + 1), keepdims_i=0)
        else:
            values = g.op(reduce_op, sel, axes_i=[d + 1], keepdims_i=0)
        indices = g.op(arg_op, sel, axis_i=d + 1, keepdims_i=0)
        return values, indices

    return symbolic


def _diag_embed_symbolic(g, self, offset, dim1, dim2):
    """ONNX symbolic for ``aten::diag_embed`` with the default diagonal: x (..., n) -> x[..., None] * I_n."""
    from torch.onnx import symbolic_helper as sh   # here: torch.onnx costs 0.2 s of every start-up

    off, d1, d2 = (sh._get_const(v, "i", n) for v, n in ((offset, "offset"), (dim1, "dim1"), (dim2, "dim2")))
    rank = sh._get_tensor_rank(self)
    if rank is None:
        raise RuntimeError("diag_embed export needs a known rank")
    rank += 1
    if off != 0 or d1 % rank != rank - 2 or d2 % rank != rank - 1:
        raise RuntimeError("diag_embed export supports only the main diagonal of the last two dimensions")

    def const(v):
        return g.op("Constant", value_t=torch.tensor(v, dtype=torch.long))

    n = g.op("Slice", g.op("Shape", self), const([-1]), const([2 ** 62]))       # [n]
    zeros = g.op("ConstantOfShape", g.op("Concat", n, n, axis_i=0), value_t=torch.tensor([0.0]))
    eye = g.op("CastLike", g.op("EyeLike", zeros), self)                       # (n, n)
    return g.op("Mul", g.op("Unsqueeze", self, const([-1])), eye)


def _register_symbolics(opset: int) -> None:
    """Translations for the few operators of finetec's models that the TorchScript exporter lacks."""

    for kind in ("max", "min"):
        torch.onnx.register_custom_op_symbolic(f"aten::cum{kind}", _cumulative_symbolic(kind, opset), opset)
    torch.onnx.register_custom_op_symbolic("aten::diag_embed", _diag_embed_symbolic, opset)


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
    dynamic = {"keypoint": {0: "batch"}, "mask": {0: "batch"}, out_name: {0: "batch"}}
    batch: Any = "batch"
    diff = None
    with atomic_path(out_path, suffix=".onnx") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _register_symbolics(opset)
        try:
            _export(net, (xt, mt), tmp, opset, out_name, dynamic)
        except Exception:  # noqa: BLE001 - some graphs only export with a fixed batch size
            batch = 1
            try:
                _export(net, (xt, mt), tmp, opset, out_name, None)
            except Exception as e:  # noqa: BLE001 - report the exporter's reason in one line
                raise FinetecError(f"torch.onnx.export failed for the {what}: {_first_line(e)}"
                                   f"{_hint(predictor, what)}", predictor.path) from None
        if check and importlib.util.find_spec("onnxruntime") is not None:
            try:  # checked before the file takes its final name: a graph that fails leaves no file
                diff = compare_with_onnxruntime(net, tmp, predictor, what, rng, batch=2 if batch == "batch" else 1)
            except FinetecError:
                raise
            except Exception as e:  # noqa: BLE001 - onnxruntime's own errors
                raise FinetecError(f"the exported {what} does not run in onnxruntime: {_first_line(e)}"
                                   f"{_hint(predictor, what)}", predictor.path) from None
    report: dict[str, Any] = {
        "path": str(out_path), "what": what, "opset": opset,
        "inputs": {"keypoint": [batch, *x.shape[1:]], "mask": [batch, *mask.shape[1:]]},
        "outputs": {out_name: [batch, *ref.shape[1:]]},
        "max_abs_diff": diff, "checked_with": "onnxruntime" if diff is not None else None,
    }
    return report


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def _hint(predictor: Any, what: str) -> str:
    if what == "recognizer" and predictor.model_name == "finetec":
        return " (the FineTec recognizer's decomposition and physics modules are not all ONNX-exportable; " \
               "the completion module is: --what completion)"
    return ""


@contextlib.contextmanager
def _stdout_silenced():
    """File descriptor 1 sent to ``os.devnull`` for the duration. The TorchScript exporter leaves
    its ONNX log switched on (torch 2.13's ``setup_onnx_logging`` tests the function
    ``_jit_is_onnx_log_enabled`` for truth instead of calling it) and its C++ side then writes the
    whole TorchScript graph to standard output when an attempt fails (the dynamic batch axis of the
    FineTec recognizer), which would precede the output of ``finetec predict --json`` and of
    ``finetec stream --json``. The reason of a failure stays in the exception."""
    try:
        sys.stdout.flush()
        saved = os.dup(1)
    except (OSError, ValueError, AttributeError):   # no file descriptor 1 (or no sys.stdout) to protect
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _export(net: Any, args: tuple, path: Path, opset: int, out_name: str, dynamic: dict | None) -> None:
    with warnings.catch_warnings(), _stdout_silenced():  # the exporter announces its deprecation on every call
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, str(path), dynamo=False, opset_version=opset,
                          input_names=["keypoint", "mask"], output_names=[out_name], dynamic_axes=dynamic)


def compare_with_onnxruntime(net: Any, path: str | os.PathLike, predictor: Any, what: str,
                             rng: np.random.Generator | None = None, batch: int = 2) -> float:
    """Run the ONNX file with onnxruntime on a fresh batch (also checks the dynamic batch axis)
    and return the maximum absolute difference from PyTorch."""
    import onnxruntime as ort

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


class ExportedRecognizer:
    """A predictor's recognizer exported to ONNX and run by another runtime on the CPU: the common
    part of the non-torch inference backends of :class:`finetec.api.Predictor` (``RUNTIMES``).

    Built once per predictor: the graph is exported to a temporary file (:func:`export_onnx`, the
    graph of ``finetec export``) and loaded into the runtime (:meth:`_load`, with as many threads as
    torch uses); the runtime's output on an example batch of two clips must agree with PyTorch within
    ``TOLERANCE``, else a one-line :class:`FinetecError` naming ``--backend`` and ``--backend torch``
    (never a silent fallback). Calling it maps model inputs (keypoint (N, M, T, V, C_in), mask
    (N, M, T, V)) to logits (N, K); a graph whose batch axis is fixed at 1 (the FineTec recognizer)
    is run clip by clip. A subclass names its ``BACKEND`` and the ``PACKAGES`` it needs and
    implements :meth:`_load` and :meth:`_run`.
    """

    TOLERANCE = 1e-4
    BACKEND = ""
    PACKAGES: tuple[str, ...] = ()

    def __init__(self, predictor: Any) -> None:
        name = self.BACKEND
        if not all(installed(p) for p in self.PACKAGES):
            raise FinetecError(f"--backend {name} needs the optional packages {' and '.join(self.PACKAGES)} "
                               f"(pip install finetec[{EXTRAS[name]}]); or use --backend torch")
        self.inputs: list[str] = []   # the graph's inputs (one it does not use is pruned by the exporter)
        with tempfile.TemporaryDirectory(prefix="finetec-onnx-") as tmp:
            path = Path(tmp) / "recognizer.onnx"
            report = export_onnx(predictor, path, what="recognizer", check=False)
            self.fixed_batch = report["inputs"]["keypoint"][0] == 1
            try:
                self._load(path)
                diff = self._difference(predictor)
            except FinetecError:
                raise
            except Exception as e:  # noqa: BLE001 - the runtime's own errors, in one line
                raise FinetecError(f"--backend {name}: the exported recognizer does not run in {name}: "
                                   f"{_first_line(e)}; use --backend torch", predictor.path) from None
        if not diff <= self.TOLERANCE:
            raise FinetecError(f"--backend {name}: the exported recognizer differs from PyTorch by {diff:.3g} "
                               f"(more than {self.TOLERANCE}); use --backend torch", predictor.path)
        self.max_abs_diff = diff

    def _difference(self, predictor: Any) -> float:
        """Maximum absolute difference from PyTorch on an example batch of two clips (which also
        exercises the dynamic batch axis, or the clip-by-clip loop)."""
        x, mask = example_inputs(predictor, "recognizer", batch=2, rng=np.random.default_rng(1))
        net = _modules()[0](predictor.model).eval()
        with torch.inference_mode():
            ref = net(torch.from_numpy(x), torch.from_numpy(mask)).float().numpy()
        got = self(x, mask)
        if got.shape != ref.shape:
            raise FinetecError(f"--backend {self.BACKEND}: output shape {got.shape} differs from PyTorch "
                               f"{ref.shape}; use --backend torch", predictor.path)
        return float(np.max(np.abs(got - ref)))

    def _load(self, path: Path) -> None:
        """Load the ONNX file at ``path`` (deleted afterwards) and set ``self.inputs``."""
        raise NotImplementedError

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Logits for the graph's inputs ``feeds`` (name -> array)."""
        raise NotImplementedError

    def __call__(self, keypoint: np.ndarray, mask: np.ndarray) -> np.ndarray:
        feeds = {"keypoint": np.ascontiguousarray(keypoint, dtype=np.float32),
                 "mask": np.ascontiguousarray(mask, dtype=bool)}
        n = feeds["keypoint"].shape[0]
        feeds = {k: feeds[k] for k in self.inputs}
        if not self.fixed_batch or n == 1:
            return self._run(feeds)
        return np.concatenate([self._run({k: v[i:i + 1] for k, v in feeds.items()}) for i in range(n)])


class OnnxRecognizer(ExportedRecognizer):
    """The ``onnxruntime`` backend: an ``onnxruntime.InferenceSession`` on the CPU with as many
    intra-op threads as torch."""

    BACKEND = "onnxruntime"
    PACKAGES = ("onnx", "onnxruntime")

    def _load(self, path: Path) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, torch.get_num_threads())
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, feeds)[0]


class OpenVinoRecognizer(ExportedRecognizer):
    """The ``openvino`` backend: the ONNX graph read by ``openvino.Core`` and compiled for the CPU
    plugin in f32 (OpenVINO's default on a CPU with native bf16 is bf16, which would change the
    numbers), with as many threads as torch and the latency performance hint."""

    BACKEND = "openvino"
    PACKAGES = ("onnx", "openvino")

    def config(self) -> dict[str, Any]:
        """The CPU plugin's compile options."""
        return {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": max(1, torch.get_num_threads()),
                "PERFORMANCE_HINT": "LATENCY"}

    def _load(self, path: Path) -> None:
        import openvino as ov

        core = ov.Core()
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", self.config())
        self.request = self.compiled.create_infer_request()
        # an input port can carry several tensor names (mask may also be named after the Cast it feeds)
        self.inputs = [next(n for n in ("keypoint", "mask") if n in i.get_names()) for i in self.compiled.inputs]

    def _run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.request.infer(feeds)[0]   # a copy (share_outputs=False)


RUNTIMES: dict[str, type[ExportedRecognizer]] = {"onnxruntime": OnnxRecognizer, "openvino": OpenVinoRecognizer}
