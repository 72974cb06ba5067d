"""Benchmark: FineTec's inference cost against its backbone alone, at the same input shape, on CPU.

Builds FineTec (completion + decomposition + physics + attention fusion + backbone, untrained
weights: cost does not depend on them) and the same backbone alone (positions only), and reports
parameters (trainable and frozen) and the median wall time of an eval-mode forward pass over
``--repeats`` runs after ``--warmup`` runs. Also the cost of each ablation (one module removed).

Target: FineTec inference time <= 3x the backbone's.

Usage (from the project root)::

    python benchmarks/bench_finetec_cost.py --layout coco17 --coords 2 --batch 16 --persons 1 \\
        --clip-len 64 --backbone stgcnpp_small --threads 1 --md runs/bench_finetec_cost.md
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

# A completion module of the configs' size (configs/completion_t64_*.yaml).
COMPLETION = {"width": 64, "depth": 4, "merge_at": 2, "expansion": 2, "bank_size": 256}


def params(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, frozen) parameter counts."""
    t = sum(p.numel() for p in model.parameters() if p.requires_grad)
    f = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return t, f


def time_forward(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, warmup: int, repeats: int) -> float:
    """Median seconds of one eval-mode forward pass."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            model(x, mask)
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    from finetec.layouts import get_layout
    from finetec.models.registry import create_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layout", default="coco17")
    ap.add_argument("--coords", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--persons", type=int, default=1)
    ap.add_argument("--clip-len", type=int, default=64)
    ap.add_argument("--backbone", default="stgcnpp_small")
    ap.add_argument("--classes", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--drop", type=float, default=0.5, help="fraction of frames missing in the input")
    ap.add_argument("--json", default=None)
    ap.add_argument("--md", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    lay = get_layout(args.layout)
    N, M, T, V, C = args.batch, args.persons, args.clip_len, lay.num_joints, args.coords
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, M, T, V, C, generator=g)
    keep = torch.rand(N, M, T, 1, generator=g) >= args.drop
    mask = keep.expand(N, M, T, V).clone()
    x = torch.where(mask[..., None], x, torch.zeros_like(x))

    torch.manual_seed(0)
    common = dict(num_classes=args.classes, layout=lay, in_channels=C)
    backbone = create_model(args.backbone, **common)
    variants = {
        "backbone alone": backbone,
        "FineTec (full)": dict(),
        "FineTec w/o completion (linear fill)": dict(use_completion=False),
        "FineTec w/o decomposition": dict(use_decomposition=False),
        "FineTec w/o physics": dict(use_physics=False),
        "FineTec, MLP fusion": dict(fusion="mlp"),
    }
    rows = []
    for name, v in variants.items():
        if isinstance(v, dict):
            comp = create_model("completion", num_classes=1, layout=lay, in_channels=C, clip_len=T, **COMPLETION)
            v = create_model("finetec", **common, clip_len=T, backbone=args.backbone, completion_config=comp.config,
                             **v)
        sec = time_forward(v, x, mask, args.warmup, args.repeats)
        tr, fr = params(v)
        rows.append({"model": name, "seconds": sec, "trainable_params": tr, "frozen_params": fr})
        print(f"{name:38s} {sec * 1000:9.1f} ms/batch  trainable {tr / 1e6:.3f} M  frozen {fr / 1e6:.3f} M",
              flush=True)
    base = rows[0]["seconds"]
    for r in rows:
        r["time_ratio"] = r["seconds"] / base
    shape = f"(N={N}, M={M}, T={T}, V={V}, C={C}), layout {args.layout}, {int(args.drop * 100)}% frames missing"
    meta = {"machine": f"{platform.machine()} CPU, {args.threads} thread(s), torch {torch.__version__}",
            "shape": shape, "backbone": args.backbone,
            "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])])}
    ratio = rows[1]["time_ratio"]
    lines = [f"# FineTec inference cost vs {args.backbone} alone", "",
             f"Input {shape}; {meta['machine']}; median of {args.repeats} eval forward passes after {args.warmup} "
             f"warm-up; command: `{meta['command']}`.", "",
             "| model | ms / batch | x backbone | trainable params | frozen params |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['seconds'] * 1000:.1f} | {r['time_ratio']:.2f} | "
                     f"{r['trainable_params'] / 1e6:.3f} M | {r['frozen_params'] / 1e6:.3f} M |")
    lines += ["", f"Target FineTec / backbone time <= 3x: {ratio:.2f}x ({'met' if ratio <= 3 else 'NOT met'})."]
    text = "\n".join(lines) + "\n"
    print(text)
    from finetec.fileio import write_text_atomic

    if args.md:
        write_text_atomic(args.md, text)
    if args.json:
        write_text_atomic(args.json, json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
