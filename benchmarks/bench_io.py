"""Data I/O speed: reading the real datasets, writing and loading the canonical file, and loading
a synthetic canonical file at NTU-60 scale.

Measurements (seconds, each in a fresh subprocess so that memory is its own):

Wall-clock and CPU (process) time are both given: on a shared machine the CPU time is the
steadier figure.

* ``read``: a reader on a real dataset folder (``../shared/data``), files already in the OS page
  cache (one untimed warm-up read first); NW-UCLA is timed with both JSON backends (``orjson``
  when installed, and the standard library);
* ``save``: ``SkeletonDataset.save`` of the result (an uncompressed ``.npz``, atomic write);
* ``load``: ``SkeletonDataset.load`` of that file, and the peak resident memory of the loading
  process;
* NTU-60 scale: 56,880 clips of 50..150 frames (mean 100), M=2, V=25, C=3, random values written
  directly as ``SkeletonDataset`` arrays; ``load`` time and peak memory, and the time to get one
  clip (``ds[i]``, mean over 2,000 random clips).

Usage::

    python benchmarks/bench_io.py                          # everything, prints a Markdown table
    python benchmarks/bench_io.py --out docs/bench_io.md   # also writes the table
    python benchmarks/bench_io.py --ntu-clips 5000         # a smaller synthetic file
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from finetec.benchmark.machine import cpu_name, peak_rss_mib

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINETEC_SHARED_DATA", ROOT / ".." / "shared" / "data")).resolve()
REAL = ("nw_ucla", "penn_action", "utd_mhad")






# -- measurements, each run in its own process ----------------------------------------------
def m_read(name: str, out: str, stdlib_json: bool) -> dict:
    from finetec.data.readers import read_dataset
    from finetec.data.readers import nw_ucla

    if stdlib_json:
        nw_ucla.json_loader = lambda: (json.loads, ValueError)  # type: ignore[assignment]
    read_dataset(SHARED / name)                                  # warm the page cache
    t0, c0 = time.perf_counter(), time.process_time()
    ds = read_dataset(SHARED / name)
    t_read, c_read = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    ds.save(out)
    t_save = time.perf_counter() - t0
    return {"clips": len(ds), "frames": int(ds.lengths.sum()), "read_s": t_read, "read_cpu_s": c_read,
            "save_s": t_save,
            "bytes": os.path.getsize(out)}


def m_load(path: str, probes: int) -> dict:
    import numpy as np

    from finetec.data.dataset import SkeletonDataset

    base = peak_rss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    ds = SkeletonDataset.load(path)
    t_load, c_load = time.perf_counter() - t0, time.process_time() - c0
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(ds), size=probes)
    t0 = time.perf_counter()
    for i in idx:
        ds[int(i)]
    t_get = (time.perf_counter() - t0) / max(probes, 1)
    return {"clips": len(ds), "load_s": t_load, "load_cpu_s": c_load, "peak_mib": peak_rss_mib() - base, "getitem_us": t_get * 1e6,
            "bytes": os.path.getsize(path)}


def m_make_ntu(path: str, clips: int) -> dict:
    """Write a synthetic NTU-60-scale canonical file from random arrays."""
    import numpy as np

    from finetec.data.dataset import SkeletonDataset
    from finetec.data.readers.names import NTU60_CLASSES
    from finetec.layouts import get_layout

    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 151, size=clips)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    F = int(offsets[-1])
    kp = np.empty((F, 2, 25, 3), np.float32)
    for a in range(0, F, 1 << 20):                    # fill in slices: no float64 temporary
        b = min(F, a + (1 << 20))
        kp[a:b] = rng.standard_normal((b - a, 2, 25, 3), dtype=np.float32)
    persons = rng.integers(1, 3, size=clips).astype(np.int16)
    mask = np.ones((F, 2, 25), bool)
    mask[:, 1] = np.repeat(persons == 2, lengths)[:, None]
    kp[:, 1][~mask[:, 1]] = 0
    ds = SkeletonDataset(
        keypoint=kp, mask=mask, offsets=offsets, persons=persons,
        label=rng.integers(0, 60, size=clips).astype(np.int64),
        ids=np.array([f"S{i // 3000 + 1:03d}C001P001R001A{i % 60 + 1:03d}_{i}" for i in range(clips)]),
        layout=get_layout("ntu25"), class_names=list(NTU60_CLASSES),
        splits={"train": np.flatnonzero(np.arange(clips) % 3 != 0), "test": np.arange(0, clips, 3)},
    )
    t0 = time.perf_counter()
    ds.save(path)
    return {"clips": clips, "frames": F, "save_s": time.perf_counter() - t0, "bytes": os.path.getsize(path)}


def _sub(func: str, *args: object) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_io as b; "
            f"print(json.dumps(b.{func}(*{args!r})))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{func}{args} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ntu-clips", type=int, default=56880, help="clips in the synthetic NTU-scale file")
    ap.add_argument("--probes", type=int, default=2000, help="random ds[i] calls timed per file")
    ap.add_argument("--tmp", default=None, help="folder for the temporary files (default: system temp)")
    ap.add_argument("--skip-real", action="store_true", help="only the synthetic NTU-scale file")
    ap.add_argument("--out", default=None, help="also write the Markdown table to this file")
    args = ap.parse_args()

    rows: list[tuple[str, str, str, str, str, str]] = []
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        if not args.skip_real:
            for name in REAL:
                if not (SHARED / name).exists():
                    print(f"skipping {name}: {SHARED / name} not found", file=sys.stderr)
                    continue
                backends = ("orjson", "json") if name == "nw_ucla" else ("-",)
                for backend in backends:
                    if backend == "orjson":
                        try:
                            import orjson  # noqa: F401
                        except ImportError:
                            continue
                    out = str(Path(tmp) / f"{name}.finetec.npz")
                    r = _sub("m_read", name, out, backend == "json")
                    ld = _sub("m_load", out, args.probes)
                    label = f"{name} ({backend} parser)" if backend != "-" else name
                    rows.append((label, f"{r['clips']} / {r['frames']}",
                                 f"{r['read_s']:.2f} / {r['read_cpu_s']:.2f}",
                                 f"{r['save_s']:.2f} ({r['bytes'] / 2**20:.0f} MiB)",
                                 f"{ld['load_s']:.3f} / {ld['load_cpu_s']:.3f} (peak +{ld['peak_mib']:.0f} MiB)",
                                 f"{ld['getitem_us']:.0f}"))
                    print(rows[-1], file=sys.stderr)
        path = str(Path(tmp) / "ntu60_scale.finetec.npz")
        mk = _sub("m_make_ntu", path, args.ntu_clips)
        ld = _sub("m_load", path, args.probes)
        rows.append(("synthetic NTU-60 scale (M=2, V=25, C=3)", f"{mk['clips']} / {mk['frames']}", "-",
                     f"{mk['save_s']:.2f} ({mk['bytes'] / 2**30:.2f} GiB)",
                     f"{ld['load_s']:.2f} / {ld['load_cpu_s']:.2f} (peak +{ld['peak_mib'] / 1024:.2f} GiB)",
                     f"{ld['getitem_us']:.0f}"))
        print(rows[-1], file=sys.stderr)

    import numpy

    head = (f"Data I/O, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {cpu_name()}, {os.cpu_count()} CPU "
            f"threads visible, Python {platform.python_version()}, NumPy {numpy.__version__}; "
            f"load average {os.getloadavg()[0]:.1f} at the end; `python benchmarks/bench_io.py`\n\n")
    table = ["| dataset | clips / frames | read s (wall / CPU) | save s (file) | load s (wall / CPU, memory) "
             "| ds[i] µs |",
             "|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    text = head + "\n".join(table) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
