"""The clip pipeline: order of operations, determinism, test-mode purity, collate/dataset."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data.corruption import keep_frames, test_rng
from finetec.data.dataset import SkeletonDataset
from finetec.data.pipeline import ClipPipeline, PipelineConfig, PipelineDataset, collate, select_persons
from finetec.data.sample import Sample
from finetec.data.transforms import uniform_indices
from finetec.errors import FinetecError
from finetec.layouts import get_layout

LAYOUT = get_layout("coco17")


def _sample(T=40, M=1, seed=0, sid="s0", label=2) -> Sample:
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(1, 1, 17, 2)) * 20 + 100
    t = np.arange(T)[None, :, None, None]
    kp = (base + 3 * np.sin(t / 5.0) + rng.normal(size=(M, T, 17, 2))).astype(np.float32)
    return Sample(kp, np.ones((M, T, 17), bool), label=label, id=sid)


def _equal(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) for k in a)


def test_test_mode_is_pure_and_uses_test_rng():
    s = _sample()
    cfg = PipelineConfig(clip_len=16, level="severe", filler="none")
    p1 = ClipPipeline(LAYOUT, cfg, train=False, seed=7)
    p2 = ClipPipeline(LAYOUT, cfg, train=False, seed=7)
    a, b = p1(s, 0, 0), p2(s, 99, 5)  # index/epoch do not matter in test mode
    assert all(np.array_equal(a[k], b[k]) for k in ("keypoint", "mask", "clean", "clean_mask"))
    keep = keep_frames(16, "severe", "random", test_rng(7, "s0", "severe", "random"))
    np.testing.assert_array_equal(a["mask"][0].any(-1), keep)
    assert a["keypoint"].shape == (1, 16, 17, 2) and a["keypoint"].dtype == np.float32
    assert a["label"] == 2 and b["index"] == 99
    # different seed -> different corrupted frames
    c = ClipPipeline(LAYOUT, cfg, train=False, seed=8)(s, 0)
    assert not np.array_equal(c["mask"], a["mask"])


def test_train_mode_deterministic_in_seed_epoch_index():
    s = _sample()
    cfg = PipelineConfig(clip_len=16, level="moderate", augment=True, filler="linear",
                         features=("joint", "bone", "motion"))
    p = ClipPipeline(LAYOUT, cfg, train=True, seed=1)
    q = ClipPipeline(LAYOUT, cfg, train=True, seed=1)
    assert _equal(p(s, 3, 2), q(s, 3, 2))
    assert not np.array_equal(p(s, 3, 2)["mask"], p(s, 3, 3)["mask"])
    assert not np.array_equal(p(s, 3, 2)["mask"], p(s, 4, 2)["mask"])
    assert p.in_channels == 6 and p(s, 0)["keypoint"].shape == (1, 16, 17, 6)


def test_normalisation_uses_corrupted_observed_joints_and_applies_to_clean():
    s = _sample(T=16)
    cfg = PipelineConfig(clip_len=16, level="moderate", pattern="prefix")
    out = ClipPipeline(LAYOUT, cfg, train=False, seed=0)(s, 0)
    kept = out["mask"][0].any(-1)
    assert not kept[:8].any() and kept[8:].all()
    # the clean clip is normalised with the same parameters: equal on kept frames
    np.testing.assert_allclose(out["clean"][:, kept], out["keypoint"][:, kept], atol=1e-6)
    # the centre (mean of the hips) of the observed frames is at 0
    hips = out["keypoint"][0, kept][:, [11, 12]].mean(axis=(0, 1))
    np.testing.assert_allclose(hips, 0, atol=1e-5)
    # dropped frames: zero in the input, real values in the clean clip
    assert (out["keypoint"][:, ~kept] == 0).all() and np.abs(out["clean"][:, ~kept]).sum() > 0
    assert out["clean_mask"].all()


def test_filler_fills_dropped_frames_and_keeps_observed():
    s = _sample(T=16)
    base = ClipPipeline(LAYOUT, PipelineConfig(clip_len=16, level="severe"), train=False, seed=0)(s, 0)
    filled = ClipPipeline(LAYOUT, PipelineConfig(clip_len=16, level="severe", filler="copy_lr"),
                          train=False, seed=0)(s, 0)
    m = base["mask"]
    np.testing.assert_array_equal(filled["keypoint"][m], base["keypoint"][m])
    assert np.abs(filled["keypoint"][~m]).sum() > 0
    np.testing.assert_array_equal(filled["mask"], m)  # the mask still reports what was dropped


def test_mixed_draws_levels_in_training_only():
    s = _sample(T=64)
    cfg = PipelineConfig(clip_len=64, level="minor", mixed=True)
    tr = ClipPipeline(LAYOUT, cfg, train=True, seed=0)
    dropped = {int((~tr(s, i)["mask"][0].any(-1)).sum()) for i in range(60)}
    assert dropped == {0, 16, 32, 48}
    te = ClipPipeline(LAYOUT, cfg, train=False, seed=0)
    assert int((~te(s, 0)["mask"][0].any(-1)).sum()) == 16


def test_person_padding_and_cutting():
    kp = np.zeros((3, 4, 2, 2), np.float32)
    mask = np.zeros((3, 4, 2), bool)
    mask[0, 0, 0] = True
    mask[1] = True
    mask[2, :2] = True
    k2, m2 = select_persons(kp, mask, 2)
    np.testing.assert_array_equal(m2, mask[[1, 2]])
    k4, m4 = select_persons(kp, mask, 4)
    assert m4.shape == (4, 4, 2) and not m4[3].any()
    s = _sample(M=1)
    out = ClipPipeline(LAYOUT, PipelineConfig(clip_len=8, max_persons=2), train=False)(s, 0)
    assert out["keypoint"].shape == (2, 8, 17, 2) and not out["mask"][1].any()
    assert (out["keypoint"][1] == 0).all()


def test_temporal_sampling_test_mode_centres():
    s = _sample(T=8)
    out = ClipPipeline(LAYOUT, PipelineConfig(clip_len=4, normalize=False), train=False)(s, 0)
    np.testing.assert_array_equal(out["clean"], s.keypoint[:, uniform_indices(8, 4)])
    np.testing.assert_array_equal(uniform_indices(8, 4), [1, 3, 5, 7])


def test_config_validation():
    with pytest.raises(FinetecError, match="level"):
        PipelineConfig(level="awful")
    with pytest.raises(FinetecError, match="filler"):
        PipelineConfig(filler="magic")
    with pytest.raises(FinetecError, match="feature"):
        PipelineConfig(features=["joint", "angle"])
    with pytest.raises(FinetecError, match="unknown pipeline option"):
        PipelineConfig.from_dict({"clip_len": 8, "colour": 1})
    assert PipelineConfig.from_dict({"features": ["joint", "bone"]}).features == ("joint", "bone")


def test_dataset_wrapper_and_collate():
    torch = pytest.importorskip("torch")
    samples = [_sample(T=10 + i, sid=f"c{i}", label=i % 3, seed=i) for i in range(5)]
    ds = SkeletonDataset.from_samples(samples, LAYOUT, ["a", "b", "c"])
    pipe = ClipPipeline(LAYOUT, PipelineConfig(clip_len=8, level="minor"), train=True, seed=0)
    pds = PipelineDataset(ds, [4, 1], pipe)
    assert len(pds) == 2 and pipe.in_channels == 2
    first = pds[0]
    assert first["index"] == 4 and first["label"] == 1
    assert _equal(first, pipe(ds[4], 4, 0))
    pds.set_epoch(1)
    assert _equal(pds[0], pipe(ds[4], 4, 1))
    batch = collate([pds[0], pds[1]])
    assert batch["keypoint"].shape == (2, 1, 8, 17, 2) and batch["keypoint"].dtype == torch.float32
    assert batch["mask"].dtype == torch.bool
    assert batch["label"].tolist() == [1, 1] and batch["index"].tolist() == [4, 1]


def test_dataloader_workers_give_the_same_batches():
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    samples = [_sample(T=12 + i, sid=f"c{i}", label=i % 3, seed=i) for i in range(6)]
    ds = SkeletonDataset.from_samples(samples, LAYOUT, ["a", "b", "c"])
    pds = PipelineDataset(ds, None, ClipPipeline(LAYOUT, PipelineConfig(clip_len=8, level="moderate"),
                                                 train=True, seed=2))
    pds.set_epoch(3)
    batch = next(iter(DataLoader(pds, batch_size=6, num_workers=2, collate_fn=collate)))
    ref = collate([pds[i] for i in range(6)])
    assert all(torch.equal(batch[k], ref[k]) for k in ref)


def test_flip_prob_controls_the_left_right_flip():
    """flip_prob=1 gives exactly the flipped output of flip_prob=0 (same draws otherwise)."""
    layout = get_layout("coco17")
    s = _sample()
    base = dict(clip_len=16, level="moderate", augment=True, filler="linear")
    never = ClipPipeline(layout, PipelineConfig(**base, flip_prob=0.0), train=True, seed=3)(s, 5, 1)
    always = ClipPipeline(layout, PipelineConfig(**base, flip_prob=1.0), train=True, seed=3)(s, 5, 1)
    perm = layout.flip_permutation
    mirrored = never["keypoint"][:, :, perm] * np.array([-1.0, 1.0], dtype=np.float32)
    assert not np.allclose(always["keypoint"], never["keypoint"])
    # the gap filler runs after the flip and commutes with it, so filled entries agree too
    np.testing.assert_allclose(always["keypoint"], mirrored, atol=1e-5)
    assert np.array_equal(always["mask"], never["mask"][:, :, perm])
