"""Throughput, peak memory and achieved GFLOP/s of the GCN backbones.

Two settings:

* ``reference``: the PYSKL reference batch N=16, M=2, T=100, V=25 (ntu25), C=3, 60 classes, at the
  published default width (``stgcn``, ``stgcnpp``, ``ctrgcn``);
* ``small``: the recommended CPU variant (``*_small`` presets: base width 32, 7 blocks) at
  N=32, M=1, T=64, V=20 (kinect_v1), C=3, 27 classes.

Each (model, setting, mode) runs in its own subprocess so that the peak memory is its own: on CPU
the increase of the process's maximum resident set size (``getrusage``) over the value after the
model and the batch were built; on CUDA ``torch.cuda.max_memory_allocated``. ``infer`` times
``model(x, mask)`` under ``torch.no_grad`` in eval mode; ``train`` times forward, cross
entropy, backward and an SGD step. FLOPs come from ``torch.utils.flop_counter.FlopCounterMode``
(convolutions, matmuls and einsums; element-wise ops, BN and pooling are not counted) on one
iteration; achieved GFLOP/s = FLOPs per iteration / seconds per iteration.

Usage::

    python benchmarks/bench_backbones.py                       # all models, both settings, CPU
    python benchmarks/bench_backbones.py --iters 3 --out docs/bench_backbones.md
    python benchmarks/bench_backbones.py --models stgcnpp --settings small --device cuda
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone

from finetec.benchmark.machine import cpu_name, peak_rss_mib

SETTINGS = {
    "reference": dict(N=16, M=2, T=100, layout="ntu25", C=3, K=60, suffix=""),
    "small": dict(N=32, M=1, T=64, layout="kinect_v1", C=3, K=27, suffix="_small"),
}
MODELS = ("stgcn", "stgcnpp", "ctrgcn")
MODES = ("infer", "train")






def measure(model_name: str, setting: str, mode: str, iters: int, warmup: int, device: str) -> dict:
    """Run one measurement in this process and return its numbers."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from finetec.models.layers import count_parameters
    from finetec.models.registry import create_model

    s = SETTINGS[setting]
    name = model_name + s["suffix"]
    dev = torch.device(device)
    g = torch.Generator().manual_seed(0)
    model = create_model(name, num_classes=s["K"], layout=s["layout"], in_channels=s["C"]).to(dev)
    V = model.num_joints
    x = torch.randn(s["N"], s["M"], s["T"], V, s["C"], generator=g).to(dev)
    mask = torch.ones(s["N"], s["M"], s["T"], V, dtype=torch.bool, device=dev)
    y = torch.randint(0, s["K"], (s["N"],), generator=g).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step() -> None:
        if mode == "infer":
            with torch.no_grad():   # (FlopCounterMode's module tracker fails under inference_mode)
                model(x, mask)
        else:
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x, mask), y)
            loss.backward()
            opt.step()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    model.train(mode == "train")
    load_before = os.getloadavg()[0]
    sync()
    base_rss = peak_rss_mib()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base_cuda = torch.cuda.memory_allocated(dev)
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    sec = (time.perf_counter() - t0) / iters
    if dev.type == "cuda":
        peak_mib = (torch.cuda.max_memory_allocated(dev) - base_cuda) / 2**20
    else:
        peak_mib = peak_rss_mib() - base_rss
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    return {
        "model": name, "setting": setting, "mode": mode, "device": device,
        "shape": [s["N"], s["M"], s["T"], V, s["C"]], "params": count_parameters(model),
        "sec_per_iter": sec, "samples_per_s": s["N"] / sec, "gflop_per_iter": flops / 1e9,
        "gflops_achieved": flops / 1e9 / sec, "peak_mib": peak_mib, "threads": torch.get_num_threads(),
        "iters": iters, "load_avg_1min": [load_before, os.getloadavg()[0]],
    }


def run_subprocess(model: str, setting: str, mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", model, setting, mode,
           "--iters", str(args.iters), "--warmup", str(args.warmup), "--device", args.device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{model}/{setting}/{mode} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[dict], header: str) -> str:
    by_key: dict[tuple[str, str], dict[str, dict]] = {}
    for r in rows:
        by_key.setdefault((r["setting"], r["model"]), {})[r["mode"]] = r
    lines = [header, "",
             "| model | setting | input (N,M,T,V,C) | params | GFLOP/iter fwd | infer samples/s | infer GFLOP/s "
             "| infer peak MiB | GFLOP/iter train | train samples/s | train GFLOP/s | train peak MiB |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (setting, model), modes in by_key.items():
        i, t = modes.get("infer"), modes.get("train")
        any_r = i or t
        cells = [model, setting, "(" + ",".join(map(str, any_r["shape"])) + ")", f"{any_r['params'] / 1e6:.3f} M"]
        for r in (i, t):
            if r is None:
                cells += ["-"] * 4
            else:
                cells += [f"{r['gflop_per_iter']:.1f}", f"{r['samples_per_s']:.1f}", f"{r['gflops_achieved']:.1f}",
                          f"{r['peak_mib']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated: stgcn,stgcnpp,ctrgcn")
    p.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated: reference,small")
    p.add_argument("--modes", default=",".join(MODES), help="comma-separated: infer,train")
    p.add_argument("--iters", type=int, default=3, help="timed iterations per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", help="also write the Markdown table (and a .json of the raw numbers) here")
    p.add_argument("--worker", nargs=3, metavar=("MODEL", "SETTING", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(*args.worker, iters=args.iters, warmup=args.warmup, device=args.device)))
        return 0

    models = [m for m in args.models.split(",") if m]
    settings = [s for s in args.settings.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in models if m not in MODELS] + [s for s in settings if s not in SETTINGS] + \
          [m for m in modes if m not in MODES]
    if bad:
        p.error(f"unknown model/setting/mode: {', '.join(bad)}")
    rows = []
    for setting in settings:
        for model in models:
            for mode in modes:
                r = run_subprocess(model, setting, mode, args)
                print(f"{r['model']:>14} {setting:>9} {mode:>5}: {r['samples_per_s']:8.1f} samples/s "
                      f"{r['gflops_achieved']:7.1f} GFLOP/s peak {r['peak_mib']:7.0f} MiB", file=sys.stderr)
                rows.append(r)
    import torch

    dev = args.device if args.device != "cuda" else f"cuda ({torch.cuda.get_device_name(0)})"
    header = (f"Backbone benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: device {dev}, CPU {cpu_name()} "
              f"({os.cpu_count()} logical cores, {rows[0]['threads'] if rows else '?'} torch threads), "
              f"torch {torch.__version__}, {args.iters} timed iterations after {args.warmup} warm-up. "
              f"Peak memory: {'max-RSS increase' if args.device == 'cpu' else 'max CUDA allocation increase'} "
              f"over the built model and batch.")
    loads = [v for r in rows for v in r["load_avg_1min"]]
    if loads:
        header += f" 1-minute load average during the runs: {min(loads):.1f}-{max(loads):.1f}"
        header += (" (above the core count: the machine was shared, timings are pessimistic)."
                   if max(loads) > (os.cpu_count() or 1) else ".")
    md = table(rows, header)
    print(md)
    if args.out:
        from finetec.fileio import write_text_atomic

        write_text_atomic(args.out, md)
        write_text_atomic(os.path.splitext(args.out)[0] + ".json", json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
