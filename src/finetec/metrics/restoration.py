"""Restoration metrics for completed skeleton clips, scored on the missing entries only.

Arrays are ``(..., T, V, C)`` (any leading dims, e.g. (N, M, T, V, C)); ``missing`` is
``(..., T, V)`` bool and selects the entries to score. NumPy arrays and torch tensors are both
accepted; results are Python floats in the units of the input. All means are pooled over the
scored entries (not a mean of per-clip means). When nothing is scored the result is ``nan``
(so that "no missing frame" is never mistaken for a perfect restoration).

- MPJPE: mean Euclidean distance between prediction and ground truth.
- N-MPJPE: MPJPE after scaling each clip's prediction by the least-squares optimal scalar
  ``s = <pred, gt> / <pred, pred>`` computed on that clip's scored entries (Rhodin et al., 2018).
  A "clip" is one index of the leading dims.
- MPJVE: mean Euclidean distance between the velocities (first differences along T) of
  prediction and ground truth, over the frame pairs (t, t+1) where frame t or t+1 of that joint
  is missing (and, when ``valid`` is given, both frames have a ground truth).
"""
from __future__ import annotations

import numpy as np

__all__ = ["mpjpe", "n_mpjpe", "mpjve"]


def _np(x, dtype=np.float64) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _check(pred: np.ndarray, gt: np.ndarray, missing: np.ndarray) -> None:
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} differ in shape")
    if pred.ndim < 3 or missing.shape != pred.shape[:-1]:
        raise ValueError(f"missing must be (..., T, V) = {pred.shape[:-1]}, got {missing.shape}")


def mpjpe(pred, gt, missing) -> float:
    """Mean per-joint position error over the ``missing`` entries. pred, gt (..., T, V, C)."""
    p, g, m = _np(pred), _np(gt), _np(missing, bool)
    _check(p, g, m)
    if not m.any():
        return float("nan")
    return float(np.linalg.norm(p - g, axis=-1)[m].mean())


def n_mpjpe(pred, gt, missing) -> float:
    """MPJPE after per-clip optimal scaling of ``pred`` (scale fitted on the scored entries)."""
    p, g, m = _np(pred), _np(gt), _np(missing, bool)
    _check(p, g, m)
    if not m.any():
        return float("nan")
    lead = p.shape[:-3]
    w = m[..., None]
    red = (-3, -2, -1)
    num = (p * g * w).sum(axis=red)
    den = (p * p * w).sum(axis=red)
    s = np.divide(num, den, out=np.ones(lead), where=den > 0)
    scaled = p * np.reshape(s, lead + (1, 1, 1))
    return float(np.linalg.norm(scaled - g, axis=-1)[m].mean())


def mpjve(pred, gt, missing, valid=None) -> float:
    """Mean per-joint velocity error over frame pairs touching a missing entry.

    ``valid`` (..., T, V) bool, optional: where the ground truth exists; pairs need both ends valid.
    """
    p, g, m = _np(pred), _np(gt), _np(missing, bool)
    _check(p, g, m)
    if p.shape[-3] < 2:
        return float("nan")
    dv = np.diff(p, axis=-3) - np.diff(g, axis=-3)
    pair = m[..., 1:, :] | m[..., :-1, :]
    if valid is not None:
        v = _np(valid, bool)
        pair &= v[..., 1:, :] & v[..., :-1, :]
    if not pair.any():
        return float("nan")
    return float(np.linalg.norm(dv, axis=-1)[pair].mean())
