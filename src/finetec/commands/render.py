"""``finetec render``: draw one skeleton clip as an animation or a contact sheet."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = "draw a skeleton clip as an animation (.gif, .mp4) or a contact sheet of key frames (.png)"
DESCRIPTION = (
    "Read INPUT (anything finetec reads: a canonical .finetec.npz, a reader folder or file, a pose "
    "JSON, a synthetic spec such as synthetic:coco17), pick one clip (default: index 0) and draw it "
    "to OUTPUT, chosen by suffix: .gif (always available), .mp4 (needs ffmpeg) or .png (a contact "
    "sheet of key frames). Bones are coloured by body region; missing frames show a faded ghost "
    "and a 'missing' label, and a timeline strip marks observed / partial / missing frames. "
    "--compare draws the clip with the same id from OTHER beside it (e.g. corrupted vs completed). "
    "The output is written atomically.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.data.readers import add_reader_arguments

    p.add_argument("input", metavar="INPUT", help="dataset file or folder, pose JSON, or synthetic spec")
    p.add_argument("output", metavar="OUTPUT", help="output file: .gif, .mp4 or .png")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--index", type=int, default=None, metavar="I",
                       help="clip index in INPUT (default: 0; negative counts from the end)")
    which.add_argument("--id", default=None, metavar="ID", help="clip id in INPUT")
    p.add_argument("--compare", metavar="OTHER", default=None,
                   help="second dataset; its clip with the same id is drawn beside (or, if OTHER "
                        "has a single clip, that one)")
    p.add_argument("--mask", action="store_true",
                   help="draw individual missing joints as hollow red circles (at their nearest "
                        "observed position) and joints restored in OTHER with a blue ring, shaded by "
                        "the completion's uncertainty when OTHER is a `finetec complete` .finetec.npz "
                        "that holds one (solid: surest third, faint: least sure third)")
    p.add_argument("--fps", type=float, default=15.0, help="animation frame rate (default: 15)")
    p.add_argument("--sheet", metavar="FRAMES", default="8",
                   help="contact sheet (.png): a number of evenly spaced frames (default 8) or a "
                        "comma-separated list of frame indices such as 0,10,20 (one frame: '5,')")
    p.add_argument("--max-frames", type=int, default=300, metavar="N",
                   help="animations of longer clips show every k-th frame, k = ceil(T / N) (default: 300)")
    p.add_argument("--titles", nargs="+", metavar="TITLE", default=None,
                   help="panel titles (one per clip; default: file name and clip id)")
    p.add_argument("--y-axis", choices=["auto", "down", "up"], default="auto",
                   help="2D clips: image coordinates with y down, y up, or detect from the "
                        "layout's up axis (default: auto)")
    p.add_argument("--dpi", type=int, default=80, help="resolution (default: 80)")
    p.add_argument("--layout", metavar="NAME_OR_PATH", default=None,
                   help="draw the clip(s) under this layout (a built-in name or a layout file) instead "
                        "of the one the data carries; same as -o layout=NAME_OR_PATH")
    add_reader_arguments(p, "-o layout=coco17")


def parse_sheet(text: str):
    """``"8"`` -> 8 (a count); ``"0,10,20"`` or ``"5,"`` -> [0, 10, 20] / [5] (frame indices)."""
    from finetec.errors import FinetecError

    s = text.strip()
    try:
        if "," in s:
            return [int(x) for x in s.split(",") if x.strip()]
        return int(s)
    except ValueError:
        raise FinetecError(f"--sheet {text!r}: give a number of frames or comma-separated frame indices") from None


def _pick(ds, index: int | None, clip_id: str | None, where: str):
    from finetec.errors import FinetecError

    n = len(ds)
    if clip_id is not None:
        try:
            return ds[ds.index_of(clip_id)]
        except FinetecError as e:
            raise FinetecError(e.problem, where) from None
    i = 0 if index is None else index
    if not -n <= i < n:
        raise FinetecError(f"clip index {i} is out of range: the dataset has {n} clip(s)", where)
    return ds[i]


def _check_drawable(sample, where) -> None:
    """A clip with nothing observed (possible after corruption) cannot be drawn: say which one."""
    from finetec.errors import FinetecError

    if not sample.mask.any():
        raise FinetecError(f"clip {sample.id!r} has no observed joint to draw", where)


def _uncertainty(path: str, ds, i: int):
    """Clip ``i``'s ``uncertainty`` (M, T, V) from a canonical file written by ``finetec complete``
    (its extra array in the flat frame layout), or None when the file holds none."""
    import numpy as np

    if not str(path).endswith(".finetec.npz"):
        return None
    with np.load(path, allow_pickle=False) as z:
        if "uncertainty" not in z.files or z["uncertainty"].shape != ds.mask.shape:
            return None
        return ds.clip_part(z["uncertainty"], i)


def _title(spec: str, sample) -> str:
    name = spec if spec.startswith("synthetic") else Path(spec).name
    return f"{name} [{sample.id}]" if sample.id else name


def run(args: argparse.Namespace) -> int:
    from finetec import viz
    from finetec.data.readers import open_with_options, parse_option_args
    from finetec.errors import FinetecError

    out = Path(args.output)
    suffix = out.suffix.lower()
    if suffix not in viz.SKELETON_SUFFIXES:
        raise FinetecError(f"unknown output suffix {suffix or '(none)'!r}; use .gif, .mp4 or .png", out)
    if out.is_dir():
        raise FinetecError("output is a folder, not a file", out)
    if not args.fps > 0:
        raise FinetecError(f"--fps must be positive, got {args.fps}")
    if args.dpi < 10 or args.dpi > 600:
        raise FinetecError(f"--dpi must be between 10 and 600, got {args.dpi}")
    if args.max_frames < 1:
        raise FinetecError(f"--max-frames must be at least 1, got {args.max_frames}")
    frames = parse_sheet(args.sheet)
    if suffix == ".mp4":
        import matplotlib.animation as animation

        if not animation.writers.is_available("ffmpeg"):
            raise FinetecError("writing .mp4 needs ffmpeg, which is not installed; write a .gif instead", out)
    options = parse_option_args(args.option)
    if args.layout is not None:
        options["layout"] = args.layout
    ds = open_with_options(args.input, args.fmt, options)
    sample = _pick(ds, args.index, args.id, args.input)
    _check_drawable(sample, args.input)
    clips, layouts = [sample], [ds.layout]
    restored_label = "restored"
    titles = [_title(args.input, sample)]
    if args.compare is not None:
        other = open_with_options(args.compare, args.fmt, options)
        ids = [str(x) for x in other.ids.tolist()]
        if sample.id in ids:
            second = other[ids.index(sample.id)]
        elif len(other) == 1:
            second = other[0]
        else:
            raise FinetecError(f"no clip with id {sample.id!r} to compare with (of {len(other)} clips)",
                               args.compare)
        _check_drawable(second, args.compare)
        # what the second panel's frames missing in the first are: a completion's output, or a reference
        restored_label = ("restored" if "completion" in other.meta
                          else "clean reference" if second.mask.all() else "observed here only")
        titles.append(_title(args.compare, second))
        unc = _uncertainty(args.compare, other, ids.index(second.id) if second.id in ids else 0)
        if unc is not None:
            second = viz.ClipView(second.keypoint, second.mask, other.layout, uncertainty=unc)
        clips.append(second)
        layouts.append(other.layout)
    if args.titles is not None:
        if len(args.titles) != len(clips):
            raise FinetecError(f"--titles needs {len(clips)} title(s), got {len(args.titles)}")
        titles = list(args.titles)
    y_down = {"auto": None, "down": True, "up": False}[args.y_axis]
    if suffix == ".png":
        res = viz.contact_sheet(clips, layouts, out, frames=frames, titles=titles, show_mask=args.mask,
                                y_down=y_down, dpi=args.dpi, restored_label=restored_label)
        # numbered from 1 as in the cells' labels; --sheet takes 0-based indices
        what = (f"contact sheet of frames {', '.join(str(t + 1) for t in res['frames'])} of {sample.num_frames} "
                f"(--sheet indices {','.join(str(t) for t in res['frames'])})")
    else:
        res = viz.render_clip(clips, layouts, out, titles=titles, fps=args.fps, show_mask=args.mask,
                              y_down=y_down, max_frames=args.max_frames, dpi=args.dpi,
                              restored_label=restored_label)
        what = f"{res['frames']} frames at {args.fps:g} fps"
    w, h = res["size"]
    if any(res["y_down"]):
        what += ", 2D image coordinates (y down) drawn upright"
    print(f"wrote {out}: clip {sample.id!r}, {what}, {w}x{h} px")
    return 0
