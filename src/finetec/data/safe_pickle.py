"""A restricted unpickler for data files (PYSKL annotations, NW-UCLA label lists).

A pickle is a small program: an ordinary ``pickle.load`` will call any function the file names
(``os.system`` included). Data files only need plain containers, numbers, strings and NumPy
arrays, so :func:`load` resolves exactly those globals and refuses everything else with a
:class:`~finetec.errors.FinetecError` that names the file and the forbidden global.

Allowed globals:

- NumPy array reconstruction, under both the NumPy 1.x (``numpy.core.*``) and 2.x
  (``numpy._core.*``) module paths: ``multiarray._reconstruct``, ``multiarray.scalar``,
  ``numeric._frombuffer`` (pickle protocol 5), ``numpy.ndarray``, ``numpy.dtype`` and the
  ``numpy.dtypes.*DType`` classes;
- harmless builtins used by old protocols or containers: ``set``, ``frozenset``, ``complex``,
  ``bytearray``, ``list``, ``dict``, ``tuple``, ``int``, ``float``, ``str``, ``bool``, ``slice``,
  ``range``; ``_codecs.encode`` (bytes in protocol 2); ``collections.OrderedDict`` and
  ``collections.defaultdict``.
"""
from __future__ import annotations

import builtins
import codecs
import collections
import io
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from finetec.errors import FinetecError

_BUILTINS = {"set", "frozenset", "complex", "bytearray", "list", "dict", "tuple", "int", "float",
             "str", "bool", "slice", "range"}
_NUMPY_CORE = {
    "multiarray": {"_reconstruct", "scalar"},
    "numeric": {"_frombuffer"},
}


def _numpy_core_attr(submodule: str, name: str) -> Any:
    """The NumPy internal ``numpy[._]core.<submodule>.<name>`` of the installed NumPy version."""
    import importlib

    for base in ("numpy._core", "numpy.core"):
        try:
            mod = importlib.import_module(f"{base}.{submodule}")
        except ImportError:
            continue
        if hasattr(mod, name):
            return getattr(mod, name)
    raise AttributeError(f"numpy has no {submodule}.{name}")


def _resolve(module: str, name: str) -> Any | None:
    """The object for an allowed global, or None when the global is forbidden."""
    if module in ("builtins", "__builtin__") and name in _BUILTINS:
        return getattr(builtins, name)
    if module in ("_codecs", "codecs") and name == "encode":
        return codecs.encode
    if module == "collections" and name in ("OrderedDict", "defaultdict"):
        return getattr(collections, name)
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    if module == "numpy.dtypes" and name.endswith("DType") and hasattr(np, "dtypes"):
        obj = getattr(np.dtypes, name, None)
        return obj if isinstance(obj, type) and issubclass(obj, np.dtype) else None
    for base in ("numpy.core.", "numpy._core."):
        if module.startswith(base):
            sub = module[len(base):]
            if name in _NUMPY_CORE.get(sub, ()):
                return _numpy_core_attr(sub, name)
    return None


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str):
        super().__init__(file, encoding="latin1")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        obj = _resolve(module, name)
        if obj is None:
            raise FinetecError(
                f"refusing to load pickle: it refers to the forbidden global {module}.{name} "
                "(only plain containers, numbers, strings and NumPy arrays are allowed)", self._source)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise FinetecError("refusing to load pickle: it uses persistent ids", self._source)


def _load_from(file: BinaryIO, src: str) -> Any:
    try:
        return _RestrictedUnpickler(file, src).load()
    except FinetecError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FinetecError(f"damaged or truncated pickle ({type(e).__name__}: {detail})", src) from None


def loads(data: bytes, source: str | os.PathLike = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only plain data and NumPy arrays (see the module docstring)."""
    return _load_from(io.BytesIO(data), os.fspath(source))


def load(path: str | os.PathLike) -> Any:
    """Unpickle a file with the restricted unpickler, streaming it (no second copy in memory)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise FinetecError("is a folder, expected a pickle file", p)
        if p.stat().st_size == 0:
            raise FinetecError("file is empty", p)
        with open(p, "rb", buffering=1 << 20) as f:
            return _load_from(f, os.fspath(p))
    except FileNotFoundError:
        raise FinetecError("file not found", p) from None
    except OSError as e:
        raise FinetecError(f"cannot read file ({e.strerror or e})", p) from None
