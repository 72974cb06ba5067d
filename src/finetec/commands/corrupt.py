"""``finetec corrupt``: write a fixed, reproducible temporally corrupted copy of a dataset."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "drop frames of every clip by the benchmark protocol and write a canonical .finetec.npz"
DESCRIPTION = (
    "Read SRC (anything finetec reads: a canonical file, a reader folder or file, a synthetic spec) "
    "and write DST, a canonical dataset file in which every clip, at its native length, has the "
    "frames dropped by the corruption protocol (docs/protocol.md): dropped frames keep their "
    "position with mask False and zero coordinates. Clip i uses the generator "
    "test_rng(SEED, clip id, LEVEL, PATTERN), so the same arguments always give the same file. "
    "The output is written atomically and an existing DST is replaced only with --overwrite.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.data.readers import add_reader_arguments

    from finetec.data.corruption import LEVELS, PATTERNS

    p.add_argument("src", metavar="SRC", help="dataset folder or file (or a synthetic spec)")
    p.add_argument("dst", metavar="DST", help="output file, NAME.finetec.npz")
    p.add_argument("--level", required=True, choices=list(LEVELS),
                   help="fraction of frames dropped: clean 0%%, minor 25%%, moderate 50%%, severe 75%%")
    p.add_argument("--pattern", default="random", choices=list(PATTERNS),
                   help="which frames are dropped (default: random)")
    p.add_argument("--seed", type=int, default=0, help="protocol seed (default: 0)")
    add_reader_arguments(p, "-o layout=coco17")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")


def run(args: argparse.Namespace) -> int:
    from finetec.data.corruption import corrupt_dataset, num_dropped
    from finetec.data.readers import open_with_options, parse_option_args
    from finetec.errors import FinetecError
    from finetec.fileio import check_output, new_output

    dst = Path(args.dst)
    if not dst.name.endswith(".npz"):
        raise FinetecError("DST must be a canonical dataset file ending in .finetec.npz", dst)
    check_output(dst, args.overwrite, args.src)
    ds = open_with_options(args.src, args.fmt, parse_option_args(args.option))
    out = corrupt_dataset(ds, args.level, args.pattern, args.seed)
    with new_output(dst, args.overwrite) as tmp:
        out.save(tmp)
    dropped = sum(num_dropped(int(n), args.level) for n in ds.lengths)
    print(f"wrote {dst}: {len(out)} clips, level {args.level}, pattern {args.pattern}, seed {args.seed}: "
          f"{dropped} of {int(ds.lengths.sum())} frames dropped")
    return 0
