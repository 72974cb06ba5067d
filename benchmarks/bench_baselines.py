"""Baseline recognition benchmark: ST-GCN++ and CTR-GCN (CPU configs, linear gap filling) on
NW-UCLA cross-view and UTD-MHAD cross-subject, trained and tested at the same corruption level.

Each cell trains ``configs/<model>_j_t32_<dataset>_<level>.yaml`` into
``runs/bench_baselines/<config name>/`` (checkpoint chosen on the validation split carved from
the training split), then evaluates ``best/`` on the test split at that level (fixed corrupted
test set, seed 0) and reports top-1 and mean-class accuracy, the wall time, the seed and the
machine. A finished cell (``result.json`` present) is not re-run, an interrupted one resumes.

    python benchmarks/bench_baselines.py                                # every cell
    python benchmarks/bench_baselines.py --models stgcnpp --datasets nw-ucla --levels clean severe
    python benchmarks/bench_baselines.py --set optim.epochs=10 --out docs/baselines.md

Needs ../shared/data (the cells of a missing dataset are skipped with a message).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from finetec.benchmark.machine import machine_description

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("stgcnpp", "ctrgcn")
DATASETS = ("nw-ucla", "utd-mhad")
LEVELS = ("clean", "severe")




def run_cell(model: str, dataset: str, level: str, overrides: list[str], out_root: Path, threads: int) -> dict | None:
    import torch

    from finetec.engine.checkpoint import load_model
    from finetec.engine.config import load_config
    from finetec.engine.evaluate import evaluate
    from finetec.engine.train import train

    name = f"{model}_j_t32_{dataset}_{level}"
    cfg_path = ROOT / "configs" / f"{name}.yaml"
    cfg = load_config(cfg_path, [*overrides, f"runtime.threads={threads}"] if threads else overrides)
    if not cfg.data.path.startswith("synthetic") and not Path(cfg.data.path).exists():
        print(f"skip {name}: data not found at {cfg.data.path}", file=sys.stderr)
        return None
    out = out_root / name
    result_file = out / "result.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    t0 = time.time()
    resume = (out / "last" / "train_state.pt").exists()
    summary = train(cfg, out, resume=resume)
    train_s = time.time() - t0
    model_obj, info = load_model(out / "best")
    t1 = time.time()
    res = evaluate(model_obj, info, level=level, pattern=cfg.pipeline.pattern, seed=0, split=cfg.data.test_split)
    row = {"config": name, "model": model, "dataset": dataset, "level": level, "filler": cfg.pipeline.filler,
           "top1": res["top1"], "mean_class": res["mean_class"], "top5": res["top5"],
           "best_epoch": summary["best_epoch"], "epochs": cfg.optim.epochs, "val_top1": summary["best_metric"],
           "train_s": round(train_s, 1), "eval_s": round(time.time() - t1, 1), "seed": cfg.seed,
           "resumed": resume, "threads": torch.get_num_threads(), "overrides": overrides, "machine": machine_description("cuda" if torch.cuda.is_available() else "cpu")}
    result_file.write_text(json.dumps(row, indent=1))
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | dataset | level | filler | top-1 | mean-class | best epoch / epochs | val top-1 | train time | seed |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dataset']} | {r['level']} | {r['filler']} | {r['top1']:.4f} | "
                     f"{r['mean_class']:.4f} | {r['best_epoch']} / {r['epochs']} | {r['val_top1']:.4f} | "
                     f"{r['train_s'] / 60:.1f} min | {r['seed']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--levels", nargs="+", default=list(LEVELS))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every cell (e.g. optim.epochs=10)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--runs", default=str(ROOT / "runs" / "bench_baselines"), help="folder for the runs")
    ap.add_argument("--out", help="also write the Markdown table (and a .json beside it) here")
    args = ap.parse_args(argv)
    rows = []
    for m in args.models:
        for d in args.datasets:
            for lv in args.levels:
                row = run_cell(m, d, lv, args.overrides, Path(args.runs), args.threads)
                if row is not None:
                    rows.append(row)
                    print(f"done {row['config']}: top1 {row['top1']:.4f} mean-class {row['mean_class']:.4f} "
                          f"({row['train_s'] / 60:.1f} min)", file=sys.stderr, flush=True)
    text = table(rows)
    if rows:
        text += f"\n\nMachine: {rows[0]['machine']}. Test at the training level, pattern random, test seed 0.\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        Path(args.out).with_suffix(".json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
