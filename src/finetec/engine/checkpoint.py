"""Checkpoints: ``model.safetensors`` + ``checkpoint.json`` in one folder.

``checkpoint.json`` carries everything needed to rebuild and use the model without the
training config file: ``model_config`` (``model.config``, the kwargs of ``create_model``),
``class_names``, ``layout`` (the layout as a JSON dict), ``dims``, ``clip_len``, the full
training ``config``, ``epoch``, ``metrics``, ``seed`` and the finetec version. The training
state for ``--resume`` (optimizer, schedule position, epoch) lives beside it in
``train_state.pt``, written with ``torch.save`` of plain tensors and dicts and read back with
``weights_only=True``.

Files are written atomically, the weights first and ``checkpoint.json`` last, so a folder with a
``checkpoint.json`` always holds the matching weights.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from finetec.errors import FinetecError
from finetec.fileio import atomic_path, write_text_atomic

WEIGHTS = "model.safetensors"
INFO = "checkpoint.json"
TRAIN_STATE = "train_state.pt"


def unwrap(model: Any) -> Any:
    """The plain module inside DistributedDataParallel / torch.compile wrappers."""
    import torch

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


def save_checkpoint(directory: str | os.PathLike, model: Any, info: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` and ``checkpoint.json`` into ``directory``.

    ``info`` holds the descriptive fields (config, class_names, layout, dims, clip_len, epoch,
    metrics, seed, ...); ``model_config`` and ``finetec_version`` are added here. Returns the
    folder.
    """
    from safetensors.torch import save_file

    from finetec import __version__

    model = unwrap(model)
    config = getattr(model, "config", None)
    if not isinstance(config, dict) or "name" not in config:
        raise TypeError("the model has no model.config dict with a 'name' (built by create_model?)")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    # Clone each tensor: safetensors refuses shared storage, and the copy is contiguous on CPU.
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    payload = {**_jsonable(info), "model_config": _jsonable(config), "finetec_version": __version__}
    text = json.dumps(payload, indent=1, sort_keys=False, allow_nan=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "finetec_version": __version__})
    write_text_atomic(out / INFO, text + "\n")
    return out


def _locate(path: str | os.PathLike) -> tuple[Path, Path]:
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


def read_info(path: str | os.PathLike) -> dict[str, Any]:
    """The ``checkpoint.json`` of a checkpoint folder (or of the folder holding a .safetensors)."""
    folder, _ = _locate(path)
    f = folder / INFO
    try:
        info = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FinetecError("checkpoint.json is missing", f) from None
    except (OSError, ValueError) as e:
        raise FinetecError(f"checkpoint.json is not readable JSON ({type(e).__name__}: {e})", f) from None
    if not isinstance(info, dict) or not isinstance(info.get("model_config"), dict) \
            or "name" not in info["model_config"]:
        raise FinetecError("checkpoint.json has no model_config with a model name", f)
    info["path"] = str(folder)
    return info


def build_model(model_config: dict[str, Any], origin: str | os.PathLike | None = None) -> Any:
    """Rebuild an (untrained) model from its stored ``model.config``."""
    from finetec.layouts import Layout
    from finetec.models.registry import create_model

    kw = dict(model_config)
    if isinstance(kw.get("layout"), dict):
        kw["layout"] = Layout.from_dict(kw["layout"], origin=str(origin or "<checkpoint>"))
    name = kw.pop("name")
    try:
        return create_model(name, **kw)
    except FinetecError as e:
        raise FinetecError(f"cannot rebuild the model: {e}", origin) from None
    except TypeError as e:
        raise FinetecError(f"cannot rebuild the model {name!r}: {e}", origin) from None


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[Any, dict[str, Any]]:
    """Rebuild the model of a checkpoint, load its weights, move it to ``device``, eval mode.

    ``path``: a checkpoint folder, its ``model.safetensors``, or a training output folder (its
    ``best/`` is used). Returns ``(model, info)`` with ``info`` = the parsed checkpoint.json plus
    ``path``. A missing or corrupt checkpoint raises :class:`FinetecError`.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder, weights = _locate(path)
    info = read_info(folder)
    if not weights.exists():
        raise FinetecError("model.safetensors is missing", weights)
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise FinetecError(f"corrupt weights file ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})",
                           weights) from None
    model = build_model(info["model_config"], folder / INFO)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        lines = str(e).splitlines()
        raise FinetecError(f"weights do not match the model: {' '.join(l.strip() for l in lines[:3])}",
                           weights) from None
    model.to(device)
    model.eval()
    return model, info


def save_train_state(directory: str | os.PathLike, state: dict[str, Any]) -> Path:
    """``torch.save`` plain tensors/dicts (optimizer, step, epoch, best metric) atomically."""
    import torch

    out = Path(directory) / TRAIN_STATE
    with atomic_path(out) as tmp:
        torch.save(state, tmp)
    return out


def load_train_state(directory: str | os.PathLike) -> dict[str, Any]:
    """Read ``train_state.pt`` with ``weights_only=True`` (no code runs from the file)."""
    import torch

    f = Path(directory) / TRAIN_STATE
    if not f.exists():
        raise FinetecError("train_state.pt is missing (cannot resume)", f)
    try:
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means an unusable file
        raise FinetecError(f"cannot read training state ({type(e).__name__})", f) from None


__all__ = ["save_checkpoint", "load_model", "read_info", "build_model", "save_train_state",
           "load_train_state", "unwrap", "WEIGHTS", "INFO", "TRAIN_STATE"]
