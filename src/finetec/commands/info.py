"""``finetec info``: versions, device, layouts, readers and models."""
from __future__ import annotations

import argparse
import importlib
import json
import platform

HELP = "show versions, the compute device, and the available layouts, readers and models"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _try(fn, default):
    try:
        return fn()
    except Exception:  # noqa: BLE001 - info reports what is there, never fails
        return default


def collect() -> dict:
    import numpy
    import scipy
    import torch

    from finetec.version import __version__
    from finetec.layouts import builtin_layouts, get_layout

    readers = _try(lambda: sorted(importlib.import_module("finetec.data.readers").READERS), [])
    models = _try(lambda: importlib.import_module("finetec.models.registry").list_models(), [])
    return {
        "finetec": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "cpu_threads": torch.get_num_threads(),
        "layouts": {n: get_layout(n).num_joints for n in builtin_layouts()},
        "readers": readers,
        "models": models,
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info))
        return 0
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{a} ({b} joints)" for a, b in v.items())
        elif isinstance(v, list):
            v = ", ".join(v) or "-"
        print(f"{k:>14}: {v}")
    return 0
