"""Figure plumbing shared by the viz modules: an Agg figure without pyplot, output suffix checks."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from finetec.errors import FinetecError

SKELETON_SUFFIXES = (".gif", ".mp4", ".png")
PLOT_SUFFIXES = (".png", ".pdf", ".svg")


def _new_figure(width_in: float, height_in: float, dpi: int) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _check_suffix(path: Path, allowed: Sequence[str]) -> str:
    suffix = path.suffix.lower()
    if suffix not in allowed:
        raise FinetecError(f"unknown output suffix {suffix or '(none)'!r}; use one of {', '.join(allowed)}", path)
    if path.is_dir():
        raise FinetecError("output is a folder, not a file", path)
    return suffix
