"""Module 2: region motion, dynamic/static views, the shared torch gap interpolation."""
from __future__ import annotations

import math

import pytest
import torch

from finetec.layouts import REGION_NAMES, get_layout
from finetec.data.fillers import interpolate_gaps
from finetec.models.decomposition import (PerturbConfig, decompose, dynamic_joints, region_motion, resample_time,
                                          sample_generators, sample_keys)

COCO = get_layout("coco17")


def moving_clip(N: int = 2, M: int = 1, T: int = 12, seed: int = 0) -> torch.Tensor:
    """coco17 clips where only the left arm and the right leg move (sinusoids); the rest is still."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, M, 1, 17, 2, generator=g).expand(N, M, T, 17, 2).clone()
    t = torch.arange(T, dtype=torch.float32)
    movers = list(COCO.regions["left_arm"]) + list(COCO.regions["right_leg"])
    for j in movers:
        x[:, :, :, j, 0] += 0.3 * torch.sin(t / 2 + j)
        x[:, :, :, j, 1] += 0.2 * torch.cos(t / 3 + j)
    return x


def test_interpolate_gaps_values_edges_and_empty():
    x = torch.tensor([[0.0, 99.0, 99.0, 6.0, 99.0, 10.0, 99.0, 99.0]])
    obs = torch.tensor([[False, False, True, True, False, True, False, False]])
    x[0, 2] = 4.0
    out = interpolate_gaps(x, obs)
    assert out.tolist() == [[4.0, 4.0, 4.0, 6.0, 8.0, 10.0, 10.0, 10.0]]
    empty = interpolate_gaps(torch.full((1, 5), 7.0), torch.zeros(1, 5, dtype=torch.bool))
    assert torch.equal(empty, torch.zeros(1, 5))


def test_interpolate_gaps_keeps_observed_bit_identical_and_per_joint():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 10, 4, 2, generator=g)
    obs = torch.rand(3, 10, 4, generator=g) > 0.5
    out = interpolate_gaps(x, obs)
    assert torch.equal(out[obs], x[obs])
    # joint 0 of clip 0 observed only at frames a < b: linear in between
    obs2 = torch.zeros(1, 10, 1, dtype=torch.bool)
    obs2[0, 2, 0] = obs2[0, 7, 0] = True
    y = torch.zeros(1, 10, 1, 2)
    y[0, 2, 0] = torch.tensor([1.0, -1.0])
    y[0, 7, 0] = torch.tensor([6.0, 4.0])
    z = interpolate_gaps(y, obs2)
    assert torch.allclose(z[0, 2:8, 0, 0], torch.arange(1.0, 7.0))
    assert torch.allclose(z[0, 2:8, 0, 1], torch.arange(-1.0, 5.0))


def test_resample_full_window_is_identity_and_half_window_interpolates():
    x = torch.arange(8.0).view(1, 8, 1).repeat(2, 1, 3)
    same = resample_time(x, torch.tensor([0.0, 0.0]), torch.tensor([8.0, 8.0]), 8)
    assert torch.allclose(same, x)
    half = resample_time(x, torch.tensor([2.0, 2.0]), torch.tensor([4.0, 4.0]), 7)
    assert torch.allclose(half[0, :, 0], torch.linspace(2, 5, 7))


def test_region_motion_and_top2_regions():
    x = moving_clip()
    rm = region_motion(x, COCO)
    assert rm.shape == (2, 5)
    still = [REGION_NAMES.index(r) for r in ("head_torso", "left_leg", "right_arm")]
    assert torch.allclose(rm[:, still], torch.zeros(2, 3))
    top, joints = dynamic_joints(x, COCO)
    assert {REGION_NAMES[i] for i in top[0].tolist()} == {"left_arm", "right_leg"}
    expected = torch.zeros(17, dtype=torch.bool)
    expected[[5, 7, 9, 12, 14, 16]] = True
    assert torch.equal(joints[0], expected) and torch.equal(joints[1], expected)


def test_padded_person_does_not_count_in_motion():
    x = moving_clip(N=1, M=2)
    x[:, 1] = 0
    x[:, 1, ::2, 0, 0] = 50.0  # a padded (unobserved) person with huge fake motion on the head
    mask = torch.ones(x.shape[:-1], dtype=torch.bool)
    mask[:, 1] = False
    top, _ = dynamic_joints(x, COCO, present=mask.flatten(2).any(2))
    assert {REGION_NAMES[i] for i in top[0].tolist()} == {"left_arm", "right_leg"}


def test_views_touch_only_their_joints():
    x = moving_clip()
    mask = torch.ones(x.shape[:-1], dtype=torch.bool)
    s_dyna, s_stat, dyn = decompose(x, mask, COCO, torch.Generator().manual_seed(0))
    static = ~dyn[0]
    assert torch.equal(s_dyna[:, :, :, static], x[:, :, :, static])
    assert torch.equal(s_stat[:, :, :, dyn[0]], x[:, :, :, dyn[0]])
    assert (s_dyna[:, :, :, dyn[0]] - x[:, :, :, dyn[0]]).abs().max() > 1e-3
    assert (s_stat[:, :, :, static] - x[:, :, :, static]).abs().max() > 1e-4


def test_perturb_off_returns_base():
    x = moving_clip()
    s_dyna, s_stat, dyn = decompose(x, None, COCO, perturb=False)
    assert torch.equal(s_dyna, x) and torch.equal(s_stat, x)
    assert int(dyn[0].sum()) == 6


def test_static_mirror_reflects_about_centre_and_swaps_sides():
    x = moving_clip(N=1)
    cfg = PerturbConfig(mirror_prob=1.0, jitter_std=0.0)
    _, s_stat, dyn = decompose(x, None, COCO, torch.Generator().manual_seed(0), cfg=cfg)
    centre_x = x[..., list(COCO.center), 0].mean(-1)  # (N, M, T)
    perm = COCO.flip_permutation
    for v in range(17):
        if dyn[0, v]:
            continue
        assert torch.allclose(s_stat[..., v, 0], 2 * centre_x - x[..., perm[v], 0], atol=1e-6)
        assert torch.allclose(s_stat[..., v, 1], x[..., perm[v], 1])


def test_dynamic_view_without_crop_or_drop_is_identity():
    x = moving_clip()
    cfg = PerturbConfig(crop_min=1.0, drop_min=0.0, drop_max=0.0)
    s_dyna, _, _ = decompose(x, None, COCO, torch.Generator().manual_seed(3), cfg=cfg)
    assert torch.allclose(s_dyna, x, atol=1e-6)


def test_dynamic_view_of_linear_motion_stays_on_the_line():
    """Crop + re-sample + drop + linear re-fill of a constant-velocity trajectory stays on its line."""
    T = 16
    t = torch.arange(T, dtype=torch.float32)
    x = torch.zeros(1, 1, T, 17, 2)
    x[..., 0] = 0.1 * t.view(1, 1, T, 1)  # every joint moves right at constant speed, y fixed
    s_dyna, _, dyn = decompose(x, None, COCO, torch.Generator().manual_seed(0))
    assert torch.equal(s_dyna[..., 1], x[..., 1])
    d = s_dyna[0, 0, :, dyn[0], 0]
    steps = d[1:] - d[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps), atol=1e-5)  # still uniform steps (a shorter window)
    assert float(steps[0, 0]) <= 0.1 + 1e-6


def test_per_sample_generators_make_views_batch_independent():
    x = moving_clip(N=3, seed=5)
    full = decompose(x, None, COCO, sample_generators(sample_keys(x)))
    alone = decompose(x[1:2], None, COCO, sample_generators(sample_keys(x[1:2])))
    assert torch.equal(full[0][1:2], alone[0]) and torch.equal(full[1][1:2], alone[1])
    assert sample_keys(x)[0] != sample_keys(x)[1]


def test_gradients_flow_through_both_views():
    x = moving_clip().requires_grad_(True)
    s_dyna, s_stat, _ = decompose(x, None, COCO, torch.Generator().manual_seed(0))
    (s_dyna.square().sum() + s_stat.sum()).backward()
    assert x.grad is not None and math.isfinite(float(x.grad.abs().sum())) and float(x.grad.abs().sum()) > 0


def test_wrong_rank_is_rejected():
    with pytest.raises(ValueError):
        decompose(torch.zeros(2, 8, 17, 2), None, COCO)


def test_gap_position_counts_frames_to_the_neighbouring_observations():
    from finetec.models.decomposition import gap_position

    obs = torch.tensor([[False, True, False, False, True, False]])
    g = gap_position(obs) * 6
    assert g[0, :, 0].tolist() == [6, 0, 1, 2, 0, 1]   # since the last observation (T when none)
    assert g[0, :, 1].tolist() == [1, 0, 2, 1, 0, 6]   # until the next one
