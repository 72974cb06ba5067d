"""Accuracy and time of the precision and compilation options on real data, in one process.

Two measurements, either or both:

* ``--config FILE``: the same recipe and seed trained once per variant (``fp32``, ``bf16`` =
  ``runtime.precision: bf16``, ``compile`` = fp32 with ``runtime.compile: true``; ``--variants``),
  one after the other, each into ``OUT/train_<variant>``; reported: the training wall time (whole
  run, and the sum of the epochs' times without setup), the compile time the run logged, the
  validation top-1 of the kept epoch, and the test top-1 of that checkpoint (evaluated in fp32, and
  in bf16 for the bf16 run).
* ``--model NAME_OR_CKPT --data PATH``: one trained model evaluated in fp32 and in bf16 at each
  ``--levels`` level: top-1 of both, the share of test clips whose predicted class is the same, the
  largest |logit difference|, and the evaluation time of both.

bf16 is not exact, and on datasets of a few hundred clips float-level differences alone move one
training run's top-1 by several points (docs/models.md): one pair of runs shows whether bf16 breaks
training, not a difference of a point or two.

Usage::

    python benchmarks/bench_precision.py --config configs/stgcnpp_j_t32_utd-mhad_clean.yaml \\
        --model utd-mhad-stgcnpp --data ../shared/data/utd_mhad --out runs/bench_precision.md
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

VARIANTS = {"fp32": ["runtime.precision=fp32"], "bf16": ["runtime.precision=bf16"],
            "compile": ["runtime.precision=fp32", "runtime.compile=true"]}


def train_variant(config: str, variant: str, out: Path, overrides: list[str], levels: list[str]) -> dict:
    from finetec.engine.checkpoint import load_model
    from finetec.engine.config import load_config
    from finetec.engine.evaluate import evaluate
    from finetec.engine.train import train

    cfg = load_config(config, [*overrides, *VARIANTS[variant], "runtime.tensorboard=off"])
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = train(cfg, out)
    wall = time.perf_counter() - t0
    row = {"variant": variant, "wall_s": wall, "epochs_s": sum(h["time"] for h in res["history"]),
           "epochs": res["epochs"], "best_epoch": res["best_epoch"], "val_top1": res["best_metric"],
           "load": [load0, os.getloadavg()[0]]}
    log = (out / "train.log").read_text()
    m = re.search(r"compiled the training step at step (\d+) in ([\d.]+) s", log)
    if m:
        row["compile_s"], row["compile_step"] = float(m.group(2)), int(m.group(1))
    model, info = load_model(out / "best")
    for level in levels:
        for precision in ("fp32", "bf16") if variant == "bf16" else ("fp32",):
            r = evaluate(model, info, level=level, device="cpu", precision=precision)
            row[f"test_top1_{level}_{precision}"] = float(r["top1"])
    return row


def eval_agreement(model_name: str, data: str, levels: list[str]) -> list[dict]:
    import numpy as np

    from finetec.engine.checkpoint import load_model
    from finetec.engine.evaluate import evaluate, open_eval_data
    from finetec.zoo import checkpoint_from_args

    path = model_name if os.path.exists(model_name) else checkpoint_from_args(None, model_name)
    model, info = load_model(path, device="cpu")
    ds, _ = open_eval_data(info, data)
    if isinstance(info.get("layout"), dict):
        ds = ds.to_layout(info.layout)
    rows = []
    for level in levels:
        out = {}
        for precision in ("fp32", "bf16"):
            t0 = time.perf_counter()
            out[precision] = evaluate(model, info, ds, level, device="cpu", precision=precision)
            out[precision + "_s"] = time.perf_counter() - t0
        a, b = out["fp32"]["scores"], out["bf16"]["scores"]
        rows.append({"level": level, "clips": int(len(a)), "top1_fp32": float(out["fp32"]["top1"]),
                     "top1_bf16": float(out["bf16"]["top1"]),
                     "same_prediction": float(np.mean(a.argmax(1) == b.argmax(1))),
                     "max_abs_logit_diff": float(np.abs(a - b).max()), "max_abs_logit": float(np.abs(a).max()),
                     "eval_s_fp32": out["fp32_s"], "eval_s_bf16": out["bf16_s"]})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="training config: trained once per variant")
    p.add_argument("--variants", default="fp32,bf16", help="comma-separated: fp32,bf16,compile (default fp32,bf16)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every variant (repeatable), e.g. optim.epochs=10")
    p.add_argument("--model", help="a trained model (zoo name or checkpoint folder) for the evaluation agreement")
    p.add_argument("--data", help="the data --model is evaluated on")
    p.add_argument("--levels", default="clean,minor,moderate,severe", help="comma-separated test levels")
    p.add_argument("--train-levels", default="clean", help="test levels of the trained checkpoints")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--work", default="runs/bench_precision", help="folder of the training runs")
    p.add_argument("--out", help="also write the Markdown report (and a .json of the raw numbers) here")
    args = p.parse_args(argv)
    if not args.config and not args.model:
        p.error("give --config, --model (with --data), or both")
    if args.model and not args.data:
        p.error("--model needs --data")
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s): {', '.join(bad)} (choose from {', '.join(VARIANTS)})")

    import torch

    from bench_backbones import load_note, provenance
    from finetec.engine.device import resolve_precision
    from finetec.errors import FinetecError

    torch.set_num_threads(args.threads)
    try:
        resolve_precision("bf16", "cpu", "--precision")
    except FinetecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    train_rows, eval_rows = [], []
    if args.config:
        overrides = [*args.overrides, f"runtime.threads={args.threads}", "runtime.device=cpu"]
        for v in variants:
            out = Path(args.work) / f"train_{v}"
            if out.exists():
                print(f"error: {out} exists (remove it or choose another --work)", file=sys.stderr)
                return 2
            train_rows.append(train_variant(args.config, v, out, overrides, args.train_levels.split(",")))
            print(f"  trained {v}: {json.dumps(train_rows[-1])}", file=sys.stderr, flush=True)
    if args.model:
        eval_rows = eval_agreement(args.model, args.data, args.levels.split(","))
    md = (f"{provenance('Precision benchmark', 'bench_precision.py', argv, args.threads)}; "
          f"{time.perf_counter() - t0:.0f} s; {load_note(load0)}.\n\n")
    if train_rows:
        levels = args.train_levels.split(",")
        head = ["variant", "training wall s", "epochs s", "compile s", "epochs", "kept epoch", "val top-1"]
        head += [f"test top-1 {lv}" for lv in levels] + [f"test top-1 {lv}, bf16 eval" for lv in levels]
        md += "| " + " | ".join(head) + " |\n|" + "---|" * len(head) + "\n"
        for r in train_rows:
            cells = [r["variant"], f"{r['wall_s']:.0f}", f"{r['epochs_s']:.0f}",
                     f"{r['compile_s']:.0f} (step {r['compile_step']})" if "compile_s" in r else "-",
                     str(r["epochs"]), str(r["best_epoch"]), f"{r['val_top1']:.4f}"]
            cells += [f"{r[f'test_top1_{lv}_fp32']:.4f}" for lv in levels]
            cells += [f"{r[f'test_top1_{lv}_bf16']:.4f}" if f"test_top1_{lv}_bf16" in r else "-" for lv in levels]
            md += "| " + " | ".join(cells) + " |\n"
        md += "\n"
    if eval_rows:
        md += f"`{args.model}` on `{args.data}`, evaluated in fp32 and in bf16:\n\n"
        md += ("| level | clips | top-1 fp32 | top-1 bf16 | same prediction | max abs logit diff (max abs logit) "
               "| eval s fp32 / bf16 |\n|---|---|---|---|---|---|---|\n")
        for r in eval_rows:
            md += (f"| {r['level']} | {r['clips']} | {r['top1_fp32']:.4f} | {r['top1_bf16']:.4f} | "
                   f"{100 * r['same_prediction']:.1f} % | {r['max_abs_logit_diff']:.3g} ({r['max_abs_logit']:.3g}) | "
                   f"{r['eval_s_fp32']:.1f} / {r['eval_s_bf16']:.1f} |\n")
    print(md)
    if args.out:
        from finetec.fileio import write_text_atomic

        write_text_atomic(args.out, md)
        write_text_atomic(os.path.splitext(args.out)[0] + ".json",
                          json.dumps({"train": train_rows, "eval": eval_rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
