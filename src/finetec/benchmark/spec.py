"""What the benchmark compares: methods, budgets, regimes, and the datasets it runs on.

A *method* is a recognizer plus the gap filling it relies on (``stgcnpp_linear`` = ST-GCN++ fed
linearly interpolated clips; ``finetec`` = the full FineTec model, which completes the clip
itself). A *budget* fixes everything that decides how long a run takes: clip length, epochs,
batch size and model widths, per dataset where they differ. Every method of one benchmark run
shares the same seed, budget, clip length and split, and is tested on the same fixed corrupted
test set (test corruption is a pure function of seed, clip id, level and pattern).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetec.errors import FinetecError

#: The corruption levels in benchmark order (names as in :mod:`finetec.data.corruption`).
LEVEL_ORDER: tuple[str, ...] = ("clean", "minor", "moderate", "severe")
REGIMES: tuple[str, ...] = ("per-level", "mixed")
#: The gap fillers of the completion table, in table order; "completion" is FineTec's module 1.
COMPLETION_FILLERS: tuple[str, ...] = ("zero", "copy_lr", "copy_rl", "linear", "cubic")
COMPLETION_MODEL = "completion"


@dataclass(frozen=True)
class Method:
    """One compared method.

    model: registered model name; filler: the pipeline's gap filler ("none" = the model sees the
    corrupted clip and its mask); overrides: model options on top of the budget's;
    ablation: run at severe only unless levels are given explicitly.
    """

    name: str
    title: str
    model: str
    filler: str
    overrides: dict[str, Any] = field(default_factory=dict)
    ablation: bool = False

    @property
    def needs_completion(self) -> bool:
        """True when the model loads a stage-1 completion checkpoint."""
        return self.model == "finetec" and self.overrides.get("use_completion", True)

    @property
    def is_finetec(self) -> bool:
        return self.model == "finetec"


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("stgcnpp_zero", "ST-GCN++ + zero filling", "stgcnpp", "zero"),
    Method("stgcnpp_linear", "ST-GCN++ + linear interpolation", "stgcnpp", "linear"),
    Method("ctrgcn_linear", "CTR-GCN + linear interpolation", "ctrgcn", "linear"),
    Method("finetec", "FineTec", "finetec", "none"),
    Method("finetec_no_completion", "FineTec w/o completion (linear fill)", "finetec", "none",
           {"use_completion": False}, ablation=True),
    Method("finetec_no_decomposition", "FineTec w/o decomposition", "finetec", "none",
           {"use_decomposition": False}, ablation=True),
    Method("finetec_no_physics", "FineTec w/o physics", "finetec", "none",
           {"use_physics": False}, ablation=True),
)}
BASELINES: tuple[str, ...] = ("stgcnpp_zero", "stgcnpp_linear", "ctrgcn_linear")


@dataclass(frozen=True)
class Budget:
    """How much compute one training run gets.

    clip_len: frames per clip T; epochs / batch_size / lr: stage-2 (recognition) training;
    backbone: options passed to the backbone (``stgcnpp`` / ``ctrgcn``) and, as
    ``backbone_overrides``, to FineTec's backbone; finetec: extra FineTec options;
    completion_*: stage-1 (completion module) training; threads: torch CPU threads per run (0 =
    torch's choice; the CPU budgets use 1: on a 2-core machine shared with other jobs, two threads
    per run measured 15-30x slower than one, idle it costs less than 2x); per_dataset: dataset key -> any of the
    above fields replaced for that dataset; default_methods / default_levels: what runs when the
    user names none.
    """

    name: str
    clip_len: int
    epochs: int
    batch_size: int
    lr: float
    backbone: dict[str, Any]
    finetec: dict[str, Any]
    completion: dict[str, Any]
    completion_epochs: int
    completion_lr: float
    default_methods: tuple[str, ...]
    default_levels: tuple[str, ...]
    warmup_epochs: int = 0
    weight_decay: float = 5e-4
    num_workers: int = 0
    threads: int = 0
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_dataset(self, key: str) -> "Budget":
        """This budget with the dataset's specific settings applied."""
        over = self.per_dataset.get(key) or self.per_dataset.get(dataset_family(key))
        if not over:
            return self
        fields = {k: v for k, v in self.__dict__.items()}
        fields.update(over)
        fields["per_dataset"] = {}
        return Budget(**fields)


_ALL_MAIN = ("stgcnpp_zero", "stgcnpp_linear", "ctrgcn_linear", "finetec")
_ALL = _ALL_MAIN + ("finetec_no_completion", "finetec_no_decomposition", "finetec_no_physics")

BUDGETS: dict[str, Budget] = {
    # The quick start: synthetic data, tiny models, a handful of epochs; < 10 minutes on 2 cores.
    "quick": Budget(
        name="quick", clip_len=32, epochs=12, batch_size=32, lr=0.1,
        backbone={"base_channels": 16, "num_stages": 4, "inflate_stages": [3], "down_stages": [3]},
        finetec={"physics_hidden": 32, "fusion_width": 8},
        completion={"width": 64, "depth": 2, "merge_at": 1, "bank_size": 128},
        completion_epochs=5, completion_lr=1e-3,
        default_methods=("stgcnpp_zero", "stgcnpp_linear", "finetec"),
        default_levels=("clean", "severe"), threads=1,
    ),
    # What 2 CPU cores can finish on the real datasets (may span sittings thanks to resume):
    # T=32, a 6-block ST-GCN++ of base width 16, 10 epochs; the mixed regime trains 4x less.
    "cpu": Budget(
        name="cpu", clip_len=32, epochs=10, batch_size=32, lr=0.1, warmup_epochs=1, threads=1,
        backbone={"base_channels": 16, "num_stages": 6, "inflate_stages": [3, 5], "down_stages": [3, 5]},
        finetec={"physics_hidden": 32, "fusion_width": 8},
        completion={"width": 64, "depth": 2, "merge_at": 1, "bank_size": 128},
        completion_epochs=5, completion_lr=1e-3,
        default_methods=_ALL, default_levels=LEVEL_ORDER,
        # UTD-MHAD's training split is small (431 clips = 12 steps an epoch): more epochs, so that
        # every dataset gets a few hundred optimizer steps.
        per_dataset={"utd_mhad": {"epochs": 20, "completion_epochs": 10}},
    ),
    # Paper scale: published backbone widths, T=64 (100 for Penn Action), 60-80 epochs; a GPU.
    "gpu": Budget(
        name="gpu", clip_len=64, epochs=80, batch_size=64, lr=0.1, warmup_epochs=5,
        backbone={},
        finetec={},
        completion={},
        completion_epochs=60, completion_lr=5e-4, num_workers=4,
        default_methods=_ALL, default_levels=LEVEL_ORDER,
        per_dataset={"penn_action": {"clip_len": 100, "epochs": 60}},
    ),
}


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset named on the command line.

    spec: what the user gave (a folder, a file, ``synthetic:coco17``); key: a short
    file-system-safe name used in run folders and tables; title: for the tables.
    """

    spec: str
    key: str
    title: str
    train_split: str = "train"
    test_split: str = "test"


TITLES = {
    "nw_ucla": "NW-UCLA (cross-view)",
    "utd_mhad": "UTD-MHAD (cross-subject)",
    "penn_action": "Penn Action (2D, real occlusion)",
}
DEFAULT_DATA = "synthetic:coco17"


def dataset_family(key: str) -> str:
    """``synthetic-coco17`` -> ``synthetic``; real dataset keys are their own family."""
    return key.split("-", 1)[0] if key.startswith("synthetic") else key


def dataset_key(spec: str) -> str:
    """A short, file-system-safe name for a dataset spec."""
    if spec == "synthetic" or spec.startswith("synthetic:"):
        rest = spec.partition(":")[2] or "coco17"
        return "synthetic-" + re.sub(r"[^A-Za-z0-9]+", "-", rest).strip("-")
    p = Path(spec)
    name = p.name
    for suffix in (".finetec.npz", ".npz", ".pkl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    if name in ("labels", "Skeleton", "all_sqe") and p.parent.name:
        name = p.parent.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "data"


def make_entries(specs: list[str]) -> list[DatasetEntry]:
    """DatasetEntry per spec; FinetecError for a path that does not exist or a repeated name."""
    entries: list[DatasetEntry] = []
    for spec in specs:
        s = str(spec)
        if not (s == "synthetic" or s.startswith("synthetic:")) and not Path(s).exists():
            raise FinetecError("no such file or folder", s)
        key = dataset_key(s)
        if any(e.key == key for e in entries):
            raise FinetecError(f"dataset named twice (both would be {key!r})", s)
        title = TITLES.get(key) or (f"Synthetic ({key.partition('-')[2]})" if key.startswith("synthetic") else key)
        entries.append(DatasetEntry(spec=s, key=key, title=title))
    return entries


def resolve_methods(names: list[str] | None, budget: Budget) -> list[Method]:
    names = list(names) if names else list(budget.default_methods)
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise FinetecError(f"unknown method {unknown[0]!r}; methods: {', '.join(METHODS)}")
    return [METHODS[n] for n in dict.fromkeys(names)]


def resolve_levels(names: list[str] | None, budget: Budget) -> list[str]:
    names = list(names) if names else list(budget.default_levels)
    if names == ["all"]:
        names = list(LEVEL_ORDER)
    unknown = [n for n in names if n not in LEVEL_ORDER]
    if unknown:
        raise FinetecError(f"unknown level {unknown[0]!r}; levels: {', '.join(LEVEL_ORDER)} (or all)")
    return [lv for lv in LEVEL_ORDER if lv in names]


def resolve_budget(name: str) -> Budget:
    if name not in BUDGETS:
        raise FinetecError(f"unknown budget {name!r}; budgets: {', '.join(BUDGETS)}")
    return BUDGETS[name]


def resolve_regime(name: str) -> str:
    if name not in REGIMES:
        raise FinetecError(f"unknown regime {name!r}; regimes: {', '.join(REGIMES)}")
    return name


def method_levels(method: Method, levels: list[str], regime: str, explicit_levels: bool) -> list[str]:
    """Levels a method is tested at: ablations at severe only unless levels were given."""
    if method.ablation and not explicit_levels and regime == "per-level":
        return ["severe"] if "severe" in levels else levels[-1:]
    return list(levels)
