"""Recognition metrics on hand-computed cases."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.metrics.classification import (classification_report, confusion_matrix, mean_class_accuracy,
                                            softmax, topk_accuracy)

SCORES = np.array([
    [0.9, 0.05, 0.03, 0.02],   # label 0: top1 hit
    [0.1, 0.2, 0.6, 0.1],      # label 1: rank 2 (top1 miss, top2 hit)
    [0.4, 0.3, 0.2, 0.1],      # label 3: rank 4
    [0.0, 0.0, 0.1, 0.9],      # label 3: hit
])
LABELS = np.array([0, 1, 3, 3])


def test_topk():
    assert topk_accuracy(SCORES, LABELS, 1) == 0.5
    assert topk_accuracy(SCORES, LABELS, 2) == 0.75
    assert topk_accuracy(SCORES, LABELS, 3) == 0.75
    assert topk_accuracy(SCORES, LABELS, 5) == 1.0  # k > K clips to K
    assert np.isnan(topk_accuracy(np.zeros((0, 3)), np.zeros(0), 1))


def test_ties_do_not_count_as_hits():
    flat = np.zeros((3, 4))
    assert topk_accuracy(flat, np.array([0, 1, 2]), 1) == pytest.approx(1 / 3)


def test_confusion_and_mean_class():
    preds = np.array([0, 2, 0, 3])
    cm = confusion_matrix(LABELS, preds, 4)
    expect = np.zeros((4, 4), int)
    expect[0, 0] = 1; expect[1, 2] = 1; expect[3, 0] = 1; expect[3, 3] = 1
    assert (cm == expect).all()
    # class recalls: 0 -> 1, 1 -> 0, 3 -> 0.5 (class 2 absent, not counted)
    assert mean_class_accuracy(LABELS, preds, 4) == pytest.approx(0.5)


def test_mean_class_differs_from_top1_on_imbalance():
    labels = np.array([0] * 9 + [1])
    preds = np.zeros(10, int)
    assert mean_class_accuracy(labels, preds, 2) == 0.5
    rep = classification_report(np.eye(2)[preds], labels)
    assert rep["top1"] == 0.9 and rep["mean_class"] == 0.5 and rep["confusion"] == [[9, 0], [1, 0]]


def test_bad_input():
    with pytest.raises(ValueError):
        topk_accuracy(SCORES, np.array([0, 1, 2, 4]))
    with pytest.raises(ValueError):
        topk_accuracy(SCORES, LABELS[:3])


def test_softmax():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(p, [[0.5, 0.5], [0.25, 0.75]])
