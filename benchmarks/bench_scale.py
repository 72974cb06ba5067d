"""Scale benchmark: a generated dataset at NTU-120 scale in the memory-mapped ``.finetec`` folder.

    nice -n 10 .venv/bin/python benchmarks/bench_scale.py --dir /tmp/finetec_scale --json scale.json

Generated data (``--clips`` 114,480 by default: NTU-120's count; 2 persons, 25 joints, 3D, 50-300
frames, about 10 % of joints missing) is written and read back in separate processes, so every
phase's time and memory are its own:

1. ``convert``: the generated clips go through :class:`finetec.data.store.DatasetWriter`, the
   streaming writer behind ``finetec convert ... NAME.finetec`` (generation included in the
   time; no source file is parsed). Peak memory of the process.
2. ``ntu``: ``finetec convert`` of ``--ntu-files`` generated NTU ``.skeleton`` text files with
   ``-o workers=2`` (the real parsing path), clips/s and peak memory of the whole process tree.
3. ``open``: ``open_dataset`` of the folder in a fresh process: time and resident memory.
4. ``random``: ``ds[i]`` for random ``i`` on one core, clips/s.
5. ``verify``: :func:`finetec.data.store.verify` (``finetec inspect --verify``): time and peak
   memory.
6. ``epoch``: one epoch of loading only (no model): a torch DataLoader with 2 workers over
   every clip in the training order (:class:`~finetec.engine.distributed.ShardedBatches`,
   batches of 64), each clip read, padded to 2 persons and sampled to 64 frames at segment
   centres (the pipeline's first step, without its per-clip random generator);
   clips/s and the peak memory of the process tree (the sum of the processes' PSS, so pages
   shared between the workers count once). The same epoch through the full training
   :class:`~finetec.data.pipeline.ClipPipeline` (normalisation, features) is reported for
   comparison over ``--pipeline-clips`` clips.

The page cache is warm (the data was just written; it fits in this machine's RAM). Targets (of
the issue): open <= 1 s and <= 200 MB; random access >= 5,000 clips/s; epoch >= 2,000 clips/s with
peak <= 2 GiB; conversion peak <= 4 GiB. Nothing is kept unless ``--keep``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

V, C, M = 25, 3, 2


# -- memory measurement -----------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class PeakMemory:
    """Samples the summed PSS of a process and its descendants every ``interval`` s."""

    def __init__(self, pid: int | None = None, interval: float = 0.2):
        self.pid, self.interval, self.peak_kb = pid or os.getpid(), interval, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _tree(self.pid)))
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _tree(self.pid)))

    @property
    def peak_mb(self) -> float:
        return self.peak_kb / 1024


# -- generated clips ----------------------------------------------------------------------------
class ClipMaker:
    """Generated clips: a random pose per person plus small motion, ~10 % of joints missing.
    Motion and missing joints are slices of fixed random banks, so that generating costs little
    next to writing."""

    def __init__(self, frames: tuple[int, int], classes: int, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.frames, self.classes = frames, classes
        self.motion = 0.01 * self.rng.random((M, 2 * frames[1], V, C), dtype=np.float32)
        self.missing = self.rng.random((M, 2 * frames[1], V), dtype=np.float32) < 0.1

    def __call__(self, i: int):
        from finetec.data.sample import Sample

        rng = self.rng
        T = int(rng.integers(self.frames[0], self.frames[1] + 1))
        m = int(rng.integers(1, M + 1))
        a = int(rng.integers(0, self.frames[1]))
        kp = rng.standard_normal((m, 1, V, C), dtype=np.float32) + self.motion[:m, a:a + T]
        mask = ~self.missing[:m, a:a + T]
        kp[~mask] = 0
        k = self.classes
        name = f"S{1 + i % 32:03d}C{1 + i % 3:03d}P{1 + i % 106:03d}R{1 + i % 2:03d}A{1 + i % k:03d}_{i:06d}"
        return Sample(keypoint=kp, mask=mask, label=i % k, id=name, num_classes=k)


def phase_convert(a: argparse.Namespace) -> dict:
    from finetec.data.store import DatasetWriter

    classes = 120
    make = ClipMaker((a.min_frames, a.max_frames), classes)
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        with DatasetWriter(a.path, "ntu25", [f"A{k + 1}" for k in range(classes)], max_persons=M, dim=C,
                           overwrite=True) as w:
            for i in range(a.clips):
                w.add(make(i))
            n = len(w)
            w.close(splits={"train": np.arange(0, n, 2), "test": np.arange(1, n, 2)},
                    meta={"dataset": "generated NTU-120-scale"})
    dt = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in Path(a.path).iterdir())
    import resource

    return {"clips": n, "seconds": round(dt, 1), "clips_per_s": round(n / dt),
            "bytes": size, "peak_pss_mb": round(mem.peak_mb), "max_rss_mb":
            round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _skeleton_text(rng: np.random.Generator, T: int, bodies: int) -> str:
    lines = [str(T)]
    for _ in range(T):
        lines.append(str(bodies))
        for b in range(bodies):
            lines.append(f"{72057594037930000 + b} 0 1 1 1 1 0 0.1 0.2 2")
            lines.append("25")
            vals = rng.standard_normal((25, 12)).round(5)
            lines.extend(" ".join(map(str, row)) for row in vals.tolist())
    return "\n".join(lines) + "\n"


def phase_ntu(a: argparse.Namespace) -> dict:
    src = Path(a.path).with_suffix(".ntu")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(a.ntu_files):
        T = int(rng.integers(a.min_frames, a.max_frames + 1))
        name = f"S{1 + i % 32:03d}C{1 + i % 3:03d}P{1 + i % 106:03d}R{1 + (i // 3) % 2:03d}A{1 + i % 120:03d}"
        if (src / f"{name}.skeleton").exists():
            name = name[:-3] + f"{1 + (i + 7) % 120:03d}"
        (src / f"{name}.skeleton").write_text(_skeleton_text(rng, T, int(rng.integers(1, M + 1))))
    files = len(list(src.glob("*.skeleton")))
    text_bytes = sum(p.stat().st_size for p in src.glob("*.skeleton"))
    out = Path(a.path).with_suffix(".ntu.finetec")
    exe = Path(sys.executable).with_name("finetec")
    cmd = [str(exe), "convert", str(src), str(out), "--overwrite", "-o", f"workers={a.workers}"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with PeakMemory(proc.pid) as mem:
        _, err = proc.communicate()
    dt = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"finetec convert failed: {err}")
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    return {"files": files, "text_mb": round(text_bytes / 2**20), "workers": a.workers, "seconds": round(dt, 1),
            "clips_per_s": round(files / dt, 1), "peak_pss_mb": round(mem.peak_mb)}


def phase_open(a: argparse.Namespace) -> dict:
    import finetec.data  # noqa: F401 - imports are not part of the open time
    import finetec.data.store  # noqa: F401

    from finetec.data import open_dataset

    before = rss_mb()
    t0 = time.perf_counter()
    ds = open_dataset(a.path)
    dt = time.perf_counter() - t0
    after = rss_mb()
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), a.random_reads)
    for i in idx[:100]:
        ds[int(i)]
    t1 = time.perf_counter()
    frames = 0
    for i in idx:
        frames += ds[int(i)].num_frames
    dr = time.perf_counter() - t1
    return {"clips": len(ds), "open_seconds": round(dt, 4), "rss_after_open_mb": round(after, 1),
            "rss_before_open_mb": round(before, 1), "random_reads": len(idx),
            "random_clips_per_s": round(len(idx) / dr), "rss_after_reads_mb": round(rss_mb(), 1)}


class LoadOnly:
    """Item i: clip ``ds[i]``, persons padded to M and sampled to ``clip_len`` frames (at segment
    centres; the training pipeline's random offsets, normalisation and features are measured
    separately)."""

    def __init__(self, ds, clip_len: int):
        self.ds, self.clip_len = ds, clip_len

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        from finetec.data.pipeline import select_persons
        from finetec.data.transforms import uniform_indices

        s = self.ds[int(i)]
        kp, mk = select_persons(s.keypoint, s.mask, self.ds.max_persons)
        idx = uniform_indices(kp.shape[1], self.clip_len)  # segment centres (no per-clip generator)
        return kp[:, idx], mk[:, idx], -1 if s.label is None else s.label


def _stack(batch):
    import torch

    kp, mk, lab = zip(*batch)
    return torch.from_numpy(np.stack(kp)), torch.from_numpy(np.stack(mk)), torch.tensor(lab)


def phase_epoch(a: argparse.Namespace) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from finetec.data import open_dataset
    from finetec.data.pipeline import ClipPipeline, PipelineConfig, PipelineDataset
    from finetec.engine.distributed import ShardedBatches
    from finetec.engine.evaluate import make_loader

    torch.set_num_threads(1)
    ds = open_dataset(a.path)
    out = {"workers": a.workers, "batch_size": 64, "clip_len": 64}
    sampler = ShardedBatches(len(ds), 64, seed=0, shuffle=True)
    loader = DataLoader(LoadOnly(ds, 64), batch_sampler=sampler, num_workers=a.workers, collate_fn=_stack)
    n = 0
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        for kp, mk, lab in loader:
            n += len(lab)
    dt = time.perf_counter() - t0
    out.update({"clips": n, "seconds": round(dt, 1), "clips_per_s": round(n / dt), "peak_pss_mb": round(mem.peak_mb)})
    sub = np.random.default_rng(0).permutation(len(ds))[:a.pipeline_clips]
    pipe = ClipPipeline(ds.layout, PipelineConfig(clip_len=64, level="moderate"), train=True)
    sampler = ShardedBatches(len(sub), 64, seed=0, shuffle=True)
    loader = make_loader(PipelineDataset(ds, sub, pipe), 64, a.workers, batch_sampler=sampler)
    n = 0
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        for batch in loader:
            n += len(batch["label"])
    dt = time.perf_counter() - t0
    out["pipeline"] = {"clips": n, "seconds": round(dt, 1), "clips_per_s": round(n / dt),
                       "peak_pss_mb": round(mem.peak_mb)}
    return out


def phase_verify(a: argparse.Namespace) -> dict:
    from finetec.data.dataset import open_store
    from finetec.data.store import verify

    t0 = time.perf_counter()
    with PeakMemory() as mem:
        out = verify(open_store(a.path))
    dt = time.perf_counter() - t0
    return {"seconds": round(dt, 1), "gib_per_s": round(out["bytes"] / 2**30 / dt, 2),
            "peak_pss_mb": round(mem.peak_mb)}


PHASES = {"convert": phase_convert, "ntu": phase_ntu, "open": phase_open, "epoch": phase_epoch,
          "verify": phase_verify}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/finetec_scale", help="where the generated data goes (deleted after)")
    ap.add_argument("--clips", type=int, default=114480)
    ap.add_argument("--min-frames", type=int, default=50)
    ap.add_argument("--max-frames", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ntu-files", type=int, default=500)
    ap.add_argument("--random-reads", type=int, default=20000)
    ap.add_argument("--pipeline-clips", type=int, default=6400)
    ap.add_argument("--phases", default="convert,ntu,open,epoch,verify")
    ap.add_argument("--json", default=None, help="also write the results here")
    ap.add_argument("--note", default="shared with other jobs", help="what else ran on the machine")
    ap.add_argument("--md", default=None, help="also write the results as a Markdown page here")
    ap.add_argument("--keep", action="store_true", help="keep the generated dataset")
    ap.add_argument("--phase", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--path", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.phase:
        print(json.dumps(PHASES[a.phase](a)))
        return
    base = Path(a.dir)
    base.mkdir(parents=True, exist_ok=True)
    path = base / "scale.finetec"
    results: dict = {"clips": a.clips, "frames": [a.min_frames, a.max_frames], "persons": M, "joints": V,
                     "dims": C, "cpus": os.cpu_count(), "machine_note": a.note,
                     "load_average_before": round(os.getloadavg()[0], 2)}
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        for ph in a.phases.split(","):
            cmd = [sys.executable, __file__, "--phase", ph, "--path", str(path)] + [
                f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items()
                if k in ("clips", "min_frames", "max_frames", "workers", "ntu_files", "random_reads",
                         "pipeline_clips")]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if proc.returncode:
                raise SystemExit(f"phase {ph} failed:\n{proc.stderr[-3000:]}")
            results[ph] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"{ph} ({time.perf_counter() - t0:.0f} s): {json.dumps(results[ph])}", flush=True)
    finally:
        if not a.keep:
            shutil.rmtree(path, ignore_errors=True)
            if not any(base.iterdir()):
                base.rmdir()
    results["load_average_after"] = round(os.getloadavg()[0], 2)
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1) + "\n")
    if a.md:
        Path(a.md).write_text(markdown(results, " ".join(["benchmarks/bench_scale.py", *sys.argv[1:]])))


def markdown(r: dict, command: str) -> str:
    """The results as a Markdown page (what docs/results_scale.md holds)."""
    def ok(value: float, limit: float, higher: bool) -> str:
        return "met" if (value >= limit if higher else value <= limit) else "NOT met"

    rows = []
    c, o, e, n = r.get("convert"), r.get("open"), r.get("epoch"), r.get("ntu")
    if c:
        rows.append(("conversion (streaming writer, generated clips)",
                     f"{c['clips']:,} clips, {c['bytes'] / 2**30:.2f} GiB in {c['seconds']} s "
                     f"({c['clips_per_s']:,} clips/s), peak {c['peak_pss_mb']:,} MB",
                     f"peak <= 4 GiB: {ok(c['peak_pss_mb'], 4096, False)}"))
    if n:
        rows.append((f"`finetec convert` of NTU .skeleton text, workers={n['workers']}",
                     f"{n['files']} files ({n['text_mb']} MB) in {n['seconds']} s ({n['clips_per_s']} clips/s), "
                     f"peak {n['peak_pss_mb']} MB (all processes)", ""))
    if o:
        rows.append(("open", f"{o['open_seconds']} s, resident memory {o['rss_after_open_mb']} MB after open "
                             f"({o['rss_before_open_mb']} MB before)",
                     f"<= 1 s and <= 200 MB: {ok(o['open_seconds'], 1, False) if o['rss_after_open_mb'] <= 200 else 'NOT met'}"))
        rows.append(("random access, one core", f"{o['random_clips_per_s']:,} clips/s over {o['random_reads']:,} "
                                                 f"reads (resident memory after: {o['rss_after_reads_mb']} MB)",
                     f">= 5,000 clips/s: {ok(o['random_clips_per_s'], 5000, True)}"))
    if e:
        rows.append((f"loading epoch, {e['workers']} DataLoader workers (read, sample to {e['clip_len']} frames)",
                     f"{e['clips']:,} clips in {e['seconds']} s ({e['clips_per_s']:,} clips/s), "
                     f"peak {e['peak_pss_mb']:,} MB (all processes)",
                     f">= 2,000 clips/s: {ok(e['clips_per_s'], 2000, True)}; peak <= 2 GiB: "
                     f"{ok(e['peak_pss_mb'], 2048, False)}"))
        p = e["pipeline"]
        rows.append((f"same with the full training pipeline (normalisation, corruption, features)",
                     f"{p['clips']:,} clips in {p['seconds']} s ({p['clips_per_s']:,} clips/s), "
                     f"peak {p['peak_pss_mb']:,} MB", "(for comparison; no target)"))
    v = r.get("verify")
    if v:
        rows.append(("`finetec inspect --verify` (checksums of every part, then every clip's content)",
                     f"{v['seconds']} s ({v['gib_per_s']} GiB/s), peak {v['peak_pss_mb']:,} MB", "(no target)"))
    lines = [
        "# Scale benchmark: an NTU-120-scale dataset in a memory-mapped `.finetec` folder",
        "",
        f"Generated by `{command}` (nice'd) on a machine with {r['cpus']} CPU cores "
        f"({r['machine_note']}; 1-minute load average {r['load_average_before']} at the start, "
        f"{r['load_average_after']} at the end); page cache warm. Do not edit by hand.",
        "",
        f"Data: {r['clips']:,} generated clips, up to {r['persons']} persons, {r['joints']} joints, "
        f"{r['dims']}D, {r['frames'][0]}-{r['frames'][1]} frames. Memory is the peak of the summed "
        "proportional set size (PSS) of the process tree, sampled every 0.2 s; open memory is the "
        "process's resident set size.",
        "",
        "| measurement | result | target |",
        "|---|---|---|",
        *[f"| {a} | {b} | {t} |" for a, b, t in rows],
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
