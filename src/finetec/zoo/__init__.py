"""The model zoo: pretrained checkpoints shipped with finetec, by name.

Each model is a checkpoint folder in this package (``zoo/<name>/model.safetensors`` and
``checkpoint.json``), described in ``zoo/models.json``: the SHA-256 checksum and size of each
file (checked every time the model is loaded: an altered file is refused), the skeleton layout,
coordinates, classes and clip length, the dataset and the command that trained it, and its top-1
accuracy per corruption level on the dataset's test split as ``finetec eval --model NAME --data
... --level all`` prints it (the command is recorded with the numbers). ``benchmarks/build_zoo.py``
writes the folder, the entry and the model card (``docs/models/<name>.md``) from a trained run.

    >>> from finetec import zoo
    >>> zoo.names()                                   # doctest: +SKIP
    ['nw-ucla-finetec', 'nw-ucla-stgcnpp', 'nw-ucla-stgcnpp-t32', 'penn-action-finetec', ...]
    >>> folder = zoo.checkpoint("penn-action")         # an alias; the checksums are verified

This module reads JSON only (no torch), so ``finetec models`` stays fast.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetec.errors import FinetecError
from finetec.fileio import sha256_file

HERE = Path(__file__).parent
REGISTRY = HERE / "models.json"
LEVELS = ("clean", "minor", "moderate", "severe")


@dataclass(frozen=True)
class ZooModel:
    """One shipped model (an entry of ``models.json``)."""

    name: str
    dataset: str
    method: str
    layout: str
    dim: int
    classes: tuple[str, ...]
    clip_len: int
    files: dict[str, dict[str, Any]]              # file name -> {"sha256", "bytes"}
    top1: dict[str, float]                       # level -> top-1 (fraction) on the test split
    evaluation: dict[str, Any] = field(default_factory=dict)   # command, split, clips, seed
    aliases: tuple[str, ...] = ()
    trained_with: str = ""
    card: str = ""
    licence: str = ""
    description: str = ""

    @property
    def folder(self) -> Path:
        return HERE / self.name

    @property
    def size_bytes(self) -> int:
        return sum(int(f["bytes"]) for f in self.files.values())

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> "ZooModel":
        try:
            return cls(name=name, dataset=str(d["dataset"]), method=str(d["method"]), layout=str(d["layout"]),
                       dim=int(d["dim"]), classes=tuple(str(c) for c in d["classes"]),
                       clip_len=int(d["clip_len"]), files=dict(d["files"]),
                       top1={str(k): float(v) for k, v in d["top1"].items()},
                       evaluation=dict(d.get("evaluation") or {}),
                       aliases=tuple(str(a) for a in d.get("aliases") or ()),
                       trained_with=str(d.get("trained_with", "")), card=str(d.get("card", "")),
                       licence=str(d.get("licence", "")), description=str(d.get("description", "")))
        except (KeyError, TypeError, ValueError) as e:
            raise FinetecError(f"models.json: entry {name!r} is malformed ({type(e).__name__}: {e})",
                               REGISTRY) from None

    def to_dict(self) -> dict[str, Any]:
        return {"aliases": list(self.aliases), "dataset": self.dataset, "method": self.method,
                "description": self.description, "layout": self.layout, "dim": self.dim,
                "clip_len": self.clip_len, "classes": list(self.classes), "files": self.files,
                "top1": self.top1, "evaluation": self.evaluation, "trained_with": self.trained_with,
                "card": self.card, "licence": self.licence}


@functools.lru_cache(maxsize=None)
def _load_registry(path: str) -> dict[str, ZooModel]:
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise FinetecError(f"the model registry is not readable JSON ({type(e).__name__})", p) from None
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict):
        raise FinetecError("the model registry has no 'models' table", p)
    return {str(n): ZooModel.from_dict(str(n), d) for n, d in models.items()}


def registry() -> dict[str, ZooModel]:
    """Every shipped model by name."""
    return _load_registry(str(REGISTRY))


def names() -> list[str]:
    """The names of the shipped models (aliases not included)."""
    return sorted(registry())


def aliases() -> dict[str, str]:
    """Alias -> model name (e.g. ``penn-action`` -> the recommended Penn Action model)."""
    return {a: m.name for m in registry().values() for a in m.aliases}


def _choices() -> str:
    al = aliases()
    listed = names() + [f"{a} (= {n})" for a, n in sorted(al.items())]
    return ", ".join(listed) if listed else "none shipped"


def is_model_name(name: str) -> bool:
    return str(name) in registry() or str(name) in aliases()


def get(name: str) -> ZooModel:
    """The shipped model called ``name`` (or one of its aliases); FinetecError listing the names."""
    key = str(name)
    key = aliases().get(key, key)
    if key not in registry():
        raise FinetecError(f"unknown model {str(name)[:80]!r}; pretrained models: {_choices()} "
                           "(finetec models lists them)")
    return registry()[key]


def verify(model: ZooModel) -> None:
    """FinetecError unless every file of ``model`` has its recorded size and SHA-256."""
    for fname, rec in model.files.items():
        f = model.folder / fname
        try:
            size = f.stat().st_size
        except OSError:
            raise FinetecError(f"pretrained model {model.name!r}: {fname} is missing (reinstall finetec)", f) from None
        if size != int(rec["bytes"]) or sha256_file(f) != rec["sha256"]:
            raise FinetecError(f"pretrained model {model.name!r}: checksum mismatch: {fname} is not the file that "
                               "was shipped (altered or damaged; reinstall finetec)", f)


def checkpoint(name: str) -> Path:
    """The checkpoint folder of the shipped model ``name``, its checksums verified."""
    model = get(name)
    verify(model)
    return model.folder


def resolve(spec: str | os.PathLike) -> str:
    """A checkpoint argument as given by the user: an existing path stays as it is (a user's own
    checkpoint folder, run folder or ``.safetensors``); a model name (or alias) becomes the shipped
    checkpoint folder, verified. Anything else: FinetecError saying neither was found."""
    s = os.fspath(spec)
    if os.path.exists(s):
        return s
    if is_model_name(s):
        return str(checkpoint(s))
    raise FinetecError(f"no such checkpoint (a folder with model.safetensors + checkpoint.json) and no pretrained "
                       f"model of that name; pretrained models: {_choices()}", s)


def checkpoint_from_args(ckpt: str | None, model: str | None) -> str:
    """The checkpoint of a command with a ``CKPT`` argument and a ``--model NAME`` option: exactly
    one of them must be given."""
    if model is not None:
        if ckpt is not None:
            raise FinetecError(f"give either a checkpoint ({ckpt}) or --model {model}, not both")
        return str(checkpoint(model))
    if ckpt is None:
        raise FinetecError(f"no model: give a checkpoint folder (CKPT) or --model NAME (pretrained: {_choices()})")
    return resolve(ckpt)


def add_model_option(p: Any) -> None:
    """``--model NAME`` on a command that takes a checkpoint."""
    p.add_argument("--model", metavar="NAME", default=None,
                   help="a pretrained model by name instead of CKPT (finetec models lists them)")


__all__ = ["ZooModel", "registry", "names", "aliases", "get", "verify", "checkpoint", "resolve",
           "checkpoint_from_args", "add_model_option", "is_model_name", "LEVELS"]
