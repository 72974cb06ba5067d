"""What a training task computes per batch: the loss, its running statistics, and the
validation metric. Two tasks: ``classification`` (CE + the model's optional ``aux_loss``) and
``completion`` (the completion model's own loss; validated by MPJPE on the missing entries).

Losses are SUMS over the clips of the rank's batch times :func:`loss_weight`, so that the DDP
gradient average equals the mean over the global batch exactly, whatever the split.
"""
from __future__ import annotations

from typing import Any

FILLING = ("linear", "cubic", "copy_lr", "copy_rl")


def model_mask(batch: dict[str, Any], filler: str):
    """The mask handed to the model.

    Without a filler (or with ``zero``) it is the pipeline's mask: observed after corruption.
    With an interpolating filler every joint of a present person now holds a value the model
    should use, so the mask only marks which persons are present (GCN backbones zero the
    entries where the mask is False).
    """
    mask = batch["mask"]
    if filler in FILLING:
        present = mask.flatten(2).any(dim=2)                          # (N, M)
        return present[:, :, None, None].expand_as(mask)
    return mask


def _to(batch: dict[str, Any], device) -> dict[str, Any]:
    return {k: (v.to(device, non_blocking=True) if hasattr(v, "to") else v) for k, v in batch.items()}


class ClassificationTask:
    """Cross-entropy (with label smoothing) plus ``aux_loss`` when the model returns a dict."""

    name = "classification"
    metric = "val_top1"
    higher_is_better = True

    def __init__(self, num_classes: int, filler: str, label_smoothing: float = 0.0):
        self.num_classes, self.filler, self.label_smoothing = num_classes, filler, label_smoothing

    def loss(self, model, batch: dict[str, Any], weight: float, rng=None) -> tuple[Any, dict[str, float]]:
        """(weighted loss tensor, {"loss_sum", "correct", "count"}) for one rank's batch."""
        import torch.nn.functional as F

        out = model(batch["keypoint"], model_mask(batch, self.filler))
        logits = out["logits"] if isinstance(out, dict) else out
        n = logits.shape[0]
        ce = F.cross_entropy(logits.float(), batch["label"], reduction="sum", label_smoothing=self.label_smoothing)
        total = ce
        if isinstance(out, dict) and out.get("aux_loss") is not None:
            total = total + out["aux_loss"].float() * n
        correct = (logits.argmax(dim=1) == batch["label"]).sum().item()
        return total * weight, {"loss_sum": float(total.detach()), "correct": float(correct), "count": float(n)}

    def validate(self, model, loader, device, amp: bool) -> dict[str, float]:
        from finetec.engine.evaluate import run_scores
        from finetec.metrics.classification import mean_class_accuracy, topk_accuracy

        scores, labels, _ = run_scores(model, loader, device, amp, self.filler)
        return {"val_top1": topk_accuracy(scores, labels, 1),
                "val_mean_class": mean_class_accuracy(labels, scores.argmax(1), self.num_classes)}


class CompletionTask:
    """The completion model's loss; validation = MPJPE (also N-MPJPE, MPJVE) on missing entries."""

    name = "completion"
    metric = "val_mpjpe"
    higher_is_better = False

    def __init__(self, num_classes: int = 0, filler: str = "none", label_smoothing: float = 0.0):
        self.filler = filler

    def loss(self, model, batch: dict[str, Any], weight: float, rng=None) -> tuple[Any, dict[str, float]]:
        """The model's loss; ``rng`` (np.random.Generator) drives its prompt sampling when the
        model's forward accepts one (so that runs and resumed runs are reproducible)."""
        kw = {"rng": rng} if rng is not None and _accepts_rng(model) else {}
        out = model(batch["keypoint"], batch["mask"], target=batch["clean"], target_mask=batch["clean_mask"], **kw)
        n = batch["keypoint"].shape[0]
        total = out["loss"].float() * n
        return total * weight, {"loss_sum": float(total.detach()), "correct": 0.0, "count": float(n)}

    def validate(self, model, loader, device, amp: bool) -> dict[str, float]:
        res = completion_errors(model, loader, device, amp)
        return {"val_mpjpe": res["mpjpe"], "val_n_mpjpe": res["n_mpjpe"], "val_mpjve": res["mpjve"]}


def _accepts_rng(model) -> bool:
    import inspect

    from finetec.engine.checkpoint import unwrap

    try:
        return "rng" in inspect.signature(unwrap(model).forward).parameters
    except (TypeError, ValueError):
        return False


def completion_errors(model, loader, device, amp: bool) -> dict[str, Any]:
    """Pooled MPJPE / N-MPJPE / MPJVE of the model's completion on the entries that are missing
    after corruption but observed in the clean clip (pooled over clips, weighted by entries),
    and ``by_gap``: MPJPE per gap-length group (:func:`finetec.metrics.restoration.mpjpe_by_gap`)."""
    import torch

    from finetec.metrics.restoration import GAP_GROUP_NAMES, mpjpe, mpjpe_by_gap, mpjve, n_mpjpe

    sums = {"mpjpe": 0.0, "n_mpjpe": 0.0, "mpjve": 0.0}
    counts = {"mpjpe": 0, "n_mpjpe": 0, "mpjve": 0}
    groups = GAP_GROUP_NAMES
    gap_sum, gap_n = dict.fromkeys(groups, 0.0), dict.fromkeys(groups, 0)
    model.eval()
    with torch.no_grad():
        for batch in loader:
            b = _to(batch, device)
            with autocast(device, amp):
                out = model(b["keypoint"], b["mask"])
            pred = out["completed"].float().cpu().numpy()
            gt = batch["clean"].numpy()
            seen = batch["mask"].numpy()
            missing = (~seen) & batch["clean_mask"].numpy()
            valid = batch["clean_mask"].numpy()
            n_pos = int(missing.sum())
            pair = (missing[..., 1:, :] | missing[..., :-1, :]) & valid[..., 1:, :] & valid[..., :-1, :]
            n_vel = int(pair.sum())
            if n_pos:
                sums["mpjpe"] += mpjpe(pred, gt, missing) * n_pos
                sums["n_mpjpe"] += n_mpjpe(pred, gt, missing) * n_pos
                counts["mpjpe"] += n_pos
                counts["n_mpjpe"] += n_pos
                for name, r in mpjpe_by_gap(pred, gt, missing, seen).items():
                    if r["count"]:
                        gap_sum[name] += r["mpjpe"] * r["count"]
                        gap_n[name] += r["count"]
            if n_vel:
                sums["mpjve"] += mpjve(pred, gt, missing, valid) * n_vel
                counts["mpjve"] += n_vel
    res: dict[str, Any] = {k: (sums[k] / counts[k] if counts[k] else float("nan")) for k in sums}
    res["num_missing"] = counts["mpjpe"]
    total = max(counts["mpjpe"], 1)
    res["by_gap"] = {g: {"mpjpe": gap_sum[g] / gap_n[g] if gap_n[g] else float("nan"), "count": gap_n[g],
                         "share": gap_n[g] / total} for g in groups}
    return res


def autocast(device, amp: bool):
    """bf16 autocast on CUDA when ``amp``; a no-op context elsewhere."""
    import contextlib

    import torch

    if amp and getattr(device, "type", str(device)) == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


TASKS = {"classification": ClassificationTask, "completion": CompletionTask}

__all__ = ["ClassificationTask", "CompletionTask", "TASKS", "autocast", "completion_errors", "model_mask"]
