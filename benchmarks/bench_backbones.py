"""Throughput of the GCN backbones against their plain formulation, in one process.

For each model, the current units (:mod:`finetec.models.layers`) and the plain formulation they
replaced (``tests/reference_gcn.py``: one module per branch, the graph einsum, CTRGC on every frame,
out-of-place operations, BatchNorm as a separate op; the reference implementations' structure)
get the same weights and the same batch, and are timed **alternately** in the same process, round
after round, so that a machine shared with other jobs slows both alike:

* ``infer``: eval-mode forward under ``torch.no_grad``; the current model with its BatchNorms
  folded (``model.fuse()``, what the inference paths use);
* ``train``: forward, cross entropy, backward, SGD step (the current model unfolded).

A square fp32 matrix product is timed in every round too (the matmul peak of this process, now);
the achieved share of it = forward FLOPs (``torch.utils.flop_counter`` on the plain formulation:
convolutions, matmuls, einsums) / forward seconds / peak. Peak training memory: the increase of
the maximum resident set size over the built model and batch during one training step, each
formulation in its own subprocess. Numbers are medians over the rounds; the ratio column is the
median (min-max) of the per-round ratios.

Options that are measured, not defaults: ``--allocator`` (keep freed memory for reuse, see
:mod:`finetec.cpu`; applies to both formulations), ``--compile`` (``torch.compile`` of the current
model; compile time reported), ``--precision bf16`` (bf16 autocast, as ``runtime.precision: bf16``;
only with native bf16; max |logit difference| to fp32 reported; ``--bf16`` is the same).

Usage (the reference shape of the issue: N=16, M=2, T=100, V=25, C=3, 60 classes, 1 thread)::

    python benchmarks/bench_backbones.py --models stgcnpp,ctrgcn --rounds 3
    python benchmarks/bench_backbones.py --setting small --allocator
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the plain formulation

SETTINGS = {
    "reference": dict(N=16, M=2, T=100, layout="ntu25", C=3, K=60, suffix=""),
    "small": dict(N=32, M=1, T=64, layout="kinect_v1", C=3, K=27, suffix="_small"),
    "stream": dict(N=1, M=1, T=64, layout="ntu25", C=3, K=60, suffix=""),
}
MODELS = ("stgcn", "stgcnpp", "ctrgcn")
IMPLS = ("plain", "current")


def build(model: str, setting: str, seed: int = 0):
    """(plain model, current model with the same weights, x, mask, labels)."""
    import torch

    from finetec.models.registry import create_model
    from reference_gcn import reference_model

    s = SETTINGS[setting]
    name = model + s["suffix"]
    kw = dict(num_classes=s["K"], layout=s["layout"], in_channels=s["C"])
    torch.manual_seed(seed)
    plain = reference_model(name, **kw)
    current = create_model(name, **kw)
    current.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(s["N"], s["M"], s["T"], current.num_joints, s["C"], generator=g)
    mask = torch.ones(x.shape[:4], dtype=torch.bool)
    y = torch.randint(0, s["K"], (s["N"],), generator=g)
    return plain, current, x, mask, y


def matmul_peak(n: int = 1024, reps: int = 3) -> float:
    """GFLOP/s of the fastest of ``reps`` fp32 (n x n) @ (n x n) products."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def forward_flops(model, x, mask) -> float:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, mask)
    return float(counter.get_total_flops())


def steps(model, x, mask, y, mode: str, autocast: bool = False):
    """A callable running one step of ``mode`` on ``model``; ``autocast``: the forward in bf16
    (``finetec.engine.device.autocast``, as training and evaluation with precision bf16)."""
    import torch

    from finetec.engine.device import autocast as precision_context

    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9) if mode == "train" else None
    precision = "bf16" if autocast else "fp32"

    def infer():
        with torch.no_grad(), precision_context("cpu", precision):
            return model(x, mask)

    def train():
        opt.zero_grad(set_to_none=True)
        with precision_context("cpu", precision):
            logits = model(x, mask)
        loss = torch.nn.functional.cross_entropy(logits.float(), y)
        loss.backward()
        opt.step()
    return infer if mode == "infer" else train


def timed(fn, iters: int) -> float:
    t = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t) / iters


def compare(model: str, setting: str, rounds: int, iters: int, modes: list[str], variant: dict) -> dict:
    """Alternated timings of the plain and current formulations of one model."""
    import torch

    plain, current, x, mask, y = build(model, setting)
    N = x.shape[0]
    flops = forward_flops(plain, x, mask)
    out: dict = {"model": model + SETTINGS[setting]["suffix"], "setting": setting,
                 "shape": list(x.shape), "gflop_fwd": flops / 1e9, "variant": variant}
    # the current model's inference path: BN folded (+ the measured variants)
    infer_model = build(model, setting)[1]
    infer_model.load_state_dict(plain.state_dict())
    infer_model.fuse()
    if variant.get("compile"):
        t0 = time.perf_counter()
        infer_model = torch.compile(infer_model)
        with torch.no_grad():
            infer_model(x, mask)
        out["compile_s_infer"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        current_c = torch.compile(current)
        steps(current_c.train(), x, mask, y, "train")()
        out["compile_s_train"] = time.perf_counter() - t0
        current = current_c
    bf16 = bool(variant.get("bf16"))
    if bf16:
        with torch.no_grad():
            ref32 = plain.eval()(x, mask)
            got = steps(infer_model, x, mask, y, "infer", autocast=True)()
        out["bf16_max_abs_logit_diff"] = float((got.float() - ref32).abs().max())
        out["fp32_max_abs_logit"] = float(ref32.abs().max())
        out["bf16_top1_agreement"] = float((got.argmax(1) == ref32.argmax(1)).float().mean())
    else:
        with torch.no_grad():
            out["max_abs_logit_diff"] = float((infer_model(x, mask) - plain.eval()(x, mask)).abs().max())
    fns = {}
    for mode in modes:
        plain.train(mode == "train")
        current.train(mode == "train")
        fns[("plain", mode)] = steps(plain, x, mask, y, mode)
        fns[("current", mode)] = steps(infer_model if mode == "infer" else current, x, mask, y, mode,
                                       autocast=bf16)
    for fn in fns.values():   # warm-up
        fn()
    sec: dict = {k: [] for k in fns}
    peaks = []
    for r in range(rounds):
        peaks.append(matmul_peak())
        for mode in modes:
            order = IMPLS if r % 2 == 0 else IMPLS[::-1]
            for impl in order:
                sec[(impl, mode)].append(timed(fns[(impl, mode)], iters))
        print(f"  {out['model']} round {r + 1}/{rounds}: " + ", ".join(
            f"{i}/{m} {N / sec[(i, m)][-1]:.2f}" for (i, m) in sec) + f" samples/s; matmul {peaks[-1]:.0f} GFLOP/s",
            file=sys.stderr, flush=True)
    out["matmul_peak_gflops"] = statistics.median(peaks)
    for (impl, mode), s in sec.items():
        out[f"{impl}_{mode}_samples_per_s"] = N / statistics.median(s)
        if mode == "infer":
            share = [flops / t / 1e9 / p for t, p in zip(s, peaks)]
            out[f"{impl}_infer_gflops"] = flops / statistics.median(s) / 1e9
            out[f"{impl}_infer_peak_share"] = statistics.median(share)
    for mode in modes:
        ratios = [a / b for a, b in zip(sec[("plain", mode)], sec[("current", mode)])]
        out[f"{mode}_speedup"] = [statistics.median(ratios), min(ratios), max(ratios)]
    return out


def peak_train_memory(model: str, setting: str, impl: str) -> float:
    """Max-RSS increase (MiB) of one training step, in a fresh subprocess."""
    cmd = [sys.executable, os.path.abspath(__file__), "--memory-worker", model, setting, impl]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory worker {model}/{impl} failed:\n{proc.stderr[-2000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def peak_rss_mib() -> float:
    """This process's peak resident memory (MiB): VmHWM, which starts afresh at exec (getrusage's
    maximum is inherited from the parent process across fork and exec on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    from finetec.benchmark.machine import peak_rss_mib as getrusage_peak

    return getrusage_peak()


def memory_worker(model: str, setting: str, impl: str) -> float:
    plain, current, x, mask, y = build(model, setting)
    net = (plain if impl == "plain" else current).train()
    base = peak_rss_mib()
    steps(net, x, mask, y, "train")()
    return peak_rss_mib() - base


def table(rows: list[dict], modes: list[str]) -> str:
    head = ["model", "input (N,M,T,V,C)", "GFLOP fwd"]
    if "infer" in modes:
        head += ["infer plain", "infer current", "infer speed-up", "share of matmul peak plain / current"]
    if "train" in modes:
        head += ["train plain", "train current", "train speed-up", "peak train MiB plain / current"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], "(" + ",".join(map(str, r["shape"])) + ")", f"{r['gflop_fwd']:.1f}"]
        for mode in modes:
            sp = r[f"{mode}_speedup"]
            cells += [f"{r[f'plain_{mode}_samples_per_s']:.2f}", f"{r[f'current_{mode}_samples_per_s']:.2f}",
                      f"{sp[0]:.2f}× ({sp[1]:.2f}-{sp[2]:.2f})"]
            if mode == "infer":
                cells.append(f"{100 * r['plain_infer_peak_share']:.0f} % / {100 * r['current_infer_peak_share']:.0f} %")
            else:
                mem = r.get("peak_train_mib")
                cells.append(f"{mem['plain']:.0f} / {mem['current']:.0f}" if mem else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def provenance(title: str, script: str, argv: list[str] | None, threads: int) -> str:
    """``TITLE, DATE UTC, `python benchmarks/SCRIPT ARGS`: commit C, CPU (n logical cores), k torch
    thread(s), torch V`` (the first words of a benchmark's report)."""
    import torch

    from finetec.benchmark.machine import cpu_name

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent, check=False).stdout.strip()
    except OSError:
        commit = ""
    return (f"{title}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
            f"`python benchmarks/{script} {' '.join(argv if argv is not None else sys.argv[1:])}`: "
            f"{'commit ' + commit + ', ' if commit else ''}{cpu_name()} ({os.cpu_count()} logical cores), "
            f"{threads} torch thread(s), torch {torch.__version__}")


def load_note(load0: float) -> str:
    """The 1-minute load average at the start (``load0``) and now, flagged above the core count."""
    load1 = os.getloadavg()[0]
    shared = " (above the core count: the machine was shared)" if max(load0, load1) > (os.cpu_count() or 1) else ""
    return f"1-minute load average {load0:.1f} -> {load1:.1f}{shared}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="stgcnpp,ctrgcn,stgcn", help="comma-separated: stgcn,stgcnpp,ctrgcn")
    p.add_argument("--setting", default="reference", choices=sorted(SETTINGS))
    p.add_argument("--modes", default="infer,train", help="comma-separated: infer,train")
    p.add_argument("--rounds", type=int, default=3, help="alternated rounds (medians reported)")
    p.add_argument("--iters", type=int, default=1, help="steps per timing")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--allocator", action="store_true", help="keep freed memory for reuse (finetec.cpu)")
    p.add_argument("--compile", action="store_true", help="torch.compile the current model")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                   help="precision of the current model: bf16 autocast (native bf16 only) or fp32 (default)")
    p.add_argument("--bf16", action="store_true", help="the same as --precision bf16")
    p.add_argument("--no-memory", action="store_true", help="skip the peak training memory subprocesses")
    p.add_argument("--out", help="also write the Markdown table (and a .json of the raw numbers) here")
    p.add_argument("--memory-worker", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    if args.allocator:
        from finetec.cpu import keep_freed_memory

        keep_freed_memory()
    if args.memory_worker:
        print(memory_worker(*args.memory_worker))
        return 0
    if args.bf16:
        args.precision = "bf16"
    if args.precision == "bf16":
        from finetec.engine.device import resolve_precision
        from finetec.errors import FinetecError

        try:
            resolve_precision("bf16", "cpu", "--precision")
        except FinetecError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    args.bf16 = args.precision == "bf16"
    models = [m for m in args.models.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in models if m not in MODELS] + [m for m in modes if m not in ("infer", "train")]
    if bad:
        p.error(f"unknown model/mode: {', '.join(bad)}")
    variant = {k: True for k in ("allocator", "compile", "bf16") if getattr(args, k)}
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    rows = []
    for model in models:
        r = compare(model, args.setting, args.rounds, args.iters, modes, variant)
        if "train" in modes and not args.no_memory:
            r["peak_train_mib"] = {impl: peak_train_memory(model, args.setting, impl) for impl in IMPLS}
        rows.append(r)
    peaks = ", ".join(f"{r['model']} {r['matmul_peak_gflops']:.0f}" for r in rows)
    header = (f"{provenance('Backbone benchmark', 'bench_backbones.py', argv, args.threads)}, "
              f"fp32{', ' + ', '.join(variant) if variant else ''}; {args.rounds} alternated rounds of {args.iters} "
              f"step(s); {time.perf_counter() - t0:.0f} s; {load_note(load0)}. "
              f"Samples/s (clips of N); matmul peak (median) "
              f"{peaks} GFLOP/s.")
    md = header + "\n\n" + table(rows, modes)
    extra = [f"{r['model']}: " + ", ".join(f"{k} {v:.3g}" for k, v in r.items()
                                            if k.startswith(("compile_s", "bf16_", "max_abs")))
             for r in rows]
    md += "\n" + "\n".join(f"* {e}" for e in extra) + "\n"
    print(md)
    if args.out:
        from finetec.fileio import write_text_atomic

        write_text_atomic(args.out, md)
        write_text_atomic(os.path.splitext(args.out)[0] + ".json", json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
