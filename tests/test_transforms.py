"""Temporal sampling, normalisation, augmentation and features."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data.transforms import (
    Augmentation, apply_augmentation, apply_normalization, features, flip, invert_normalization, normalization_params,
    random_augmentation, rotation_matrix, uniform_indices,
)
from finetec.errors import FinetecError
from finetec.layouts import get_layout

COCO = get_layout("coco17")
NTU = get_layout("ntu25")


def test_uniform_indices_test_and_train():
    np.testing.assert_array_equal(uniform_indices(10, 5), [1, 3, 5, 7, 9])
    np.testing.assert_array_equal(uniform_indices(3, 6), [0, 0, 1, 1, 2, 2])   # repeated uniformly
    np.testing.assert_array_equal(uniform_indices(5, 5), np.arange(5))
    rng = np.random.default_rng(0)
    for _ in range(50):
        idx = uniform_indices(100, 8, rng)
        seg = np.arange(8) * 12.5
        assert np.all(idx >= np.floor(seg)) and np.all(idx < seg + 12.5) and np.all(np.diff(idx) > 0)
    draws = np.array([uniform_indices(100, 8, rng)[0] for _ in range(300)])
    assert len(set(draws.tolist())) > 8  # random offset within the segment


def _body2d(rng, T=6):
    """A coco17 clip: hips at (10 +- 1, 20), shoulders 5 px above; random other joints."""
    kp = rng.normal(size=(1, T, 17, 2)) * 3 + [10, 20]
    kp[0, :, 11] = [9, 20]
    kp[0, :, 12] = [11, 20]
    kp[0, :, 5] = [9, 15]
    kp[0, :, 6] = [11, 15]
    return kp.astype(np.float32), np.ones((1, T, 17), bool)


def test_normalisation_2d_centre_scale_and_ignores_unobserved():
    kp, mask = _body2d(np.random.default_rng(0))
    p = normalization_params(kp, mask, COCO)
    np.testing.assert_allclose(p.center, [10, 20], atol=1e-6)
    assert p.scale == pytest.approx(5.0)
    # garbage at masked positions must not change anything
    mask2 = mask.copy()
    mask2[0, 2] = False
    mask2[0, :, 0] = False
    a = kp.copy()
    b = kp.copy()
    b[~mask2] = 1e6
    pa, pb = normalization_params(a, mask2, COCO), normalization_params(b, mask2, COCO)
    np.testing.assert_array_equal(pa.center, pb.center)
    assert pa.scale == pb.scale
    na, nb = apply_normalization(a, mask2, pa), apply_normalization(b, mask2, pb)
    np.testing.assert_array_equal(na, nb)
    assert (na[~mask2] == 0).all()
    np.testing.assert_allclose(na[0, 0, 11], [-0.2, 0.0], atol=1e-6)


def test_normalisation_falls_back_without_centre_joints():
    kp, mask = _body2d(np.random.default_rng(1))
    mask[0, :, [11, 12]] = False
    p = normalization_params(kp, mask, COCO)
    np.testing.assert_allclose(p.center, kp[mask].mean(axis=0), atol=1e-5)
    empty = normalization_params(kp, np.zeros_like(mask), COCO)
    assert empty.scale == 1.0 and (empty.center == 0).all()


def test_view_alignment_3d():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(1, 4, 25, 3))
    # spine_base (0) at origin + offset, spine_mid (1) along some "up", right->left shoulders along "across"
    up = np.array([0.3, 0.2, 0.9]); up /= np.linalg.norm(up)
    across = np.cross(up, [0, 1, 0]); across /= np.linalg.norm(across)
    off = np.array([1.0, 2.0, 3.0])
    kp[0, :, 0] = off
    kp[0, :, 1] = off + 0.3 * up
    kp[0, :, 8] = off + 0.4 * up - 0.2 * across
    kp[0, :, 4] = off + 0.4 * up + 0.2 * across
    mask = np.ones((1, 4, 25), bool)
    p = normalization_params(kp, mask, NTU, align_view=True)
    np.testing.assert_allclose(p.center, kp[0, :, 1].mean(0))
    assert p.scale == 1.0
    out = apply_normalization(kp, mask, p)
    v_up = out[0, 0, 1] - out[0, 0, 0]
    v_across = out[0, 0, 4] - out[0, 0, 8]
    np.testing.assert_allclose(v_up / np.linalg.norm(v_up), [0, 1, 0], atol=1e-5)
    np.testing.assert_allclose(v_across / np.linalg.norm(v_across), [1, 0, 0], atol=1e-5)
    np.testing.assert_allclose(p.rotation @ p.rotation.T, np.eye(3), atol=1e-9)


def test_flip_twice_identity_and_maps_left_arm_to_right():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, 5, 17, 2)).astype(np.float32)
    mask = rng.random((2, 5, 17)) > 0.2
    kp[~mask] = 0
    f1, m1 = flip(kp, mask, COCO)
    f2, m2 = flip(f1, m1, COCO)
    np.testing.assert_array_equal(f2, kp)
    np.testing.assert_array_equal(m2, mask)
    L, R = COCO.index("left_wrist"), COCO.index("right_wrist")
    np.testing.assert_array_equal(f1[..., R, 0], -kp[..., L, 0])
    np.testing.assert_array_equal(f1[..., R, 1], kp[..., L, 1])
    np.testing.assert_array_equal(m1[..., R], mask[..., L])
    np.testing.assert_array_equal(f1[..., 0, 0], -kp[..., 0, 0])  # nose stays, mirrored


def test_augmentation_rotation_scale_and_mask():
    R = rotation_matrix([0.1, -0.2, 0.3])
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    kp = np.zeros((1, 2, 25, 3), np.float32)
    kp[..., 0] = 1.0
    mask = np.ones((1, 2, 25), bool)
    mask[0, 1, 3] = False
    kp[0, 1, 3] = 0
    aug = Augmentation(rotation=rotation_matrix([0.0, 0.0, np.pi / 2]), scale=2.0, flip=False)
    out, m = apply_augmentation(kp, mask, aug, NTU)
    np.testing.assert_allclose(out[0, 0, 0], [0, 2, 0], atol=1e-6)
    assert (out[0, 1, 3] == 0).all() and not m[0, 1, 3]
    a1 = random_augmentation(np.random.default_rng(5), 3)
    a2 = random_augmentation(np.random.default_rng(5), 3)
    np.testing.assert_array_equal(a1.rotation, a2.rotation)
    assert a1.scale == a2.scale and a1.flip == a2.flip
    assert random_augmentation(np.random.default_rng(0), 2).rotation.shape == (2, 2)


def test_features_joint_bone_motion():
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(1, 4, 25, 3)).astype(np.float32)
    mask = np.ones((1, 4, 25), bool)
    mask[0, 2, 5] = False
    kp[0, 2, 5] = 0
    out = features(kp, mask, NTU, ("joint", "bone", "motion"))
    assert out.shape == (1, 4, 25, 9)
    np.testing.assert_array_equal(out[..., :3], kp)
    bone = out[..., 3:6]
    root = NTU.root
    assert (bone[:, :, root] == 0).all()
    np.testing.assert_allclose(bone[0, 0, 5], kp[0, 0, 5] - kp[0, 0, 4])   # elbow - shoulder
    assert (bone[0, 2, 5] == 0).all() and (bone[0, 2, 6] == 0).all()         # unobserved ends -> 0
    motion = out[..., 6:]
    np.testing.assert_allclose(motion[0, 0, 3], kp[0, 1, 3] - kp[0, 0, 3])
    assert (motion[:, -1] == 0).all()
    assert (motion[0, 1, 5] == 0).all() and (motion[0, 2, 5] == 0).all()
    with pytest.raises(FinetecError, match="feature"):
        features(kp, mask, NTU, ("velocity",))


def test_invert_normalization_round_trip():
    rng = np.random.default_rng(3)
    kp = rng.normal(size=(1, 5, 25, 3)).astype(np.float32)
    mask = np.ones((1, 5, 25), bool)
    p = normalization_params(kp, mask, NTU, align_view=True)
    assert not np.allclose(p.rotation, np.eye(3))
    back = invert_normalization(apply_normalization(kp, mask, p), p)
    np.testing.assert_allclose(back, kp, atol=1e-5)
    kp2, _ = _body2d(rng)
    p2 = normalization_params(kp2, np.ones((1, 6, 17), bool), COCO, align_view=True)
    np.testing.assert_allclose(invert_normalization(apply_normalization(kp2, np.ones((1, 6, 17), bool), p2), p2),
                               kp2, atol=1e-4)
