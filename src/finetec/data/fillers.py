"""Gap fillers: the classical baselines that complete missing joints of a clip.

Every filler works per joint trajectory (person m, joint v, over the T frames) independently, on
NumPy arrays ``keypoint (M, T, V, C)`` and ``mask (M, T, V)``. Observed entries are returned
bit-identical. Methods:

- ``zero``: missing entries are 0;
- ``copy_lr``: the last observed value is carried forward (left to right); a leading gap takes the
  first observed value;
- ``copy_rl``: the mirror image: the next observed value is carried backward; a trailing gap takes
  the last observed value;
- ``linear``: linear interpolation between the observed neighbours; constant extrapolation at the
  ends (the first / last observed value);
- ``cubic``: a cubic spline through the observed frames (``scipy.interpolate.CubicSpline`` with the
  not-a-knot end condition; exact on cubic polynomials) inside the observed range and constant
  extrapolation outside it; a trajectory with fewer than 4 observed frames is filled linearly;
- ``none``: no filling (the input is returned unchanged).

A joint never observed in the clip (its whole trajectory is missing while the person has other
observed joints) is filled, frame by frame, with the centroid of that person's filled joints that
were observed at least once (for ``zero``: 0). A person with no observed joint at all (padding)
stays 0.

This is THE gap filler of the project: the pipeline's ``filler`` option, FineTec without its
completion module (:meth:`finetec.models.finetec.FineTec.restore`) and the benchmark's
restoration table all call :func:`fill` (batched torch tensors through :func:`fill_batch`), so an
ablation "without completion" sees exactly, bit for bit, what the linear-filling baseline sees.
The torch function :func:`finetec.models.decomposition.interpolate_gaps` computes the same linear
rule per trajectory (in float64, tested equal to :func:`fill`) where a model needs a
differentiable, on-device re-fill.
"""
from __future__ import annotations

import numpy as np

from finetec.errors import FinetecError

FILLERS: tuple[str, ...] = ("zero", "copy_lr", "copy_rl", "linear", "cubic")

__all__ = ["FILLERS", "fill", "fill_batch", "check_filler"]


def check_filler(method: str) -> str:
    """Validate a filler name (one of FILLERS or "none"); FinetecError otherwise."""
    if method not in FILLERS and method != "none":
        raise FinetecError(f"unknown gap filler {method!r}; choose from none, {', '.join(FILLERS)}")
    return method


def _prev_next(obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For (N, T) bool ``obs``: index of the last observed frame <= t (-1 if none) and of the next
    observed frame >= t (T if none), each (N, T) int."""
    N, T = obs.shape
    t = np.arange(T)
    prev = np.maximum.accumulate(np.where(obs, t, -1), axis=1)
    nxt = np.minimum.accumulate(np.where(obs, t, T)[:, ::-1], axis=1)[:, ::-1]
    return prev, nxt


def _gather(traj: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """traj (N, T, C), idx (N, T) -> (N, T, C) with out[n, t] = traj[n, idx[n, t]]."""
    N, T, C = traj.shape
    flat = (idx + (np.arange(N) * T)[:, None]).reshape(-1)
    return traj.reshape(N * T, C)[flat].reshape(N, T, C)


def _fill_traj(traj: np.ndarray, obs: np.ndarray, method: str) -> np.ndarray:
    """Fill trajectories that have at least one observed frame. traj (N, T, C), obs (N, T)."""
    N, T, C = traj.shape
    if method == "zero":
        return np.where(obs[:, :, None], traj, 0).astype(traj.dtype)
    prev, nxt = _prev_next(obs)
    first = nxt[:, :1]            # first observed frame (every row has one)
    last = prev[:, -1:]           # last observed frame
    if method == "copy_lr":
        return _gather(traj, np.where(prev >= 0, prev, first))
    if method == "copy_rl":
        return _gather(traj, np.where(nxt < T, nxt, last))
    p = np.where(prev >= 0, prev, nxt)
    q = np.where(nxt < T, nxt, prev)
    lin = _linear(traj, p, q)
    if method == "linear":
        return lin
    return _cubic(traj, obs, lin, first[:, 0], last[:, 0])


def _linear(traj: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    T = traj.shape[1]
    t = np.arange(T)[None, :]
    span = (q - p).astype(np.float64)
    w = np.divide(t - p, span, out=np.zeros_like(span), where=span > 0)
    a = _gather(traj, p).astype(np.float64)
    b = _gather(traj, q).astype(np.float64)
    return (a + w[:, :, None] * (b - a)).astype(traj.dtype)


def _cubic(traj: np.ndarray, obs: np.ndarray, lin: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Cubic spline per trajectory, trajectories grouped by identical observed-frame sets."""
    from scipy.interpolate import CubicSpline

    out = lin.copy()
    N, T, C = traj.shape
    counts = obs.sum(axis=1)
    rows = np.flatnonzero(counts >= 4)
    if rows.size == 0:
        return out
    patterns, inverse = np.unique(obs[rows], axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    for g, pat in enumerate(patterns):
        members = rows[inverse == g]
        tk = np.flatnonzero(pat)
        y = traj[members][:, tk].astype(np.float64)          # (n, K, C)
        spline = CubicSpline(tk, np.moveaxis(y, 1, 0), axis=0, bc_type="not-a-knot")
        lo, hi = tk[0], tk[-1]
        inner = np.arange(lo, hi + 1)
        vals = np.moveaxis(spline(inner), 0, 1)              # (n, len(inner), C)
        block = out[members]
        block[:, lo:hi + 1] = vals.astype(traj.dtype)
        out[members] = block
    return out


def fill(keypoint: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """Fill the missing entries of one clip.

    keypoint: (M, T, V, C) float, mask: (M, T, V) bool (True = observed).
    Returns a new (M, T, V, C) array of the same dtype; entries where ``mask`` is True are
    bit-identical to the input. ``method`` is one of :data:`FILLERS` or ``"none"``.
    """
    check_filler(method)
    kp = np.asarray(keypoint)
    mk = np.asarray(mask, dtype=bool)
    if kp.ndim != 4 or mk.shape != kp.shape[:3]:
        raise ValueError(f"expected keypoint (M, T, V, C) and mask (M, T, V), got {kp.shape} and {mk.shape}")
    if method == "none":
        return kp.copy()
    M, T, V, C = kp.shape
    traj = kp.transpose(0, 2, 1, 3).reshape(M * V, T, C)
    obs = mk.transpose(0, 2, 1).reshape(M * V, T)
    seen = obs.any(axis=1)
    filled = np.zeros_like(traj)
    if seen.any():
        if seen.all():
            filled = _fill_traj(traj, obs, method)
        else:
            filled[seen] = _fill_traj(traj[seen], obs[seen], method)
    out = filled.reshape(M, V, T, C).transpose(0, 2, 1, 3)
    if not seen.all() and method != "zero":
        out = _fill_unseen(out, seen.reshape(M, V))
    return np.where(mk[..., None], kp, out).astype(kp.dtype, copy=False)


def _fill_unseen(out: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Joints never observed take their person's per-frame centroid of the joints ever observed."""
    out = out.copy()
    for m in range(out.shape[0]):
        if seen[m].any() and not seen[m].all():
            centroid = out[m][:, seen[m]].mean(axis=1)          # (T, C)
            out[m][:, ~seen[m]] = centroid[:, None, :]
    return out


def fill_batch(x, mask, method: str):
    """:func:`fill` for a batch of torch tensors: x (N, M, T, V, C), mask (N, M, T, V) bool.

    Returns a tensor of x's dtype on x's device, equal bit for bit to :func:`fill` applied to each
    clip (the N clips' persons are filled as N * M persons of one clip: every filler works per
    person). No gradient flows through it: it fills input data.
    """
    import torch

    check_filler(method)
    if x.ndim != 5 or tuple(mask.shape) != tuple(x.shape[:4]):
        raise ValueError(f"expected x (N, M, T, V, C) and mask (N, M, T, V), got {tuple(x.shape)} "
                         f"and {tuple(mask.shape)}")
    N, M, T, V, C = x.shape
    kp = x.detach().cpu().numpy().reshape(N * M, T, V, C)
    mk = mask.detach().cpu().numpy().astype(bool).reshape(N * M, T, V)
    out = fill(kp, mk, method) if method != "none" else kp
    return torch.from_numpy(np.ascontiguousarray(out.reshape(N, M, T, V, C))).to(device=x.device, dtype=x.dtype)
