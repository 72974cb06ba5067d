"""``finetec convert``: any supported input -> the canonical ``.finetec.npz`` file or memory-mapped
``.finetec`` folder (or a PYSKL pickle)."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("convert a dataset to the canonical .finetec.npz file or .finetec folder (or a PYSKL pickle, "
        "or one clip as pose JSON)")
DESCRIPTION = (
    "Read SRC (any supported format, detected or given with --format) and write DST: a canonical "
    "finetec dataset file when DST ends in .npz (use the .finetec.npz suffix), a memory-mapped "
    "canonical folder when DST ends in .finetec (for datasets larger than memory: NTU folders and "
    "PYSKL pickles are written clip by clip as they are read, in bounded memory; -o workers=N "
    "parses NTU files in N processes), a PYSKL pickle when DST ends in .pkl, one clip as pose JSON "
    "(2D or 3D, what a pose estimator writes) when DST ends in .json (pick the clip with --id). The "
    "output is written atomically: on any error no DST is left behind, and an existing DST file is "
    "never replaced without --overwrite (of two conversions to one new DST file, exactly one "
    "succeeds).")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.data.readers import add_reader_arguments

    p.add_argument("src", metavar="SRC", help="dataset folder or file (or a synthetic spec)")
    p.add_argument("dst", metavar="DST", help="output: NAME.finetec.npz, NAME.finetec (folder), NAME.pkl or NAME.json")
    add_reader_arguments(p, "-o missing=ntu_missing.txt")
    p.add_argument("--id", dest="ids", action="append", default=None, metavar="ID",
                   help="only the clip with this id (repeatable); a .json DST holds exactly one clip")
    p.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    p.add_argument("--map-to", default=None, metavar="LAYOUT",
                   help="move the clips onto another skeleton layout through the joint map (e.g. penn13 -> "
                        "coco17: the eyes and ears are missing); see docs/layouts.md#joint-maps")


def output_kind(dst: str) -> str:
    """``canonical``, ``store``, ``pyskl`` or ``pose_json`` from the destination's suffix; FinetecError
    otherwise."""
    from finetec.errors import FinetecError

    name = Path(dst).name.rstrip("/")
    if name.endswith(".pkl"):
        return "pyskl"
    if name.endswith(".json"):
        return "pose_json"
    if name.endswith(".npz"):
        return "canonical"
    if name.endswith(".finetec"):
        return "store"
    raise FinetecError("unknown output type: DST must end in .finetec.npz (canonical file), .finetec "
                       "(memory-mapped canonical folder), .pkl (PYSKL) or .json (one clip as pose JSON)", dst)


def run(args: argparse.Namespace) -> int:
    import sys

    from finetec.data.readers import open_with_options, parse_option_args
    from finetec.data.readers.pyskl import write_pyskl
    from finetec.errors import FinetecError
    from finetec.fileio import check_output, new_output

    kind = output_kind(args.dst)
    dst = Path(args.dst)
    if kind == "store":
        return _run_store(args, dst)
    check_output(dst, args.overwrite, args.src)
    ds = open_with_options(args.src, args.fmt, parse_option_args(args.option))
    if args.ids:
        ds = ds.subset([ds.index_of(i) for i in args.ids])
    if args.map_to is not None:
        ds = ds.to_layout(args.map_to)
    if kind == "pose_json":
        from finetec.data.readers import pose_json

        if len(ds) != 1:
            raise FinetecError(f"a pose JSON file holds one clip and SRC has {len(ds)}; pick one with --id "
                               f"(e.g. --id {ds.ids[0]})", dst)
        with new_output(dst, args.overwrite) as tmp:
            pose_json.write(tmp, ds)
        clip = ds[0]
        print(f"wrote {dst} (pose JSON, {ds.dim}D): clip {clip.id!r}, {clip.num_frames} frames, "
              f"layout {ds.layout.name}" + (f", label {ds.class_names[clip.label]}" if clip.label is not None
                                             and clip.label < ds.num_classes else ""))
        return 0
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


def _run_store(args: argparse.Namespace, dst: Path) -> int:
    """Convert into a memory-mapped ``.finetec`` folder, clip by clip (see :mod:`finetec.data.store`)."""
    from finetec.data.readers import open_with_options, parse_option_args, stream_dataset
    from finetec.data.dataset import open_store
    from finetec.data.store import ClipStream, is_store
    from finetec.errors import FinetecError

    if args.map_to is not None:
        raise FinetecError("--map-to writes a .finetec.npz file (or .pkl / .json), not a .finetec folder", dst)
    if dst.exists() and not args.overwrite:
        raise FinetecError("already exists (use --overwrite to replace it)", dst)
    if dst.exists() and not is_store(dst):
        raise FinetecError("exists and is not a finetec dataset folder; not replacing it", dst)
    if Path(args.src).exists() and dst.exists() and Path(args.src).resolve() == dst.resolve():
        raise FinetecError("SRC and DST are the same", dst)
    options = parse_option_args(args.option)
    if args.ids:  # a few clips: read, pick, write
        ds = open_with_options(args.src, args.fmt, options)
        clips = ClipStream.of_dataset(ds.subset([ds.index_of(i) for i in args.ids]))
        clips.write(dst, overwrite=args.overwrite)
    else:
        from finetec.data.readers._common import reading

        with reading(args.src, "input"):  # streamed readers meet the file's content while writing
            stream_dataset(args.src, args.fmt, options).write(dst, overwrite=args.overwrite)
    ds = open_store(dst)
    splits = ", ".join(f"{k} ({len(v)})" for k, v in sorted(ds.splits.items())) or "none"
    n, k = len(ds), ds.num_classes
    print(f"wrote {dst} (finetec memory-mapped folder): {n} clip{'s' * (n != 1)}, {k} class{'es' * (k != 1)}, "
          f"layout {ds.layout.name}, splits: {splits}")
    return 0
