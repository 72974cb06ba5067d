"""Readers: every supported skeleton file format -> :class:`~finetec.data.dataset.SkeletonDataset`.

Each format is one module with ``NAME``, ``DESCRIPTION``, ``sniff(path) -> bool`` and
``read(path, **options) -> SkeletonDataset``; a reader of large datasets also has
``stream(path, **options) -> ClipStream`` (its options are then read from ``stream``), which
hands clips over one at a time so that ``finetec convert`` writes them in bounded memory. ``read_dataset(path)`` detects the format with the
``sniff`` functions (in the order of :data:`READERS`) unless ``fmt`` names one.

    >>> ds = read_dataset("../shared/data/penn_action")        # doctest: +SKIP
    >>> ds = read_dataset("clips/", fmt="pose_json", layout="coco17")  # doctest: +SKIP

Reader options arrive as keyword arguments; the CLI passes them as ``-o key=value`` strings, so
every reader accepts numbers and booleans written as text. Formats are described for users in
``docs/formats.md``.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import os
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from finetec.data.dataset import SkeletonDataset
from finetec.data.readers import canonical, ctrgcn, npz, ntu, nw_ucla, penn_action, pose_json, pyskl, utd_mhad
from finetec.data.readers._common import reading
from finetec.data.store import ClipStream, is_store
from finetec.data.synthetic import make_dataset
from finetec.errors import FinetecError
from finetec.layouts import get_layout

# Detection order matters: specific layouts before generic ones (``npz`` and ``pose_json`` last
# among their file types).
READERS: dict[str, ModuleType] = {
    m.NAME: m for m in (canonical, ctrgcn, npz, pyskl, ntu, penn_action, utd_mhad, nw_ucla, pose_json)
}

__all__ = ["READERS", "detect_format", "open_dataset", "open_with_options", "parse_option_args", "read_dataset",
           "reader_options", "relabel", "stream_dataset"]


def detect_format(path: str | os.PathLike) -> str:
    """The name of the reader that recognises ``path``; FinetecError when none does."""
    p = Path(path)
    if not p.exists():
        raise FinetecError("no such file or folder", p)
    for name, mod in READERS.items():
        try:
            if mod.sniff(p):
                return name
        except Exception:  # noqa: BLE001 - a sniffer that stumbles on the file does not recognise it
            continue
    raise FinetecError(
        "unknown format: no reader recognises this file or folder "
        f"(known formats: {', '.join(READERS)}; use --format to choose one)", p)


def reader_options(fmt: str) -> dict[str, Any]:
    """The options (keyword arguments with defaults) the reader ``fmt`` accepts."""
    mod = _reader(fmt)
    sig = inspect.signature(getattr(mod, "stream", mod.read))
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
    relabel_to = _check_options(name, options, p)

    with reading(p, f"{name} input"):
        ds = mod.read(p, **options)
    if name != "finetec":
        ds.meta.setdefault("source_format", name)
    return ds if relabel_to is None else relabel(ds, relabel_to)


def stream_dataset(spec: str | os.PathLike, fmt: str | None = None, options: dict[str, Any] | None = None
                   ) -> ClipStream:
    """The clips of ``spec`` one at a time (:class:`~finetec.data.store.ClipStream`): streamed by
    readers that can (``ntu``, ``pyskl``), otherwise read whole (see :func:`open_with_options`)."""
    p = Path(spec)
    name = fmt or (detect_format(p) if p.exists() else None)
    mod = READERS.get(name) if name else None
    if mod is None or not hasattr(mod, "stream"):
        return ClipStream.of_dataset(open_with_options(spec, fmt, options))
    options = dict(options or {})
    relabel_to = _check_options(name, options, p)
    clips = mod.stream(p, **options)
    if relabel_to is not None:
        clips.layout = _relabel_layout(clips.layout, relabel_to, p)
    finish = clips.finish

    def finish_with_source() -> tuple[dict[str, Any], dict[str, Any]]:
        splits, meta = finish()
        return splits, {**meta, "source_format": meta.get("source_format", name)}

    clips.finish = finish_with_source
    return clips


def _check_options(name: str, options: dict[str, Any], p: Path) -> Any:
    """FinetecError for an option the reader ``name`` does not take (a misspelling is an error).
    A ``layout`` option for a reader without one is removed from ``options`` and returned (the
    data are relabelled, see :func:`relabel`); None otherwise."""
    accepted = reader_options(name)
    relabel_to = options.pop("layout", None) if "layout" not in accepted else None
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise FinetecError(
            f"reader {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"accepted: {', '.join(accepted) or 'none'}", p)
    return relabel_to


def relabel(ds: SkeletonDataset, layout: Any) -> SkeletonDataset:
    """``ds`` with another layout of the same joint count (the data are unchanged): how the
    ``layout`` option applies to formats whose layout is fixed or stored (e.g. a canonical file)."""

    new = _relabel_layout(ds.layout, layout, ds.source)
    if new == ds.layout:
        return ds
    out = dataclasses.replace(ds, layout=new, meta={**ds.meta, "relabelled_from": ds.layout.name})
    out.store = ds.store  # the same arrays: a memory-mapped dataset keeps its clip reader
    return out


def _relabel_layout(old: Any, layout: Any, source: Any) -> Any:
    """The layout named by a ``layout`` option, with the joint count of ``old``."""

    old = get_layout(old)
    try:
        new = get_layout(layout)
    except FinetecError as e:
        raise FinetecError(f"the layout option: {e}", source) from None
    if new.num_joints != old.num_joints:
        raise FinetecError(f"wrong joint count: the data has {old.num_joints} joints but layout "
                           f"{new.name!r} has {new.num_joints}", source)
    return new


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


def open_dataset(spec: str | os.PathLike, fmt: str | None = None, options: dict[str, Any] | None = None
                 ) -> SkeletonDataset:
    """Open a dataset: THE entry point the rest of finetec uses to get clips.

    ``spec``: ``synthetic[:layout][?k=v&...]`` (:mod:`finetec.data.synthetic`), a canonical
    ``.finetec.npz`` file or ``.finetec`` folder, or anything a reader understands (``fmt`` forces
    one). ``options``: reader options (``-o key=value`` on the command line; for synthetic data only
    ``layout``).
    """
    s = os.fspath(spec)
    if options and (s == "synthetic" or s.startswith("synthetic:")) and not Path(s).exists():
        other = sorted(set(options) - {"layout"})
        if other:
            raise FinetecError(f"synthetic data takes no reader option {', '.join(map(repr, other))} "
                               "(only layout=, to draw or check it under another layout)")
        return relabel(_open_plain(s, fmt=fmt), options["layout"])
    if options:
        return read_dataset(spec, fmt=fmt, **options)
    return _open_plain(spec, fmt=fmt)


# the former name of open_dataset with options
open_with_options = open_dataset


def _open_plain(spec: str | os.PathLike, fmt: str | None = None) -> SkeletonDataset:
    """open_dataset without reader options."""
    s = os.fspath(spec)
    if fmt in (None, "synthetic") and (s == "synthetic" or s.startswith("synthetic:")):
        rest = s.partition(":")[2]
        layout, _, query = rest.partition("?")
        opts: dict[str, object] = {k: (int(v) if v.lstrip("-").isdigit() else v) for k, v in parse_qsl(query)}
        try:
            return make_dataset(layout=layout or "coco17", **opts)  # type: ignore[arg-type]
        except TypeError as e:
            raise FinetecError(f"bad synthetic dataset options in {s!r}: {e}") from None
    p = Path(s)
    if not p.exists():
        raise FinetecError("no such file or folder", p)
    if fmt in (None, "finetec") and p.is_dir():
        if is_store(p) or fmt == "finetec" or p.name.endswith(".finetec"):
            return SkeletonDataset.load(p)
    if fmt in (None, "finetec") and p.is_file() and p.name.endswith(".npz"):
        try:
            with np.load(p, allow_pickle=False) as z:
                is_canonical = "offsets" in z.files and "layout" in z.files
        except Exception:  # noqa: BLE001 - not an npz we can open; let the readers decide
            is_canonical = False
        if is_canonical or fmt == "finetec":
            with reading(p, "dataset file"):
                return SkeletonDataset.load(p)

    return read_dataset(p, fmt=fmt)
