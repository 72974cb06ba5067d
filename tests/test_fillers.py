"""Gap fillers on known trajectories."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data.fillers import FILLERS, fill
from finetec.errors import FinetecError


def _clip(values: np.ndarray, observed: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """One person, one joint, C=1 trajectory with the given observed frames."""
    T = len(values)
    kp = np.zeros((1, T, 1, 1), np.float32)
    mask = np.zeros((1, T, 1), bool)
    mask[0, observed, 0] = True
    kp[0, observed, 0, 0] = values[observed]
    return kp, mask


def test_copy_lr_and_rl_semantics():
    vals = np.array([0, 1, 2, 3, 4, 5, 6, 7], np.float32)
    kp, m = _clip(vals, [2, 5])
    lr = fill(kp, m, "copy_lr")[0, :, 0, 0]
    rl = fill(kp, m, "copy_rl")[0, :, 0, 0]
    np.testing.assert_array_equal(lr, [2, 2, 2, 2, 2, 5, 5, 5])
    np.testing.assert_array_equal(rl, [2, 2, 2, 5, 5, 5, 5, 5])


def test_zero_fill():
    vals = np.arange(6, dtype=np.float32) + 1
    kp, m = _clip(vals, [0, 3])
    kp[0, 1, 0, 0] = 99  # garbage under the mask is ignored
    np.testing.assert_array_equal(fill(kp, m, "zero")[0, :, 0, 0], [1, 0, 0, 4, 0, 0])


def test_linear_exact_on_linear_trajectory_and_constant_ends():
    t = np.arange(10, dtype=np.float32)
    vals = 3 * t - 2
    kp, m = _clip(vals, [2, 4, 8])
    out = fill(kp, m, "linear")[0, :, 0, 0]
    np.testing.assert_allclose(out[2:9], vals[2:9], atol=1e-5)
    np.testing.assert_allclose(out[:2], vals[2])
    np.testing.assert_allclose(out[9], vals[8])


def test_cubic_exact_on_cubic_and_falls_back_to_linear():
    t = np.arange(12, dtype=np.float64)
    vals = (0.01 * t ** 3 - 0.2 * t ** 2 + t).astype(np.float32)
    kp, m = _clip(vals, [0, 2, 3, 6, 8, 11])
    out = fill(kp, m, "cubic")[0, :, 0, 0]
    np.testing.assert_allclose(out, vals, atol=1e-4)
    # fewer than 4 observed frames: linear
    kp3, m3 = _clip(vals, [0, 5, 11])
    np.testing.assert_array_equal(fill(kp3, m3, "cubic"), fill(kp3, m3, "linear"))


@pytest.mark.parametrize("method", FILLERS)
def test_observed_entries_bit_identical_and_per_joint(method):
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, 20, 5, 3)).astype(np.float32)
    mask = rng.random((2, 20, 5)) > 0.4
    mask[:, 0] = True
    kp[~mask] = 0
    out = fill(kp, mask, method)
    assert out.dtype == np.float32 and out.shape == kp.shape
    assert np.array_equal(out[mask].view(np.uint32), kp[mask].view(np.uint32))
    assert np.isfinite(out).all()
    # each joint filled from its own trajectory: changing another joint changes nothing
    kp2 = kp.copy()
    kp2[:, :, 1] += 10
    out2 = fill(kp2, mask, method)
    np.testing.assert_array_equal(out2[:, :, 0], out[:, :, 0])


def test_never_observed_joint_takes_person_centroid():
    kp = np.zeros((2, 4, 3, 2), np.float32)
    mask = np.zeros((2, 4, 3), bool)
    kp[0, :, 0] = [[0, 0], [1, 0], [2, 0], [3, 0]]
    kp[0, :, 1] = [[0, 2], [1, 2], [2, 2], [3, 2]]
    mask[0, :, :2] = True
    out = fill(kp, mask, "linear")
    np.testing.assert_allclose(out[0, :, 2], [[0, 1], [1, 1], [2, 1], [3, 1]])
    assert (out[1] == 0).all()  # a person never observed stays 0
    assert (fill(kp, mask, "zero")[0, :, 2] == 0).all()


def test_none_and_unknown():
    kp = np.ones((1, 3, 2, 2), np.float32)
    m = np.ones((1, 3, 2), bool)
    np.testing.assert_array_equal(fill(kp, m, "none"), kp)
    with pytest.raises(FinetecError, match="gap filler"):
        fill(kp, m, "spline9")
