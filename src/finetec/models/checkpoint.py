"""Model checkpoints: ``model.safetensors`` + ``checkpoint.json`` (+ ``complete.json``) in one folder.

The model package builds and loads its own checkpoints: :func:`build_model` rebuilds a model from
its stored ``model.config``, :func:`load_model` checks a folder and loads its weights,
:func:`save_checkpoint` writes one. The training state (``train_state.pt``, for ``--resume``) and
the publishing of training checkpoints belong to :mod:`finetec.engine.checkpoint`.

``checkpoint.json`` carries everything needed to rebuild and use the model without the
training config file: ``model_config`` (``model.config``, the kwargs of ``create_model``),
``class_names``, ``layout`` (the layout as a JSON dict), ``dims``, ``clip_len``, the full
training ``config``, ``epoch``, ``metrics``, ``seed`` and the finetec version.

A checkpoint is complete only when its record ``complete.json`` exists and matches: it is
written last (atomically) and names the epoch, the optimisation step and the SHA-256 checksum and
size of every other file of the folder. :func:`save_checkpoint` removes the old record before
it writes anything, so a folder caught half-written (a kill between two files) has no valid
record; :func:`verify` tells, and :func:`load_model` refuses such a folder.
A folder without any record (written by an older finetec, or by hand) is loaded as it is.

The metadata in ``checkpoint.json`` is checked against the weights before a model is built
(:func:`check_metadata`): its fields have their types, every integer size is within
:data:`MAX_MODEL_SIZE` and no larger than the largest tensor dimension of the weights (read
from the file's header), and the class names fit the classifier; the model built must then
have exactly the tensor names and shapes of the weights before any weight is read.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from finetec.data.pipeline import ClipPipeline, PipelineConfig
from finetec.errors import FinetecError
from finetec.fileio import atomic_path, write_text_atomic
from finetec.layouts import Layout, get_layout
from finetec.models.registry import create_model
from finetec.version import __version__

WEIGHTS = "model.safetensors"
INFO = "checkpoint.json"
RECORD = "complete.json"
# Largest integer accepted for a size in a checkpoint's model_config (channels, frames, classes,
# joints...): a checkpoint.json cannot make finetec build a model of absurd size.
MAX_MODEL_SIZE = 1 << 16
# Largest checkpoint.json read (bytes).
MAX_INFO_BYTES = 16 << 20
# checkpoint.json's format_version: 2 = the completion module's linear pre-fill gives a joint
# never observed in the clip its person's centroid (the project's one linear filler). A
# checkpoint without the field (format 1) was trained with that joint pre-filled with 0, and
# load_model rebuilds it so (prefill "linear_unseen_zero"), so that it computes what it learned.
FORMAT_VERSION = 2


def unwrap(model: Any) -> Any:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def _jsonable(x: Any) -> Any:
    """Convert numpy / torch scalars and tuples so that json.dumps accepts them."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):
        return _jsonable(x.tolist())
    if isinstance(x, os.PathLike):
        return os.fspath(x)
    return x


def save_checkpoint(directory: str | os.PathLike, model: Any, info: dict[str, Any],
                    step: int | None = None, extra: Callable[[Path], Any] | None = None) -> Path:
    """Write ``model.safetensors``, then whatever ``extra(folder)`` writes (the engine's training
    state), then ``checkpoint.json`` into ``directory``, and the record ``complete.json`` last.

    ``info`` holds the descriptive fields (config, class_names, layout, dims, clip_len, epoch,
    metrics, seed, ...); ``model_config`` and ``finetec_version`` are added here. The old record
    is removed before anything is written, so until this call returns the folder is not a
    complete checkpoint. Returns the folder.
    """
    model = unwrap(model)
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise TypeError("the model has no model.config dict with a 'name' (built by create_model?)")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / RECORD).unlink(missing_ok=True)
    # Clone each tensor: safetensors refuses shared storage, and the copy is contiguous on CPU.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    payload = {**_jsonable(info), "model_config": _jsonable(config), "finetec_version": __version__,
               "format_version": FORMAT_VERSION}
    text = json.dumps(payload, indent=1, sort_keys=False, allow_nan=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "finetec_version": __version__})
    if extra is not None:
        extra(out)
    write_text_atomic(out / INFO, text + "\n")
    write_record(out, info.get("epoch"), step)
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_record(directory: str | os.PathLike, epoch: Any = None, step: Any = None) -> Path:
    """Write ``complete.json`` (epoch, step, SHA-256 and size of every other visible file)."""
    out = Path(directory)
    files = {f.name: {"sha256": _sha256(f), "bytes": f.stat().st_size}
             for f in sorted(out.iterdir()) if f.is_file() and f.name != RECORD and not f.name.startswith(".")}
    record = {"epoch": _jsonable(epoch), "step": _jsonable(step), "files": files}
    write_text_atomic(out / RECORD, json.dumps(record, indent=1) + "\n")
    return out / RECORD


def verify(directory: str | os.PathLike, required: tuple[str, ...] = (WEIGHTS, INFO)) -> str | None:
    """None when ``directory`` is a complete checkpoint (its record exists and every file it names
    has its size and checksum, and ``required`` files are among them); else the problem."""
    folder = Path(directory)
    rec = folder / RECORD
    if not folder.is_dir():
        return "missing"
    try:
        if rec.stat().st_size > MAX_INFO_BYTES:
            return f"{RECORD} is too large"
        record = json.loads(rec.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"incomplete ({RECORD} is missing: the write was interrupted)"
    except (OSError, ValueError) as e:
        return f"{RECORD} is not readable JSON ({type(e).__name__})"
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(isinstance(v, dict) for v in files.values()):
        return f"{RECORD} has no 'files' table"
    for name in required:
        if name not in files:
            return f"{RECORD} does not list {name}"
    for name, entry in files.items():
        f = folder / str(name)
        if "/" in str(name) or str(name).startswith("."):
            return f"{RECORD} names an unexpected file {name!r}"
        try:
            size = f.stat().st_size
        except OSError:
            return f"{name} is missing"
        if size != entry.get("bytes") or _sha256(f) != entry.get("sha256"):
            return f"{name} does not match its checksum in {RECORD} (files of different writes)"
    return None


def record_of(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The parsed record of a complete checkpoint folder, or None."""
    if verify(directory) is not None:
        return None
    return json.loads((Path(directory) / RECORD).read_text(encoding="utf-8"))


def locate(path: str | os.PathLike) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        folder, weights = p, p / WEIGHTS
    elif p.suffix == ".safetensors" or p.name == INFO:
        folder, weights = p.parent, p.parent / WEIGHTS if p.name == INFO else p
    elif not p.exists():
        raise FinetecError("no such checkpoint (expected a folder with model.safetensors + checkpoint.json)", p)
    else:
        raise FinetecError("not a checkpoint (expected a folder or a .safetensors file)", p)
    if (folder / "best" / INFO).exists() and not (folder / INFO).exists():
        folder, weights = folder / "best", folder / "best" / WEIGHTS  # a training output folder
    return folder, weights


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


# the pipeline options that matter at test time (the others only act in training)
_TEST_PIPELINE_KEYS = ("clip_len", "filler", "features", "normalize", "align_view")


@dataclass(frozen=True)
class CheckpointInfo(Mapping):
    """``checkpoint.json``, read and validated once (:func:`read_info`), with typed fields.

    The fields a user of a checkpoint needs are attributes; every stored field stays readable as
    a mapping (``info["epoch"]``, ``info.get("metrics")``) for code written against the plain
    dict. :meth:`test_pipeline` is the one place that builds the test-time pipeline of a
    checkpoint (evaluation, the benchmark's testing, the API and the ONNX export all use it).
    """

    raw: dict[str, Any]
    path: str | None
    model_config: dict[str, Any]
    model_name: str
    task: str | None
    class_names: tuple[str, ...]
    layout: Layout | None
    clip_len: int | None
    dims: dict[str, int]
    coords: int | None
    config: dict[str, Any] = field(repr=False)
    seed: int = 0
    format_version: int = 1

    @classmethod
    def from_dict(cls, info: Mapping[str, Any], model_config: Mapping[str, Any] | None = None) -> "CheckpointInfo":
        """The record of a parsed ``checkpoint.json`` (``model_config`` stands in for a missing one)."""
        if isinstance(info, CheckpointInfo):
            return info
        raw = dict(info)
        path = raw.get("path")
        mcfg = _dict(raw.get("model_config")) or _dict(model_config)
        config = _dict(raw.get("config"))
        lay = raw.get("layout", mcfg.get("layout"))
        if isinstance(lay, dict):
            layout = Layout.from_dict(lay, origin=str(path or "<checkpoint>"))
        elif isinstance(lay, (str, Layout)):
            layout = get_layout(lay)
        else:
            layout = None
        pipeline = _dict(config.get("pipeline"))
        clip_len = raw.get("clip_len") or pipeline.get("clip_len")
        dims = {str(k): v for k, v in _dict(raw.get("dims")).items()}
        coords = raw.get("dim", dims.get("coords"))
        return cls(raw=raw, path=None if path is None else str(path), model_config=mcfg,
                   model_name=str(mcfg.get("name", "")), task=raw.get("task") or config.get("task"),
                   class_names=tuple(str(c) for c in raw.get("class_names") or ()), layout=layout,
                   clip_len=int(clip_len) if clip_len else None, dims=dims,
                   coords=int(coords) if coords else None, config=config,
                   seed=int(raw.get("seed", config.get("seed", 0)) or 0),
                   format_version=int(raw.get("format_version") or 1))

    # -- the mapping of the stored fields ----------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    # -- derived -----------------------------------------------------------------------------
    @property
    def is_completion(self) -> bool:
        """A completion-only checkpoint (no classifier)."""
        return self.model_name == "completion" or self.task == "completion"

    @property
    def data_config(self) -> dict[str, Any]:
        """The training config's ``data`` section (path, format, options, splits)."""
        return _dict(self.config.get("data"))

    @property
    def test_split(self) -> str:
        return str(self.data_config.get("test_split") or "test")

    @property
    def num_persons(self) -> int | None:
        """Persons per model input (M) the model was trained with, when recorded."""
        m = (self.dims.get("num_persons") or _dict(self.config.get("pipeline")).get("max_persons")
             or self.data_config.get("max_persons"))
        return int(m) if m else None

    def test_pipeline_config(self, level: str = "clean", pattern: str = "random") -> PipelineConfig:
        """The checkpoint's pipeline in test mode at ``level`` / ``pattern``: its clip length, filler,
        features, normalisation and view alignment; no augmentation, no mixed levels."""
        p = _dict(self.config.get("pipeline"))
        kw: dict[str, Any] = {k: p[k] for k in _TEST_PIPELINE_KEYS if k in p}
        if self.clip_len:
            kw["clip_len"] = self.clip_len
        if "features" in kw and not isinstance(kw["features"], str):
            kw["features"] = tuple(kw["features"])
        try:
            return PipelineConfig(level=level, pattern=pattern, mixed=False, augment=False,
                                  max_persons=self.num_persons, **kw)
        except (TypeError, ValueError) as e:
            raise FinetecError(f"the checkpoint's pipeline settings are invalid ({e})", self.path) from None

    def test_pipeline(self, level: str = "clean", pattern: str = "random", seed: int = 0,
                      layout: Layout | None = None) -> ClipPipeline:
        """The test-time pipeline (see :meth:`test_pipeline_config`) on ``layout`` (default: the
        checkpoint's); ``seed`` fixes the corrupted test set (0 is the benchmark's)."""
        lay = layout if layout is not None else self.layout
        if lay is None:
            raise FinetecError("the checkpoint records no skeleton layout", self.path)
        return ClipPipeline(lay, self.test_pipeline_config(level, pattern), train=False, seed=seed, dim=self.coords)


def read_info(path: str | os.PathLike) -> CheckpointInfo:
    """The ``checkpoint.json`` of a checkpoint folder (or of the folder holding a .safetensors),
    checked and read into a :class:`CheckpointInfo`."""
    folder, _ = locate(path)
    f = folder / INFO
    try:
        if f.stat().st_size > MAX_INFO_BYTES:
            raise FinetecError(f"checkpoint.json is larger than {MAX_INFO_BYTES >> 20} MiB", f)
        info = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FinetecError("checkpoint.json is missing", f) from None
    except (OSError, ValueError, RecursionError) as e:
        raise FinetecError(f"checkpoint.json is not readable JSON ({type(e).__name__}: "
                           f"{str(e).splitlines()[0] if str(e) else ''})"[:300], f) from None
    if not isinstance(info, dict) or not isinstance(info.get("model_config"), dict) \
            or not isinstance(info["model_config"].get("name"), str):
        raise FinetecError("checkpoint.json has no model_config with a model name", f)
    _check_info_types(info, f)
    info["path"] = str(folder)
    return CheckpointInfo.from_dict(info)


_INFO_TYPES: dict[str, tuple[type, ...]] = {
    "class_names": (list,), "layout": (dict,), "dims": (dict,), "clip_len": (int,), "epoch": (int,),
    "metrics": (dict,), "config": (dict,), "task": (str,), "seed": (int,), "selection": (str,),
    "format_version": (int,),
}


def _check_info_types(info: dict[str, Any], f: Path) -> None:
    """Each known field of checkpoint.json has its type, and each size is a sane integer."""
    for key, types in _INFO_TYPES.items():
        v = info.get(key)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool)):
            raise FinetecError(f"checkpoint.json: {key!r} must be {' or '.join(t.__name__ for t in types)}, "
                               f"got {type(v).__name__}", f)
    names = info.get("class_names")
    if names is not None and not all(isinstance(c, str) for c in names):
        raise FinetecError("checkpoint.json: 'class_names' must be a list of strings", f)
    sizes = {f"model_config.{k}": v for k, v in info["model_config"].items() if k != "seed"}
    sizes.update({f"dims.{k}": v for k, v in (info.get("dims") or {}).items()})
    sizes["clip_len"] = info.get("clip_len")
    for key, v in sizes.items():
        if isinstance(v, int) and not isinstance(v, bool) and not -MAX_MODEL_SIZE <= v <= MAX_MODEL_SIZE:
            raise FinetecError(f"checkpoint.json: {key} = {v} is outside the accepted range "
                               f"(|value| <= {MAX_MODEL_SIZE})", f)
        if key.startswith("dims.") and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise FinetecError(f"checkpoint.json: {key} must be a positive integer, got {v!r}"[:200], f)
    if info.get("clip_len") is not None and info["clip_len"] < 1:
        raise FinetecError(f"checkpoint.json: clip_len must be at least 1, got {info['clip_len']}", f)


def upgraded_model_config(info: CheckpointInfo) -> dict[str, Any]:
    """``model_config`` of a checkpoint.json, with what an older format left implicit made explicit:
    before format 2 the completion module (alone, or inside FineTec as ``completion_config``)
    pre-filled a joint never observed in the clip with 0 (``prefill: linear_unseen_zero``)."""
    cfg = json.loads(json.dumps(info.model_config))
    if info.format_version >= 2:
        return cfg
    for c in (cfg, cfg.get("completion_config")):
        if isinstance(c, dict) and c.get("name") == "completion" and c.get("prefill", "linear") == "linear":
            c["prefill"] = "linear_unseen_zero"
    return cfg


def build_model(model_config: dict[str, Any], origin: str | os.PathLike | None = None,
                device: str | None = None) -> Any:
    """Rebuild an (untrained) model from its stored ``model.config`` (on ``device``: ``"meta"``
    builds the structure without allocating any memory)."""
    kw = dict(model_config)
    if isinstance(kw.get("layout"), dict):
        kw["layout"] = Layout.from_dict(kw["layout"], origin=str(origin or "<checkpoint>"))
    name = kw.pop("name")
    try:
        with torch.device(device) if device else contextlib.nullcontext():
            return create_model(name, **kw)
    except FinetecError as e:
        raise FinetecError(f"cannot rebuild the model: {e}", origin) from None
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError, OverflowError,
            ZeroDivisionError, NotImplementedError, AssertionError, MemoryError) as e:
        if os.environ.get("FINETEC_DEBUG"):
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        raise FinetecError(f"cannot rebuild the model {name!r} from checkpoint.json "
                           f"({type(e).__name__}: {first})"[:300], origin) from None


def _weight_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes from the header of a safetensors file (reads no tensor data)."""
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise FinetecError(f"corrupt weights file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                           weights) from None


def _ints(x: Any) -> list[int]:
    if isinstance(x, bool):
        return []
    if isinstance(x, int):
        return [x]
    if isinstance(x, (list, tuple)):
        return [v for item in x for v in _ints(item)]
    return []


def check_metadata(info: CheckpointInfo, weights: Path, origin: Path) -> dict[str, tuple[int, ...]]:
    """Check checkpoint.json against the weights before a model is built; returns the weights'
    tensor shapes (read from the file's header, no tensor data).

    Every size in ``model_config`` (an integer option, in lists too; ``seed`` aside) must be at
    most the largest tensor dimension of the weights (a genuine model's widths, lengths and class
    counts all appear there), so a checkpoint.json cannot make finetec build a model larger than
    its own weights describe; the class names must fit the classifier."""
    shapes = _weight_shapes(weights)
    largest = max([d for shp in shapes.values() for d in shp] + [64])
    for key, value in info.model_config.items():
        if key == "seed":
            continue
        for v in _ints(value):
            if v > largest:
                raise FinetecError(f"checkpoint.json does not match the weights: model_config.{key} = {v} but "
                                   f"no tensor of the weights has a dimension above {largest}", origin)
    names, k = info.class_names, info.model_config.get("num_classes")
    if names and isinstance(k, int) and info.task != "completion" and len(names) != k:
        raise FinetecError(f"checkpoint.json lists {len(names)} class names for a model with {k} classes", origin)
    return shapes


def _compare(model: Any, shapes: dict[str, tuple[int, ...]], weights: Path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if expected == shapes:
        return
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    wrong = sorted(k for k in set(expected) & set(shapes) if expected[k] != shapes[k])
    if missing:
        detail = f"missing tensor {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
    elif extra:
        detail = f"unexpected tensor {extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
    else:
        k = wrong[0]
        detail = f"{k} has shape {list(shapes[k])} in the weights but {list(expected[k])} in checkpoint.json"
    raise FinetecError(f"checkpoint.json does not match the weights: {detail}", weights)


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, CheckpointInfo]:
    """Rebuild the model of a checkpoint, load its weights, move it to ``device``, eval mode.

    ``path``: a checkpoint folder, its ``model.safetensors``, or a training output folder (its
    ``best/`` is used). Returns ``(model, info)`` with ``info`` the :class:`CheckpointInfo` of its
    checkpoint.json (plus ``path``). A missing, incomplete or corrupt checkpoint, or one whose checkpoint.json does not
    describe its weights, raises :class:`FinetecError` before the model is built.
    """
    folder, weights = locate(path)
    info = read_info(folder)
    if not weights.exists():
        raise FinetecError("model.safetensors is missing", weights)
    if (folder / RECORD).exists():
        problem = verify(folder)
        if problem is not None:
            raise FinetecError(f"not a complete checkpoint: {problem}", folder)
    shapes = check_metadata(info, weights, folder / INFO)
    model = build_model(upgraded_model_config(info), folder / INFO)
    _compare(model, shapes, weights)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise FinetecError(f"corrupt weights file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                           weights) from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = str(e).splitlines()
        raise FinetecError(f"weights do not match the model: {' '.join(l.strip() for l in lines[:3])}",
                           weights) from None
    model.to(device)
    model.eval()
    return model, info



__all__ = ["CheckpointInfo", "FORMAT_VERSION", "upgraded_model_config", "save_checkpoint", "load_model", "read_info", "build_model", "check_metadata", "unwrap", "verify",
           "write_record", "record_of", "locate", "WEIGHTS", "INFO", "RECORD", "MAX_MODEL_SIZE", "MAX_INFO_BYTES"]
