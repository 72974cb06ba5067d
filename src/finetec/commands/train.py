"""``finetec train``: train a model from a YAML config."""
from __future__ import annotations

import argparse
import json

HELP = "train a recognition or completion model from a YAML config (CPU, GPU, or DDP under torchrun)"
DESCRIPTION = """Train a model as described by a YAML config (see docs/training.md).
Writes OUT/config.yaml, OUT/train.log, OUT/metrics.jsonl, OUT/best/ (best validation epoch) and
OUT/last/ (latest epoch + train_state.pt for --resume). Under torchrun (RANK/WORLD_SIZE set) the
run is distributed: optim.batch_size is the global batch, only rank 0 writes."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.05 (repeatable; values are YAML)")
    p.add_argument("--out", help="output folder (default: runs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last/ checkpoint")
    p.add_argument("--stop-after", type=int, metavar="EPOCHS",
                   help="stop after this many epochs as if interrupted (continue later with --resume)")
    p.add_argument("--json", action="store_true", help="print the run summary as one JSON object")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from finetec.engine.config import load_config
    from finetec.engine.train import train
    from finetec.errors import FinetecError

    cfg = load_config(args.config, args.overrides)
    if args.stop_after is not None and args.stop_after < 1:
        raise FinetecError("--stop-after must be >= 1", "--stop-after")
    out = Path(args.out) if args.out else Path("runs") / cfg.name
    res = train(cfg, out, resume=args.resume, stop_after=args.stop_after)
    import os

    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "history"}))
    else:
        metric = res["metric"]
        best = res["best_metric"]
        shown = "n/a (no validation set)" if best is None else f"{best:.4f}"
        print(f"trained {res['epochs']} epoch(s) into {res['out_dir']}; best {metric} {shown} "
              f"at epoch {res['best_epoch']} (checkpoint {Path(res['out_dir']) / 'best'})")
    return 0
