"""Module 3 of FineTec: physics-driven (Lagrangian) acceleration estimation.

For each person the generalised coordinates are the flattened joint coordinates
``q_t in R^D`` (D = V * C). A network reads local features (``q_t`` and the velocity
``q_dot_t``) and a global code of the whole sequence and predicts, per frame, the terms of the
Lagrangian equation of motion ``M(q) q_ddot + C(q, q_dot) q_dot + g(q) = tau``:

- ``M^-1`` as a symmetric matrix (built from a predicted upper triangle / symmetric blocks /
  diagonal plus low-rank factor, see ``matrix_structure``),
- ``C`` (D x D in the same structure, not necessarily symmetric), ``g`` (D) and ``tau`` (D),

so that ``q_ddot = M^-1 tau - C q_dot - g``. The pseudo acceleration ``a_hat`` is the central
second difference of q (dt = 1 frame; the two edge frames repeat their neighbour's value). The
output acceleration is a learned per-coordinate gate ``a = s * a_hat + (1 - s) * q_ddot`` and the
auxiliary loss is ``L_Ac = MSE(a_hat, a)``.

Matrix structures (D x D matrices per frame):

- ``full``: all entries (D (D + 1) / 2 for M^-1, D^2 for C); fine for 2D layouts (coco17: D = 34);
- ``block``: block-diagonal with one C x C block per joint (default: cheap for any D);
- ``lowrank``: ``diag(d) + U U^T / (r D)`` for M^-1 and ``diag(c) + P Q^T / (r D)`` for C, rank r.

Every predicted entry passes through tanh and the matrices are scaled by their block size (D for
the dense parts), so every row of M^-1 and C has an L1 norm of at most 1 (2 for ``lowrank``) and
``|q_ddot| <= 3 * accel_scale`` (5 for ``lowrank``) whatever the input.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

__all__ = ["MATRIX_STRUCTURES", "LagrangianAcceleration", "velocity", "pseudo_acceleration"]

MATRIX_STRUCTURES = ("full", "block", "lowrank")


def velocity(q: torch.Tensor) -> torch.Tensor:
    """(B, T, D) central first difference of q (B, T, D) along time; one-sided at the edges."""
    T = q.shape[1]
    if T < 2:
        return torch.zeros_like(q)
    inner = (q[:, 2:] - q[:, :-2]) / 2
    return torch.cat([q[:, 1:2] - q[:, :1], inner, q[:, -1:] - q[:, -2:-1]], dim=1)


def pseudo_acceleration(q: torch.Tensor) -> torch.Tensor:
    """(B, T, D) central second difference ``q_{t+1} - 2 q_t + q_{t-1}`` (dt = 1 frame).

    The first and last frames repeat the value of their inner neighbour; clips shorter than three
    frames have zero acceleration.
    """
    T = q.shape[1]
    if T < 3:
        return torch.zeros_like(q)
    inner = q[:, 2:] - 2 * q[:, 1:-1] + q[:, :-2]
    return torch.cat([inner[:, :1], inner, inner[:, -1:]], dim=1)


@functools.lru_cache(maxsize=None)
def _symmetric_index(n: int) -> np.ndarray:
    """(n * n,) position in the row-major upper triangle (``triu_indices`` order) of each (i, j)."""
    rows, cols = np.triu_indices(n)
    pos = np.empty((n, n), dtype=np.int64)
    pos[rows, cols] = np.arange(rows.size)
    pos[cols, rows] = np.arange(rows.size)
    return pos.reshape(-1)


def _symmetric_from_upper(values: torch.Tensor, n: int) -> torch.Tensor:
    """(..., n(n+1)/2) upper-triangle entries -> (..., n, n) symmetric matrices (one gather with a
    constant index, which also exports to ONNX)."""
    idx = torch.from_numpy(_symmetric_index(n)).to(values.device)
    return values.index_select(-1, idx).view(values.shape[:-1] + (n, n))


class LagrangianAcceleration(nn.Module):
    """Acceleration of a skeleton sequence from a learned Lagrangian model plus finite differences.

    Args:
        num_joints: V. channels: C (2 or 3). D = V * C.
        hidden: width of the local / global encoders.
        matrix_structure: ``full``, ``block`` or ``lowrank`` (see the module docstring).
        rank: rank of the low-rank factors.
        accel_scale: initial scale of the predicted q_ddot (learned, in normalised units per frame^2).

    forward(x (N, M, T, V, C), present (N, M) bool | None) -> dict with ``a`` (N, M, T, V, C) the
    fused acceleration, ``a_hat`` the pseudo acceleration, ``q_ddot`` the Lagrangian acceleration,
    and ``loss`` the scalar MSE(a_hat, a) over the persons present.
    """

    def __init__(self, num_joints: int, channels: int, hidden: int = 64, matrix_structure: str = "block",
                 rank: int = 8, accel_scale: float = 0.05):
        super().__init__()
        if matrix_structure not in MATRIX_STRUCTURES:
            raise ValueError(f"matrix_structure must be one of {MATRIX_STRUCTURES}, got {matrix_structure!r}")
        self.V, self.C = int(num_joints), int(channels)
        self.D = D = self.V * self.C
        self.structure = matrix_structure
        self.rank = int(rank)
        self.local = nn.Sequential(nn.Linear(2 * D, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.global_in = nn.Sequential(nn.Linear(2 * D, hidden), nn.GELU())
        self.global_out = nn.Linear(hidden, hidden)
        if matrix_structure == "full":
            n_minv, n_c = D * (D + 1) // 2, D * D
        elif matrix_structure == "block":
            n_minv, n_c = self.V * self.C * (self.C + 1) // 2, self.V * self.C * self.C
        else:
            n_minv, n_c = D + D * self.rank, D + 2 * D * self.rank
        self.head_minv = nn.Linear(hidden, n_minv)
        self.head_c = nn.Linear(hidden, n_c)
        self.head_g = nn.Linear(hidden, D)
        self.head_tau = nn.Linear(hidden, D)
        self.gate = nn.Linear(hidden, D)
        self.log_scale = nn.Parameter(torch.tensor(math.log(accel_scale)))

    # -- matrices ----------------------------------------------------------------------------
    def inverse_mass(self, h: torch.Tensor) -> torch.Tensor:
        """The symmetric M^-1 per frame as a dense (B, T, D, D) matrix (for inspection and tests)."""
        raw = torch.tanh(self.head_minv(h))
        if self.structure == "full":
            return _symmetric_from_upper(raw, self.D) / self.D
        if self.structure == "block":
            k = self.C * (self.C + 1) // 2
            blocks = _symmetric_from_upper(raw.unflatten(-1, (self.V, k)), self.C) / self.C
            return _block_dense(blocks)
        d, u = raw[..., :self.D], raw[..., self.D:].unflatten(-1, (self.D, self.rank))
        return torch.diag_embed(d) + u @ u.transpose(-1, -2) / (self.rank * self.D)

    def _minv_apply(self, raw: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
        if self.structure == "full":
            m = _symmetric_from_upper(raw, self.D) / self.D
            return (m @ tau.unsqueeze(-1)).squeeze(-1)
        if self.structure == "block":
            k = self.C * (self.C + 1) // 2
            m = _symmetric_from_upper(raw.unflatten(-1, (self.V, k)), self.C) / self.C  # (B,T,V,C,C)
            return (m @ tau.unflatten(-1, (self.V, self.C)).unsqueeze(-1)).squeeze(-1).flatten(-2)
        d, u = raw[..., :self.D], raw[..., self.D:].unflatten(-1, (self.D, self.rank))
        return d * tau + (u @ (u.transpose(-1, -2) @ tau.unsqueeze(-1))).squeeze(-1) / (self.rank * self.D)

    def _c_apply(self, raw: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.structure == "full":
            c = raw.unflatten(-1, (self.D, self.D)) / self.D
            return (c @ v.unsqueeze(-1)).squeeze(-1)
        if self.structure == "block":
            c = raw.unflatten(-1, (self.V, self.C, self.C)) / self.C
            return (c @ v.unflatten(-1, (self.V, self.C)).unsqueeze(-1)).squeeze(-1).flatten(-2)
        r = self.rank
        d = raw[..., :self.D]
        p = raw[..., self.D:self.D + self.D * r].unflatten(-1, (self.D, r))
        qf = raw[..., self.D + self.D * r:].unflatten(-1, (self.D, r))
        return d * v + (p @ (qf.transpose(-1, -2) @ v.unsqueeze(-1))).squeeze(-1) / (r * self.D)

    # -- forward -----------------------------------------------------------------------------
    def encode(self, q: torch.Tensor, qd: torch.Tensor) -> torch.Tensor:
        """(B, T, hidden) features from positions and velocities (B, T, D): local + global code."""
        z = torch.cat([q, qd], dim=-1)
        glob = self.global_out(self.global_in(z).mean(dim=1, keepdim=True))
        return nn.functional.gelu(self.local(z) + glob)

    def lagrangian(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(q_ddot, h) for q (B, T, D): the Lagrangian acceleration and the frame features."""
        qd = velocity(q)
        h = self.encode(q, qd)
        tau = torch.tanh(self.head_tau(h))
        g = torch.tanh(self.head_g(h))
        minv_tau = self._minv_apply(torch.tanh(self.head_minv(h)), tau)
        c_qd = self._c_apply(torch.tanh(self.head_c(h)), torch.tanh(qd))
        return self.log_scale.exp() * (minv_tau - c_qd - g), h

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        N, M, T, V, C = x.shape
        if V * C != self.D:
            raise ValueError(f"expected V*C = {self.D} coordinates per frame, got {V}x{C}")
        q = x.reshape(N * M, T, self.D)
        a_hat = pseudo_acceleration(q)
        q_ddot, h = self.lagrangian(q)
        s = torch.sigmoid(self.gate(h))
        a = s * a_hat + (1 - s) * q_ddot
        err = (a_hat - a).pow(2).mean(dim=(1, 2))  # (N*M,)
        if present is None:
            loss = err.mean()
        else:
            w = present.reshape(-1).to(err.dtype)
            loss = (err * w).sum() / w.sum().clamp(min=1)
        shape = (N, M, T, V, C)
        return {"a": a.reshape(shape), "a_hat": a_hat.reshape(shape), "q_ddot": q_ddot.reshape(shape), "loss": loss}


def _block_dense(blocks: torch.Tensor) -> torch.Tensor:
    """(..., V, C, C) blocks -> (..., V*C, V*C) block-diagonal dense matrices."""
    *lead, V, C, _ = blocks.shape
    out = blocks.new_zeros(*lead, V * C, V * C)
    for j in range(V):
        out[..., j * C:(j + 1) * C, j * C:(j + 1) * C] = blocks[..., j, :, :]
    return out
