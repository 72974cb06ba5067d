"""Benchmark: FineTec's completion module (stage 1) against the classical gap fillers.

For each dataset: train the completion module with the engine (``configs/completion_t64_<name>.yaml``,
epochs capped by ``--epochs`` for a modest CPU budget), then measure on the test split, at every
corruption level (random pattern, the fixed test corruption of seed 0), MPJPE, N-MPJPE and MPJVE
on the missing entries (missing after corruption, observed in the clean clip; normalised
coordinates) for the five fillers (zero, copy_lr, copy_rl, linear, cubic) and for the trained
completion module. Every method sees the identical corrupted clips: all go through
``finetec.engine.evaluate.evaluate_completion`` with the checkpoint's own test pipeline.

Targets: completion MPJPE at severe <= 0.7 x linear; completion better than both copies at every level.

Usage (from the project root)::

    python benchmarks/bench_completion.py --datasets penn-action nw-ucla --epochs 8 \\
        --out runs/bench_completion --md docs/results_completion.md

Writes ``<out>/results.json`` and a Markdown table (``--md``, default ``<out>/results.md``).
Reuses a finished training run in ``<out>/<dataset>`` unless ``--retrain``; ``--report-only``
rewrites the Markdown from ``<out>/results.json`` without running anything.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("minor", "moderate", "severe")


class FillerModel(nn.Module):
    """A classical gap filler behind the completion model's interface: ``{"completed": ...}``."""

    def __init__(self, method: str):
        super().__init__()
        self.method = method
        self.anchor = nn.Parameter(torch.zeros(()), requires_grad=False)  # gives the module a device

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        from finetec.data.fillers import fill

        xs, ms = x.detach().cpu().numpy(), mask.cpu().numpy().astype(bool)
        out = np.stack([fill(k, m, self.method) for k, m in zip(xs, ms)])
        return {"completed": torch.as_tensor(out, dtype=x.dtype)}


def train_completion(name: str, out: Path, epochs: int, retrain: bool, threads: int) -> Path:
    from finetec.engine.config import load_config
    from finetec.engine.train import train

    run = out / name
    if (run / "best" / "checkpoint.json").exists() and not retrain:
        print(f"[{name}] reusing {run}", flush=True)
        return run
    cfg = load_config(ROOT / "configs" / f"completion_t64_{name}.yaml",
                      [f"optim.epochs={epochs}", f"runtime.threads={threads}", "runtime.device=cpu"])
    t0 = time.time()
    res = train(cfg, run)
    print(f"[{name}] trained {res['epochs']} epochs in {time.time() - t0:.0f}s, best val_mpjpe "
          f"{res['best_metric']:.4f} at epoch {res['best_epoch']}", flush=True)
    return run


def measure(name: str, run: Path, max_clips: int | None) -> dict:
    from finetec.data import open_dataset
    from finetec.data.fillers import FILLERS
    from finetec.engine.checkpoint import load_model
    from finetec.engine.evaluate import evaluate_completion

    model, info = load_model(run)
    dcfg = info["config"]["data"]
    ds = open_dataset(dcfg["path"], fmt=dcfg.get("format"))
    split = dcfg["test_split"]
    if max_clips:
        idx = ds.split_indices(split)
        keep = idx[np.linspace(0, len(idx) - 1, min(max_clips, len(idx))).round().astype(np.int64)]
        ds = ds.subset(np.unique(keep))
        split = None
    methods: dict[str, nn.Module] = {m: FillerModel(m) for m in FILLERS}
    methods["completion"] = model
    rows = {}
    for level in LEVELS:
        for m, net in methods.items():
            t0 = time.time()
            kw = {"split": "all"} if split is None else {"split": split}
            r = evaluate_completion(net, info, ds, level, "random", seed=0, device="cpu", batch_size=64, **kw)
            rows[f"{level}/{m}"] = {k: r[k] for k in ("mpjpe", "n_mpjpe", "mpjve", "num_missing", "by_gap")}
            print(f"[{name}] {level:8s} {m:10s} MPJPE {r['mpjpe']:.4f} N-MPJPE {r['n_mpjpe']:.4f} "
                  f"MPJVE {r['mpjve']:.4f} ({r['num_missing']} entries, {time.time() - t0:.1f}s)", flush=True)
    return {"rows": rows, "checkpoint": str(run), "epochs": info.get("epoch"),
            "trained_epochs": (info.get("config") or {}).get("optim", {}).get("epochs"),
            "best_val_mpjpe": (info.get("metrics") or {}).get("val_mpjpe"), "num_test_clips":
            int(len(ds.split_indices(split)) if split else len(ds))}


def markdown(results: dict, meta: dict) -> str:
    from finetec.data.fillers import FILLERS

    lines = ["# Completion module vs gap fillers (missing entries only, normalised coordinates)", "",
             f"Machine: {meta['machine']}; torch {meta['torch']}; command: `{meta['command']}`.",
             "Test corruption: random pattern, seed 0 (identical for every method). Lower is better.", ""]
    for name, res in results.items():
        trained = f"trained {res['trained_epochs']} epochs, best checkpoint at epoch {res['epochs']}" \
            if res.get("trained_epochs") else f"best checkpoint at epoch {res['epochs']}"
        lines += [f"## {name} ({res['num_test_clips']} test clips; completion {trained}, "
                  f"checkpoint `{res['checkpoint']}`)", "",
                  "| level | method | MPJPE | N-MPJPE | MPJVE | vs linear (MPJPE) |", "|---|---|---|---|---|---|"]
        for level in LEVELS:
            lin = res["rows"][f"{level}/linear"]["mpjpe"]
            for m in (*FILLERS, "completion"):
                r = res["rows"][f"{level}/{m}"]
                b = "**" if m == "completion" else ""
                lines.append(f"| {level} | {b}{m}{b} | {r['mpjpe']:.4f} | {r['n_mpjpe']:.4f} | {r['mpjve']:.4f} | "
                             f"{r['mpjpe'] / lin:.2f}x |")
        lines += _by_gap_table(res["rows"], "severe")
        sev = res["rows"]
        ratio = sev["severe/completion"]["mpjpe"] / sev["severe/linear"]["mpjpe"]
        beats = all(sev[f"{lv}/completion"]["mpjpe"] < min(sev[f"{lv}/copy_lr"]["mpjpe"], sev[f"{lv}/copy_rl"]["mpjpe"])
                    for lv in LEVELS)
        lines += ["", f"Targets: severe completion / linear MPJPE = {ratio:.2f} (target <= 0.70: "
                      f"{'met' if ratio <= 0.7 else 'NOT met'}); better than both copies at every level: "
                      f"{'yes' if beats else 'NO'}.", ""]
    return "\n".join(lines) + "\n"


def _config_epochs(run: Path) -> int | None:
    """optim.epochs of a training run's config.yaml (None if unreadable)."""
    import yaml

    try:
        return int(yaml.safe_load((run / "config.yaml").read_text())["optim"]["epochs"])
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def _by_gap_table(rows: dict, level: str) -> list[str]:
    """MPJPE per gap-length group at ``level`` (where a model can gain over interpolation)."""
    from finetec.metrics.restoration import GAP_GROUP_NAMES as groups

    some = rows[f"{level}/linear"].get("by_gap")
    if not some:
        return []
    lines = ["", f"MPJPE by length of the gap (run of missing frames) at {level}; 'edge' = gaps at the start or "
                 "end of the clip (extrapolation). Share = fraction of the missing entries.", "",
             "| method | " + " | ".join(f"{g} ({some[g]['share']:.0%})" for g in groups) + " |",
             "|---|" + "---|" * len(groups)]
    for m in ("linear", "cubic", "completion"):
        bg = rows[f"{level}/{m}"]["by_gap"]
        lines.append(f"| {m} | " + " | ".join(f"{bg[g]['mpjpe']:.4f}" for g in groups) + " |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["penn-action", "nw-ucla"])
    ap.add_argument("--epochs", type=int, default=8, help="training epochs per dataset (CPU budget)")
    ap.add_argument("--out", default="runs/bench_completion")
    ap.add_argument("--md", default=None, help="Markdown output (default <out>/results.md)")
    ap.add_argument("--max-clips", type=int, default=None, help="evaluate on this many test clips (evenly spaced)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="rewrite the Markdown from <out>/results.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    md = Path(args.md) if args.md else out / "results.md"
    if args.report_only:
        from finetec.fileio import write_text_atomic

        try:
            saved = json.loads((out / "results.json").read_text())
        except (OSError, ValueError) as e:
            print(f"error: {out / 'results.json'}: cannot read the results ({e})", file=sys.stderr)
            return 2
        for name, res in saved["results"].items():  # older files lack the trained epochs: read the run's config
            if not res.get("trained_epochs"):
                res["trained_epochs"] = _config_epochs(Path(res["checkpoint"]))
        write_text_atomic(md, markdown(saved["results"], saved["meta"]))
        print(f"wrote {md}")
        return 0
    results = {}
    for name in args.datasets:
        run = train_completion(name, out, args.epochs, args.retrain, args.threads)
        results[name] = measure(name, run, args.max_clips)
    meta = {"machine": f"{platform.machine()} {platform.processor() or ''} CPU, {args.threads} thread(s)".strip(),
            "torch": torch.__version__, "command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])])}
    out.mkdir(parents=True, exist_ok=True)
    from finetec.fileio import write_text_atomic

    write_text_atomic(out / "results.json", json.dumps({"meta": meta, "results": results}, indent=1) + "\n")
    write_text_atomic(md, markdown(results, meta))
    print(f"wrote {out / 'results.json'} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
