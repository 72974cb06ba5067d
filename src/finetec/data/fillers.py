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

This is THE gap filler of the project, with one NumPy path and one torch path giving the same
numbers bit for bit (tested against each other):

- :func:`fill` (NumPy, one clip): the pipeline's ``filler`` option, i.e. every baseline;
- :func:`fill_batch` (torch, a batch, on the tensors' device): the one adapter for batched torch
  filling, used by FineTec without its completion module
  (:meth:`finetec.models.finetec.FineTec.restore`), the benchmark's restoration table
  (``linear`` row) and :meth:`finetec.api.Predictor.complete`; ``linear`` runs in torch
  (:func:`fill_linear`, differentiable, no copy to the CPU), the other methods through :func:`fill`;
- :func:`fill_linear` (torch, differentiable): the ``linear`` rule with the centroid rule for a
  joint never observed; the completion module's linear pre-fill;
- :func:`interpolate_gaps` (torch, differentiable): the per-trajectory linear rule alone (no
  centroid), for a re-fill where every trajectory has an observation (FineTec's decomposition
  re-fills dropped frames with it).

So the ablation "without completion" sees exactly, bit for bit, what the linear-filling baseline
sees, and the completion module starts from the same linear fill.

:func:`model_mask` says which mask a classifier receives after a filler ran.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from finetec.errors import FinetecError

FILLERS: tuple[str, ...] = ("zero", "copy_lr", "copy_rl", "linear", "cubic")
# fillers that give every joint of a present person a value the model should use
FILLING: tuple[str, ...] = ("linear", "cubic", "copy_lr", "copy_rl")

__all__ = ["FILLERS", "FILLING", "fill", "fill_batch", "fill_linear", "interpolate_gaps", "check_filler",
           "model_mask"]


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
    """Joints never observed take their person's per-frame centroid of the joints ever observed
    (the mean in the array's dtype, summed joint after joint; :func:`fill_linear` sums in the same
    order, so both give the same bits)."""
    out = out.copy()
    for m in range(out.shape[0]):
        if seen[m].any() and not seen[m].all():
            centroid = out[m][:, seen[m]].mean(axis=1)          # (T, C)
            out[m][:, ~seen[m]] = centroid[:, None, :]
    return out


def observed_neighbours(observed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For every position along dim 1 of ``observed`` (B, T, ...) bool: the index of the last
    observed frame at or before it (-1 if none) and of the first at or after it (T if none)."""
    T = observed.shape[1]
    shape = [1] * observed.ndim
    shape[1] = T
    t = torch.arange(T, device=observed.device).view(shape).expand_as(observed)
    prev = torch.where(observed, t, torch.full_like(t, -1)).cummax(dim=1).values
    nxt = torch.where(observed, t, torch.full_like(t, T)).flip(1).cummin(dim=1).values.flip(1)
    return prev, nxt


def interpolate_gaps(x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The ``linear`` rule per trajectory, in torch: fill unobserved entries along time (dim 1).

    x: (B, T, ...) or (B, T, ..., C) values; observed: bool of shape x.shape without the trailing
    coordinate axis (B, T, ...) or with it (same shape as x), True where a value is known.
    Between two observed frames the value is interpolated linearly; before the first / after the
    last observed frame the nearest observed value is repeated; a trajectory with no observed frame
    becomes zeros (:func:`fill_linear` adds the centroid rule for those). Observed entries are
    returned bit-identical. Computed in float64 like :func:`fill` (float32 on MPS, which has no
    float64). Differentiable with respect to x.
    """
    per_joint = observed.shape != x.shape   # one mask for all coordinates: neighbours found once
    observed = observed.bool()
    T = x.shape[1]
    shape = [1] * observed.ndim
    shape[1] = T
    t = torch.arange(T, device=x.device).view(shape)
    prev, nxt = observed_neighbours(observed)
    has_prev, has_next = prev >= 0, nxt < T
    p = torch.where(has_prev, prev, torch.where(has_next, nxt, torch.zeros_like(prev)))
    n = torch.where(has_next, nxt, p)
    wide = torch.float64 if x.device.type != "mps" else torch.float32
    span = (n - p).to(wide)
    w = torch.where(n > p, (t - p).to(wide) / span.clamp(min=1), torch.zeros_like(span))
    known = has_prev | has_next
    if per_joint:
        p, n, w = p.unsqueeze(-1).expand_as(x), n.unsqueeze(-1).expand_as(x), w.unsqueeze(-1)
        known, observed = known.unsqueeze(-1), observed.unsqueeze(-1)
    xp, xn = x.gather(1, p).to(wide), x.gather(1, n).to(wide)
    filled = (xp + w * (xn - xp)).to(x.dtype)
    filled = torch.where(known, filled, torch.zeros_like(filled))
    return torch.where(observed, x, filled)


def fill_linear(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """:func:`fill` with ``linear`` in torch, for persons along the leading dimensions.

    x: (..., T, V, C), mask: (..., T, V) bool; every leading index is one person. Gives the same
    bits as :func:`fill` (tested), including a joint never observed in the clip (its person's
    per-frame centroid of the joints observed at least once) and a person never observed (zeros).
    Differentiable with respect to x; runs on x's device.
    """
    lead = x.shape[:-3]
    T, V, C = x.shape[-3:]
    xs = x.reshape((-1, T, V, C))
    ms = mask.reshape((-1, T, V)).bool()
    out = interpolate_gaps(xs, ms)
    seen = ms.any(dim=1)                                               # (P, V)
    partial = seen.any(dim=1) & ~seen.all(dim=1)                       # persons with an unseen joint
    if bool(partial.any()):
        acc = torch.zeros_like(out[:, :, 0])                           # (P, T, C)
        for v in range(V):                                             # joint after joint, as NumPy
            acc = acc + torch.where(seen[:, v, None, None], out[:, :, v], torch.zeros_like(acc))
        centroid = acc / seen.sum(dim=1).clamp(min=1).to(out.dtype)[:, None, None]
        unseen = (partial[:, None] & ~seen)[:, None, :, None]          # (P, 1, V, 1)
        out = torch.where(unseen, centroid[:, :, None, :], out)
    return out.reshape(lead + (T, V, C))


def fill_batch(x, mask, method: str):
    """:func:`fill` for a batch of torch tensors: x (N, M, T, V, C), mask (N, M, T, V) bool.

    Returns a tensor of x's dtype on x's device, equal bit for bit to :func:`fill` applied to each
    clip (the N clips' persons are filled as N * M persons of one clip: every filler works per
    person). ``linear`` runs in torch on x's device (:func:`fill_linear`); the other methods go
    through :func:`fill` on the CPU, with no gradient (they fill input data).
    """
    check_filler(method)
    if x.ndim != 5 or tuple(mask.shape) != tuple(x.shape[:4]):
        raise ValueError(f"expected x (N, M, T, V, C) and mask (N, M, T, V), got {tuple(x.shape)} "
                         f"and {tuple(mask.shape)}")
    if method == "linear":
        return fill_linear(x, mask)
    N, M, T, V, C = x.shape
    kp = x.detach().cpu().numpy().reshape(N * M, T, V, C)
    mk = mask.detach().cpu().numpy().astype(bool).reshape(N * M, T, V)
    out = fill(kp, mk, method) if method != "none" else kp
    return torch.from_numpy(np.ascontiguousarray(out.reshape(N, M, T, V, C))).to(device=x.device, dtype=x.dtype)


def model_mask(mask: Any, filler: str) -> Any:
    """The mask a classifier receives for a clip whose missing entries ``filler`` filled.

    Without a filler (or with ``zero``) it is ``mask`` itself: observed after corruption. With an
    interpolating filler (:data:`FILLING`) every joint of a present person now holds a value the
    model should use, so the mask only marks which persons are present (GCN backbones zero the
    entries where the mask is False). ``mask``: (N, M, T, V) bool tensor.
    """
    if filler in FILLING:
        present = mask.flatten(2).any(dim=2)                          # (N, M)
        return present[:, :, None, None].expand_as(mask)
    return mask
