"""``finetec convert``: any supported input -> the canonical ``.finetec.npz`` (or a PYSKL pickle)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "convert a dataset to the canonical .finetec.npz file (or, for DST.pkl, a PYSKL pickle)"
DESCRIPTION = (
    "Read SRC (any supported format, detected or given with --format) and write DST: a canonical "
    "finetec dataset file when DST ends in .npz (use the .finetec.npz suffix), a PYSKL pickle when "
    "DST ends in .pkl. The output is written atomically: on any error no DST file is left behind, and "
    "an existing DST is never replaced without --overwrite (of two conversions to one new DST, "
    "exactly one succeeds).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.data.readers import add_reader_arguments

    p.add_argument("src", metavar="SRC", help="dataset folder or file (or a synthetic spec)")
    p.add_argument("dst", metavar="DST", help="output file: NAME.finetec.npz or NAME.pkl")
    add_reader_arguments(p, "-o missing=ntu_missing.txt")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")


def output_kind(dst: str) -> str:
    """``canonical`` or ``pyskl`` from the destination's suffix; FinetecError otherwise."""
    from finetec.errors import FinetecError

    name = Path(dst).name
    if name.endswith(".pkl"):
        return "pyskl"
    if name.endswith(".npz"):
        return "canonical"
    raise FinetecError("unknown output type: DST must end in .finetec.npz (canonical) or .pkl (PYSKL)", dst)


def run(args: argparse.Namespace) -> int:
    import sys

    from finetec.data.readers import open_with_options, parse_option_args
    from finetec.data.readers.pyskl import write_pyskl
    from finetec.fileio import check_output, new_output

    kind = output_kind(args.dst)
    dst = Path(args.dst)
    check_output(dst, args.overwrite, args.src)
    ds = open_with_options(args.src, args.fmt, parse_option_args(args.option))
    with new_output(dst, args.overwrite) as tmp:
        if kind == "pyskl":
            write_pyskl(ds, tmp)
        else:
            if not dst.name.endswith(".finetec.npz"):
                print(f"finetec convert: note: {dst}: canonical files are usually named *.finetec.npz",
                      file=sys.stderr)
            ds.save(tmp)
    splits = ", ".join(f"{k} ({len(v)})" for k, v in sorted(ds.splits.items())) or "none"
    n, k = len(ds), ds.num_classes
    print(f"wrote {dst} ({'PYSKL pickle' if kind == 'pyskl' else 'finetec canonical'}): "
          f"{n} clip{'s' * (n != 1)}, {k} class{'es' * (k != 1)}, layout {ds.layout.name}, splits: {splits}")
    return 0
