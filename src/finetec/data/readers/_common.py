"""Helpers shared by the readers: option parsing, layout guessing, clip assembly, progress, and
bounded reading (size caps checked before anything is allocated; see ``docs/formats.md``)."""
from __future__ import annotations

import contextlib
import contextvars
import io
import os
import re
import warnings
import zipfile
from collections import deque
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from finetec.data.readers.names import KNOWN_CLASS_NAMES
from finetec.data.sample import Sample
from finetec.errors import FinetecError
from finetec.layouts import Layout, builtin_layouts, get_layout, layouts_with_joints

T = TypeVar("T")

# Caps of bounded reading (bytes; each can be raised with the environment variable of that name).
MAX_JSON_BYTES = int(os.environ.get("FINETEC_MAX_JSON_BYTES", 1 << 30))
MAX_ARRAY_BYTES = int(os.environ.get("FINETEC_MAX_ARRAY_BYTES", 16 << 30))
# Deflate cannot expand data by more than about 1032:1; a member claiming more is damaged.
DEFLATE_MAX_RATIO = 1032
# Most classes a dataset may have (a label beyond it is damage, not data).
MAX_CLASSES = 1 << 16

# Below this many files a progress bar is just noise.
PROGRESS_MIN_FILES = 200


def progress(items: Sequence[T], desc: str, enabled: bool | None = None) -> Iterator[T]:
    """Iterate ``items`` with a tqdm bar on stderr when there are many (and stderr is a terminal).

    ``enabled``: True forces the bar, False hides it, None decides by count and terminal.
    """
    if enabled is False or (enabled is None and len(items) < PROGRESS_MIN_FILES):
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, desc=desc, unit="file", disable=None if enabled is None else False,
                    leave=False, dynamic_ncols=True)


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_counter(total: int, desc: str, enabled: bool | None = None, unit: str = "clip") -> Any:
    """A tqdm bar with ``update(n)``/``close()`` (or a silent stand-in), same rules as :func:`progress`."""
    if enabled is False or (enabled is None and total < PROGRESS_MIN_FILES):
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None if enabled is None else False,
                leave=False, dynamic_ncols=True)


def describe(e: BaseException) -> str:
    """``Type: first line of the message`` - exception text fit for a one-line error."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    s = str(value).strip().lower()
    if s in ("1", "true", "yes", "on"):
        return True
    if s in ("0", "false", "no", "off"):
        return False
    raise FinetecError(f"option {name}={value!r} is not a boolean (use true or false)")


def as_label(value: Any, what: str, source: str | os.PathLike) -> int | None:
    """A class label: an integer (or an integral float such as MATLAB's 3.0), or None; a
    fractional, complex, boolean or non-numeric label is a FinetecError, never truncated."""
    if value is None:
        return None
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError):
        arr = np.asarray(None)
    shown = repr(value)[:60] if arr.size == 1 else f"of shape {arr.shape}"
    if arr.size != 1 or arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer)
                                                  or np.issubdtype(arr.dtype, np.floating)):
        raise FinetecError(f"{what}: label {shown} is not an integer", source)
    v = arr.reshape(-1)[0]
    if not np.isfinite(v) or v != np.floor(v) or abs(v) > 2 ** 31:
        raise FinetecError(f"{what}: label {shown} is not an integer", source)
    return int(v)


def as_float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise FinetecError(f"option {name}={value!r} is not a number") from None


def as_int(value: Any, name: str, minimum: int | None = None) -> int:
    try:
        v = int(value)
    except (TypeError, ValueError):
        raise FinetecError(f"option {name}={value!r} is not an integer") from None
    if minimum is not None and v < minimum:
        raise FinetecError(f"option {name}={v} must be at least {minimum}")
    return v


_FALLBACK: "contextvars.ContextVar[Layout | None]" = contextvars.ContextVar("finetec_layout_fallback", default=None)


@contextlib.contextmanager
def layout_fallback(layout: Layout | None) -> Iterator[None]:
    """Within the block, files that do not name their layout are read under ``layout`` when the
    joint count fits (e.g. a model's layout for the clips it is asked to classify), with a note."""
    token = _FALLBACK.set(layout)
    try:
        yield
    finally:
        _FALLBACK.reset(token)


def note(message: str) -> None:
    """A one-line note for the user on stderr (stdout stays for the command's result)."""
    import sys

    print(f"finetec: note: {message}", file=sys.stderr)


def choose_layout(option: str | Layout | None, num_joints: int, source: str | os.PathLike,
                  stored: str | Layout | None = None, usual: dict[int, str] | None = None) -> Layout:
    """The layout of a data file: the ``layout`` option, else the one stored in the file, else a
    guess from the joint count.

    A stored path resolves against the file's folder (an option path against the current folder).
    Inside :func:`layout_fallback` (``predict``, ``complete``, ``eval``), a file that names none
    is read under the model's layout when the joint count fits. Otherwise the guess is made only
    when one layout fits: the format's ``usual`` layout for that joint count
    (e.g. ``coco17`` for 17-joint PYSKL 2D files), else the only built-in layout with that many
    joints; it is announced on stderr every time. A joint count shared by several layouts (20:
    ``kinect_v1`` and ``utd_mhad20``, in different joint orders) is an error listing them.
    """
    name = option if option is not None else stored
    if name is not None:
        try:
            if isinstance(name, str) and name.lstrip().startswith("{"):   # a layout stored as JSON
                layout = Layout.from_json(name, origin=os.fspath(source))
            else:
                layout = get_layout(name, relative_to=source if option is None else None)
        except FinetecError as e:
            field = "the layout option" if option is not None else "its layout field"
            raise FinetecError(f"{field}: {e}", source) from None
    elif (fallback := _FALLBACK.get()) is not None and fallback.num_joints == num_joints:
        layout = fallback
        note(f"{os.fspath(source)}: no layout given; using the model's layout {layout.name}")
    else:
        candidates = [usual[num_joints]] if usual and num_joints in usual else layouts_with_joints(num_joints)
        how = "-o layout=NAME_OR_PATH (or a 'layout' field in the file; see docs/layouts.md)"
        if not candidates:
            known = ", ".join(f"{n} ({get_layout(n).num_joints})" for n in builtin_layouts())
            raise FinetecError(
                f"cannot guess the skeleton layout for {num_joints} joints: no built-in layout has "
                f"{num_joints} (built-in: {known}); write a layout file and pass {how}", source)
        if len(candidates) > 1:
            raise FinetecError(
                f"the skeleton layout is ambiguous: {num_joints} joints fit {', '.join(candidates)} "
                f"(different joint orders); pass {how}", source)
        layout = get_layout(candidates[0])
        why = "this format's usual layout" if usual and num_joints in usual else "the only built-in layout"
        note(f"{os.fspath(source)}: no layout given; assuming {layout.name} ({why} with {num_joints} joints); "
             "pass -o layout=NAME_OR_PATH if that is wrong")
    if layout.num_joints != num_joints:
        raise FinetecError(
            f"wrong joint count: the data has {num_joints} joints but layout {layout.name!r} has "
            f"{layout.num_joints}", source)
    return layout


def nonzero_mask(keypoint: np.ndarray) -> np.ndarray:
    """(…, V) bool: joints whose coordinates are not all exactly zero.

    Depth sensors and PYSKL files mark an untracked joint, an absent person and a padding frame
    with zeros; this turns that convention into a mask. NaN or Inf counts as observed so that
    :func:`make_sample` reports it as damaged data instead of hiding it.
    """
    return (np.asarray(keypoint) != 0).any(axis=-1)


def check_finite(keypoint: np.ndarray, mask: np.ndarray, source: str | os.PathLike, what: str) -> None:
    """FinetecError when an entry marked observed is NaN or Inf."""
    bad = mask & ~np.isfinite(keypoint).all(axis=-1)
    if bad.any():
        raise FinetecError(f"{what}: NaN or Inf in {int(bad.sum())} observed joint(s)", source)


def trim_persons(keypoint: np.ndarray, mask: np.ndarray, score: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Drop persons (axis 0) that are never observed, keeping at least one."""
    present = mask.any(axis=(1, 2))
    if present.all() or not present.any():
        return keypoint, mask, score
    keep = np.flatnonzero(present)
    return keypoint[keep], mask[keep], None if score is None else score[keep]


def trim_trailing_frames(keypoint: np.ndarray, mask: np.ndarray, score: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Cut trailing frames (axis 1) where no joint of any person is observed (padding)."""
    observed = mask.any(axis=(0, 2))
    if not observed.any():
        return keypoint, mask, score
    end = int(np.flatnonzero(observed)[-1]) + 1
    return keypoint[:, :end], mask[:, :end], None if score is None else score[:, :end]


def make_sample(keypoint: np.ndarray, mask: np.ndarray, *, id: str, source: str | os.PathLike,
                label: int | None = None, num_classes: int | None = None,
                score: np.ndarray | None = None, meta: dict[str, Any] | None = None) -> Sample:
    """A validated Sample with unobserved coordinates zeroed; the FinetecError names the file."""
    kp = np.asarray(keypoint, dtype=np.float32)
    m = np.asarray(mask, dtype=bool)
    if kp.ndim != 4 or m.shape != kp.shape[:3]:
        raise FinetecError(f"clip {id!r}: inconsistent shapes keypoint {kp.shape}, mask {m.shape}", source)
    if kp.shape[1] == 0:
        raise FinetecError(f"clip {id!r}: clip is empty (0 frames)", source)
    check_finite(kp, m, source, f"clip {id!r}")
    if not m.any():
        raise FinetecError(f"clip {id!r}: every frame is missing (no observed joint)", source)
    kp = np.where(m[..., None], kp, np.float32(0.0))
    sc = None
    if score is not None:
        sc = np.nan_to_num(np.asarray(score, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        sc = np.where(m, sc, np.float32(0.0))
    return Sample(keypoint=kp, mask=m, score=sc, label=label, id=id, meta=meta or {},
                  num_classes=num_classes, source=os.fspath(source))


def find_folder(path: Path, subfolder: str, pattern: str) -> Path | None:
    """``path`` if it holds files matching ``pattern``, else ``path/subfolder`` if that does."""
    for cand in (path, path / subfolder):
        if cand.is_dir() and next(cand.glob(pattern), None) is not None:
            return cand
    return None


def numbered_files(folder: Path, pattern: str, regex: re.Pattern[str]) -> list[tuple[tuple[int, ...], Path]]:
    """Files in ``folder`` matching ``pattern`` whose names match ``regex``, as
    ((integer groups...), path) sorted by the integers (e.g. action, subject, trial)."""
    entries = []
    for f in folder.glob(pattern):
        m = regex.match(f.name)
        if m:
            entries.append((tuple(int(g) for g in m.groups()), f))
    return sorted(entries)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame_2`` before ``frame_10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def read_lines_file(path: str | os.PathLike, what: str) -> list[str]:
    """Non-empty, non-comment lines of a small text file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise FinetecError(f"cannot read {what} ({e.strerror or e})", p) from None
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def class_names_option(value: str | Sequence[str] | None, source: str | os.PathLike) -> list[str] | None:
    """Class names given as a list, a comma-separated string, or a text file (one name a line)."""
    if value is None:
        return None
    if not isinstance(value, str):
        return [str(v) for v in value]
    if os.path.isfile(value):
        return read_lines_file(value, "class-name file")

    if value in KNOWN_CLASS_NAMES:
        return list(KNOWN_CLASS_NAMES[value])
    names = [v.strip() for v in value.split(",") if v.strip()]
    if len(names) < 2:
        raise FinetecError(
            f"class_names={value!r} is neither a file, a known list ({', '.join(KNOWN_CLASS_NAMES)}) "
            "nor a comma-separated list", source)
    return names


def generic_class_names(num_classes: int) -> list[str]:
    if num_classes > MAX_CLASSES:
        raise FinetecError(f"labels up to {num_classes - 1}: more than the {MAX_CLASSES} classes accepted "
                           "(a label is out of range)")
    width = len(str(max(num_classes - 1, 0)))
    return [f"class_{i:0{width}d}" for i in range(num_classes)]


def iter_chunks(n: int, size: int) -> Iterable[tuple[int, int]]:
    for a in range(0, n, size):
        yield a, min(n, a + size)


def read_capped(path: Path, cap: int, what: str, variable: str) -> bytes:
    """The bytes of a file of at most ``cap`` bytes (the environment variable ``variable`` sets the
    cap); FinetecError otherwise or when it cannot be read."""
    try:
        if path.stat().st_size > cap:
            raise FinetecError(f"{what} file is larger than the {cap} bytes accepted "
                               f"(set {variable} to raise the limit)", path)
        return path.read_bytes()
    except OSError as e:
        raise FinetecError(f"cannot read file ({e.strerror or e})", path) from None


def json_loader() -> tuple[Callable[[bytes], Any], type[Exception]]:
    """The fastest available JSON parser for bytes and the exception it raises."""
    try:
        import orjson

        return orjson.loads, orjson.JSONDecodeError
    except ImportError:  # pragma: no cover - depends on the environment
        import json

        return json.loads, ValueError


def load_json(path: str | os.PathLike, what: str = "JSON") -> Any:
    """A JSON file, read with a size cap (:data:`MAX_JSON_BYTES`); too deep a nesting (the parser's
    recursion limit) and every other problem is a one-line FinetecError naming the file."""
    p = Path(path)
    data = read_capped(p, MAX_JSON_BYTES, what, "FINETEC_MAX_JSON_BYTES")
    loads, decode_error = json_loader()
    try:
        return loads(data)
    except (decode_error, ValueError, RecursionError, UnicodeDecodeError) as e:
        raise FinetecError(f"damaged JSON ({describe(e)[:200]})", p) from None


def check_npz(path: str | os.PathLike) -> None:
    """Check every array of a ``.npz`` archive before any is read: no Python objects, and its
    header's shape times item size fits in the bytes its archive member holds (so numpy, which
    allocates from the header, never allocates beyond the file's own size, or 1032 times it for
    a compressed member, and never beyond :data:`MAX_ARRAY_BYTES`)."""

    p = Path(path)
    try:
        total = p.stat().st_size
        with zipfile.ZipFile(p) as z:
            for info in z.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                name = info.filename[:-4]
                if info.compress_size > total:
                    raise FinetecError(f"array {name!r}: the archive claims more bytes than the file holds", p)
                limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED \
                    else DEFLATE_MAX_RATIO * info.compress_size + 1024
                if info.file_size > min(limit, MAX_ARRAY_BYTES):
                    raise FinetecError(f"array {name!r}: its size ({info.file_size} bytes) is impossible for "
                                       f"its {info.compress_size} stored bytes or above the cap of "
                                       f"{MAX_ARRAY_BYTES} (FINETEC_MAX_ARRAY_BYTES)", p)
                with z.open(info) as f:
                    try:
                        version = np.lib.format.read_magic(f)
                        shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                           else np.lib.format.read_array_header_2_0(f))
                    except Exception as e:  # noqa: BLE001 - numpy parses the header text with tokenize/ast
                        raise FinetecError(f"array {name!r}: unreadable .npy header ({describe(e)[:150]})", p) from None
                    header = f.tell()
                if dtype.hasobject:
                    raise FinetecError(f"array {name!r} holds Python objects (refused: no pickle)", p)
                n = 1
                for d in shape:
                    n *= int(d)
                if n * dtype.itemsize > info.file_size - header:
                    raise FinetecError(f"array {name!r}: its header claims shape {tuple(shape)} of {dtype} "
                                       f"({n * dtype.itemsize} bytes) but the file holds "
                                       f"{max(info.file_size - header, 0)} bytes of data", p)
    except FinetecError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, OverflowError, TypeError,
            NotImplementedError, RuntimeError) as e:
        raise FinetecError(f"damaged .npz file ({describe(e)[:200]})", p) from None


@contextlib.contextmanager
def reading(path: str | os.PathLike, what: str):
    """Turn anything a reader raises while interpreting a file's content into a one-line
    FinetecError naming the file (set FINETEC_DEBUG=1 to see the original exception)."""

    complex_warning = getattr(getattr(np, "exceptions", np), "ComplexWarning")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", complex_warning)  # complex numbers never lose a part silently
            yield
    except FinetecError as e:
        if e.path is None:  # a helper that did not know the file: name it
            raise FinetecError(e.problem, path) from None
        raise
    except complex_warning:
        raise FinetecError(f"cannot read this {what}: it holds complex numbers where real ones are expected",
                           path) from None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError,
            RecursionError, zipfile.BadZipFile, EOFError, UnicodeError, LookupError, ZeroDivisionError,
            NotImplementedError) as e:
        if os.environ.get("FINETEC_DEBUG"):
            raise
        if isinstance(e, MemoryError):
            raise FinetecError(f"not enough memory to read this {what}", path) from None
        raise FinetecError(f"cannot read this {what}: unexpected content ({describe(e)[:200]})", path) from None
    except OSError as e:
        raise FinetecError(f"cannot read ({e.strerror or describe(e)})"[:300], getattr(e, "filename", None)
                           or path) from None


MAX_MAT_BYTES = int(os.environ.get("FINETEC_MAX_MAT_BYTES", 1 << 30))
_MAT_SPARSE = 5
_MAT_MATRIX, _MAT_COMPRESSED = 14, 15
# MATLAB 5 data types and their item sizes (miINT8 ... miUTF32); anything else is damage.
_MAT_SIZES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8, 14: 0, 15: 0, 16: 1, 17: 2, 18: 4}


def load_mat(path: str | os.PathLike, variable_names: tuple[str, ...]) -> dict[str, Any]:
    """``scipy.io.loadmat`` of a MATLAB 5 file after a bounded check of its structure (see
    :func:`check_mat`); every problem is a one-line FinetecError naming the file."""

    import scipy.io

    p = Path(path)
    data = read_capped(p, MAX_MAT_BYTES, "MATLAB", "FINETEC_MAX_MAT_BYTES")
    check_mat(data, p)
    try:
        return scipy.io.loadmat(io.BytesIO(data), variable_names=variable_names)
    except Exception as e:  # noqa: BLE001 - scipy raises many types for damaged files
        raise FinetecError(f"cannot read MATLAB file ({describe(e)[:200]})", p) from None


def check_mat(data: bytes, source: str | os.PathLike) -> None:
    """Walk a MATLAB 5 file's data elements without building anything: every element's byte count
    must fit inside its parent, a compressed variable may not expand beyond 1032 times its size
    (nor :data:`MAX_ARRAY_BYTES`), an array's dimensions may not describe more elements than its
    bytes can hold (sparse arrays excepted), and arrays nest at most 16 deep. scipy allocates
    what the file claims before reading it; after this check a claim never exceeds the file."""
    import struct
    import zlib

    if len(data) < 128:
        raise FinetecError("cannot read MATLAB file: not a MATLAB 5 file (shorter than its 128-byte header)", source)
    mark = bytes(data[126:128])
    if mark not in (b"IM", b"MI"):
        raise FinetecError("cannot read MATLAB file: not a MATLAB 5 file (no MI/IM endian mark in the header; "
                           "MATLAB 4 files are not read)", source)
    order = "<" if mark == b"IM" else ">"

    def fail(what: str) -> None:
        raise FinetecError(f"cannot read MATLAB file: damaged ({what})", source)

    def elements(buf: bytes | memoryview, start: int, end: int):
        pos = start
        while pos < end:
            if end - pos < 8:
                if any(bytes(buf[pos:end])):
                    fail("truncated data element")
                return
            t, n = struct.unpack(order + "II", bytes(buf[pos:pos + 8]))
            if t >> 16:  # small data element: type and size in one word, data in the next 4 bytes
                if (t >> 16) > 4 or (t & 0xFFFF) not in _MAT_SIZES:
                    fail(f"a small data element of type {t & 0xFFFF} and size {t >> 16}")
                yield t & 0xFFFF, pos + 4, pos + 4 + (t >> 16)
                pos += 8
                continue
            if t not in _MAT_SIZES:
                fail(f"unknown data type {t}")
            body = pos + 8
            if n > end - body:
                fail(f"an element claims {n} bytes where {end - body} remain")
            yield t, body, body + n
            pos = body + n if t == _MAT_COMPRESSED else body + ((n + 7) // 8) * 8

    def matrix(buf: bytes | memoryview, start: int, end: int, depth: int) -> None:
        if depth > 16:
            fail("arrays nested deeper than 16")
        cls, dims, cplx, parts, count = None, None, False, 0, 0
        for i, (t, a, b) in enumerate(elements(buf, start, end)):
            if i == 0 and b - a >= 4:
                flags = struct.unpack(order + "I", bytes(buf[a:a + 4]))[0]
                cls, cplx = flags & 0xFF, bool(flags & 0x800)
            elif i >= 3 and t != _MAT_MATRIX:
                parts += 1
                if cls is not None and 6 <= cls <= 15 and dims is not None and parts <= 2:
                    if t in (_MAT_COMPRESSED, 16, 17, 18) or (b - a) != count * _MAT_SIZES[t]:
                        fail(f"a numeric array of {count} values has a data part of type {t} and {b - a} bytes")
            elif i == 1:
                if (b - a) % 4:
                    fail("array dimensions of an odd size")
                dims = struct.unpack(order + f"{(b - a) // 4}i", bytes(buf[a:b]))
                if len(dims) > 32 or any(d < 0 for d in dims):
                    fail(f"impossible array dimensions {dims[:8]}")
                count = 1
                for d in dims:
                    count *= d
                if cls != _MAT_SPARSE and count > end - start:
                    fail(f"array dimensions {dims[:8]} describe more values than its {end - start} bytes hold")
            elif t == _MAT_MATRIX:
                matrix(buf, a, b, depth + 1)
        # scipy reads the parts an array's class and flags promise without checking they exist
        need = {4: 1 if count else 0, _MAT_SPARSE: 3 + cplx}.get(cls, 1 + cplx if cls is not None and 6 <= cls <= 15
                                                              else 0)
        if dims is not None and count and parts < need:
            fail(f"an array of class {cls} has {parts} data part(s), its header promises {need}")
        if dims is None and cls is not None:
            fail("an array without dimensions")

    def top(buf: bytes | memoryview, start: int, end: int, compressed_ok: bool) -> None:
        for t, a, b in elements(buf, start, end):
            if t not in (_MAT_MATRIX, _MAT_COMPRESSED) or (t == _MAT_COMPRESSED and not compressed_ok):
                fail(f"a variable of data type {t} (expected a matrix)")
            if t == _MAT_COMPRESSED:
                cap = min(DEFLATE_MAX_RATIO * (b - a) + 1024, MAX_ARRAY_BYTES)
                z = zlib.decompressobj()
                try:
                    out = z.decompress(bytes(buf[a:b]), cap)
                except zlib.error as e:
                    fail(f"compressed variable does not decompress ({e})")
                if z.unconsumed_tail:
                    fail(f"a compressed variable expands beyond {cap} bytes")
                top(out, 0, len(out), False)
            elif t == _MAT_MATRIX:
                matrix(buf, a, b, 1)

    top(memoryview(data), 128, len(data), True)


def ordered_map(fn: Any, items: Sequence[Any], workers: int = 1, window: int = 8) -> Iterator[Any]:
    """``map(fn, items)`` in order, in ``workers`` processes when > 1, with at most
    ``window * workers`` results in flight: memory stays bounded however many items there are
    (``fn`` must be a module-level function; its FinetecError reaches the caller)."""
    if workers <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window * workers:
                break
        while pending:
            result = pending.popleft().result()
            for item in it:
                pending.append(pool.submit(fn, item))
                break
            yield result
