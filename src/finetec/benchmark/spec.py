"""What the benchmark compares: methods, budgets, regimes, and the datasets it runs on.

A *method* is a recognizer plus the gap filling it relies on (``stgcnpp_linear`` = ST-GCN++ fed
linearly interpolated clips; ``finetec`` = the full FineTec model, which completes the clip
itself). A *budget* fixes everything that decides how long a run takes: clip length, epochs,
batch size and model widths, per dataset where they differ. Every method of one benchmark run
shares the same seed, budget, clip length and split, and is tested on the same fixed corrupted
test set (test corruption is a pure function of seed, clip id, level and pattern).
"""
from __future__ import annotations

import math
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
    """How much compute one training run gets: ONE rule for every dataset.

    clip_len: frames per clip T; epochs / batch_size / lr: stage-2 (recognition) training;
    min_steps: the recognizer trains for at least this many optimiser steps, so a small dataset
    is not undertrained: ``epochs = max(epochs, ceil(min_steps / steps_per_epoch))`` with
    ``steps_per_epoch = ceil(training clips after the 10 % validation hold-out / batch_size)``
    (see :meth:`epochs_for`); completion_epochs / completion_min_steps / completion_batch_size:
    the same rule for stage 1 (the completion module; completion_grad_clip: its gradient-norm clip, 0 = none); backbone: options passed to the backbone
    (``stgcnpp`` / ``ctrgcn``) and, as ``backbone_overrides``, to FineTec's backbone; finetec:
    extra FineTec options; completion: the completion module's options; completion_levels: the
    corruption levels stage 1 draws its training queries from; augment / flip_prob: random
    rotation and scale of each training clip (flip_prob: probability of a left/right mirror,
    0 keeps mirror classes such as swipe left / swipe right apart); align_view: rotate every 3D
    clip into the body's own frame (None: align 3D clips, keep 2D ones as they are);
    label_smoothing: of the recognizer's loss; val_fraction: share of the training clips held out (stratified) to select the
    checkpoint with the best validation top-1; 0: no hold-out, the last epoch's model is kept; threads: torch CPU threads per run (0 = torch's
    choice; the CPU budgets use 1: on a 2-core machine shared with other jobs, two threads per run
    measured 15-30x slower than one, idle it costs less than 2x); default_methods /
    default_levels / default_regime: what runs when the user names none. Nothing depends on the dataset's name.
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
    min_steps: int = 0
    completion_min_steps: int = 0
    completion_batch_size: int | None = None
    completion_grad_clip: float = 0.0
    completion_levels: tuple[str, ...] = LEVEL_ORDER
    augment: bool = False
    flip_prob: float = 0.0
    align_view: bool | None = None
    label_smoothing: float = 0.0
    val_fraction: float = 0.1
    default_regime: str = "mixed"
    description: str = ""

    def epochs_for(self, num_fit: int, completion: bool = False) -> int:
        """Epochs of a run on ``num_fit`` training clips: at least ``epochs``, and enough for
        ``min_steps`` optimiser steps (the completion module: ``completion_*``)."""
        if completion:
            base, steps, batch = self.completion_epochs, self.completion_min_steps, \
                self.completion_batch_size or self.batch_size
        else:
            base, steps, batch = self.epochs, self.min_steps, self.batch_size
        per_epoch = max(1, math.ceil(max(num_fit, 1) / batch))
        return max(base, math.ceil(steps / per_epoch))


_ALL_MAIN = ("stgcnpp_zero", "stgcnpp_linear", "ctrgcn_linear", "finetec")
_ALL = _ALL_MAIN + ("finetec_no_completion", "finetec_no_decomposition", "finetec_no_physics")
#: ST-GCN++ / CTR-GCN width and depth of the registry's ``*_small`` presets (base width 32, 7 blocks).
_SMALL = {"base_channels": 32, "num_stages": 7, "inflate_stages": [4, 6], "down_stages": [4, 6]}

#: Stage 1 of the standard and gpu budgets: the recipe of configs/completion_t64_retrieval_*.yaml
#: (every pattern, real-occlusion transplant, retrieval pre-fill from a bank of 1024 clips, an
#: expected-error head; measured in docs/results_completion.md); tests/test_completion_recipe.py pins it.
_COMPLETION = {"depth": 4, "merge_at": 2, "expansion": 2, "bank_size": 1024, "prompt_weight": 1.0,
               "prefill": "linear", "loss": "l2", "gap_features": True,
               "train_patterns": ["random", "periodic", "prefix", "suffix", "middle"], "transplant": 0.5,
               "uncertainty": True, "dropout": 0.1, "retrieval": 4, "linear_below": 8}

BUDGETS: dict[str, Budget] = {
    # The quick start: synthetic data, tiny models, a handful of epochs; about 3 minutes on 2 cores.
    # Batch 16 (370 steps, stage 1 also 16) and no validation hold-out (the last epoch's model):
    # with batch 32 (170 steps) and the best of 10 epochs on 56 validation clips, FineTec was picked
    # at epoch 6 of 10 and trailed ST-GCN++ + linear by 10 points at clean and at severe (seed 0);
    # with these settings by 0.9 and 0.5 (docs/cli/benchmark.md, "The quick start").
    "quick": Budget(
        name="quick", clip_len=32, epochs=10, batch_size=16, lr=0.1, val_fraction=0.0,
        backbone={"base_channels": 16, "num_stages": 4, "inflate_stages": [3], "down_stages": [3]},
        finetec={"physics_hidden": 32, "fusion_width": 8},
        completion={"width": 64, "depth": 2, "merge_at": 1, "bank_size": 128},
        completion_epochs=5, completion_lr=1e-3,
        default_methods=("stgcnpp_zero", "stgcnpp_linear", "finetec"),
        default_levels=("clean", "severe"), threads=1,
        description="synthetic quick start: T=32, width 16, 4 blocks, 10 epochs of batch 16, last epoch kept",
    ),
    # The default for real data. What the project measured (docs/training.md): the registry's
    # small ST-GCN++ (width 32, 7 blocks) with SGD Nesterov, label smoothing and dropout 0.1, rotation
    # augmentation without view alignment, reaches 92.0 % clean on NW-UCLA in 30 epochs (1700 steps);
    # UTD-MHAD (388 training clips) needed 40+ epochs. The rule: at least 30 epochs AND at least
    # 2000 optimiser steps; T=64, so that severe corruption (75 % of frames lost) leaves 16 frames.
    # A clip length that follows the data (T=32 for NW-UCLA's short clips) was measured and dropped:
    # NW-UCLA ST-GCN++ + linear, mixed, seed 0 reached 81.2 % clean at T=32 against 86.9 % at T=64
    # (docs/cli/benchmark.md).
    "standard": Budget(
        name="standard", clip_len=64, epochs=30, min_steps=2000, batch_size=16, lr=0.1, warmup_epochs=2,
        weight_decay=5e-4, label_smoothing=0.1, threads=1,
        backbone={**_SMALL, "dropout": 0.1},
        finetec={"physics_hidden": 64},
        completion={"width": 64, **_COMPLETION},
        completion_epochs=30, completion_min_steps=1000, completion_batch_size=32, completion_lr=1e-3,
        completion_grad_clip=1.0,
        completion_levels=("minor", "moderate", "severe"),
        augment=True, flip_prob=0.0, align_view=False,
        default_methods=_ALL, default_levels=LEVEL_ORDER,
        description="T=64, ST-GCN++/CTR-GCN width 32 x 7 blocks, >= 30 epochs and >= 2000 SGD steps "
                    "(batch 16), rotation/scale augmentation, no view alignment",
    ),
    # The earlier short budget (kept to reproduce the recorded cpu-budget cells): T=32, a 6-block
    # ST-GCN++ of base width 16, 10 epochs and at least 250 steps (UTD-MHAD: 20 epochs), no
    # augmentation, 3D views aligned. Undertrained: 56-80 % clean where `standard` reaches 87-92 %.
    "cpu": Budget(
        name="cpu", clip_len=32, epochs=10, min_steps=250, batch_size=32, lr=0.1, warmup_epochs=1, threads=1,
        backbone={"base_channels": 16, "num_stages": 6, "inflate_stages": [3, 5], "down_stages": [3, 5]},
        finetec={"physics_hidden": 32, "fusion_width": 8},
        completion={"width": 64, "depth": 2, "merge_at": 1, "bank_size": 128},
        completion_epochs=5, completion_min_steps=120, completion_lr=1e-3,
        default_methods=_ALL, default_levels=LEVEL_ORDER,
        description="short: T=32, width 16 x 6 blocks, >= 10 epochs and >= 250 steps, no augmentation, "
                    "3D views aligned",
    ),
    # Paper scale on one GPU: published backbone widths (64, 10 blocks), T=64, >= 60 epochs and
    # >= 3000 steps, the standard budget's augmentation and normalisation.
    "gpu": Budget(
        name="gpu", clip_len=64, epochs=60, min_steps=3000, batch_size=32, lr=0.1, warmup_epochs=5,
        weight_decay=5e-4, label_smoothing=0.1,
        backbone={"dropout": 0.1},
        finetec={},
        completion={"width": 128, **_COMPLETION},
        completion_epochs=60, completion_min_steps=2000, completion_batch_size=64, completion_lr=5e-4,
        completion_grad_clip=1.0,
        completion_levels=("minor", "moderate", "severe"),
        augment=True, flip_prob=0.0, align_view=False, num_workers=4,
        default_methods=_ALL, default_levels=LEVEL_ORDER,
        description="paper widths (64 x 10 blocks), T=64, >= 60 epochs and >= 3000 steps (batch 32), "
                    "augmentation, no view alignment",
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
    fmt: str | None = None
    options: tuple[tuple[str, str], ...] = ()

    @property
    def cache_name(self) -> str:
        """File name of the dataset's canonical copy in the benchmark folder: reader options
        (a different layout ...) give a different copy."""
        if not self.fmt and not self.options:
            return f"{self.key}.finetec.npz"
        import hashlib

        tag = hashlib.sha1(repr((self.fmt, self.options)).encode()).hexdigest()[:8]
        return f"{self.key}-{tag}.finetec.npz"


TITLES = {
    "nw_ucla": "NW-UCLA (cross-view)",
    "utd_mhad": "UTD-MHAD (cross-subject)",
    "penn_action": "Penn Action (2D, real occlusion)",
}
#: The quick start's data: 800 synthetic clips (588 to train, 212 to test).
DEFAULT_DATA = "synthetic:coco17?clips=800"


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


def make_entries(specs: list[str], titles: list[str] | None = None, fmt: str | None = None,
                 options: dict[str, str] | None = None) -> list[DatasetEntry]:
    """DatasetEntry per spec; FinetecError for a path that does not exist, a repeated name or a
    number of titles that is not the number of datasets. ``fmt`` / ``options``: the reader and its
    options (``-o key=value``), applied to every dataset read from a file or folder."""
    if titles and len(titles) != len(specs):
        raise FinetecError(f"--title given {len(titles)} time(s) for {len(specs)} dataset(s): give one title "
                           "per dataset, in the order of --data")
    entries: list[DatasetEntry] = []
    for i, spec in enumerate(specs):
        s = str(spec)
        if not (s == "synthetic" or s.startswith("synthetic:")) and not Path(s).exists():
            raise FinetecError("no such file or folder", s)
        key = dataset_key(s)
        if any(e.key == key for e in entries):
            raise FinetecError(f"dataset named twice (both would be {key!r})", s)
        title = (titles[i] if titles else None) or TITLES.get(key) or (
            _synthetic_title(s) if key.startswith("synthetic") else key)
        synthetic = s == "synthetic" or s.startswith("synthetic:")
        entries.append(DatasetEntry(spec=s, key=key, title=title, fmt=None if synthetic else fmt,
                                    options=() if synthetic else tuple(sorted((options or {}).items()))))
    return entries


def _synthetic_title(spec: str) -> str:
    """``synthetic:coco17?clips=800`` -> ``Synthetic (coco17, clips=800)``."""
    rest = spec.partition(":")[2] or "coco17"
    layout, _, query = rest.partition("?")
    return f"Synthetic ({', '.join([layout or 'coco17', *filter(None, query.split('&'))])})"


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
