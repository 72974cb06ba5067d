"""Result files: reading the eval JSON (``finetec eval --json``) and the benchmark JSON, and
:func:`plot_result_file`, which draws the figure a file asks for (``finetec plot``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from finetec.console import run_name
from finetec.errors import FinetecError

from finetec.viz.figure import PLOT_SUFFIXES, _check_suffix
from finetec.viz.plots import (_require, plot_accuracy_vs_level, plot_completion_vs_level, plot_confusion)


PLOT_KINDS = ("auto", "levels", "confusion", "completion")


def load_result_json(path: str | os.PathLike) -> tuple[str, dict[str, Any]]:
    """Read an eval or benchmark JSON; returns ``("eval" | "benchmark", data)``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FinetecError("no such file", p) from None
    except IsADirectoryError:
        raise FinetecError("is a folder, not a JSON file", p) from None
    except (OSError, UnicodeDecodeError) as e:
        raise FinetecError(f"cannot read file ({type(e).__name__}: {e})", p) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise FinetecError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})", p) from None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        return "eval", data
    if isinstance(data, dict) and (isinstance(data.get("cells"), list) or isinstance(data.get("completion"), list)):
        return "benchmark", data
    raise FinetecError("unknown JSON schema: expected an eval result (with \"results\") or a benchmark "
                       "result (with \"cells\" and/or \"completion\")", p)


def eval_cells(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Eval JSON results as benchmark-style cells (dataset = data, method = checkpoint, regime = pattern)."""
    results = data["results"]
    _require(results, ["level"], "results")
    name = run_name(data.get("checkpoint"))
    return [{**r, "dataset": str(data.get("data") or "data") + (f" ({data['split']})" if data.get("split") else ""),
             "method": name, "regime": str(r.get("pattern", ""))} for r in results]


def _pick_result(data: Mapping[str, Any], level: str | None, pattern: str | None) -> dict[str, Any]:
    results = [r for r in data["results"] if isinstance(r, Mapping) and "confusion" in r]
    if not results:
        raise FinetecError("no result in this eval JSON has a confusion matrix")
    chosen = [r for r in results if (level is None or str(r.get("level")) == level)
              and (pattern is None or str(r.get("pattern")) == pattern)]
    if not chosen:
        have = ", ".join(f"{r.get('level')}/{r.get('pattern')}" for r in results)
        raise FinetecError(f"no result for level={level or 'any'} pattern={pattern or 'any'}; available: {have}")
    return dict(chosen[0])


def plot_result_file(src: str | os.PathLike, out: str | os.PathLike, *, kind: str = "auto",
                     metric: str = "top1", level: str | None = None, pattern: str | None = None,
                     dpi: int = 100) -> tuple[str, Path]:
    """Draw a figure from an eval or benchmark JSON file; returns (kind drawn, output path).

    ``auto``: an eval JSON with results at two or more levels -> ``levels``, with one -> ``confusion``;
    a benchmark JSON with cells -> ``levels``, else -> ``completion``.
    """
    if kind not in PLOT_KINDS:
        raise FinetecError(f"unknown plot kind {kind!r}; use one of {', '.join(PLOT_KINDS)}")
    _check_suffix(Path(out), PLOT_SUFFIXES)
    schema, data = load_result_json(src)
    try:
        if schema == "eval":
            levels = {str(r.get("level")) for r in data["results"] if isinstance(r, Mapping)}
            if kind == "auto":
                kind = "levels" if len(levels) >= 2 else "confusion"
            if kind == "completion":
                raise FinetecError("an eval JSON has no completion rows; use --kind levels or confusion")
            if kind == "levels":
                return kind, plot_accuracy_vs_level(eval_cells(data), out, metric=metric, dpi=dpi)
            r = _pick_result(data, level, pattern)
            title = f"{run_name(data.get('checkpoint'))}: {r.get('level')} / {r.get('pattern')}"
            title += "".join(f", {label} {float(r[k]):.3f}" for k, label in (("top1", "top-1"), ("mean_class", "mean-class"))
                             if k in r)
            return kind, plot_confusion(r["confusion"], data.get("class_names"), out, title=title, dpi=dpi)
        cells, completion = data.get("cells") or [], data.get("completion") or []
        if kind == "auto":
            kind = "levels" if cells else "completion"
        if kind == "confusion":
            raise FinetecError("a benchmark JSON has no confusion matrix; use an eval JSON")
        if kind == "levels":
            if not cells:
                raise FinetecError("this benchmark JSON has no \"cells\" to plot")
            return kind, plot_accuracy_vs_level(cells, out, metric=metric, dpi=dpi)
        if not completion:
            raise FinetecError("this benchmark JSON has no \"completion\" rows to plot")
        return kind, plot_completion_vs_level(completion, out, dpi=dpi)
    except FinetecError as e:
        if e.path is None:
            raise FinetecError(e.problem, src) from None
        raise


__all__ = ["PLOT_KINDS", "load_result_json", "eval_cells", "plot_result_file"]
