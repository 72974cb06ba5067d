"""The procedural synthetic dataset."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data import open_dataset
from finetec.data.synthetic import CLASS_NAMES, make_dataset
from finetec.errors import FinetecError


@pytest.fixture(scope="module")
def small():
    return make_dataset("ntu25", clips=56, seed=3, frames=32, subjects=4)


def test_deterministic_in_seed(small):
    again = make_dataset("ntu25", clips=56, seed=3, frames=32, subjects=4)
    np.testing.assert_array_equal(small.keypoint, again.keypoint)
    np.testing.assert_array_equal(small.label, again.label)
    other = make_dataset("ntu25", clips=56, seed=4, frames=32, subjects=4)
    assert not np.array_equal(small.label, other.label) or not np.allclose(small.keypoint[:10], other.keypoint[:10])


def test_balance_lengths_and_splits(small):
    assert small.class_names == list(CLASS_NAMES) and len(CLASS_NAMES) >= 12
    np.testing.assert_array_equal(np.bincount(small.label, minlength=14), np.full(14, 4))
    assert small.lengths.min() >= 24 and small.lengths.max() <= 40 and len(set(small.lengths.tolist())) > 3
    train, test = small.splits["train"], small.splits["test"]
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(small)
    subj = np.array([m["subject"] for m in small.clip_meta])
    assert set(subj[test]) == {3} and set(subj[train]) == {0, 1, 2}
    assert small.mask.all() and small.dim == 3 and np.isfinite(small.keypoint).all()


def test_bone_lengths_plausible_and_constant(small):
    s = small[0]
    lay = small.layout
    forearm = np.linalg.norm(s.keypoint[0, :, lay.index("right_wrist")] - s.keypoint[0, :, lay.index("right_elbow")], axis=-1)
    # 0.25 m reference * subject size, +- 1 cm noise on each end
    assert 0.18 < forearm.mean() < 0.33 and forearm.std() < 0.03
    # standing upright: head above the pelvis (y up) and in front of the camera (z > 0)
    assert (s.keypoint[0, :, lay.index("head"), 1] > s.keypoint[0, :, lay.index("spine_base"), 1]).all()
    assert (s.keypoint[0, ..., 2] > 1.5).all()


def test_coco17_projection_facing_camera():
    ds = make_dataset("coco17", clips=28, seed=0, frames=24, subjects=2)
    assert ds.dim == 2 and ds.layout.name == "coco17"
    lay = ds.layout
    kp = ds.keypoint[:, 0]
    assert 0 < kp[..., 0].min() and kp[..., 0].max() < 1920 and 0 < kp[..., 1].min() and kp[..., 1].max() < 1080
    # image y grows downwards: ankles below the nose
    assert (kp[:, lay.index("left_ankle"), 1] > kp[:, lay.index("nose"), 1]).mean() > 0.95
    # facing the camera (yaw within +-40 deg): the left shoulder is on the image's right, mostly
    frames0 = ds.offsets[:-1]
    right_of = kp[frames0, lay.index("left_shoulder"), 0] > kp[frames0, lay.index("right_shoulder"), 0]
    assert right_of.mean() > 0.8


def test_pairs_differ_in_the_named_factor():
    ds = make_dataset("ntu25", clips=140, seed=0, frames=64, subjects=2)
    lay = ds.layout

    def wrist_turns(k):  # number of local maxima of the right wrist's lateral motion, wave classes
        out = []
        for i in np.flatnonzero(ds.label == k)[:6]:
            w = ds[int(i)].keypoint[0, :, lay.index("right_hand_tip"), 0]
            w = np.convolve(w, np.ones(5) / 5, mode="valid")
            d = np.diff(w)
            out.append(int(((d[:-1] > 0) & (d[1:] <= 0)).sum()))
        return np.mean(out)

    assert wrist_turns(CLASS_NAMES.index("wave_right_twice")) > wrist_turns(CLASS_NAMES.index("wave_right_once"))

    def foot_height(k, side):
        i = int(np.flatnonzero(ds.label == k)[0])
        return ds[i].keypoint[0, :, lay.index(f"{side}_ankle"), 1].max() - ds[i].keypoint[0, :, lay.index(f"{side}_ankle"), 1].min()

    kl, kr = CLASS_NAMES.index("kick_left"), CLASS_NAMES.index("kick_right")
    assert foot_height(kl, "left") > 3 * foot_height(kl, "right")
    assert foot_height(kr, "right") > 3 * foot_height(kr, "left")


def test_open_dataset_spec_and_errors():
    ds = open_dataset("synthetic:ntu25?clips=28&seed=1&frames=16")
    assert len(ds) == 28 and ds.dim == 3
    with pytest.raises(FinetecError, match="synthetic data is available"):
        make_dataset("penn13", clips=10)
    with pytest.raises(FinetecError, match="clips"):
        make_dataset("coco17", clips=0)
