"""Plots and skeleton animations (the ``viz`` layer: beside the API and the benchmark, below the commands).

Everything here draws on plain :class:`matplotlib.figure.Figure` objects with the Agg canvas, so
it works without a display and never switches the backend of a caller's interactive session.

Skeleton drawings (:func:`render_clip`, :func:`contact_sheet`)
    A clip is ``keypoint`` (M, T, V, C) + ``mask`` (M, T, V) on a :class:`~finetec.layouts.Layout`.
    Bones follow the layout's edges and take the colour of the child joint's region
    (:data:`REGION_COLORS`). Each person gets its own marker shape. Axis limits are fixed over the
    clip (from its observed joints). 2D clips in image coordinates (y grows downwards) are detected
    from the layout's up axis (:func:`detect_y_down`) and drawn upright; 3D clips are drawn on an
    orthographic 3D axes with the body's up direction vertical.

    Missing data is drawn, never hidden: a frame with no observed joint shows a faded grey ghost of
    the nearest observed pose and a "missing" label; a timeline strip under every panel colours each
    frame as observed, partial (some joints missing), missing, or restored (missing in the first
    clip of a comparison, observed in this one). With ``show_mask`` every missing joint of a drawn
    frame appears as a hollow red circle at its nearest observed position in time, and joints that
    a compared clip restored get a blue ring.

Result figures (:func:`plot_accuracy_vs_level`, :func:`plot_completion_vs_level`,
:func:`plot_confusion`, :func:`plot_result_file`)
    From the eval JSON written by ``finetec eval --json`` and the benchmark JSON written by the
    benchmarks (schemas in ``docs/cli/plot.md``).

Drawing a layout (:func:`finetec.viz.layout_figure.draw_layout`, ``finetec layout check``)

Modules: :mod:`~finetec.viz.skeleton` (animations, contact sheets), :mod:`~finetec.viz.plots`
(result figures), :mod:`~finetec.viz.results` (reading eval / benchmark JSON, ``finetec plot``),
:mod:`~finetec.viz.layout_figure` (a layout's drawing), :mod:`~finetec.viz.figure` (shared
figure plumbing). Every public name is importable from ``finetec.viz``.

All output files are written atomically (:func:`finetec.fileio.atomic_path`).
"""
from finetec.viz.figure import PLOT_SUFFIXES, SKELETON_SUFFIXES
from finetec.viz.plots import *  # noqa: F401,F403
from finetec.viz.plots import __all__ as _plots_all
from finetec.viz.results import *  # noqa: F401,F403
from finetec.viz.results import __all__ as _results_all
from finetec.viz.skeleton import *  # noqa: F401,F403
from finetec.viz.skeleton import __all__ as _skeleton_all

__all__ = ["PLOT_SUFFIXES", "SKELETON_SUFFIXES", *_skeleton_all, *_plots_all, *_results_all]
