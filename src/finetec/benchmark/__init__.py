"""The corruption benchmark: every method x dataset x level, trained and tested alike.

- :mod:`~finetec.benchmark.spec`: the methods, budgets, regimes and dataset names;
- :mod:`~finetec.benchmark.runner`: plans the cells and runs the unfinished ones (resumable);
- :mod:`~finetec.benchmark.engine_backend`: trains and tests through :mod:`finetec.engine`;
- :mod:`~finetec.benchmark.store`: ``results.json``;
- :mod:`~finetec.benchmark.report`: Markdown tables and plots generated from ``results.json``.

The command is ``finetec benchmark`` (see ``docs/cli/benchmark.md``).
"""
from __future__ import annotations

from finetec.benchmark.report import render_markdown, write_report
from finetec.benchmark.runner import Cell, Progress, TrainUnit, plan_cells, run_benchmark
from finetec.benchmark.spec import BUDGETS, LEVEL_ORDER, METHODS, REGIMES, Budget, DatasetEntry, Method
from finetec.benchmark.store import ResultsStore

__all__ = ["BUDGETS", "LEVEL_ORDER", "METHODS", "REGIMES", "Budget", "Cell", "DatasetEntry", "Method",
           "Progress", "ResultsStore", "TrainUnit", "plan_cells", "render_markdown", "run_benchmark",
           "write_report"]
