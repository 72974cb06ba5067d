"""Hostile inputs, counted: a fresh set of hostile files, pickles, checkpoints, stream lines and
command lines run through the ``finetec`` command line; prints how many gave an internal error,
a traceback, a hang, a crash, a partial or leftover output file, executed code, or allocated
beyond the documented cap (docs/formats.md, "Bounded reading").

    python benchmarks/hostile_inputs.py --seed 2026 --per-format 120

Each input runs in a worker process (``finetec.cli.main`` in-process, stderr captured, a time
limit per input); a worker that crashes (a segfault in a library) is counted and replaced.
The generators are those of the fuzz suite (``tests/fuzzlib.py``) with a seed of your choice,
so the set differs from the one CI runs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import random
import re
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

TEMP = re.compile(r"\.tmp\d+-")


def problem_lines(text: str) -> list[str]:
    """The lines of stderr other than notes and warnings (an error must be exactly one)."""
    return [ln for ln in text.strip().splitlines() if ": note: " not in ln and ": warning: " not in ln]


def run_one(case: dict, marker: Path) -> dict:
    """Run one command in this process; what happened."""
    import fuzzlib
    from finetec.cli import main

    out = Path(case["out"])
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    err = io.StringIO()
    stdin = sys.stdin
    sys.stdin = io.StringIO(case.get("stdin", ""))
    tracemalloc.start()
    t0 = time.time()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), fuzzlib.time_limit(60):
            rc = main(case["argv"])
        hang = False
    except SystemExit as e:
        rc, hang = e.code, False
    except fuzzlib.Hang:
        rc, hang = None, True
    except BaseException as e:  # noqa: BLE001 - an escaped exception is a traceback for the user
        rc, hang = "exception", False
        err.write(f"Traceback (escaped): {type(e).__name__}: {e}\n")
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        sys.stdin = stdin
    text = err.getvalue()
    left = [p.name for p in out.rglob("*") if TEMP.search(p.name)]
    partial = rc != 0 and any(out.iterdir())
    size = case.get("size", 0)
    return {
        "kind": case["kind"], "rc": rc, "hang": hang, "seconds": round(time.time() - t0, 2),
        "internal": "internal error" in text, "traceback": "Traceback" in text,
        "multi_line": rc == 2 and "usage:" not in text and len(problem_lines(text)) != 1,
        "leftover": bool(left), "partial": partial, "code_ran": marker.exists(),
        "over_cap": peak > fuzzlib.MEMORY_FACTOR * size + fuzzlib.MEMORY_SLACK if size else False,
        "ratio": round(peak / size, 2) if size else None, "peak": peak, "size": size,
        "argv": case["argv"][:3], "err": text[:300],
    }


def worker(cases, marker, results):
    os.environ.pop("FINETEC_DEBUG", None)
    import torch

    torch.set_num_threads(1)
    for i, case in cases:
        results.put((i, run_one(case, marker)))


def build_cases(root: Path, seed: int, per_format: int) -> list[dict]:
    import pickle

    import fuzzlib
    import numpy as np
    import torch

    from finetec.engine.checkpoint import RECORD, save_checkpoint
    from finetec.layouts import get_layout
    from finetec.models.registry import create_model

    r = random.Random(seed)
    seeds = {f: fuzzlib.write_seed(f, root / "seeds" / f) for f in fuzzlib.FORMATS}
    out = root / "out"
    cases = []
    n = 0

    def new(src: Path) -> Path:
        nonlocal n
        n += 1
        dst = root / "in" / str(n) / src.name
        dst.parent.mkdir(parents=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
        return dst

    for fmt, src in seeds.items():  # hostile files of every format, converted
        for _ in range(per_format):
            dst = new(src)
            fuzzlib.mutate(fmt, dst, r)
            target = r.choice(["x.finetec.npz", "x.finetec.npz", "x.finetec", "x.pkl"])
            cases.append({"kind": f"file:{fmt}", "argv": ["convert", str(dst), str(out / target)],
                          "out": str(out), "size": fuzzlib.input_size(dst)})
    marker = root / "CODE_RAN"
    for name, data in fuzzlib.hostile_pickles(r):  # code execution and allocation attempts
        p = root / "in" / f"p{len(cases)}.pkl"
        p.write_bytes(data.replace(b"X\x05\x00\x00\x00touch", b"X" + len(f"touch {marker}").to_bytes(4, "little")
                                   + f"touch {marker}".encode()))
        cases.append({"kind": "pickle:hostile", "argv": ["inspect", str(p)], "out": str(out), "size": p.stat().st_size})
    base = pickle.dumps({"annotations": [{"keypoint": np.zeros((1, 4, 17, 2), np.float32), "label": 0,
                                          "frame_dir": "a", "total_frames": 4}]}, protocol=4)
    for _ in range(per_format):
        p = root / "in" / f"p{len(cases)}.pkl"
        p.write_bytes(fuzzlib.mutate_bytes(base, r))
        cases.append({"kind": "pickle:mutated", "argv": ["inspect", str(p)], "out": str(out),
                      "size": p.stat().st_size})
    torch.manual_seed(0)
    model = create_model("stgcn", num_classes=3, layout="coco17", in_channels=2, base_channels=4, num_stages=1,
                         inflate_stages=[], down_stages=[])
    ck = save_checkpoint(root / "ck", model, {
        "class_names": ["a", "b", "c"], "layout": get_layout("coco17").to_dict(), "clip_len": 16, "epoch": 1,
        "dims": {"num_persons": 1, "num_joints": 17, "coords": 2, "in_channels": 2}, "task": "classification"})
    clips = seeds["finetec"]
    for _ in range(per_format):  # hostile checkpoints, used by predict
        dst = new(ck)
        if r.random() < 0.5:
            (dst / RECORD).unlink()
        f = dst / r.choice(["checkpoint.json", "checkpoint.json", "model.safetensors"])
        if f.suffix == ".json" and r.random() < 0.8:
            f.write_text(fuzzlib.mutate_json(f.read_text(), r))
        else:
            f.write_bytes(fuzzlib.mutate_bytes(f.read_bytes(), r))
        cases.append({"kind": "checkpoint", "argv": ["predict", str(dst), str(clips)], "out": str(out)})
    good = json.dumps([[0.5, 0.5]] * 17)
    for _ in range(max(1, per_format // 4)):  # hostile stream lines
        lines = []
        for _ in range(40):
            k = r.random()
            lines.append(good if k < 0.5 else fuzzlib.mutate_json(good, r) if k < 0.8
                         else "[" * r.choice([100, 5000]) if k < 0.9 else "x" * r.choice([10, 2_000_000]))
        cases.append({"kind": "stream", "argv": ["stream", str(ck), "--window", "8", "--every", "4"],
                      "out": str(out), "stdin": "\n".join(lines) + "\n"})
    tokens = ["--split", "nope", "--format", "ntu", "-o", "layout=nope", "-o", "=", "--level", "severe", "--seed",
              "-1", "1e400", "--top-k", "0", "--clips", "100000000", "--json", "--method", "cubic", "--window",
              "-3", "--every", "0", "--opset", "1", "--overwrite", "", "--device", "cuda:99", "--id", "zz"]
    inputs = [c["argv"][1] for c in cases if c["kind"].startswith("file:")][:200] + [str(root / "missing"), "/dev/null"]
    commands = {"inspect": ["I"], "convert": ["I", "O.finetec.npz"], "corrupt": ["I", "O.finetec.npz"],
                "predict": ["C", "I"], "complete": ["C", "I", "O.npz"], "eval": ["C", "I"], "info": [],
                "render": ["I", "O.png"], "export": ["C", "O.onnx"]}
    cks = [str(ck)] + [c["argv"][1] for c in cases if c["kind"] == "checkpoint"][:20]
    for _ in range(per_format):  # hostile command lines
        cmd = r.choice(sorted(commands))
        argv = [cmd]
        for a in commands[cmd]:
            argv.append(r.choice(inputs) if a == "I" else r.choice(cks) if a == "C" else str(out / ("x" + a[1:])))
        argv += r.sample(tokens, r.choice([0, 1, 2, 3]))
        cases.append({"kind": "command line", "argv": argv, "out": str(out)})
    for c in cases:
        c["out"] = str(root / "outs" / str(id(c)))
        c["argv"] = [str(Path(c["out"]) / Path(a).name) if a.startswith(str(out)) else a for a in c["argv"]]
    return cases, marker


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--per-format", type=int, default=120, help="hostile inputs per file format and per other kind")
    ap.add_argument("--json", metavar="FILE", help="write every result as JSON lines")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = Path(tempfile.mkdtemp(prefix="finetec-hostile-"))
    t0 = time.time()
    cases, marker = build_cases(root, args.seed, args.per_format)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    done: dict[int, dict] = {}
    todo = list(enumerate(cases))
    crashes = 0
    while todo:
        proc = ctx.Process(target=worker, args=(todo, marker, results))
        proc.start()
        while proc.is_alive() or not results.empty():
            try:
                i, res = results.get(timeout=1)
                done[i] = res
            except Exception:  # noqa: BLE001 - queue.Empty
                continue
        proc.join()
        todo = [(i, c) for i, c in todo if i not in done]
        if todo:  # the worker died on todo[0]: count it as a crash, go on after it
            i, c = todo.pop(0)
            crashes += 1
            done[i] = {"kind": c["kind"], "crash": True, "argv": c["argv"][:3]}
    rows = [done[i] for i in sorted(done)]
    kinds = sorted({r["kind"] for r in rows})
    keys = ["internal", "traceback", "hang", "multi_line", "partial", "leftover", "code_ran", "over_cap"]
    print(f"{len(rows)} hostile inputs (seed {args.seed}) in {time.time() - t0:.0f} s; crashed workers: {crashes}")
    print("kind".ljust(20) + "n".rjust(5) + "".join(k.rjust(11) for k in keys) + "   exit codes")
    for k in kinds + ["all"]:
        sel = [r for r in rows if k == "all" or r["kind"] == k]
        codes: dict = {}
        for r in sel:
            codes[str(r.get("rc"))] = codes.get(str(r.get("rc")), 0) + 1
        print(k.ljust(20) + str(len(sel)).rjust(5) + "".join(str(sum(bool(r.get(x)) for r in sel)).rjust(11)
                                                       for x in keys) + "   " + json.dumps(codes))
    sized = [r for r in rows if r.get("size")]
    if sized:
        big = [r["ratio"] for r in sized if r["size"] >= 1024]
        print(f"peak traced memory while reading: at most {max(r['peak'] for r in sized) / 2**20:.1f} MiB "
              f"(inputs of {min(r['size'] for r in sized)}-{max(r['size'] for r in sized)} bytes); "
              f"peak / size for inputs of at least 1 KiB: median {sorted(big)[len(big) // 2]:.1f}, max {max(big):.1f} "
              f"(cap {__import__('fuzzlib').MEMORY_FACTOR} x size + 32 MiB)")
    bad = [r for r in rows if r.get("crash") or any(r.get(x) for x in keys)]
    for r in bad[:10]:
        print("PROBLEM", json.dumps(r)[:400])
    if args.json:
        Path(args.json).write_text("".join(json.dumps(r) + "\n" for r in rows))
    shutil.rmtree(root, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
