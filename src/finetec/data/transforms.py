"""Clip transforms on NumPy arrays: temporal sampling, normalisation, augmentation, features.

Shapes: ``keypoint (M, T, V, C)`` (persons, frames, joints, coordinates; C = 2 or 3) and
``mask (M, T, V)`` (True = observed). Every transform keeps unobserved entries at zero and never
lets them influence a result: normalisation parameters come from observed joints only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from finetec.errors import FinetecError
from finetec.layouts import Layout

FEATURES: tuple[str, ...] = ("joint", "bone", "motion", "bone_motion")

__all__ = [
    "FEATURES", "NormParams", "Augmentation", "uniform_indices", "normalization_params",
    "apply_normalization", "invert_normalization", "random_augmentation", "apply_augmentation", "flip", "rotation_matrix",
    "features", "check_features",
]


# -- temporal sampling ----------------------------------------------------------------------------
def uniform_indices(T_src: int, T: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """(T,) int frame indices sampling a clip of ``T_src`` frames to ``T`` frames.

    The source is cut into ``T`` equal segments ``[i*T_src/T, (i+1)*T_src/T)``; frame ``i`` is
    taken at a uniformly random position in its segment when ``rng`` is given (training) and at
    the segment centre otherwise (test). When ``T_src < T`` the segments are shorter than a frame,
    so the same rule repeats source frames uniformly, in order (each about ``T / T_src`` times).
    """
    if T_src < 1 or T < 1:
        raise ValueError(f"need T_src >= 1 and T >= 1, got {T_src}, {T}")
    edges = np.arange(T + 1, dtype=np.float64) * (T_src / T)
    width = edges[1:] - edges[:-1]
    u = rng.random(T) if rng is not None else np.full(T, 0.5)
    idx = np.floor(edges[:-1] + u * width).astype(np.int64)
    return np.clip(idx, 0, T_src - 1)


# -- normalisation --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NormParams:
    """x_normalised = R @ (x - center) / scale. center (C,), scale > 0, rotation (C, C)."""

    center: np.ndarray
    scale: float
    rotation: np.ndarray


def _group_mean(kp: np.ndarray, mk: np.ndarray, joints: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame mean of a joint group where all of its joints are observed.
    kp (T, V, C), mk (T, V) -> (T, C) values and (T,) validity."""
    j = list(joints)
    ok = mk[:, j].all(axis=1)
    return kp[:, j].mean(axis=1), ok


def _primary_person(mask: np.ndarray) -> int:
    """The first person with an observed joint (0 when none is observed)."""
    seen = mask.reshape(mask.shape[0], -1).any(axis=1)
    return int(np.argmax(seen)) if seen.any() else 0


def _axis_vector(kp: np.ndarray, mk: np.ndarray, axis: tuple[Sequence[int], Sequence[int]] | None) -> np.ndarray | None:
    """Mean over frames (where both groups are observed) of the vector from group 0 to group 1."""
    if axis is None:
        return None
    a, oka = _group_mean(kp, mk, axis[0])
    b, okb = _group_mean(kp, mk, axis[1])
    ok = oka & okb
    if not ok.any():
        return None
    v = (b - a)[ok].mean(axis=0).astype(np.float64)
    return v if np.linalg.norm(v) > 1e-8 else None


def _torso_length(kp: np.ndarray, mk: np.ndarray, layout: Layout) -> float | None:
    """Median over observed frames of the distance between the up-axis joint groups."""
    if layout.up_axis is None:
        return None
    a, oka = _group_mean(kp, mk, layout.up_axis[0])
    b, okb = _group_mean(kp, mk, layout.up_axis[1])
    ok = oka & okb
    if not ok.any():
        return None
    d = float(np.median(np.linalg.norm((b - a)[ok], axis=-1)))
    return d if d > 1e-6 else None


def _view_rotation(up: np.ndarray | None, across: np.ndarray | None, C: int) -> np.ndarray:
    """The rotation taking ``up`` to +y and (3D) ``across`` to +x (Gram-Schmidt)."""
    R = np.eye(C)
    if up is None:
        return R
    y = up / np.linalg.norm(up)
    if C == 2:
        # in-plane rotation mapping y onto (0, 1)
        return np.array([[y[1], -y[0]], [y[0], y[1]]])
    if across is None:
        return R
    x = across - np.dot(across, y) * y
    if np.linalg.norm(x) < 1e-8:
        return R
    x = x / np.linalg.norm(x)
    z = np.cross(x, y)
    return np.stack([x, y, z])


def normalization_params(keypoint: np.ndarray, mask: np.ndarray, layout: Layout, align_view: bool = False) -> NormParams:
    """Normalisation parameters of one clip, from its OBSERVED joints only.

    keypoint (M, T, V, C), mask (M, T, V). The reference person is the first with an observed
    joint. Centre: mean over observed frames of the layout's centre joints of that person (if
    none is ever observed: mean of all its observed joints). Scale (2D): median over observed
    frames of the torso length (distance between the layout's up-axis joint groups); if it cannot
    be measured, the RMS distance of the observed joints from the centre; 3D clips keep their
    metric scale (1). ``align_view`` rotates the body's up direction (up-axis groups) to +y and,
    in 3D, its right->left direction (across-axis groups) to +x, averaged over observed frames.
    A clip with nothing observed gets the identity.
    """
    kp = np.asarray(keypoint, dtype=np.float64)
    mk = np.asarray(mask, dtype=bool)
    C = kp.shape[-1]
    ident = NormParams(np.zeros(C), 1.0, np.eye(C))
    if not mk.any():
        return ident
    m = _primary_person(mk)
    pk, pm = kp[m], mk[m]
    cm = pm[:, list(layout.center)]
    if cm.any():
        center = kp[m][:, list(layout.center)][cm].mean(axis=0)
    else:
        center = pk[pm].mean(axis=0)
    scale = 1.0
    if C == 2:
        torso = _torso_length(pk, pm, layout)
        if torso is not None:
            scale = torso
        else:
            rms = float(np.sqrt(((kp[mk] - center) ** 2).sum(axis=-1).mean()))
            scale = rms if rms > 1e-6 else 1.0
    R = np.eye(C)
    if align_view:
        R = _view_rotation(_axis_vector(pk, pm, layout.up_axis), _axis_vector(pk, pm, layout.across_axis), C)
    return NormParams(center=center, scale=float(scale), rotation=R)


def apply_normalization(keypoint: np.ndarray, mask: np.ndarray, params: NormParams) -> np.ndarray:
    """(M, T, V, C) float32: ``R (x - center) / scale`` on observed entries, 0 elsewhere."""
    kp = np.asarray(keypoint, dtype=np.float64)
    out = ((kp - params.center) @ params.rotation.T) / params.scale
    return np.where(np.asarray(mask, bool)[..., None], out, 0.0).astype(np.float32)


def invert_normalization(keypoint: np.ndarray, params: NormParams) -> np.ndarray:
    """Undo :func:`apply_normalization` on every entry: ``x = R^T (scale * x_n) + center``.
    (..., C) -> float32 (..., C). Use it to bring completed clips back to input coordinates."""
    x = np.asarray(keypoint, dtype=np.float64) * params.scale
    return (x @ params.rotation + params.center).astype(np.float32)


# -- augmentation ---------------------------------------------------------------------------------
def rotation_matrix(angles: Sequence[float]) -> np.ndarray:
    """3D: R = Rz @ Ry @ Rx from angles (rx, ry, rz) in radians; 2D: in-plane from (angle,)."""
    if len(angles) == 1:
        c, s = np.cos(angles[0]), np.sin(angles[0])
        return np.array([[c, -s], [s, c]])
    rx, ry, rz = angles
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


@dataclass(frozen=True)
class Augmentation:
    """x' = scale * R @ x, then (if ``flip``) the left/right flip."""

    rotation: np.ndarray
    scale: float
    flip: bool


def random_augmentation(
    rng: np.random.Generator, dim: int, max_angle_deg: float = 15.0, scale_range: tuple[float, float] = (0.9, 1.1),
    flip_prob: float = 0.5,
) -> Augmentation:
    """Draw one augmentation: rotation by up to ``max_angle_deg`` about each axis (3D) or in-plane
    (2D), a uniform scale in ``scale_range`` and a left/right flip with probability ``flip_prob``.
    The draws happen in a fixed order (angles, scale, flip)."""
    n = 3 if dim == 3 else 1
    angles = np.deg2rad(rng.uniform(-max_angle_deg, max_angle_deg, size=n))
    scale = float(rng.uniform(*scale_range))
    do_flip = bool(rng.random() < flip_prob)
    return Augmentation(rotation=rotation_matrix(angles), scale=scale, flip=do_flip)


def flip(keypoint: np.ndarray, mask: np.ndarray, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Left/right flip: swap the layout's flip pairs and mirror the x coordinate (about x = 0,
    the body centre after normalisation). Returns new (keypoint, mask)."""
    perm = layout.flip_permutation
    kp = np.array(keypoint[:, :, perm], copy=True)
    mk = np.array(mask[:, :, perm], copy=True)
    kp[..., 0] = -kp[..., 0]
    kp[~mk] = 0
    return kp, mk


def apply_augmentation(keypoint: np.ndarray, mask: np.ndarray, aug: Augmentation, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Apply ``aug`` to one clip; unobserved entries stay 0. Returns (keypoint float32, mask)."""
    kp = (np.asarray(keypoint, dtype=np.float64) @ aug.rotation.T) * aug.scale
    mk = np.asarray(mask, dtype=bool)
    kp = np.where(mk[..., None], kp, 0.0)
    if aug.flip:
        kp, mk = flip(kp, mk, layout)
    return kp.astype(np.float32), mk


# -- features -------------------------------------------------------------------------------------
def check_features(kinds: Sequence[str]) -> tuple[str, ...]:
    """Validate feature names; FinetecError for an unknown or empty list."""
    kinds = tuple(kinds)
    if not kinds:
        raise FinetecError("at least one feature is needed (joint, bone, motion, bone_motion)")
    bad = [k for k in kinds if k not in FEATURES]
    if bad:
        raise FinetecError(f"unknown feature(s) {', '.join(map(repr, bad))}; choose from {', '.join(FEATURES)}")
    return kinds


def _bone(kp: np.ndarray, mk: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    b = kp - kp[:, :, parents]
    ok = mk & mk[:, :, parents]
    return np.where(ok[..., None], b, 0.0), ok


def _motion(kp: np.ndarray, mk: np.ndarray) -> np.ndarray:
    d = np.zeros_like(kp)
    d[:, :-1] = kp[:, 1:] - kp[:, :-1]
    ok = np.zeros_like(mk)
    ok[:, :-1] = mk[:, 1:] & mk[:, :-1]
    return np.where(ok[..., None], d, 0.0)


def features(keypoint: np.ndarray, mask: np.ndarray, layout: Layout, kinds: Sequence[str] = ("joint",)) -> np.ndarray:
    """(M, T, V, C * len(kinds)) float32, the requested features concatenated on channels.

    - ``joint``: the coordinates;
    - ``bone``: joint minus its parent (``layout.parents``; the root's bone is 0);
    - ``motion``: next-frame difference ``x[t+1] - x[t]`` (last frame 0);
    - ``bone_motion``: the motion of the bone vectors.
    An entry is 0 wherever one of the joints it is computed from is unobserved.
    """
    kinds = check_features(kinds)
    kp = np.asarray(keypoint, dtype=np.float32)
    mk = np.asarray(mask, dtype=bool)
    parents = layout.parents
    out = []
    bone = None
    for k in kinds:
        if k == "joint":
            out.append(np.where(mk[..., None], kp, 0.0))
        elif k == "motion":
            out.append(_motion(kp, mk))
        else:
            if bone is None:
                bone = _bone(kp, mk, parents)
            out.append(bone[0] if k == "bone" else _motion(bone[0], bone[1]))
    return np.concatenate(out, axis=-1).astype(np.float32)
