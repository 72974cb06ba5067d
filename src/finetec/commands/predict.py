"""``finetec predict``: classify clips with a trained checkpoint."""
from __future__ import annotations

import argparse
import json
import sys

HELP = "classify skeleton clips (pose-estimator JSON, dataset files, reader folders) with a checkpoint"
DESCRIPTION = (
    "Print the top-k classes with their probabilities for every clip of every INPUT. INPUT is "
    "anything finetec reads: a pose-estimator JSON file or folder, a .finetec.npz dataset, a plain "
    ".npz, a dataset folder, or synthetic:LAYOUT. Preprocessing is the evaluation pipeline of the "
    "checkpoint at the clean level; real missing joints and frames stay masked."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.backends import add_backend_option
    from finetec.zoo import add_model_option

    p.add_argument("checkpoint", metavar="CKPT", nargs="?",
                   help="checkpoint folder (or its model.safetensors, or a training run folder); omit with --model")
    p.add_argument("inputs", metavar="INPUT", nargs="+", help="clips to classify")
    add_model_option(p)
    p.add_argument("--top-k", type=int, default=5, metavar="K", help="classes to print per clip (default 5)")
    p.add_argument("--json", action="store_true",
                   help='one JSON object per clip per line: {"id", "top_k": [{"class", "prob"}], "label"?}')
    p.add_argument("--batch-size", type=int, default=32, metavar="B", help="clips per forward pass (default 32)")
    p.add_argument("--format", default=None, metavar="NAME", help="force the input reader (see finetec inspect)")
    p.add_argument("--split", default=None, metavar="NAME", help="only the clips of this split (e.g. test)")
    p.add_argument("--id", dest="ids", action="append", default=None, metavar="ID",
                   help="only the clip with this id (repeatable), e.g. one clip of a dataset file")
    p.add_argument("-o", "--option", action="append", metavar="KEY=VALUE", default=[],
                   help="reader option, repeatable (e.g. -o dim=3 for a 3D pose JSON)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="forward pass precision: bf16 autocast (on a CPU only with native bf16) or fp32; "
                        "auto = bf16 on CUDA, fp32 on a CPU (default: auto)")
    add_backend_option(p)


def _label_name(ds, label: int) -> str | None:
    if label < 0:
        return None
    return ds.class_names[label] if label < len(ds.class_names) else str(label)


def _probabilities(pred, ds, batch_size: int, desc: str):
    """``pred.probabilities`` over the dataset in chunks, with a progress bar on stderr (on a
    terminal, for 200 clips or more)."""
    import numpy as np

    from finetec.data.readers._common import progress_counter

    bar = progress_counter(len(ds), desc)
    chunk = max(4 * batch_size, 64)
    out = []
    for a in range(0, len(ds), chunk):
        b = min(a + chunk, len(ds))
        out.append(pred.probabilities([ds[i] for i in range(a, b)], batch_size=batch_size))
        bar.update(b - a)
    bar.close()
    return np.concatenate(out)


def run(args: argparse.Namespace) -> int:
    from finetec.api import Predictor
    from finetec.data.readers import open_with_options, parse_option_args
    from finetec.data.readers._common import layout_fallback
    from finetec.errors import FinetecError

    if args.top_k < 1:
        raise FinetecError(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        raise FinetecError(f"--batch-size must be at least 1, got {args.batch_size}")
    from finetec.zoo import checkpoint_from_args

    if args.model is not None and args.checkpoint is not None:   # --model NAME: every positional is an INPUT
        args.inputs, args.checkpoint = [args.checkpoint, *args.inputs], None
    ckpt = checkpoint_from_args(args.checkpoint, args.model)
    pred = Predictor.from_checkpoint(ckpt, device=args.device, backend=args.backend, precision=args.precision)
    if pred.is_completion:
        raise FinetecError("this checkpoint is a completion model and does not classify; use finetec complete", ckpt)
    # read and check every input before printing anything
    datasets = []
    options = parse_option_args(args.option)
    for spec in args.inputs:
        with layout_fallback(pred.layout):   # a file that names no layout: the model's
            ds = open_with_options(spec, args.format, options)
        if args.split is not None:
            ds = ds.subset(args.split)
        if args.ids:
            ds = ds.subset([ds.index_of(i) for i in args.ids])
        if len(ds) == 0:
            raise FinetecError("no clips to classify", spec)
        ds = ds.to_layout(pred.layout)   # another skeleton (COCO-17, ...): through its joint map
        pred.check_dataset(ds)
        datasets.append((spec, ds))
    several = len(datasets) > 1
    out = sys.stdout
    total = correct = labelled = 0
    for spec, ds in datasets:
        probs = _probabilities(pred, ds, args.batch_size, f"predict {spec}" if several else "predict")
        tops = pred.top_k(probs, args.top_k)
        for i, top in enumerate(tops):
            label = _label_name(ds, int(ds.label[i]))
            total += 1
            if label is not None:
                labelled += 1
                correct += int(top[0][0] == label)
            if args.json:
                rec = {"id": str(ds.ids[i]), "top_k": [{"class": c, "prob": round(p, 6)} for c, p in top]}
                if label is not None:
                    rec["label"] = label
                if several:
                    rec["input"] = str(spec)
                out.write(json.dumps(rec) + "\n")
            else:
                name = f"{spec}:{ds.ids[i]}" if several else str(ds.ids[i])
                classes = "  ".join(f"{c} {p:.3f}" for c, p in top)
                tail = f"  [label: {label}]" if label is not None else ""
                out.write(f"{name}  {classes}{tail}\n")
        out.flush()
    if not args.json and labelled:
        print(f"# {total} clips, top-1 agrees with the label on {correct}/{labelled} "
              f"({100.0 * correct / labelled:.1f} %)", file=sys.stderr)
    return 0
