"""``finetec inspect``: what a dataset holds (clips, classes, splits, lengths, missing data)."""
from __future__ import annotations

import argparse
import json
from typing import Any

HELP = "summarise a dataset in any supported format (clips, classes, splits, frames, missing data)"
DESCRIPTION = (
    "Read PATH (a dataset folder or file in any supported format, a .finetec.npz, or 'synthetic') "
    "and print what it holds. With --json, one JSON object on stdout.")


MAX_IDS = 20          # clip ids listed in ``nothing_observed`` (--json); the text shows 5


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.data.readers import add_reader_arguments

    p.add_argument("path", metavar="PATH", help="dataset folder or file, or a synthetic spec")
    add_reader_arguments(p, "-o layout=coco17 -o score_threshold=0.3")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--verify", action="store_true",
                   help="re-check a canonical dataset completely: for a .finetec folder every part's "
                        "checksum and every clip's content (a .finetec.npz is checked completely on "
                        "every load)")
    p.add_argument("--layout", metavar="NAME_OR_PATH", default=None,
                   help="read the data under this layout (a built-in name or a layout file), e.g. to "
                        "compare the checks of two candidate layouts")
    p.add_argument("--no-checks", action="store_true",
                   help="skip the layout checks (per-joint missing, bone stretch, vertical axis)")


def summarize(ds: Any, fmt: str | None = None, checks: bool = True) -> dict[str, Any]:
    """Statistics of a :class:`~finetec.data.dataset.SkeletonDataset` as a JSON-ready dict.

    ``missing_fraction`` is the fraction of joint-frames that are unobserved, counted over the
    persons actually present in each clip (padding persons are not counted);
    ``missing_frame_fraction`` the fraction of frames in which no joint of any person is observed.
    ``nothing_observed`` counts the clips without a single observed joint (``clips``, the first
    :data:`MAX_IDS` ``ids``, and ``splits``: how many of each split): they are valid samples,
    e.g. left by ``finetec corrupt``, but training refuses them. ``checks`` (unless
    ``checks=False``): whether the layout fits the data, see :mod:`finetec.data.checks`.
    """
    import numpy as np

    from finetec.data.checks import layout_checks
    from finetec.data.checks import nothing_observed

    n = len(ds)
    lengths = ds.lengths
    F, M, V = ds.mask.shape
    per_frame_persons = np.repeat(ds.persons.astype(np.int64), lengths)              # (F,)
    valid = np.arange(M)[None, :] < per_frame_persons[:, None]                        # (F, M)
    observed = ds.mask.sum(axis=2)                                                    # (F, M)
    real_slots = int(valid.sum())
    missing_joints = real_slots * V - int(observed[valid].sum())
    frame_has_any = observed.any(axis=1)                                              # (F,)
    labels = ds.label
    labelled = labels >= 0
    K = ds.num_classes
    class_counts = np.bincount(labels[labelled], minlength=K).tolist() if K else []
    lo = np.full(ds.dim, np.inf)
    hi = np.full(ds.dim, -np.inf)
    for a in range(0, F, 1 << 18):                   # in slices: no copy of every observed joint
        obs = ds.keypoint[a:a + (1 << 18)][ds.mask[a:a + (1 << 18)]]                  # (P, C)
        if len(obs):
            lo, hi = np.minimum(lo, obs.min(axis=0)), np.maximum(hi, obs.max(axis=0))
    persons_hist = {str(k): int(v) for k, v in zip(*np.unique(ds.persons, return_counts=True))}
    meta = {k: (len(v) if k == "skipped" and isinstance(v, list) else v) for k, v in ds.meta.items()}
    empty = nothing_observed(ds)
    return {
        "path": ds.source,
        "format": fmt,
        "source_format": ds.meta.get("source_format", fmt),
        "num_clips": n,
        "num_classes": K,
        "class_names": list(ds.class_names),
        "class_counts": class_counts,
        "labelled_clips": int(labelled.sum()),
        "splits": {name: int(len(idx)) for name, idx in sorted(ds.splits.items())},
        "layout": ds.layout.name,
        "joints": V,
        "dims": ds.dim,
        "frames": {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 2),
                   "max": int(lengths.max()), "total": int(F)},
        "persons": {"max": int(ds.persons.max()), "mean": round(float(ds.persons.mean()), 3),
                    "clips_by_count": persons_hist},
        "missing_fraction": round(missing_joints / max(real_slots * V, 1), 6),
        "missing_frame_fraction": round(1.0 - float(frame_has_any.mean()), 6) if F else 0.0,
        "nothing_observed": {"clips": int(empty.sum()),
                             "ids": [str(i) for i in ds.ids[empty][:MAX_IDS]],
                             "splits": {name: int(empty[np.asarray(idx, dtype=np.int64)].sum())
                                        for name, idx in sorted(ds.splits.items())}},
        "has_score": ds.score is not None,
        "coords": {"min": lo.round(4).tolist(), "max": hi.round(4).tolist()} if np.isfinite(lo).all() else None,
        "meta": meta,
        "title": ds.meta.get("title"),
        "checks": layout_checks(ds) if checks else None,
    }


def _nothing_observed_rows(e: dict[str, Any], shown: int = 5) -> list[tuple[str, str]]:
    """The text rows about clips with nothing observed (none when there are none)."""
    n = e["clips"]
    if not n:
        return []
    ids = ", ".join(repr(i) for i in e["ids"][:shown]) + (f" and {n - shown} more" if n > shown else "")
    where = ", ".join(f"{k} {v}" for k, v in e["splits"].items() if v)
    return [("empty", f"{n} clip{'s' if n != 1 else ''} with nothing observed"
                      f"{f' ({where})' if where else ''}, refused by training: {ids}")]


def _verified_text(v: dict[str, Any]) -> str:
    if v.get("checked_on_load"):
        return "yes (read and checked completely on load)"
    return f"yes ({v['parts']} parts, {v['bytes']} bytes: checksums and every clip's content)"


def _check_rows(c: dict[str, Any] | None, shown: int = 3) -> list[tuple[str, str]]:
    """The text rows of the layout checks (none when they were skipped)."""
    if c is None:
        return []
    miss = c["missing_by_joint"]
    worst = ", ".join(f"{j} {100 * miss[j]:.0f} %" for j in c["most_missing"][:5]) or "none missing"
    rows = [("by joint", f"most missing: {worst}")]
    if c["bones"]:
        top = ", ".join(f"{b['child']}->{b['parent']} {b['length']:.2f} / {b['stretch']:.3f}"
                        for b in c["bones"][:shown])
        rows.append(("bones", f"length / std over frames, relative to body size: most stretching "
                              f"{top}; typical std {c['bone_stretch_typical']:.3f} ({c['clips_checked']} clips)"))
    v = c["vertical"]
    if v["data_axis"] is not None:
        rows.append(("vertical", f"data extends most along {v['data_axis']}; layout up_axis "
                                 f"{v['layout_up'] or 'not set'}"))
    rows += [("warning", w) for w in c["warnings"]]
    return rows


def _print_text(s: dict[str, Any]) -> None:
    fr, pe = s["frames"], s["persons"]
    rows = [
        ("path", s["path"]),
        ("format", s["format"] if s["source_format"] in (None, s["format"])
         else f"{s['format']} (converted from {s['source_format']})"),
        ("clips", s["num_clips"]),
        ("classes", f"{s['num_classes']} ({s['labelled_clips']} labelled clips)"),
        ("layout", f"{s['layout']} ({s['joints']} joints, {s['dims']}D)"),
        ("frames", f"min {fr['min']}, mean {fr['mean']}, max {fr['max']} ({fr['total']} in all)"),
        ("persons", f"max {pe['max']}, mean {pe['mean']}"),
        ("missing", f"{100 * s['missing_fraction']:.2f} % of joint-frames, "
                    f"{100 * s['missing_frame_fraction']:.2f} % of frames empty"),
        *_nothing_observed_rows(s["nothing_observed"]),
        *([("verified", _verified_text(s["verified"]))] if "verified" in s else []),
        ("scores", "yes" if s["has_score"] else "no"),
        ("splits", ", ".join(f"{k} ({v})" for k, v in s["splits"].items()) or "none"),
    ]
    if s.get("title"):
        rows.insert(1, ("title", s["title"]))
    rows += _check_rows(s["checks"])
    for k, v in rows:
        print(f"{k:>9}: {v}")
    if s["class_names"]:
        print("  classes:")
        width = len(str(len(s["class_names"]) - 1))
        for i, (name, count) in enumerate(zip(s["class_names"], s["class_counts"])):
            print(f"    {i:>{width}} {name} ({count})")


def run(args: argparse.Namespace) -> int:
    from finetec.data.readers import open_with_options, parse_option_args

    from pathlib import Path

    from finetec.data.readers import detect_format

    options = parse_option_args(args.option)
    if args.layout is not None:
        options["layout"] = args.layout
    verified = None
    if args.verify:
        from finetec.data.dataset import open_store
        from finetec.data.store import is_store, verify

        if Path(args.path).is_dir() and (is_store(args.path) or args.path.rstrip("/").endswith(".finetec")):
            verified = verify(open_store(args.path))  # FinetecError naming the part or clip when anything is wrong
    ds = open_with_options(args.path, args.fmt, options)
    fmt = args.fmt or (detect_format(args.path) if Path(args.path).exists() else "synthetic")
    summary = summarize(ds, fmt, checks=not args.no_checks)
    if args.verify:
        summary["verified"] = verified if verified is not None else {"checked_on_load": True}
    if args.json:
        print(json.dumps(summary))
    else:
        _print_text(summary)
    return 0
