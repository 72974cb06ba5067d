"""``finetec plot``: figures from eval and benchmark result files."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw accuracy-vs-level, confusion-matrix or completion-error figures from a result JSON"
DESCRIPTION = (
    "Read INPUT.json, either an eval result (finetec eval --json) or a benchmark result (cells and "
    "completion rows), and draw OUTPUT (.png, .pdf or .svg). --kind auto: an eval result with two or "
    "more levels -> accuracy against level, with one -> its confusion matrix; a benchmark result -> "
    "accuracy against level per method (one panel per dataset), or completion error against level "
    "per filler when it has no accuracy cells. The output is written atomically.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", metavar="INPUT.json", help="eval or benchmark JSON")
    p.add_argument("output", metavar="OUTPUT", help="figure file: .png, .pdf or .svg")
    p.add_argument("--kind", choices=["auto", "levels", "confusion", "completion"], default="auto",
                   help="which figure (default: auto)")
    p.add_argument("--metric", choices=["top1", "top5", "mean_class"], default="top1",
                   help="accuracy plotted by --kind levels (default: top1)")
    p.add_argument("--level", default=None, help="confusion: the result at this level (default: the first)")
    p.add_argument("--pattern", default=None, help="confusion: the result with this pattern")
    p.add_argument("--dpi", type=int, default=100, help="resolution (default: 100)")


def run(args: argparse.Namespace) -> int:
    from finetec.errors import FinetecError
    from finetec.viz import plot_result_file

    if args.dpi < 10 or args.dpi > 600:
        raise FinetecError(f"--dpi must be between 10 and 600, got {args.dpi}")
    kind, out = plot_result_file(args.input, args.output, kind=args.kind, metric=args.metric,
                                 level=args.level, pattern=args.pattern, dpi=args.dpi)
    print(f"wrote {out}: {kind} figure from {Path(args.input).name}")
    return 0
