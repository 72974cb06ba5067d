"""Module 3: finite differences, structured symmetric M^-1, the Lagrangian acceleration and L_Ac."""
from __future__ import annotations

import pytest
import torch

from finetec.models.physics import LagrangianAcceleration, pseudo_acceleration, velocity


def test_pseudo_acceleration_of_t_squared_is_two():
    t = torch.arange(10, dtype=torch.float32)
    q = torch.stack([t ** 2, 3 * t, -0.5 * t ** 2], dim=-1).unsqueeze(0)  # (1, T, 3)
    a = pseudo_acceleration(q)
    assert torch.allclose(a[0, :, 0], torch.full((10,), 2.0))   # inside and replicated edges
    assert torch.allclose(a[0, :, 1], torch.zeros(10))          # linear motion: no acceleration
    assert torch.allclose(a[0, :, 2], torch.full((10,), -1.0))
    assert torch.equal(pseudo_acceleration(q[:, :2]), torch.zeros(1, 2, 3))


def test_velocity_is_central_difference():
    t = torch.arange(6, dtype=torch.float32)
    v = velocity((t ** 2).view(1, 6, 1))[0, :, 0]
    assert torch.allclose(v[1:-1], 2 * t[1:-1])
    assert v[0] == 1.0 and v[-1] == 9.0


@pytest.mark.parametrize("structure", ["full", "block", "lowrank"])
def test_inverse_mass_is_symmetric_and_apply_matches_dense(structure):
    torch.manual_seed(0)
    la = LagrangianAcceleration(4, 3, hidden=8, matrix_structure=structure, rank=3)
    h = torch.randn(2, 5, 8)
    m = la.inverse_mass(h)
    assert m.shape == (2, 5, 12, 12)
    assert torch.allclose(m, m.transpose(-1, -2))
    tau = torch.randn(2, 5, 12)
    dense = (m @ tau.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(la._minv_apply(torch.tanh(la.head_minv(h)), tau), dense, atol=1e-5)
    if structure == "block":  # nothing couples two different joints
        off = m.clone()
        for j in range(4):
            off[..., 3 * j:3 * j + 3, 3 * j:3 * j + 3] = 0
        assert torch.equal(off, torch.zeros_like(off))


def test_full_structure_q_ddot_follows_the_equation_of_motion():
    torch.manual_seed(1)
    la = LagrangianAcceleration(2, 2, hidden=8, matrix_structure="full")
    q = torch.randn(3, 7, 4)
    q_ddot, h = la.lagrangian(q)
    qd = velocity(q)
    minv = la.inverse_mass(h)
    c = torch.tanh(la.head_c(h)).unflatten(-1, (4, 4)) / 4
    g = torch.tanh(la.head_g(h))
    tau = torch.tanh(la.head_tau(h))
    expect = (minv @ tau.unsqueeze(-1)).squeeze(-1) - (c @ torch.tanh(qd).unsqueeze(-1)).squeeze(-1) - g
    assert torch.allclose(q_ddot, la.log_scale.exp() * expect, atol=1e-6)


@pytest.mark.parametrize("structure", ["full", "block", "lowrank"])
def test_outputs_are_bounded_for_huge_inputs(structure):
    la = LagrangianAcceleration(3, 2, hidden=8, matrix_structure=structure, rank=2, accel_scale=0.05)
    x = torch.randn(1, 2, 9, 3, 2) * 1e6
    out = la(x)
    assert torch.isfinite(out["q_ddot"]).all() and torch.isfinite(out["loss"])
    bound = 0.05 * (3.0 if structure != "lowrank" else 5.0)
    assert float(out["q_ddot"].detach().abs().max()) <= bound + 1e-6


def test_gate_fusion_lies_between_the_two_accelerations_and_loss_is_its_mse():
    torch.manual_seed(2)
    la = LagrangianAcceleration(3, 2, hidden=8)
    x = torch.randn(2, 1, 10, 3, 2)
    out = la(x)
    lo = torch.minimum(out["a_hat"], out["q_ddot"]) - 1e-6
    hi = torch.maximum(out["a_hat"], out["q_ddot"]) + 1e-6
    assert bool(((out["a"] >= lo) & (out["a"] <= hi)).all())
    assert torch.allclose(out["loss"], (out["a_hat"] - out["a"]).pow(2).mean())
    assert torch.allclose(out["a_hat"], pseudo_acceleration(x.reshape(2, 10, 6)).reshape(x.shape))


def test_loss_ignores_padded_persons_and_backpropagates():
    torch.manual_seed(3)
    la = LagrangianAcceleration(3, 2, hidden=8)
    x = torch.randn(1, 2, 8, 3, 2)
    present = torch.tensor([[True, False]])
    ref = la(x[:, :1])["loss"]
    x2 = x.clone()
    x2[:, 1] = torch.randn(8, 3, 2) * 100
    out = la(x2, present)
    assert torch.allclose(out["loss"], ref)
    out["loss"].backward()
    assert la.head_tau.weight.grad is not None and float(la.head_tau.weight.grad.abs().sum()) > 0


def test_bad_structure_and_shape():
    with pytest.raises(ValueError):
        LagrangianAcceleration(3, 2, matrix_structure="dense")
    with pytest.raises(ValueError):
        LagrangianAcceleration(3, 2)(torch.zeros(1, 1, 5, 4, 2))
