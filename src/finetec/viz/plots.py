"""Result figures: accuracy and completion error against the corruption level, confusion matrices.

Inputs are the rows of the eval / benchmark JSON (schemas in ``docs/cli/plot.md``; parsed by
:mod:`finetec.viz.results`). All output files are written atomically.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from finetec.errors import FinetecError
from finetec.fileio import atomic_path

from finetec.viz.figure import PLOT_SUFFIXES, _check_suffix, _new_figure
from finetec.data.corruption import LEVELS


def _level_positions(levels: Sequence[str]) -> dict[str, float]:
    """x position of each level name: its drop fraction (corruption.LEVELS), or a float name."""

    pos: dict[str, float] = {}
    for lv in levels:
        if lv in LEVELS:
            pos[lv] = float(LEVELS[lv])
        else:
            try:
                pos[lv] = float(lv)
            except ValueError:
                raise FinetecError(f"unknown corruption level {lv!r}; known: {', '.join(LEVELS)}") from None
    return pos


def _level_axis(ax: Any, pos: Mapping[str, float]) -> None:
    order = sorted(pos, key=pos.get)
    ax.set_xticks([pos[lv] for lv in order])
    ax.set_xticklabels([f"{lv}\n{pos[lv]:.0%}" for lv in order], fontsize=8)
    ax.set_xlabel("frames dropped", fontsize=8)
    ax.grid(True, alpha=0.3)


def _require(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], what: str) -> None:
    if not isinstance(rows, (list, tuple)) or not rows:
        raise FinetecError(f"no {what} to plot")
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise FinetecError(f"{what} entry {i} is not an object")
        missing = [k for k in keys if k not in row]
        if missing:
            raise FinetecError(f"{what} entry {i} lacks key(s): {', '.join(missing)}")


def _number(row: Mapping[str, Any], key: str, what: str, i: int) -> float:
    v = row[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise FinetecError(f"{what} entry {i}: {key} is not a finite number ({v!r})")
    return float(v)


def _save_figure(fig: Any, path: str | os.PathLike, dpi: int) -> Path:
    out = Path(path)
    _check_suffix(out, PLOT_SUFFIXES)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=dpi, format=out.suffix.lower().lstrip("."))
    return out


def _panel_grid(n: int, w: float = 4.5, h: float = 3.4, dpi: int = 100) -> tuple[Any, list[Any]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = _new_figure(cols * w, rows * h, dpi)
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def _colour_map(names: Iterable[str]) -> dict[str, Any]:
    """One colour per method / filler name, the same in every panel of a figure."""
    cycle = _default_colours()
    return {n: cycle[i % len(cycle)] for i, n in enumerate(dict.fromkeys(names))}


def _default_colours() -> list[Any]:
    import matplotlib.pyplot as plt

    return plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _plot_series(ax: Any, series: Mapping[tuple[str, str], Mapping[float, float]], colours: Mapping[str, Any],
                 notes: Mapping[tuple[str, str], str] | None = None) -> None:
    """Lines of (name, variant) -> {x: y}: colour by name, line style by variant (regime, budget...);
    ``notes`` adds text to a line's legend label."""
    styles = ["-", "--", ":", "-."]
    variants: dict[str, int] = {}
    for (name, extra), pts in series.items():
        xs = sorted(pts)
        style = styles[variants.setdefault(extra, len(variants)) % len(styles)]
        parts = [x for x in (extra, (notes or {}).get((name, extra), "")) if x]
        ax.plot(xs, [pts[x] for x in xs], marker="o", color=colours[name], linestyle=style,
                label=name + (f" ({', '.join(parts)})" if parts else ""))


def plot_accuracy_vs_level(cells: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                           metric: str = "top1", title: str | None = None, dpi: int = 100) -> Path:
    """Accuracy against corruption level: one panel per dataset, one line per method.

    cells: ``[{"dataset", "method", "level", <metric>, "regime", "budget" (both optional)}, ...]``
    as in the benchmark JSON; when regime or budget varies within a dataset it joins the line's
    name. Several cells of one method and level (several seeds) are drawn as their mean with an
    error bar of one standard deviation. Levels are placed at their drop fraction.
    """
    _require(cells, ["dataset", "method", "level", metric], "cells")
    datasets = list(dict.fromkeys(str(c["dataset"]) for c in cells))
    pos = _level_positions(list(dict.fromkeys(str(c["level"]) for c in cells)))
    colours = _colour_map(str(c["method"]) for c in cells)
    fig, axes = _panel_grid(len(datasets), dpi=dpi)
    for ax, ds in zip(axes, datasets):
        rows = [(i, c) for i, c in enumerate(cells) if str(c["dataset"]) == ds]
        varying = [k for k in ("regime", "budget") if len({str(c.get(k, "")) for _, c in rows}) > 1]
        values: dict[tuple[str, str], dict[float, list[float]]] = {}
        for i, c in rows:
            extra = ", ".join(str(c[k]) for k in varying if c.get(k) not in (None, ""))
            values.setdefault((str(c["method"]), extra), {}).setdefault(pos[str(c["level"])], []).append(
                _number(c, metric, "cells", i))
        series: dict[tuple[str, str], dict[float, float]] = {}
        notes: dict[tuple[str, str], str] = {}
        for key, pts in values.items():
            name = key[0]
            most = max(len(v) for v in pts.values())
            if most > 1:
                notes[key] = f"mean ± sd of {most} seeds"
            series[key] = {x: float(np.mean(v)) for x, v in pts.items()}
            spread = {x: float(np.std(v, ddof=1)) for x, v in pts.items() if len(v) > 1}
            if spread:  # one standard deviation over the seeds
                xs = sorted(spread)
                ax.errorbar(xs, [series[key][x] for x in xs], yerr=[spread[x] for x in xs], fmt="none",
                            ecolor=colours[name], elinewidth=1, capsize=3, alpha=0.6)
        _plot_series(ax, series, colours, notes)
        _level_axis(ax, {lv: pos[lv] for lv in {str(c["level"]) for _, c in rows}})
        ax.set_title(ds, fontsize=10)
        ax.set_ylim(0.0, 1.0 if max(max(v.values()) for v in series.values()) <= 1.0 else None)  # from 0: no zoom
        ax.set_ylabel(metric.replace("_", "-") + (" accuracy" if metric in ("top1", "top5") else ""), fontsize=8)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save_figure(fig, path, dpi)


COMPLETION_METRICS = ("mpjpe", "n_mpjpe", "mpjve")


def use_log_scale(values: Sequence[float], ratio: float = 20.0) -> bool:
    """Whether positive ``values`` span more than ``ratio`` (max / min): then a log axis reads better."""
    v = np.asarray(values, dtype=np.float64)
    return bool(v.size > 0 and v.min() > 0 and v.max() / v.min() > ratio)


def plot_completion_vs_level(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, *,
                             metrics: Sequence[str] = COMPLETION_METRICS, title: str | None = None,
                             dpi: int = 100) -> Path:
    """Restoration error against level: a panel per (dataset, metric), one line per filler.

    rows: ``[{"dataset", "filler", "level", "mpjpe", "n_mpjpe", "mpjve"}, ...]``; metrics absent
    from every row are skipped. When a dataset's rows differ in ``pattern`` or ``budget`` those
    join the line's name. The y axis turns logarithmic when the largest error exceeds 20 times the
    smallest (zero filling is often that far above the rest).
    """
    _require(rows, ["dataset", "filler", "level"], "completion")
    present = [m for m in metrics if any(m in r for r in rows)]
    if not present:
        raise FinetecError(f"completion rows have none of the metrics {', '.join(metrics)}")
    datasets = list(dict.fromkeys(str(r["dataset"]) for r in rows))
    pos = _level_positions(list(dict.fromkeys(str(r["level"]) for r in rows)))
    panels = [(ds, m) for ds in datasets for m in present]
    colours = _colour_map(str(r["filler"]) for r in rows)
    fig, axes = _panel_grid(len(panels), dpi=dpi)
    for ax, (ds, m) in zip(axes, panels):
        mine = [(i, r) for i, r in enumerate(rows) if str(r["dataset"]) == ds and r.get(m) is not None]
        varying = [k for k in ("pattern", "budget") if len({str(r.get(k, "")) for _, r in mine}) > 1]
        series: dict[tuple[str, str], dict[float, float]] = {}
        for i, r in mine:
            extra = ", ".join(str(r[k]) for k in varying if r.get(k) not in (None, ""))
            series.setdefault((str(r["filler"]), extra), {})[pos[str(r["level"])]] = _number(r, m, "completion", i)
        _plot_series(ax, series, colours)
        log = use_log_scale([v for pts in series.values() for v in pts.values()])
        _level_axis(ax, {lv: pos[lv] for lv in {str(r["level"]) for r in rows if str(r["dataset"]) == ds}})
        ax.set_title(f"{ds}: {m.upper().replace('_', '-')} on missing frames", fontsize=9)
        ax.set_ylabel(f"{m} (lower is better{', log scale' if log else ''})", fontsize=8)
        if log:  # e.g. zero filling far above the others: keep the good methods apart
            ax.set_yscale("log")
        else:
            ax.set_ylim(bottom=0)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save_figure(fig, path, dpi)


def normalize_confusion(matrix: Any) -> np.ndarray:
    """Rows divided by their sums (true class -> fraction predicted as each class); empty rows stay 0."""
    cm = np.asarray(matrix, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise FinetecError(f"a confusion matrix must be square (K, K), got shape {cm.shape}")
    if not np.isfinite(cm).all() or (cm < 0).any():
        raise FinetecError("a confusion matrix must hold non-negative finite counts")
    s = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, s, out=np.zeros_like(cm), where=s > 0)


def plot_confusion(matrix: Any, class_names: Sequence[str] | None, path: str | os.PathLike, *,
                   title: str | None = None, dpi: int = 100) -> Path:
    """Row-normalised confusion matrix (rows: true class, columns: predicted) with class names.

    Cells are annotated with percentages when there are at most 30 classes.
    """
    cm = normalize_confusion(matrix)
    K = cm.shape[0]
    names = [str(c) for c in class_names] if class_names else [str(k) for k in range(K)]
    if len(names) != K:
        raise FinetecError(f"{len(names)} class names for a {K}x{K} confusion matrix")
    side = float(np.clip(2.0 + 0.32 * K, 4.0, 30.0))
    fig = _new_figure(side + 1.2, side, dpi)
    ax = fig.add_subplot(1, 1, 1)
    im = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fs = float(np.clip(11 - 0.15 * K, 4, 9))
    ax.set_xticks(range(K)); ax.set_yticks(range(K))
    ax.set_xticklabels(names, rotation=90, fontsize=fs); ax.set_yticklabels(names, fontsize=fs)
    ax.set_xlabel("predicted class"); ax.set_ylabel("true class")
    if K <= 30:
        for i in range(K):
            for j in range(K):
                if cm[i, j] >= 0.005:
                    ax.text(j, i, f"{100 * cm[i, j]:.0f}", ha="center", va="center", fontsize=fs * 0.85,
                            color="white" if cm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_title(title or f"confusion (row-normalised), mean diagonal (mean-class accuracy) "
                          f"{np.mean(np.diag(cm)):.3f}", fontsize=10)
    fig.tight_layout()
    return _save_figure(fig, path, dpi)


__all__ = ["plot_accuracy_vs_level", "COMPLETION_METRICS", "use_log_scale", "plot_completion_vs_level",
           "normalize_confusion", "plot_confusion"]
