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
  ``bytearray``, ``list``, ``dict``, ``tuple``, ``int``, ``float``, ``str``, ``bool``, ``slice``;
  ``_codecs.encode`` with a Latin-1 codec (bytes in protocol 2); ``collections.OrderedDict`` and
  ``collections.defaultdict``.

Bounded reading (documented in ``docs/formats.md``): the file must be at most
:data:`MAX_PICKLE_BYTES` (``FINETEC_MAX_PICKLE_BYTES``) and is read into memory once. Before the
unpickler runs, every opcode is scanned (``pickletools``): a length field that claims more bytes
than the file holds is refused, so is a container nesting deeper than :data:`MAX_DEPTH`. While
unpickling, no single allocation (an array's shape times its item size, ``bytearray(n)``, a
scalar's item size) may exceed the file's own size: an array's data is stored in the file, so a
genuine array always fits. Arrays are built zero-initialised, never from uninitialised memory.
Memory use is therefore at most the file's size times a small factor: the bytes read, plus the
objects built (at most one per opcode byte; the worst case, a file of one-byte "empty
container" opcodes, is about 100 times the file size, ordinary data files about 1-2 times).
"""
from __future__ import annotations

import builtins
import codecs
import collections
import io
import os
import pickle
import pickletools
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from finetec.errors import FinetecError

_BUILTINS = {"set", "frozenset", "complex", "list", "dict", "tuple", "int", "float", "str", "bool", "slice"}
_LATIN1 = {"latin1", "latin-1", "latin_1", "iso-8859-1", "iso8859-1", "l1"}
MAX_PICKLE_BYTES = int(os.environ.get("FINETEC_MAX_PICKLE_BYTES", 16 << 30))
MAX_DEPTH = 200
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


class _Limits:
    """The allocation budget of one load: no single allocation beyond ``max_bytes``."""

    def __init__(self, max_bytes: int, source: str):
        self.max_bytes, self.source = max(int(max_bytes), 64), source

    def check(self, nbytes: int, what: str) -> None:
        if nbytes > self.max_bytes:
            raise FinetecError(f"refusing to load pickle: {what} would need {nbytes} bytes, more than the "
                               f"file's own size ({self.max_bytes} bytes)", self.source)

    def shape(self, shape: Any, dtype: Any, what: str) -> tuple[int, ...]:
        shape = (shape,) if isinstance(shape, int) else shape
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape) or len(shape) > 32:
            raise FinetecError(f"refusing to load pickle: {what} has an invalid shape", self.source)
        n = 1
        for d in shape:
            n *= d
        self.check(n * max(np.dtype(dtype).itemsize, 1), what)
        return shape


class _NdarrayClass:
    """Stands in for ``numpy.ndarray``: as the subtype of ``_reconstruct`` and as a direct call
    (``ndarray(shape, dtype)``, bounded and zero-filled)."""

    def __init__(self, limits: _Limits):
        self.limits = limits

    def __call__(self, shape: Any, dtype: Any = float, *args: Any, **kwargs: Any) -> np.ndarray:
        if args or kwargs:
            raise FinetecError("refusing to load pickle: numpy.ndarray called with a buffer", self.limits.source)
        return np.zeros(self.limits.shape(shape, dtype, "an array"), dtype=dtype)


def _resolve(module: str, name: str, limits: _Limits) -> Any | None:
    """The object for an allowed global (bounded stand-ins where one could allocate), or None
    when the global is forbidden."""
    if module in ("builtins", "__builtin__"):
        if name in _BUILTINS:
            return getattr(builtins, name)
        if name == "bytearray":
            def _bytearray(*args: Any) -> bytearray:
                if args and isinstance(args[0], int):
                    limits.check(args[0], "bytearray")
                return bytearray(*args)
            return _bytearray
        return None
    if module in ("_codecs", "codecs") and name == "encode":
        def _encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
            if not isinstance(obj, str) or str(encoding).lower() not in _LATIN1:
                raise FinetecError(f"refusing to load pickle: codecs.encode with {str(encoding)[:40]!r} "
                                   "(only latin-1 text is expected)", limits.source)
            return codecs.encode(obj, "latin1", errors if errors in ("strict",) else "strict")
        return _encode
    if module == "collections" and name in ("OrderedDict", "defaultdict"):
        return getattr(collections, name)
    if module == "numpy" and name == "ndarray":
        return _NdarrayClass(limits)
    if module == "numpy" and name == "dtype":
        return np.dtype
    if module == "numpy.dtypes" and name.endswith("DType") and hasattr(np, "dtypes"):
        obj = getattr(np.dtypes, name, None)
        return obj if isinstance(obj, type) and issubclass(obj, np.dtype) else None
    for base in ("numpy.core.", "numpy._core."):
        if module.startswith(base):
            sub = module[len(base):]
            if name in _NUMPY_CORE.get(sub, ()):
                return _bounded(_numpy_core_attr(sub, name), name, limits)
    return None


def _bounded(func: Any, name: str, limits: _Limits) -> Any:
    """NumPy's reconstruction helpers with their sizes checked first."""
    if name == "_reconstruct":
        def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
            if not isinstance(subtype, _NdarrayClass) and subtype is not np.ndarray:
                raise FinetecError("refusing to load pickle: array of an unexpected type", limits.source)
            shape = limits.shape(shape, np.uint8, "an array")
            return np.zeros(shape, dtype=np.uint8)  # numpy's own call passes (0,) then sets the state
        return _reconstruct
    if name == "scalar":
        def _scalar(dtype: Any, *args: Any) -> Any:
            if not isinstance(dtype, np.dtype):
                raise FinetecError("refusing to load pickle: a scalar without a dtype", limits.source)
            limits.check(dtype.itemsize, "a scalar")
            return func(dtype, *args)
        return _scalar
    return func  # _frombuffer: a view of bytes already in the file


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: BinaryIO, source: str, limits: _Limits):
        super().__init__(file, encoding="latin1")
        self._source = source
        self._limits = limits

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        obj = _resolve(str(module), str(name), self._limits)
        if obj is None:
            raise FinetecError(
                f"refusing to load pickle: it refers to the forbidden global {str(module)[:80]}.{str(name)[:80]} "
                "(only plain containers, numbers, strings and NumPy arrays are allowed)", self._source)
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise FinetecError("refusing to load pickle: it uses persistent ids", self._source)


def _prescan(data: bytes, src: str) -> None:
    """Walk the opcodes without building anything: every length field must fit in the data
    (the C unpickler allocates a claimed length before reading it), memo indices may not exceed
    the file's size (it sizes its memo table to the largest), and marks (nested containers) may
    not nest deeper than MAX_DEPTH."""
    depth = 0
    try:
        for op, arg, _pos in pickletools.genops(io.BytesIO(data)):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not (isinstance(arg, int) and 0 <= arg <= len(data)):
                # the unpickler sizes its memo table to the largest index it is given
                raise FinetecError(f"refusing to load pickle: memo index {arg} beyond the file's size", src)
            if op.name == "MARK":
                depth += 1
                if depth > MAX_DEPTH:
                    raise FinetecError(f"refusing to load pickle: containers nested deeper than {MAX_DEPTH}", src)
            elif op.stack_before and pickletools.markobject in op.stack_before:
                depth = max(0, depth - 1)
            if op.name == "STOP":
                break
    except FinetecError:
        raise
    except (ValueError, EOFError, KeyError, IndexError, UnicodeDecodeError, OverflowError, MemoryError) as e:
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FinetecError(f"damaged or truncated pickle ({type(e).__name__}: {detail[:200]})", src) from None


def _check_depth(obj: Any, src: str) -> None:
    """Iteratively (no recursion) refuse containers nested deeper than MAX_DEPTH."""
    stack = [(obj, 1)]
    seen: set[int] = set()
    while stack:
        o, d = stack.pop()
        if isinstance(o, (list, tuple, set, frozenset, dict)) or (isinstance(o, np.ndarray) and o.dtype == object):
            if id(o) in seen:
                continue
            seen.add(id(o))
            if d > MAX_DEPTH:
                raise FinetecError(f"refusing to load pickle: containers nested deeper than {MAX_DEPTH}", src)
            items = (list(o.keys()) + list(o.values())) if isinstance(o, dict) else \
                o.ravel().tolist() if isinstance(o, np.ndarray) else o
            stack.extend((v, d + 1) for v in items)


def _load_from(data: bytes, src: str) -> Any:
    _prescan(data, src)
    try:
        obj = _RestrictedUnpickler(io.BytesIO(data), src, _Limits(len(data), src)).load()
    except FinetecError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, LookupError,
            KeyError, UnicodeDecodeError, OverflowError, MemoryError, RecursionError, SystemError) as e:
        # SystemError: NumPy's dtype.__setstate__ reports some impossible states that way
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FinetecError(f"damaged or truncated pickle ({type(e).__name__}: {detail[:200]})", src) from None
    _check_depth(obj, src)
    return obj


def loads(data: bytes, source: str | os.PathLike = "<bytes>") -> Any:
    """Unpickle ``data`` allowing only plain data and NumPy arrays (see the module docstring)."""
    return _load_from(bytes(data), os.fspath(source))


def load(path: str | os.PathLike) -> Any:
    """Unpickle a file with the restricted unpickler (its bytes are read once, then checked)."""
    p = Path(path)
    try:
        if p.is_dir():
            raise FinetecError("is a folder, expected a pickle file", p)
        size = p.stat().st_size
        if size == 0:
            raise FinetecError("file is empty", p)
        if size > MAX_PICKLE_BYTES:
            raise FinetecError(f"pickle is larger than the {MAX_PICKLE_BYTES} bytes accepted "
                               "(set FINETEC_MAX_PICKLE_BYTES to raise the limit)", p)
        data = p.read_bytes()
        return _load_from(data, os.fspath(p))
    except FileNotFoundError:
        raise FinetecError("file not found", p) from None
    except OSError as e:
        raise FinetecError(f"cannot read file ({e.strerror or e})", p) from None
