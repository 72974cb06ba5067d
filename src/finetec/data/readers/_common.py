"""Helpers shared by the readers: option parsing, layout guessing, clip assembly, progress."""
from __future__ import annotations

import contextlib
import contextvars
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from finetec.data.sample import Sample
from finetec.errors import FinetecError
from finetec.layouts import Layout, builtin_layouts, get_layout, layouts_with_joints

T = TypeVar("T")

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
    from finetec.data.readers.names import KNOWN_CLASS_NAMES

    if value in KNOWN_CLASS_NAMES:
        return list(KNOWN_CLASS_NAMES[value])
    names = [v.strip() for v in value.split(",") if v.strip()]
    if len(names) < 2:
        raise FinetecError(
            f"class_names={value!r} is neither a file, a known list ({', '.join(KNOWN_CLASS_NAMES)}) "
            "nor a comma-separated list", source)
    return names


def generic_class_names(num_classes: int) -> list[str]:
    width = len(str(max(num_classes - 1, 0)))
    return [f"class_{i:0{width}d}" for i in range(num_classes)]


def iter_chunks(n: int, size: int) -> Iterable[tuple[int, int]]:
    for a in range(0, n, size):
        yield a, min(n, a + size)


def ordered_map(fn: Any, items: Sequence[Any], workers: int = 1, window: int = 8) -> Iterator[Any]:
    """``map(fn, items)`` in order, in ``workers`` processes when > 1, with at most
    ``window * workers`` results in flight: memory stays bounded however many items there are
    (``fn`` must be a module-level function; its FinetecError reaches the caller)."""
    if workers <= 1 or len(items) < 2:
        yield from map(fn, items)
        return
    from collections import deque
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
