"""Recognition metrics on NumPy arrays: top-k accuracy, mean-class accuracy, confusion matrix.

``scores`` are (N, K) class scores (logits or probabilities: only their order matters),
``labels`` are (N,) integer class indices in ``0..K-1``.
"""
from __future__ import annotations

import numpy as np


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (N, K), got shape {scores.shape}")
    if scores.shape[0] != labels.shape[0]:
        raise ValueError(f"{scores.shape[0]} score rows for {labels.shape[0]} labels")
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(f"labels outside 0..{scores.shape[1] - 1}")
    return scores, labels


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of samples whose label is among the k highest scores (nan when N = 0).

    Ties are broken towards the lower class index (a stable sort), so a constant score row
    predicts class 0 — never an accidental win for every class.
    """
    scores, labels = _check(scores, labels)
    if labels.size == 0:
        return float("nan")
    k = min(k, scores.shape[1])
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((order == labels[:, None]).any(axis=1).mean())


def predictions(scores: np.ndarray) -> np.ndarray:
    """(N,) argmax class per row (lowest index on ties)."""
    return np.argmax(np.asarray(scores), axis=1)


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts: row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    preds = np.asarray(preds, dtype=np.int64).reshape(-1)
    if labels.shape != preds.shape:
        raise ValueError("labels and predictions differ in length")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, preds), 1)
    return cm


def mean_class_accuracy(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> float:
    """Mean over classes PRESENT in ``labels`` of that class's recall (nan when N = 0)."""
    cm = confusion_matrix(labels, preds, num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float((np.diag(cm)[present] / support[present]).mean())


def classification_report(scores: np.ndarray, labels: np.ndarray) -> dict:
    """top1, top5, mean_class (mean per-class recall) and the confusion matrix (as lists)."""
    scores, labels = _check(scores, labels)
    K = scores.shape[1]
    preds = predictions(scores)
    return {
        "top1": topk_accuracy(scores, labels, 1),
        "top5": topk_accuracy(scores, labels, 5),
        "mean_class": mean_class_accuracy(labels, preds, K),
        "confusion": confusion_matrix(labels, preds, K).tolist(),
    }


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax (float64)."""
    s = np.asarray(scores, dtype=np.float64)
    s = s - s.max(axis=axis, keepdims=True)
    e = np.exp(s)
    return e / e.sum(axis=axis, keepdims=True)


__all__ = ["topk_accuracy", "predictions", "confusion_matrix", "mean_class_accuracy",
           "classification_report", "softmax"]
