"""Plots and skeleton animations (layer of the API and the benchmark, below the commands).

Everything here draws on plain :class:`matplotlib.figure.Figure` objects with the Agg canvas, so
it works without a display and never switches the backend of a caller's interactive session.

One module per job:

- :mod:`~finetec.viz.skeleton`: skeleton drawings (:func:`render_clip`, :func:`contact_sheet`);
  missing data is drawn, never hidden;
- :mod:`~finetec.viz.plots`: result figures (:func:`plot_accuracy_vs_level`,
  :func:`plot_completion_vs_level`, :func:`plot_confusion`);
- :mod:`~finetec.viz.results`: reading the eval / benchmark JSON and :func:`plot_result_file`
  (``finetec plot``; schemas in ``docs/cli/plot.md``);
- :mod:`~finetec.viz.layout_figure`: a layout's drawing (``finetec layout check``);
- :mod:`~finetec.viz.figure`: shared figure plumbing.

Every public name is importable from ``finetec.viz``.

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
