"""``finetec complete``: fill the missing frames and joints of clips."""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

HELP = "fill missing frames/joints of clips with a completion model or a gap filler"
DESCRIPTION = (
    "Complete every clip of INPUT and write OUTPUT with the completed coordinates and a 'filled' "
    "mask of the entries that were missing. The output format follows OUTPUT's suffix: "
    ".finetec.npz (canonical dataset, any number of clips), .npz (plain arrays), .json (pose "
    "JSON: a list of frames, like a pose estimator's output). A completion module with retrieval "
    "(model.retrieval >= 2) or an error head (model.uncertainty) adds an 'uncertainty' array to .npz "
    "outputs: how unsure it is of each filled entry, in the input's units (0 elsewhere). --method model uses the "
    "checkpoint's completion network (a completion or FineTec checkpoint); the gap fillers "
    "(linear, cubic, copy_lr, copy_rl, zero) need the checkpoint only for its layout."
)

METHODS = ("model", "linear", "cubic", "copy_lr", "copy_rl", "zero")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.zoo import add_model_option

    p.add_argument("checkpoint", metavar="CKPT", nargs="?",
                   help="checkpoint folder (completion or FineTec for --method model); omit with --model")
    p.add_argument("input", metavar="INPUT", help="clips to complete (anything finetec reads)")
    p.add_argument("output", metavar="OUTPUT", help="output file: .finetec.npz, .npz or .json")
    p.add_argument("--method", choices=METHODS, default="model", help="completion method (default model)")
    p.add_argument("--format", default=None, metavar="NAME", help="force the input reader")
    p.add_argument("--split", default=None, metavar="NAME", help="only the clips of this split")
    p.add_argument("--id", dest="ids", action="append", default=None, metavar="ID",
                   help="only the clip with this id (repeatable); one clip for a .json OUTPUT")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", default=[],
                   help="reader option, repeatable (e.g. -o dim=3 for a 3D pose JSON)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    add_model_option(p)


def output_kind(path: str | os.PathLike) -> str:
    """``canonical``, ``npz`` or ``json`` from the output file name."""
    from finetec.errors import FinetecError

    name = Path(path).name.lower()
    if name.endswith(".finetec.npz"):
        return "canonical"
    if name.endswith(".npz"):
        return "npz"
    if name.endswith(".json"):
        return "json"
    raise FinetecError("unknown output format: the name must end in .finetec.npz, .npz or .json", path)


def complete_dataset(pred: Any, ds: Any, method: str) -> tuple[Any, np.ndarray, np.ndarray | None]:
    """Complete every clip of ``ds``; returns (dataset with completed keypoints and mask = observed
    or filled, filled (F, M, V) bool in the dataset's flat frame layout, uncertainty (F, M, V)
    float32: the module's uncertainty of each filled entry, 0 elsewhere; None when it has none)."""
    from finetec.errors import FinetecError

    kp = ds.keypoint.copy()
    mask = ds.mask.copy()
    filled = np.zeros_like(ds.mask)
    unc: np.ndarray | None = np.zeros(ds.mask.shape, dtype=np.float32)
    for i in range(len(ds)):
        s = ds[i]
        if method == "model" and not s.mask.any():
            raise FinetecError(f"clip {s.id!r} has nothing observed: the completion module has nothing to "
                               "complete it from (--method linear passes it through unfilled)", ds.source)
        a, b, m = int(ds.offsets[i]), int(ds.offsets[i + 1]), s.num_persons
        out, fl, u = pred.complete(s, method=method, with_uncertainty=True)  # the Sample as is
        kp[a:b, :m] = out.transpose(1, 0, 2, 3)
        filled[a:b, :m] = fl.transpose(1, 0, 2)
        if u is None:
            unc = None
        elif unc is not None:
            unc[a:b, :m] = u.transpose(1, 0, 2)
    mask |= filled
    return replace(ds, keypoint=kp, mask=mask), filled, unc


def write_canonical(path: Path, ds: Any, filled: np.ndarray, info: dict[str, Any],
                    uncertainty: np.ndarray | None = None) -> None:
    """The canonical dataset file plus a ``filled`` (F, M, V) array and, when the model gives one,
    ``uncertainty`` (F, M, V) (ignored by older readers)."""
    extra = {"filled": filled, **({} if uncertainty is None else {"uncertainty": uncertainty})}
    replace(ds, meta={**ds.meta, "completion": info}).save(path, extra=extra)


def write_npz(path: Path, ds: Any, filled: np.ndarray, info: dict[str, Any],
              uncertainty: np.ndarray | None = None) -> None:
    """Plain ``.npz`` (:func:`finetec.data.readers.npz.write`) with the completion recorded and,
    when the model gives one, ``uncertainty`` shaped like ``filled``."""
    from finetec.data.readers import npz

    npz.write(path, ds, filled, extra={"completion": info},
              per_entry=None if uncertainty is None else {"uncertainty": uncertainty})


def write_pose_json(path: Path, ds: Any, filled: np.ndarray, info: dict[str, Any],
                    uncertainty: np.ndarray | None = None) -> None:
    """Pose JSON of one clip (2D or 3D), readable by the ``pose_json`` reader, with the completion
    recorded and a per-joint ``filled`` list for each person (:func:`finetec.data.readers.pose_json.write`;
    the uncertainty is not written: use a .npz output for it)."""
    from finetec.data.readers import pose_json
    from finetec.errors import FinetecError

    if len(ds) != 1:
        raise FinetecError(f"pose JSON output holds one clip, the input has {len(ds)}; "
                           "write a .finetec.npz instead (or pick one clip with --id)", path)
    pose_json.write(path, ds, 0, filled=ds.clip_part(filled, 0), extra={"completion": info})


def run(args: argparse.Namespace) -> int:
    from finetec.api import Predictor
    from finetec.data.readers import open_with_options, parse_option_args
    from finetec.data.readers._common import layout_fallback
    from finetec.errors import FinetecError
    from finetec.fileio import check_output, new_output

    out = Path(args.output)
    kind = output_kind(out)
    if Path(args.input).exists() and out.resolve() == Path(args.input).resolve():
        raise FinetecError("the output would overwrite the input; choose another name", out)
    check_output(out, args.overwrite)
    from finetec.zoo import checkpoint_from_args

    pred = Predictor.from_checkpoint(checkpoint_from_args(args.checkpoint, args.model), device=args.device)
    if args.method == "model":
        pred.completion_module()  # fail early with a clear message
    with layout_fallback(pred.layout):   # a file that names no layout: the model's
        ds = open_with_options(args.input, args.format, parse_option_args(args.option))
    if args.split is not None:
        ds = ds.subset(args.split)
    if args.ids:
        ds = ds.subset([ds.index_of(i) for i in args.ids])
    if len(ds) == 0:
        raise FinetecError("no clips to complete", args.input)
    ds = ds.to_layout(pred.layout)   # another skeleton: through its joint map (output in the model's layout)
    pred.check_dataset(ds)
    done, filled, unc = complete_dataset(pred, ds, args.method)
    info = {"method": args.method, "checkpoint": str(args.model or args.checkpoint), "input": str(args.input)}
    writer = {"canonical": write_canonical, "npz": write_npz, "json": write_pose_json}[kind]
    with new_output(out, args.overwrite) as tmp:
        writer(tmp, done, filled, info, unc)
    n_missing = int(filled.sum())
    print(f"completed {len(ds)} clip(s) with {args.method}: {n_missing} missing joint entries filled "
          f"-> {out}", file=sys.stderr)
    return 0
