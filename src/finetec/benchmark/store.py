"""``results.json``: the benchmark's record of finished cells, rewritten atomically after each one.

The schema is documented in ``docs/results_schema.md``. In short::

    {"schema": 2,
     "cells": [{"dataset", "method", "regime", "budget", "level", "seed", "top1", "mean_class",
                "n_test", "wall_s", "commit", "machine", "pred", ...}],
     "completion": [{"dataset", "filler", "level", "pattern", "seed", "mpjpe", "by_gap", ...}],
     "meta": {"datasets": {KEY: {"title", "test_ids", "test_labels", ...}}, ...}}

A cell is identified by (dataset, method, regime, level, budget, seed); a completion row by
(dataset, filler, level, pattern, budget, seed). A finished cell is skipped when the benchmark is run
again; a cell that crashed was never recorded and is redone. Files written before schema 2
(``num_clips``, ``train_seconds``, ``code``) are read and converted.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from pathlib import Path
from typing import Any

from finetec.errors import FinetecError
from finetec.fileio import write_text_atomic

SCHEMA = 2
CELL_KEY = ("dataset", "method", "regime", "level", "budget", "seed")
COMPLETION_KEY = ("dataset", "filler", "level", "pattern", "budget", "seed")
#: Every cell record has these fields (a value may be null where it was not recorded).
CELL_FIELDS = ("dataset", "method", "regime", "budget", "level", "seed", "top1", "mean_class", "n_test",
               "wall_s", "commit", "machine")
#: Every completion record has these fields.
COMPLETION_FIELDS = ("dataset", "filler", "level", "pattern", "seed", "mpjpe", "by_gap")
_RENAMED = {"num_clips": "n_test", "train_seconds": "wall_s"}


def cell_key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in CELL_KEY)


def completion_key(row: dict[str, Any]) -> tuple:
    return tuple(row.get(k) for k in COMPLETION_KEY)


def commit_of(code: Any) -> str | None:
    """``finetec 0.1.0 (abc1234+)`` -> ``abc1234+``; None when no commit is named."""
    if not isinstance(code, str):
        return None
    m = re.search(r"\(([0-9a-f]{6,40}\+?)\)", code)
    return m.group(1) if m else None


def upgrade_cell(row: dict[str, Any]) -> dict[str, Any]:
    """A cell of an older results file in the current schema (renamed fields, commit from ``code``)."""
    out = dict(row)
    for old, new in _RENAMED.items():
        if new not in out and old in out:
            out[new] = out.pop(old)
    if "commit" not in out:
        out["commit"] = commit_of(out.get("code"))
    return out


def upgrade_completion(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out.setdefault("pattern", "random")
    out.setdefault("by_gap", None)
    return out


class ResultsStore:
    """The results file of one benchmark output folder."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.cells: list[dict[str, Any]] = []
        self.completion: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FinetecError(f"cannot read benchmark results ({type(e).__name__}: {e})", self.path) from None
        if not isinstance(data, dict) or not isinstance(data.get("cells", []), list) \
                or not isinstance(data.get("completion", []), list) or not isinstance(data.get("meta", {}), dict):
            raise FinetecError("not a benchmark results file (expected {\"cells\": [...], \"completion\": [...]})",
                               self.path)
        cells = [upgrade_cell(r) if isinstance(r, dict) else r for r in data.get("cells", [])]
        comp = [upgrade_completion(r) if isinstance(r, dict) else r for r in data.get("completion", [])]
        for i, row in enumerate(cells):
            missing = [k for k in CELL_FIELDS if k not in row] if isinstance(row, dict) else ["every field"]
            if missing:
                raise FinetecError(f"cell {i} lacks {', '.join(missing)}", self.path)
        for i, row in enumerate(comp):
            missing = [k for k in COMPLETION_FIELDS if k not in row] if isinstance(row, dict) else ["every field"]
            if missing:
                raise FinetecError(f"completion row {i} lacks {', '.join(missing)}", self.path)
        self.cells, self.completion = cells, comp
        self.meta = dict(data.get("meta", {}))

    # -- queries ---------------------------------------------------------------------------
    def has_cell(self, **key: Any) -> bool:
        return self.find_cell(**key) is not None

    def find_cell(self, **key: Any) -> dict[str, Any] | None:
        """The recorded cell with this key, or None."""
        k = tuple(key.get(f) for f in CELL_KEY)
        return next((c for c in self.cells if cell_key(c) == k), None)

    def has_completion(self, **key: Any) -> bool:
        """Whether a completion row with this key exists (``pattern`` defaults to ``random``)."""
        key.setdefault("pattern", "random")
        k = tuple(key.get(f) for f in COMPLETION_KEY)
        return any(completion_key(c) == k for c in self.completion)

    # -- updates (each one rewrites the file atomically) ---------------------------------
    # Several benchmark processes may share one output folder (e.g. one per dataset): every
    # update re-reads the file under a lock, merges, and rewrites it, so none loses another's rows.
    @contextlib.contextmanager
    def _locked(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            try:
                import fcntl

                fcntl.flock(lock, fcntl.LOCK_EX)
            except ImportError:  # pragma: no cover - no fcntl (Windows): single process only
                pass
            if self.path.exists():
                mine_cells, mine_comp = self.cells, self.completion
                self._load()
                self.cells = merge_rows(self.cells, mine_cells, cell_key)
                self.completion = merge_rows(self.completion, mine_comp, completion_key)
            yield

    def add_cell(self, row: dict[str, Any]) -> None:
        missing = [k for k in CELL_FIELDS if k not in row]
        if missing:
            raise ValueError(f"cell lacks {missing}")
        with self._locked():
            self.cells = merge_rows(self.cells, [row], cell_key)
            self.save()

    def add_completion(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            missing = [k for k in COMPLETION_FIELDS if k not in row]
            if missing:
                raise ValueError(f"completion row lacks {missing}")
        with self._locked():
            self.completion = merge_rows(self.completion, rows, completion_key)
            self.save()

    def update_meta(self, fn) -> None:
        """Apply ``fn(meta)`` and save (under the lock, after merging what is on disk)."""
        with self._locked():
            fn(self.meta)
            self.save()

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "cells": self.cells, "completion": self.completion, "meta": self.meta}

    def save(self) -> None:
        write_text_atomic(self.path, dumps(self.to_dict()))


def dumps(results: dict[str, Any]) -> str:
    """results.json text: one record per line (readable diffs), long per-clip lists kept on that line."""
    def line(obj: Any) -> str:
        return json.dumps(obj, sort_keys=False, default=_json_default, separators=(", ", ": "))

    parts = ["{", f' "schema": {line(results.get("schema", SCHEMA))},']
    for name in ("cells", "completion"):
        rows = results.get(name, [])
        body = ",\n".join("  " + line(r) for r in rows)
        parts.append(f' "{name}": [' + ("\n" + body + "\n ]," if rows else "],"))
    parts.append(' "meta": ' + json.dumps(results.get("meta", {}), indent=1, default=_json_default)
                 .replace("\n", "\n ") + "\n}")
    return "\n".join(parts) + "\n"


def merge_rows(old: list[dict[str, Any]], new: list[dict[str, Any]], key) -> list[dict[str, Any]]:
    """``old`` with the rows of ``new`` added; a row of ``new`` replaces an old row of the same key."""
    keys = {key(r) for r in new}
    return [r for r in old if key(r) not in keys] + list(new)


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")
