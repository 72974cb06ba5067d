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
- Errors by gap (:func:`gap_lengths`, :func:`mpjpe_by_gap`): MPJPE of the missing entries
  grouped by the length of the run of missing frames each one sits in (per joint), with the
  runs that touch the start or end of the clip (nothing observed on one side: extrapolation, not
  interpolation) in a group of their own.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GAP_GROUPS", "GAP_GROUP_NAMES", "gap_lengths", "mpjpe", "mpjpe_by_gap", "mpjve", "n_mpjpe"]

#: Groups of :func:`mpjpe_by_gap`: (name, shortest, longest) interior gap length in frames; "edge"
#: collects the gaps at either end of the clip, whatever their length.
GAP_GROUPS: tuple[tuple[str, int, int], ...] = (("1-3", 1, 3), ("4-7", 4, 7), ("8-15", 8, 15),
                                               ("16+", 16, 1 << 30))
#: Every group :func:`mpjpe_by_gap` reports, in table order.
GAP_GROUP_NAMES: tuple[str, ...] = tuple(g[0] for g in GAP_GROUPS) + ("edge",)


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


def gap_lengths(observed) -> tuple[np.ndarray, np.ndarray]:
    """For every entry of ``observed`` (..., T, V) bool: the length of the run of unobserved
    frames it lies in (0 where observed) and whether that run touches the first or last frame.

    Returns ``(length int64 (..., T, V), at_edge bool (..., T, V))``.
    """
    o = _np(observed, bool)
    if o.ndim < 2:
        raise ValueError(f"observed must be (..., T, V), got shape {o.shape}")
    T = o.shape[-2]
    t = np.arange(T).reshape((T, 1))
    prev = np.maximum.accumulate(np.where(o, t, -1), axis=-2)  # last observed frame at or before t
    nxt = np.flip(np.minimum.accumulate(np.flip(np.where(o, t, T), axis=-2), axis=-2), axis=-2)
    length = np.where(o, 0, nxt - prev - 1).astype(np.int64)
    at_edge = ~o & ((prev < 0) | (nxt >= T))
    return length, at_edge


def mpjpe_by_gap(pred, gt, missing, observed) -> dict[str, dict[str, float]]:
    """MPJPE of the ``missing`` entries grouped by gap length (:data:`GAP_GROUPS`) and ``edge``.

    ``observed`` (..., T, V) bool: what the method saw (the gaps are its unobserved runs).
    Returns ``{group: {"mpjpe": float (nan when empty), "count": scored entries in the group,
    "share": their fraction of all scored entries}}``.
    """
    p, g, m = _np(pred), _np(gt), _np(missing, bool)
    _check(p, g, m)
    length, edge = gap_lengths(observed)
    err = np.linalg.norm(p - g, axis=-1)
    total = max(int(m.sum()), 1)
    groups = [(name, m & ~edge & (length >= lo) & (length <= hi)) for name, lo, hi in GAP_GROUPS]
    groups.append(("edge", m & edge))
    return {name: {"mpjpe": float(err[sel].mean()) if sel.any() else float("nan"), "count": int(sel.sum()),
                   "share": int(sel.sum()) / total} for name, sel in groups}
