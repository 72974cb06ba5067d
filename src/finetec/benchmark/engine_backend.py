"""The benchmark's backend: datasets through :func:`finetec.data.open_dataset`, training through
:func:`finetec.engine.train.train`, testing through :func:`finetec.engine.evaluate.evaluate`.

Each dataset is read once and written as a canonical ``DIR/data/<key>.finetec.npz`` that every
training config points to (loading it takes a fraction of a second; re-reading 2000 MATLAB files
would not). A later sitting reuses that file. The completion table runs every gap filler and the
stage-1 completion module through the engine's own restoration scoring
(:func:`finetec.engine.evaluate.completion_errors`) on the same test clips.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from finetec.benchmark.machine import machine_description
from finetec.benchmark.runner import TrainUnit
from finetec.benchmark.spec import COMPLETION_FILLERS, COMPLETION_MODEL, Budget, DatasetEntry
from finetec.data import SkeletonDataset
from finetec.data.fillers import fill_batch
from finetec.data.pipeline import ClipPipeline, PipelineConfig, PipelineDataset, collate
from finetec.data.readers import open_with_options
from finetec.engine.checkpoint import load_model
from finetec.engine.config import load_config
from finetec.engine.device import resolve_device
from finetec.engine.evaluate import completion_errors, evaluate, save_scores
from finetec.engine.train import split_validation, train
from finetec.errors import FinetecError
from finetec.version import __version__

PATTERN = "random"  # the benchmark's corruption pattern (the paper's protocol)


class EngineBackend:
    """Train and test with the real engine (see :class:`finetec.benchmark.runner.Backend`)."""

    def __init__(self, device: str = "auto", threads: int | None = None):
        self.device = device
        self.threads = threads
        self._data: dict[str, Any] = {}
        self._paths: dict[str, str] = {}

    # -- data ----------------------------------------------------------------------------
    def prepare(self, entry: DatasetEntry, out_dir: Path) -> dict[str, Any]:
        canonical = Path(out_dir) / "data" / entry.cache_name
        if canonical.exists():
            ds = SkeletonDataset.load(canonical)
        else:
            ds = open_with_options(entry.spec, entry.fmt, dict(entry.options))
        for split in (entry.train_split, entry.test_split):
            if split not in ds.splits or len(ds.splits[split]) == 0:
                raise FinetecError(f"the dataset has no (or an empty) {split!r} split; splits: "
                                   f"{', '.join(sorted(ds.splits)) or 'none'}", entry.spec)
        if ds.num_classes < 2:
            raise FinetecError("the benchmark needs labelled clips of at least 2 classes", entry.spec)
        if not canonical.exists():
            ds.save(canonical)
        self._data[entry.key] = ds
        self._paths[entry.key] = str(canonical.resolve())
        test = ds.split_indices(entry.test_split)
        train = ds.split_indices(entry.train_split)
        ids = [str(ds.ids[i]) for i in test]
        # a title stored in the data file names the dataset unless --title or a known name did
        named = {"title": str(ds.meta["title"])} if ds.meta.get("title") and entry.title == entry.key else {}
        return {**named, "path": self._paths[entry.key], "num_clips": len(ds), "num_classes": ds.num_classes,
                "num_train": int(len(train)), "num_test": int(len(test)),
                "median_train_frames": float(np.median(ds.lengths[train])),
                "layout": ds.layout.name, "dims": ds.dim, "test_ids": ids, "test_ids_sha1": ids_digest(ids),
                "test_labels": [int(v) for v in ds.label[test]]}

    def dataset(self, key: str):
        return self._data[key]

    # -- configs -------------------------------------------------------------------------
    def normalisation(self, key: str, budget: Budget) -> dict[str, bool]:
        """Centre and scale every clip; rotate 3D clips into the body's own frame when the budget
        says so (``align_view``; None: 3D clips aligned, 2D ones never: lying, hanging and standing
        poses such as push-up vs squat must stay apart)."""
        align = budget.align_view if budget.align_view is not None else self._data[key].dim == 3
        return {"normalize": True, "align_view": bool(align and self._data[key].dim == 3)}

    def augmentation(self, budget: Budget) -> dict[str, Any]:
        return {"augment": budget.augment, "flip_prob": budget.flip_prob} if budget.augment else {"augment": False}

    def num_fit(self, unit: TrainUnit, val_fraction: float) -> int:
        """Training clips left after the engine's validation hold-out (what one epoch iterates)."""

        ds = self._data[unit.dataset.key]
        idx = ds.split_indices(unit.dataset.train_split)
        labels = ds.label[idx] if not unit.is_completion else np.zeros(len(idx), np.int64)
        return int(len(split_validation(labels, val_fraction, unit.seed)[0]))

    def config(self, unit: TrainUnit, completion_dir: Path | None) -> dict[str, Any]:
        """The engine config of one unit: the same seed, split, clip length and budget for all."""
        b: Budget = unit.budget
        entry = unit.dataset
        val_fraction = b.val_fraction
        data = {"path": self._paths[entry.key], "train_split": entry.train_split, "test_split": entry.test_split,
                "val_fraction": val_fraction}
        runtime = {"device": self.device, "num_workers": b.num_workers, "tensorboard": "off",
                   "threads": b.threads if self.threads is None else self.threads}
        epochs = b.epochs_for(self.num_fit(unit, val_fraction), completion=unit.is_completion)
        norm = {**self.normalisation(entry.key, b), **self.augmentation(b)}
        if unit.is_completion:
            return {
                "name": unit.name, "task": "completion", "seed": unit.seed, "data": data,
                # Stage 1 learns from its own random masks; the pipeline's levels only set what
                # the query looks like (mixed levels, like the test sets it will complete).
                "pipeline": {"clip_len": b.clip_len, "level": "severe", "pattern": PATTERN, "mixed": True,
                             "mixed_levels": list(b.completion_levels),
                             "filler": "none", "features": ["joint"], **norm},
                "model": {"name": "completion", "clip_len": b.clip_len, **b.completion},
                "optim": {"name": "adam", "lr": b.completion_lr, "weight_decay": 0.0,
                          "epochs": epochs, "batch_size": b.completion_batch_size or b.batch_size,
                          "warmup_epochs": 0, **({"grad_clip": b.completion_grad_clip} if b.completion_grad_clip else {})},
                "runtime": runtime,
            }
        m = unit.method
        assert m is not None
        if m.is_finetec:
            model: dict[str, Any] = {"name": "finetec", "clip_len": b.clip_len, "backbone": "stgcnpp",
                                     "backbone_overrides": dict(b.backbone), **b.finetec, **m.overrides}
            if m.needs_completion:
                if completion_dir is None:
                    raise FinetecError(f"{m.name} needs the stage-1 completion module, which was not trained")
                model["completion_checkpoint"] = str((completion_dir / "best").resolve())
        else:
            model = {"name": m.model, **b.backbone}
        optim = {"name": "sgd", "lr": b.lr, "weight_decay": b.weight_decay, "epochs": epochs,
                 "batch_size": b.batch_size, "warmup_epochs": b.warmup_epochs}
        if b.label_smoothing:
            optim["label_smoothing"] = b.label_smoothing
        return {
            "name": unit.name, "task": "classification", "seed": unit.seed, "data": data,
            "pipeline": {"clip_len": b.clip_len, "level": unit.level or "severe", "pattern": PATTERN,
                         "mixed": unit.regime == "mixed", "filler": m.filler, "features": ["joint"], **norm},
            "model": model,
            "optim": optim,
            "runtime": runtime,
        }

    # -- training and testing ------------------------------------------------------------
    def train(self, unit: TrainUnit, config: dict[str, Any], resume: bool) -> None:
        cfg = load_config(unit.run_dir / "config.yaml")
        train(cfg, unit.run_dir, resume=resume)

    def evaluate(self, unit: TrainUnit, level: str) -> dict[str, Any]:
        """Top-1 / mean-class / top-5 at ``level`` and the per-clip predictions: ``pred`` (the
        predicted class of every test clip, in the test split's order) and ``ids_sha1`` (of the test
        clip ids, so that cells are paired clip by clip only when they saw the same clips). The
        scores (logits), labels and ids are also saved to ``RUN/predictions_<level>.npz``."""

        model, info = load_model(unit.run_dir / "best", device=self._torch_device())
        res = evaluate(model, info, self._data[unit.dataset.key], level=level, pattern=PATTERN,
                       split=unit.dataset.test_split, seed=unit.seed, device=self._torch_device())
        save_scores(unit.run_dir / f"predictions_{level}.npz", res, info.class_names,
                    extra={"level": level, "seed": unit.seed})
        return {"top1": float(res["top1"]), "mean_class": float(res["mean_class"]),
                "top5": None if res.get("top5") is None else float(res["top5"]),
                "num_clips": int(res["num_clips"]), "pattern": PATTERN,
                "pred": np.asarray(res["scores"]).argmax(axis=1).astype(int).tolist(),
                "ids_sha1": ids_digest(res["id"])}

    def completion_rows(self, entry: DatasetEntry, budget: Budget, seed: int, levels: list[str],
                        completion_dir: Path | None) -> list[dict[str, Any]]:
        """Restoration errors of each filler (and the completion module) on the test split."""

        ds = self._data[entry.key]
        device = self._torch_device()
        methods: list[tuple[str, Any]] = [(f, FillerModel(f)) for f in COMPLETION_FILLERS]
        norm = self.normalisation(entry.key, budget)
        if completion_dir is not None:
            model, info = load_model(completion_dir / "best", device=device)
            methods.append((COMPLETION_MODEL, model))
        rows = []
        for level in levels:
            loader = self._test_loader(ds, entry.test_split, budget, seed, level, norm["normalize"],
                                       norm["align_view"])
            for name, model in methods:
                with torch.no_grad():
                    err = completion_errors(model, loader, device, "fp32")
                rows.append({"dataset": entry.key, "filler": name, "level": level, **err,
                             "num_clips": int(len(ds.splits[entry.test_split])), "pattern": PATTERN})
        return rows

    @staticmethod
    def _test_loader(ds, split: str, budget: Budget, seed: int, level: str, normalize: bool, align: bool):
        cfg = PipelineConfig(clip_len=budget.clip_len, level=level, pattern=PATTERN, filler="none",
                             normalize=normalize, align_view=align)
        pipe = ClipPipeline(ds.layout, cfg, train=False, seed=seed)
        return DataLoader(PipelineDataset(ds, ds.split_indices(split), pipe), batch_size=64,
                          shuffle=False, collate_fn=collate)

    # -- environment ---------------------------------------------------------------------
    def _torch_device(self) -> str:
        return str(resolve_device(self.device))

    def machine(self) -> str:
        return machine_description(self._torch_device())

    def code(self) -> str:
        return code_version()


class FillerModel:
    """A gap filler behind the completion model's interface: ``model(x, mask) -> {"completed"}``.

    Lets the engine's restoration scoring treat the fillers and the learned module alike.
    """

    def __init__(self, method: str):
        self.method = method

    def eval(self) -> "FillerModel":
        return self

    def __call__(self, x, mask):
        return {"completed": fill_batch(x, mask, self.method)}


def ids_digest(ids) -> str:
    """SHA-1 of a list of clip ids (newline-joined): identifies a test set's clips and their order."""

    return hashlib.sha1("\n".join(str(i) for i in ids).encode("utf-8")).hexdigest()


def code_version() -> str:
    """The finetec version and, in a git checkout, its commit (``+`` when files were modified)."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "src"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"finetec {__version__}"
    return f"finetec {__version__} ({head}{'+' if dirty else ''})"
