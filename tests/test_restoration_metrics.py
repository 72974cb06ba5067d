"""Restoration metrics on hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from finetec.metrics.restoration import mpjpe, mpjve, n_mpjpe


def test_mpjpe_hand_computed():
    gt = np.zeros((1, 3, 2, 2))
    pred = gt.copy()
    pred[0, 1, 0] = [3, 4]      # error 5 (missing)
    pred[0, 1, 1] = [1, 0]      # error 1 (missing)
    pred[0, 0, 0] = [100, 0]    # observed: not scored
    missing = np.zeros((1, 3, 2), bool)
    missing[0, 1] = True
    assert mpjpe(pred, gt, missing) == pytest.approx(3.0)


def test_empty_missing_is_nan():
    x = np.ones((2, 3, 2))
    none = np.zeros((2, 3), bool)
    assert math.isnan(mpjpe(x, x, none)) and math.isnan(n_mpjpe(x, x, none)) and math.isnan(mpjve(x, x, none))


def test_n_mpjpe_removes_scale():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(2, 5, 4, 3))
    missing = rng.random((2, 5, 4)) > 0.5
    pred = gt.copy()
    pred[0] *= 2.0
    pred[1] *= 0.5
    assert mpjpe(pred, gt, missing) > 0.1
    assert n_mpjpe(pred, gt, missing) == pytest.approx(0.0, abs=1e-12)
    # hand-computed: pred = (1, 0), gt = (1, 1) -> s = 1, error 1; pred = (2, 0), gt = (1, 0) -> s = 0.5
    assert n_mpjpe(np.array([[[1.0, 0.0]]]), np.array([[[1.0, 1.0]]]), np.array([[True]])) == pytest.approx(1.0)


def test_mpjve_hand_computed():
    gt = np.zeros((4, 1, 1))
    gt[:, 0, 0] = [0, 1, 2, 3]
    pred = gt.copy()
    pred[2, 0, 0] = 4          # frame 2 missing and wrong by 2
    missing = np.zeros((4, 1), bool)
    missing[2] = True
    # velocity errors on pairs (1,2): +2 and (2,3): -2 -> mean 2; pair (0,1) not scored
    assert mpjve(pred, gt, missing) == pytest.approx(2.0)
    valid = np.ones((4, 1), bool)
    valid[3] = False
    assert mpjve(pred, gt, missing, valid=valid) == pytest.approx(2.0)
    assert mpjpe(pred, gt, missing) == pytest.approx(2.0)


def test_torch_tensors_accepted():
    torch = pytest.importorskip("torch")
    gt = torch.zeros(1, 2, 3, 3)
    pred = gt.clone()
    pred[0, 1] = 1.0
    missing = torch.zeros(1, 2, 3, dtype=torch.bool)
    missing[0, 1] = True
    assert mpjpe(pred.requires_grad_(), gt, missing) == pytest.approx(math.sqrt(3))
    with pytest.raises(ValueError):
        mpjpe(pred, gt[:, :1], missing)


def test_gap_lengths_interior_and_edge_runs():
    from finetec.metrics.restoration import gap_lengths

    observed = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 0], dtype=bool)[:, None]  # (T=11, V=1)
    length, edge = gap_lengths(observed)
    assert length[:, 0].tolist() == [1, 0, 2, 2, 0, 0, 3, 3, 3, 0, 1]
    assert edge[:, 0].tolist() == [True] + [False] * 9 + [True]
    none, none_edge = gap_lengths(np.zeros((4, 2), dtype=bool))  # nothing observed: one edge run
    assert (none == 4).all() and none_edge.all()


def test_mpjpe_by_gap_groups_errors_and_counts():
    from finetec.metrics.restoration import mpjpe_by_gap

    T = 24
    observed = np.ones((T, 1), dtype=bool)
    observed[0] = False            # edge run of 1
    observed[3:5] = False          # interior run of 2  -> "1-3"
    observed[6:12] = False         # interior run of 6  -> "4-7"
    gt = np.zeros((T, 1, 2))
    pred = np.zeros((T, 1, 2))
    pred[0, 0] = [3.0, 4.0]        # edge error 5
    pred[3:5, 0, 0] = 1.0          # error 1
    pred[6:12, 0, 1] = 2.0         # error 2
    r = mpjpe_by_gap(pred, gt, ~observed, observed)
    assert r["edge"]["mpjpe"] == 5.0 and r["edge"]["count"] == 1
    assert r["1-3"]["mpjpe"] == 1.0 and r["1-3"]["count"] == 2
    assert r["4-7"]["mpjpe"] == 2.0 and r["4-7"]["count"] == 6
    assert np.isnan(r["8-15"]["mpjpe"]) and r["8-15"]["count"] == 0
    assert sum(g["share"] for g in r.values()) == 1.0
