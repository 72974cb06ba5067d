"""Time the README's first prediction, start-up included: `finetec predict --model penn-action
examples/jumping_jacks_coco17.json`, run as a new process each time.

    python benchmarks/bench_first_prediction.py [--runs 5]

Prints per run the wall time and the CPU time (user + system) of the process, then the medians,
the machine's load average (a loaded machine stretches wall time; CPU time is what an idle core
would need) and the import time of torch alone in a new process, for comparison. Target: under
3 s wall on an idle machine after `pip install -e .` (issue 15). The first run of a fresh install
also compiles finetec's modules to bytecode (unless PYTHONDONTWRITEBYTECODE is set); the runs here
after the first one use the cache, as every later prediction does.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    finetec = str(Path(sys.executable).with_name("finetec"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cmd = [finetec, "predict", "--model", "penn-action", "examples/jumping_jacks_coco17.json", "--top-k", "3"]
    print("$ " + " ".join(["finetec"] + cmd[1:]))
    walls, cpus = [], []
    for i in range(args.runs):
        wall, cpu, out = timed(cmd, env)
        walls.append(wall)
        cpus.append(cpu)
        print(f"run {i + 1}: {wall:.2f} s wall, {cpu:.2f} s CPU   {out.strip()}")
    tw, tc, _ = timed([sys.executable, "-c", "import torch"], env)
    load = os.getloadavg()
    print(f"median: {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU over {args.runs} runs; "
          f"`import torch` alone: {tw:.2f} s wall, {tc:.2f} s CPU; load average {load[0]:.1f} "
          f"on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
