"""``finetec layout check``: validate a skeleton layout file and draw it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "check a skeleton layout file (or a built-in layout) and draw it to a PNG"
DESCRIPTION = (
    "finetec layout check LAYOUT [OUT.png]: read LAYOUT (a .json / .yaml layout file or a built-in "
    "name), report the first problem as one line (exit code 2) or summarise it, list what is valid "
    "but probably wrong, and draw it to OUT.png (default: LAYOUT's name + .png in the current folder): "
    "joints with names, bones child -> parent, regions in colour, centre, flip pairs, up and across "
    "axes. With --data PATH the layout is also drawn on a real frame of that data and the data checks "
    "of `finetec inspect` (bone stretch, vertical axis, per-joint missing) are run under it. "
    "The guide to writing a layout is docs/layouts.md.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.data.readers import add_reader_arguments

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = sub.add_parser("check", help="validate a layout and draw it", description=DESCRIPTION)
    c.add_argument("layout", metavar="LAYOUT", help="a layout file (.json, .yaml) or a built-in layout name")
    c.add_argument("out", metavar="OUT", nargs="?", default=None,
                   help="the drawing (.png; default: NAME.png in the current folder)")
    c.add_argument("--data", metavar="PATH", default=None,
                   help="a dataset to check the layout against (read under LAYOUT)")
    c.add_argument("--index", type=int, default=0, metavar="I", help="clip of --data to draw (default: 0)")
    c.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    c.add_argument("--dpi", type=int, default=100, help="resolution of the drawing (default: 100)")
    add_reader_arguments(c, "-o zero_is_missing=true")


def run(args: argparse.Namespace) -> int:
    from finetec.errors import FinetecError
    from finetec.layouts import get_layout
    from finetec.layouts.review import describe_layout, review_layout
    from finetec.viz.layout_figure import draw_layout

    layout = get_layout(args.layout)
    try:
        summary = describe_layout(layout)   # also checks its joint maps against their built-in targets
    except FinetecError as e:
        raise FinetecError(e.problem, e.path or args.layout) from None
    out = Path(args.out) if args.out else Path(f"{Path(args.layout).stem if Path(args.layout).suffix else args.layout}.png")
    if out.suffix.lower() != ".png":
        raise FinetecError("the drawing is a .png file", out)
    if out.is_dir():
        raise FinetecError("output is a folder, not a file", out)
    if not 10 <= args.dpi <= 600:
        raise FinetecError(f"--dpi must be between 10 and 600, got {args.dpi}")
    checks, clip = None, None
    if args.data is not None:
        from finetec.data.checks import layout_checks
        from finetec.data.readers import open_with_options, parse_option_args

        options = {**parse_option_args(args.option), "layout": args.layout}
        ds = open_with_options(args.data, args.fmt, options)
        if not -len(ds) <= args.index < len(ds):
            raise FinetecError(f"clip index {args.index} is out of range: the dataset has {len(ds)} clip(s)",
                               args.data)
        s = ds[args.index]
        clip = (s.keypoint, s.mask, f"{Path(args.data).name} [{s.id}]")
        checks = layout_checks(ds)
    draw_layout(layout, out, clip=clip, dpi=args.dpi)
    warnings = review_layout(layout) + (checks["warnings"] if checks else [])
    if args.json:
        print(json.dumps({"layout": layout.name, "valid": True, "summary": summary,
                          "warnings": warnings, "checks": checks, "drawing": str(out)}))
        return 0
    print(f"layout {layout.name}: valid")
    for line in summary:
        print(f"  {line}")
    if checks is not None:
        bones = ", ".join(f"{b['child']}->{b['parent']} {b['length']:.2f} / {b['stretch']:.3f}"
                          for b in checks["bones"][:3])
        print(f"  on {args.data}: bone length / std relative to body size, most stretching: {bones}")
    for w in warnings:
        print(f"  warning: {w}")
    print(f"wrote {out}")
    return 0
