"""Readers: every supported skeleton file format -> :class:`~finetec.data.dataset.SkeletonDataset`.

Each format is one module with ``NAME``, ``DESCRIPTION``, ``sniff(path) -> bool`` and
``read(path, **options) -> SkeletonDataset``. ``read_dataset(path)`` detects the format with the
``sniff`` functions (in the order of :data:`READERS`) unless ``fmt`` names one.

    >>> ds = read_dataset("../shared/data/penn_action")        # doctest: +SKIP
    >>> ds = read_dataset("clips/", fmt="pose_json", layout="coco17")  # doctest: +SKIP

Reader options arrive as keyword arguments; the CLI passes them as ``-o key=value`` strings, so
every reader accepts numbers and booleans written as text. Formats are described for users in
``docs/formats.md``.
"""
from __future__ import annotations

import argparse

import inspect
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from finetec.data.dataset import SkeletonDataset
from finetec.errors import FinetecError
from finetec.data.readers import (
    canonical, ctrgcn, npz, ntu, nw_ucla, penn_action, pose_json, pyskl, utd_mhad,
)

# Detection order matters: specific layouts before generic ones (``npz`` and ``pose_json`` last
# among their file types).
READERS: dict[str, ModuleType] = {
    m.NAME: m for m in (canonical, ctrgcn, npz, pyskl, ntu, penn_action, utd_mhad, nw_ucla, pose_json)
}

__all__ = ["READERS", "detect_format", "open_with_options", "parse_option_args", "read_dataset",
           "reader_options"]


def detect_format(path: str | os.PathLike) -> str:
    """The name of the reader that recognises ``path``; FinetecError when none does."""
    p = Path(path)
    if not p.exists():
        raise FinetecError("no such file or folder", p)
    for name, mod in READERS.items():
        try:
            if mod.sniff(p):
                return name
        except (OSError, ValueError):
            continue
    raise FinetecError(
        "unknown format: no reader recognises this file or folder "
        f"(known formats: {', '.join(READERS)}; use --format to choose one)", p)


def reader_options(fmt: str) -> dict[str, Any]:
    """The options (keyword arguments with defaults) the reader ``fmt`` accepts."""
    mod = _reader(fmt)
    sig = inspect.signature(mod.read)
    return {k: v.default for k, v in sig.parameters.items()
            if v.kind is inspect.Parameter.KEYWORD_ONLY}


def _reader(fmt: str) -> ModuleType:
    if fmt not in READERS:
        raise FinetecError(f"unknown format {fmt!r}; known formats: {', '.join(READERS)}")
    return READERS[fmt]


def read_dataset(path: str | os.PathLike, fmt: str | None = None, **options: Any) -> SkeletonDataset:
    """Read any supported format into a :class:`SkeletonDataset`.

    ``fmt`` forces a reader (see :data:`READERS`); ``options`` are passed to it and checked
    against its signature so that a misspelt option is an error, not silently ignored.
    """
    p = Path(path)
    if not p.exists():
        raise FinetecError("no such file or folder", p)
    name = fmt or detect_format(p)
    mod = _reader(name)
    accepted = reader_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise FinetecError(
            f"reader {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted) or 'none'}", p)
    from finetec.data.readers._common import reading

    with reading(p, f"{name} input"):
        ds = mod.read(p, **options)
    if name != "finetec":
        ds.meta.setdefault("source_format", name)
    return ds


def add_reader_arguments(p: "argparse.ArgumentParser", example: str = "-o layout=coco17") -> None:
    """The ``--format NAME`` and repeatable ``-o KEY=VALUE`` arguments of every command that reads
    data (parsed by :func:`open_with_options`)."""
    p.add_argument("--format", dest="fmt", metavar="NAME", default=None,
                   help="force the input reader (default: detect); see docs/formats.md")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", default=[],
                   help=f"reader option, repeatable (e.g. {example})")


def parse_option_args(items: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` (the CLI's ``-o`` arguments) -> {key: value}; values stay text."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FinetecError(f"reader option {item!r} is not KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def open_with_options(spec: str | os.PathLike, fmt: str | None = None, options: dict[str, Any] | None = None
                      ) -> SkeletonDataset:
    """:func:`finetec.data.open_dataset`, or :func:`read_dataset` when reader options are given."""
    from finetec.data import open_dataset

    if options:
        return read_dataset(spec, fmt=fmt, **options)
    return open_dataset(spec, fmt=fmt)
