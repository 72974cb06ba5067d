"""``finetec eval``: accuracy of a checkpoint on fixed corrupted test sets."""
from __future__ import annotations

import argparse
import json
import os

HELP = "evaluate a checkpoint: top-1/top-5/mean-class accuracy per corruption level, score files"
DESCRIPTION = """Evaluate a trained checkpoint on a test split, corrupted by the fixed protocol
(test corruption is a pure function of seed, clip id, level and pattern, so every method sees
the same corrupted clips). With --level all, one row per level (clean, minor, moderate, severe).
For a completion checkpoint, the restoration errors (MPJPE, N-MPJPE, MPJVE on missing entries)
are reported instead."""


# More temporal clips per sample than this is a typo, not an evaluation (each costs a forward pass).
MAX_CLIPS = 100

def add_arguments(p: argparse.ArgumentParser) -> None:
    from finetec.zoo import add_model_option

    p.add_argument("checkpoint", nargs="?",
                   help="checkpoint folder (or its model.safetensors, or a run folder: its best/); omit with --model")
    add_model_option(p)
    p.add_argument("--data", help="dataset to evaluate on (default: the training config's data.path)")
    p.add_argument("--split", help="split name (default: the config's data.test_split; 'all' = every clip)")
    p.add_argument("--level", default="clean", help="clean, minor, moderate, severe, or all (default: clean)")
    p.add_argument("--pattern", default="random", help="random, periodic, prefix, suffix, middle (default: random)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fixed corrupted test set (default: 0)")
    p.add_argument("--clips", type=int, default=1, help="temporal clips per sample, logits averaged (default: 1)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                   help="forward pass precision: bf16 autocast (on a CPU only with native bf16) or fp32; "
                        "auto = bf16 on CUDA, fp32 on a CPU (default: auto)")
    p.add_argument("--save-scores", metavar="FILE",
                   help="write scores (.npz: scores, label, id, class_names); with --level all one file per "
                        "level, named FILE with _<level> before the suffix")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _score_path(path: str, level: str, many: bool) -> str:
    if not many:
        return path
    p = path[:-4] if path.endswith(".npz") else path
    return f"{p}_{level}.npz"


def run(args: argparse.Namespace) -> int:
    from finetec.console import shown_path
    from finetec.data.corruption import LEVELS
    from finetec.engine.checkpoint import load_model
    from finetec.engine.device import resolve_device, resolve_precision
    from finetec.engine.evaluate import evaluate, evaluate_completion, open_eval_data, save_scores
    from finetec.errors import FinetecError
    from finetec.zoo import checkpoint_from_args
    from finetec.zoo import get as get_model

    if args.device not in ("auto", "cpu", "cuda"):
        raise FinetecError(f"--device must be auto, cpu or cuda, got {args.device!r}", "--device")
    if args.level != "all" and args.level not in LEVELS:
        raise FinetecError(f"unknown level {args.level!r}; valid: {', '.join(LEVELS)}, all", "--level")
    if not 1 <= args.clips <= MAX_CLIPS:
        raise FinetecError(f"--clips must be between 1 and {MAX_CLIPS} (temporal clips per sample), got "
                           f"{args.clips}", "--clips")
    if args.batch_size < 1:
        raise FinetecError("--batch-size must be >= 1", "--batch-size")
    ckpt = checkpoint_from_args(args.checkpoint, args.model)
    if args.model is not None and args.data is None:
        m = get_model(args.model)
        raise FinetecError(f"a pretrained model needs --data: the {m.dataset} dataset (its card's numbers come from "
                           f"`{m.evaluation.get('command', '')}`)", "--data")
    device = resolve_device(args.device, 0)
    precision = resolve_precision(args.precision, device, "--precision")
    model, info = load_model(ckpt, device=str(device))
    if args.model is not None:
        args.checkpoint = args.model   # shown and recorded by name
    ds, data_name = open_eval_data(info, args.data)
    if isinstance(info.get("layout"), dict):   # another skeleton: through its joint map
        ds = ds.to_layout(info.layout)
    # score files record the data resolved (comparable from any folder); what is shown, as typed
    data_key = os.path.abspath(data_name) if os.path.exists(data_name) else data_name
    data_name = shown_path(data_name)
    levels = list(LEVELS) if args.level == "all" else [args.level]
    completion = info.is_completion
    results = []
    for level in levels:
        if completion:
            r = evaluate_completion(model, info, ds, level, args.pattern, seed=args.seed, split=args.split,
                                    batch_size=args.batch_size, device=device, precision=precision)
        else:
            r = evaluate(model, info, ds, level, args.pattern, seed=args.seed, split=args.split, clips=args.clips,
                         batch_size=args.batch_size, device=device, precision=precision, progress=True)
            if args.save_scores:
                save_scores(_score_path(args.save_scores, level, len(levels) > 1), r, info.class_names,
                            extra={"level": level, "pattern": args.pattern, "seed": args.seed,
                                   "checkpoint": str(args.checkpoint), "data": data_key, "split": r["split"],
                                   "clips_per_sample": args.clips})
        results.append(r)
    split = results[0]["split"]
    if completion:
        rows = [{k: r[k] for k in ("level", "pattern", "mpjpe", "n_mpjpe", "mpjve", "num_missing", "by_gap")} for r in results]
    else:
        rows = [{"level": r["level"], "pattern": r["pattern"], "num_clips": r["num_clips"], "top1": r["top1"],
                 "top5": r["top5"], "mean_class": r["mean_class"], "confusion": r["confusion"]} for r in results]
    if args.json:
        print(json.dumps({"checkpoint": str(args.checkpoint), "data": data_name, "split": split,
                          "precision": precision, "class_names": list(info.class_names), "results": rows}))
        return 0
    n = len(ds.split_indices(split))
    print(f"checkpoint {args.checkpoint} | data {data_name} | split {split} ({n} clips) | test seed {args.seed}"
          + (" | precision bf16" if precision == "bf16" else ""))
    if completion:
        print(f"{'level':<10} {'pattern':<9} {'MPJPE':>9} {'N-MPJPE':>9} {'MPJVE':>9}")
        for r in rows:
            print(f"{r['level']:<10} {r['pattern']:<9} {r['mpjpe']:9.4f} {r['n_mpjpe']:9.4f} {r['mpjve']:9.4f}")
        return 0
    print(f"{'level':<10} {'pattern':<9} {'clips':>5} {'top-1':>7} {'top-5':>7} {'mean-class acc':>15}")
    for r in rows:
        print(f"{r['level']:<10} {r['pattern']:<9} {r['num_clips']:>5} {r['top1']:7.4f} {r['top5']:7.4f} "
              f"{r['mean_class']:15.4f}")
    return 0
