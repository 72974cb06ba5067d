"""What a training task computes per batch: the loss, its running statistics, and the
validation metric. Two tasks: ``classification`` (CE + the model's optional ``aux_loss``) and
``completion`` (the completion model's own loss; validated by MPJPE on the missing entries).

The trainer knows no task by name: it calls the hooks of its task object. ``prepare(model,
trainer)`` runs once before training (classification: the logits' shape on one batch;
completion: the model's skeleton bank from the training clips); ``split_labels(ds, idx)`` gives
the labels the validation split is stratified on; ``loss`` per batch; ``train_metrics(correct,
count)`` the training row's task metrics; ``validate`` per evaluation.

Losses are SUMS over the clips of the rank's batch times :func:`loss_weight`, so that the DDP
gradient average equals the mean over the global batch exactly, whatever the split.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from finetec.data.fillers import model_mask
from finetec.engine import sanity
from finetec.engine.evaluate import completion_errors, run_scores
from finetec.errors import FinetecError
from finetec.metrics.classification import mean_class_accuracy, topk_accuracy
from finetec.models.checkpoint import unwrap


class ClassificationTask:
    """Cross-entropy (with label smoothing) plus ``aux_loss`` when the model returns a dict."""

    name = "classification"
    metric = "val_top1"
    higher_is_better = True

    def __init__(self, num_classes: int, filler: str, label_smoothing: float = 0.0):
        self.num_classes, self.filler, self.label_smoothing = num_classes, filler, label_smoothing

    def prepare(self, model, trainer) -> None:
        """Check, on one batch, that the model gives one logit per class."""
        probe = trainer.probe_batch()
        model.eval()
        with torch.no_grad():
            sanity.check_logits(model(probe["keypoint"], model_mask(probe["mask"], self.filler)),
                                self.num_classes, trainer.cfg.model.name)

    def split_labels(self, ds, idx: np.ndarray) -> np.ndarray:
        """Labels the validation split is stratified on: the classes."""
        return ds.label[idx]

    def train_metrics(self, correct: float, count: float) -> dict[str, float]:
        return {"train_top1": correct / max(count, 1)}

    def loss(self, model, batch: dict[str, Any], weight: float, rng=None) -> tuple[Any, dict[str, float]]:
        """(weighted loss tensor, {"loss_sum", "correct", "count"}) for one rank's batch."""
        out = model(batch["keypoint"], model_mask(batch["mask"], self.filler))
        logits = out["logits"] if isinstance(out, dict) else out
        n = logits.shape[0]
        ce = F.cross_entropy(logits.float(), batch["label"], reduction="sum", label_smoothing=self.label_smoothing)
        total = ce
        if isinstance(out, dict) and out.get("aux_loss") is not None:
            total = total + out["aux_loss"].float() * n
        correct = (logits.argmax(dim=1) == batch["label"]).sum().item()
        return total * weight, {"loss_sum": float(total.detach()), "correct": float(correct), "count": float(n)}

    def validate(self, model, loader, device, precision: str) -> dict[str, float]:
        scores, labels, _ = run_scores(model, loader, device, precision, self.filler)
        return {"val_top1": topk_accuracy(scores, labels, 1),
                "val_mean_class": mean_class_accuracy(labels, scores.argmax(1), self.num_classes)}


class CompletionTask:
    """The completion model's loss; validation = MPJPE (also N-MPJPE, MPJVE) on missing entries."""

    name = "completion"
    metric = "val_mpjpe"
    higher_is_better = False

    def __init__(self, num_classes: int = 0, filler: str = "none", label_smoothing: float = 0.0):
        self.filler = filler

    def prepare(self, model, trainer) -> None:
        """Fill the model's skeleton bank from the clean training clips."""
        if not hasattr(model, "set_bank"):
            raise FinetecError(f"task completion needs a completion model (with set_bank); "
                               f"{trainer.cfg.model.name!r} is not one", trainer.cfg.source)
        model.set_bank(*trainer.bank_clips())

    def split_labels(self, ds, idx: np.ndarray) -> np.ndarray:
        """No classes: the validation split is a plain random one."""
        return np.zeros(len(idx), np.int64)

    def train_metrics(self, correct: float, count: float) -> dict[str, float]:
        return {}

    def loss(self, model, batch: dict[str, Any], weight: float, rng=None) -> tuple[Any, dict[str, float]]:
        """The model's loss; ``rng`` (np.random.Generator) drives its prompt sampling when the
        model's forward accepts one (so that runs and resumed runs are reproducible)."""
        kw = {"rng": rng} if rng is not None and _accepts_rng(model) else {}
        out = model(batch["keypoint"], batch["mask"], target=batch["clean"], target_mask=batch["clean_mask"], **kw)
        n = batch["keypoint"].shape[0]
        total = out["loss"].float() * n
        return total * weight, {"loss_sum": float(total.detach()), "correct": 0.0, "count": float(n)}

    def validate(self, model, loader, device, precision: str) -> dict[str, float]:
        res = completion_errors(model, loader, device, precision)
        return {"val_mpjpe": res["mpjpe"], "val_n_mpjpe": res["n_mpjpe"], "val_mpjve": res["mpjve"]}


def _accepts_rng(model) -> bool:
    try:
        return "rng" in inspect.signature(unwrap(model).forward).parameters
    except (TypeError, ValueError):
        return False


TASKS = {"classification": ClassificationTask, "completion": CompletionTask}

__all__ = ["ClassificationTask", "CompletionTask", "TASKS"]
