"""Gap fillers on known trajectories."""
from __future__ import annotations

import dataclasses

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


def _random_batch(seed: int, N=3, M=2, T=12, V=5, C=3):
    """Random clips with gaps, a joint never observed, a person never observed."""
    rng = np.random.default_rng(seed)
    kp = rng.normal(size=(N, M, T, V, C)).astype(np.float32)
    mask = rng.random((N, M, T, V)) > 0.5
    mask[0, 0, :, 2] = False      # a joint never observed in clip 0
    mask[1, 1] = False            # a person never observed in clip 1
    return kp, mask


@pytest.mark.parametrize("method", FILLERS + ("none",))
def test_fill_batch_equals_fill_bit_for_bit(method):
    import torch

    from finetec.data.fillers import fill_batch

    kp, mask = _random_batch(1)
    out = fill_batch(torch.from_numpy(kp), torch.from_numpy(mask), method)
    ref = np.stack([fill(kp[i], mask[i], method) for i in range(len(kp))])
    assert out.dtype == torch.float32 and out.numpy().tobytes() == ref.tobytes()


@pytest.mark.parametrize("seed", range(5))
def test_torch_interpolation_equals_numpy_linear(seed):
    """interpolate_gaps (torch, differentiable) and fill(..., "linear") (NumPy) give identical numbers
    on every trajectory with an observation."""
    import torch

    from finetec.data.fillers import interpolate_gaps

    kp, mask = _random_batch(seed, T=40)
    mask[:, :, 0] = True  # every joint observed at least once: the per-trajectory rule applies
    N, M, T, V, C = kp.shape
    got = interpolate_gaps(torch.from_numpy(kp).reshape(N * M, T, V, C),
                           torch.from_numpy(mask).reshape(N * M, T, V)).reshape(kp.shape).numpy()
    ref = np.stack([fill(kp[i], mask[i], "linear") for i in range(N)])
    assert got.tobytes() == ref.tobytes()


def test_finetec_without_completion_sees_the_baseline_clip_bit_for_bit():
    """The ablation "FineTec w/o completion" fills exactly as the linear baseline's pipeline does: the
    clip the pipeline hands ST-GCN++ + linear equals FineTec's restored clip from the same corrupted
    clip (the pipeline with filler none), every bit, including a joint never observed."""
    import torch

    from finetec.data.pipeline import ClipPipeline, PipelineConfig
    from finetec.data.synthetic import make_dataset
    from finetec.models.registry import create_model

    ds = make_dataset(layout="coco17", clips=6, frames=24, seed=3)
    tiny = {"base_channels": 8, "num_stages": 2, "inflate_stages": [], "down_stages": []}
    model = create_model("finetec", num_classes=ds.num_classes, layout=ds.layout, in_channels=2, clip_len=16,
                         backbone="stgcnpp", backbone_overrides=tiny, use_completion=False, filler="linear",
                         physics_hidden=8, fusion_width=8).eval()
    for i in range(len(ds)):
        s = ds[i]
        mask = s.mask.copy()
        mask[:, :, 3] = False  # a joint the tracker never saw
        s = dataclasses.replace(s, mask=mask)
        base = ClipPipeline(ds.layout, PipelineConfig(clip_len=16, level="severe", filler="linear"), train=False)(s, i)
        raw = ClipPipeline(ds.layout, PipelineConfig(clip_len=16, level="severe", filler="none"), train=False)(s, i)
        restored = model.restore(torch.from_numpy(raw["keypoint"])[None], torch.from_numpy(raw["mask"])[None])[0]
        assert restored.numpy().tobytes() == base["keypoint"].tobytes()


@pytest.mark.parametrize("seed", range(6))
def test_fill_linear_torch_equals_numpy_bit_for_bit_with_unseen_joints(seed):
    """The one linear filler: the torch path (fill_linear: the completion module's pre-fill and
    fill_batch's "linear") and the NumPy path (fill: every baseline) give the same bits, including
    joints never observed (the person's per-frame centroid) and persons never observed (zeros)."""
    import torch

    from finetec.data.fillers import fill_linear

    rng = np.random.default_rng(seed)
    N, M, T, V, C = 3, 2, int(rng.integers(5, 40)), int(rng.integers(5, 34)), int(rng.integers(2, 4))
    kp = (rng.normal(size=(N, M, T, V, C)) * rng.choice([1e-3, 1.0, 300.0])).astype(np.float32)
    mask = rng.random((N, M, T, V)) > rng.uniform(0.2, 0.9)
    mask[0, 0, :, rng.choice(V, size=min(3, V - 1), replace=False)] = False   # joints never observed
    mask[1, 1] = False                                                          # a person never observed
    mask[2, 0, :, :] = False
    mask[2, 0, int(rng.integers(0, T)), 0] = True                               # one entry observed
    ref = np.stack([fill(kp[i], mask[i], "linear") for i in range(N)])
    unseen = ~mask[0, 0].any(axis=0)
    assert unseen.any()
    centroid = ref[0, 0][:, ~unseen].mean(axis=1)
    assert np.array_equal(ref[0, 0][:, unseen], np.repeat(centroid[:, None], unseen.sum(), axis=1))
    got = fill_linear(torch.from_numpy(kp), torch.from_numpy(mask)).numpy()
    assert got.dtype == np.float32 and got.tobytes() == ref.tobytes()
    # float64 input too
    got64 = fill_linear(torch.from_numpy(kp.astype(np.float64)), torch.from_numpy(mask)).numpy()
    ref64 = np.stack([fill(kp[i].astype(np.float64), mask[i], "linear") for i in range(N)])
    assert got64.tobytes() == ref64.tobytes()


def test_fill_linear_is_differentiable():
    import torch

    from finetec.data.fillers import fill_linear

    x = torch.randn(2, 6, 5, 2, requires_grad=True)
    mask = torch.rand(2, 6, 5) > 0.5
    mask[0, :, 1] = False
    mask[:, 0] = True
    fill_linear(x, mask).sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert torch.all(x.grad[~mask] == 0)   # missing entries' own values never reach the output


def test_model_mask():
    import torch

    from finetec.data.fillers import model_mask

    mask = torch.zeros(1, 2, 3, 4, dtype=torch.bool)
    mask[0, 0, 1, 2] = True
    assert torch.equal(model_mask(mask, "zero"), mask)
    assert torch.equal(model_mask(mask, "none"), mask)
    full = model_mask(mask, "linear")
    assert bool(full[0, 0].all()) and not bool(full[0, 1].any())
