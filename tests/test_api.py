"""The Python inference API: finetec.load / Predictor (predict, predict_batch, complete).

Small registered test models make the expected outputs computable by hand; the other inference
tests (CLI, stream, export) import the helpers below.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import finetec
from finetec.api import Predictor, infer_mask
from finetec.data.dataset import SkeletonDataset
from finetec.data.pipeline import ClipPipeline, PipelineConfig
from finetec.data.sample import Sample
from finetec.data.transforms import normalization_params
from finetec.engine.checkpoint import save_checkpoint
from finetec.errors import FinetecError
from finetec.layouts import Layout, get_layout
from finetec.models.registry import create_model, list_models, model_options, register_model

CLASSES = ("clap", "jump", "wave", "squat")


# -- test models -----------------------------------------------------------------------------
class MeanClassifier(nn.Module):
    """logits = W [mean of x, mean of x^2] over the observed entries (+ b)."""

    def __init__(self, num_classes: int, in_channels: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.fc = nn.Linear(2 * in_channels, num_classes)
        with torch.no_grad():
            self.fc.weight.copy_(torch.randn(num_classes, 2 * in_channels, generator=g) * 3)
            self.fc.bias.copy_(torch.randn(num_classes, generator=g))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
        w = torch.ones_like(x[..., :1]) if mask is None else mask[..., None].to(x.dtype)
        n = w.sum(dim=(1, 2, 3)).clamp(min=1)
        feat = torch.cat([(x * w).sum(dim=(1, 2, 3)) / n, (x * x * w).sum(dim=(1, 2, 3)) / n], dim=-1)
        return {"logits": self.fc(feat), "aux_loss": torch.zeros(())}


class ZeroCompletion(nn.Module):
    """Predicts 0 (the normalised centre) for every missing entry."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("unused", torch.zeros(1))

    def forward(self, x, mask=None, target=None, target_mask=None):
        return {"completed": torch.where(mask[..., None], x, torch.zeros_like(x))}


@register_model("_test_mean_classifier")
def _mean_classifier(*, num_classes: int, layout: Layout, in_channels: int, seed: int = 0) -> nn.Module:
    return MeanClassifier(num_classes, in_channels, seed)


@register_model("_test_zero_completion")
def _zero_completion(*, num_classes: int, layout: Layout, in_channels: int) -> nn.Module:
    return ZeroCompletion()


# -- helpers shared by the inference tests ----------------------------------------------------
def make_checkpoint(folder: Path, model: str = "_test_mean_classifier", layout: str = "coco17", dim: int = 2,
                    clip_len: int = 16, classes=CLASSES, task: str = "classification", filler: str = "none",
                    features=("joint",), max_persons: int = 1, **overrides) -> Path:
    """A checkpoint folder for ``model`` (untrained) with the metadata the engine writes."""
    in_channels = dim if task == "completion" else dim * len(features)
    if "clip_len" in model_options(model):
        overrides.setdefault("clip_len", clip_len)
    net = create_model(model, num_classes=len(classes), layout=layout, in_channels=in_channels, **overrides)
    info = {
        "config": {"task": task, "seed": 0,
                   "pipeline": {"clip_len": clip_len, "filler": filler, "features": list(features),
                                "max_persons": max_persons}},
        "class_names": list(classes), "layout": get_layout(layout).to_dict(), "clip_len": clip_len, "seed": 0,
        "epoch": 0, "metrics": {},
    }
    return save_checkpoint(folder, net, info)



def tiny_finetec_predictor(folder: Path):
    """A tiny FineTec checkpoint's predictor (ST-GCN++ head of width 8, 2 blocks, clip length 16)
    whose untrained completion module gives a non-trivial completion (its head is zero untrained)."""
    import torch

    ck = make_checkpoint(folder, model="finetec", clip_len=16, allow_untrained_completion=True,
                         perturb_eval=False, backbone="stgcnpp",
                         backbone_overrides={"base_channels": 8, "num_stages": 2, "inflate_stages": [],
                                             "down_stages": []})
    p = finetec.load(str(ck))
    head = p.model.completion.head
    with torch.no_grad():
        head.weight.copy_(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)) * 0.1)
    return p

def clip(rng: np.random.Generator, T: int = 20, V: int = 17, C: int = 2, M: int = 1) -> np.ndarray:
    """A smooth (M, T, V, C) motion around a random pose, in pixel-like units."""
    base = rng.normal(0, 40, size=(M, 1, V, C)) + 300
    t = np.arange(T)[None, :, None, None]
    amp = rng.normal(0, 10, size=(M, 1, V, C))
    freq = rng.uniform(0.1, 0.4, size=(M, 1, V, 1))
    return (base + amp * np.sin(freq * t)).astype(np.float32)


def make_dataset(rng: np.random.Generator, n: int = 5, layout: str = "coco17", C: int = 2,
                 lengths=(20, 12, 33, 16, 25), drop: float = 0.2) -> SkeletonDataset:
    lay = get_layout(layout)
    samples = []
    for i in range(n):
        T = lengths[i % len(lengths)]
        kp = clip(rng, T=T, V=lay.num_joints, C=C)
        mask = rng.random((1, T, lay.num_joints)) > drop
        mask[:, 0] = True
        kp[~mask] = 0
        samples.append(Sample(keypoint=kp, mask=mask, label=i % len(CLASSES), id=f"c{i:02d}"))
    return SkeletonDataset.from_samples(samples, lay, CLASSES)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "mean")


@pytest.fixture(scope="module")
def completion_ckpt(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "zero", model="_test_zero_completion",
                           task="completion", classes=("none",))


# -- loading ---------------------------------------------------------------------------------
def test_load_returns_predictor_with_checkpoint_metadata(ckpt):
    p = finetec.load(str(ckpt))
    assert isinstance(p, Predictor)
    assert p.class_names == list(CLASSES)
    assert p.layout.name == "coco17" and p.layout.num_joints == 17
    assert (p.clip_len, p.dim, p.in_channels, p.max_persons) == (16, 2, 2, 1)
    assert not p.is_completion and not p.has_completion
    # the weights file path works as well as the folder
    assert finetec.load(str(Path(ckpt) / "model.safetensors")).class_names == list(CLASSES)


def test_unknown_checkpoint_is_a_finetec_error(tmp_path):
    with pytest.raises(FinetecError, match="no such checkpoint"):
        finetec.load(str(tmp_path / "nope"))


# -- predict ---------------------------------------------------------------------------------
def _manual_probs(ckpt: Path, kp: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The evaluation path written out: test-mode pipeline at level clean, model, softmax."""
    from finetec.engine.checkpoint import load_model

    model, _ = load_model(ckpt)
    pipe = ClipPipeline("coco17", PipelineConfig(clip_len=16, level="clean", max_persons=1), train=False, seed=0)
    o = pipe(Sample(keypoint=kp, mask=mask, id="clip0"), index=0)
    with torch.no_grad():
        z = model(torch.from_numpy(o["keypoint"][None]), torch.from_numpy(o["mask"][None]))["logits"]
    return torch.softmax(z, dim=1)[0].numpy()


def test_predict_equals_the_evaluation_pipeline(ckpt):
    rng = np.random.default_rng(0)
    kp = clip(rng, T=23)
    mask = np.ones(kp.shape[:3], bool)
    p = finetec.load(str(ckpt))
    top = p.predict(kp[0], top_k=4)  # (T, V, C) input
    want = _manual_probs(ckpt, kp, mask)
    order = np.argsort(-want)
    assert [c for c, _ in top] == [CLASSES[j] for j in order]
    np.testing.assert_allclose([q for _, q in top], want[order], rtol=1e-5, atol=1e-6)
    assert sum(q for _, q in top) == pytest.approx(1.0, abs=1e-5)
    top2 = p.predict(kp, top_k=2)
    assert len(top2) == 2 and top2[0][1] >= top2[1][1] and sum(q for _, q in top2) < 1.0


def test_default_mask_treats_nan_joints_and_zero_frames_as_missing(ckpt):
    rng = np.random.default_rng(1)
    kp = clip(rng, T=18)
    mask = np.ones(kp.shape[:3], bool)
    mask[0, 4] = False          # a lost frame
    mask[0, 9, [2, 5]] = False  # two lost joints
    raw = kp.copy()
    raw[0, 4] = 0.0
    raw[0, 9, [2, 5]] = np.nan
    np.testing.assert_array_equal(infer_mask(raw), mask)
    p = finetec.load(str(ckpt))
    got = p.predict(raw, top_k=4)
    want = p.predict(np.where(mask[..., None], kp, 0), mask, top_k=4)
    assert got == want
    # and the mask matters: treating the lost frame as observed changes the probabilities
    assert p.predict(np.where(mask[..., None], kp, 0), np.ones_like(mask), top_k=4) != want


def test_predict_batch_equals_one_by_one(ckpt):
    rng = np.random.default_rng(2)
    ds = make_dataset(rng)
    p = finetec.load(str(ckpt))
    one = [p.predict(s.keypoint, s.mask, top_k=3) for s in ds]
    for bs in (1, 2, 32):
        batch = p.predict_batch(ds, top_k=3, batch_size=bs)
        assert len(batch) == len(ds)
        for a, b in zip(batch, one):
            assert [c for c, _ in a] == [c for c, _ in b]
            np.testing.assert_allclose([q for _, q in a], [q for _, q in b], rtol=1e-5, atol=1e-6)
    # an (N, M, T, V, C) array is N clips
    same = [s.keypoint for s in ds if s.num_frames == 20]
    stacked = p.predict_batch(np.stack(same * 2), top_k=3)
    assert len(stacked) == 2 * len(same) and stacked[0] == stacked[len(same)]
    # a list of (keypoint, mask) tuples gives the same
    tup = p.predict_batch([(s.keypoint, s.mask) for s in ds], top_k=3)
    assert [[c for c, _ in r] for r in tup] == [[c for c, _ in r] for r in one]


def test_layout_mismatch_is_a_finetec_error(ckpt):
    rng = np.random.default_rng(3)
    p = finetec.load(str(ckpt))
    with pytest.raises(FinetecError, match="layout mismatch"):
        p.predict(clip(rng, V=13))
    with pytest.raises(FinetecError, match="layout mismatch"):
        p.predict(clip(rng, C=3))
    with pytest.raises(FinetecError, match=r"penn13.*13 joints"):
        p.predict_batch(make_dataset(rng, layout="penn13"))
    # same joint count, different joint names
    d = get_layout("coco17").to_dict()
    d["name"], d["joints"] = "renamed17", [f"j{i}" for i in range(17)]
    d.pop("maps")   # coco17's joint maps name its joints
    with pytest.raises(FinetecError, match="joint 0 is 'j0'"):
        p.check_layout(Layout.from_dict(d))


def test_clip_with_nothing_observed_is_an_error(ckpt):
    p = finetec.load(str(ckpt))
    with pytest.raises(FinetecError, match="no observed joint"):
        p.predict(np.zeros((10, 17, 2), np.float32))


def test_completion_checkpoint_does_not_classify(completion_ckpt):
    p = finetec.load(str(completion_ckpt))
    assert p.is_completion and p.has_completion
    with pytest.raises(FinetecError, match="does not classify"):
        p.predict(clip(np.random.default_rng(0))[0])


# -- complete --------------------------------------------------------------------------------
def test_complete_with_a_filler_keeps_observed_and_interpolates(ckpt):
    T = 12
    t = np.arange(T, dtype=np.float32)
    kp = np.stack([np.stack([t * (v + 1), 100 - 2 * t], axis=-1) for v in range(17)], axis=1)[None]  # linear
    mask = np.ones((1, T, 17), bool)
    mask[0, 3:7] = False
    mask[0, 9, 4] = False
    given = np.where(mask[..., None], kp, -5.0)  # garbage where missing
    p = finetec.load(str(ckpt))
    out, filled = p.complete(given, mask, method="linear")
    np.testing.assert_array_equal(filled, ~mask)
    np.testing.assert_array_equal(out[mask], given[mask])  # bit-identical
    np.testing.assert_allclose(out, kp, atol=1e-4)           # linear trajectory restored exactly
    out3, filled3 = p.complete(given[0], mask[0], method="copy_lr")  # (T, V, C) in, (T, V, C) out
    assert out3.shape == (T, 17, 2) and filled3.shape == (T, 17)
    np.testing.assert_array_equal(out3[3:7], np.repeat(kp[0, 2:3], 4, axis=0))


def test_complete_model_returns_the_input_frame(completion_ckpt):
    """ZeroCompletion predicts the normalised origin: in the input frame, the normalisation centre."""
    rng = np.random.default_rng(4)
    kp = clip(rng, T=16)
    mask = np.ones(kp.shape[:3], bool)
    mask[0, 5:9] = False
    mask[0, 12, 3] = False
    kp[~mask] = 0
    p = finetec.load(str(completion_ckpt))
    out, filled = p.complete(kp, mask)
    params = normalization_params(kp, mask, p.layout)
    assert params.scale != 1.0 and np.abs(params.center).min() > 10  # a real (non-identity) normalisation
    np.testing.assert_array_equal(filled, ~mask)
    np.testing.assert_array_equal(out[mask], kp[mask])
    np.testing.assert_allclose(out[~mask], np.broadcast_to(params.center, out[~mask].shape), rtol=1e-5)


def test_complete_model_maps_a_long_clip_back_to_its_frames(completion_ckpt):
    """T = 2 * clip_len: the pipeline samples the odd frames; even missing frames are interpolated."""
    rng = np.random.default_rng(5)
    kp = clip(rng, T=32)
    mask = np.ones(kp.shape[:3], bool)
    mask[0, 10:21] = False
    kp[~mask] = 0
    p = finetec.load(str(completion_ckpt))
    out, filled = p.complete(kp, mask)
    from finetec.data.transforms import uniform_indices

    idx = uniform_indices(32, 16)
    np.testing.assert_array_equal(idx, np.arange(1, 32, 2))
    c = normalization_params(kp[:, idx], mask[:, idx], p.layout).center
    for t in (11, 13, 15, 17, 19):  # sampled: the network's value
        np.testing.assert_allclose(out[0, t], np.broadcast_to(c, (17, 2)), rtol=1e-5)
    np.testing.assert_allclose(out[0, 12], np.broadcast_to(c, (17, 2)), rtol=1e-5)
    np.testing.assert_allclose(out[0, 10], (kp[0, 9] + c) / 2, rtol=1e-5)   # between observed 9 and 11
    np.testing.assert_allclose(out[0, 20], (c + kp[0, 21]) / 2, rtol=1e-5)  # between 19 and observed 21
    assert out.shape == kp.shape and filled.sum() == 11 * 17


def test_complete_model_needs_a_completion_module(ckpt):
    p = finetec.load(str(ckpt))
    with pytest.raises(FinetecError, match="no completion module"):
        p.complete(clip(np.random.default_rng(0)), method="model")
    with pytest.raises(FinetecError, match="unknown completion method"):
        p.complete(clip(np.random.default_rng(0)), method="spline")


@pytest.mark.skipif("completion" not in list_models(), reason="the completion model is not available")
def test_untrained_completion_network_equals_linear_interpolation(tmp_path):
    """CompletionNet's head starts at zero: its output is the linear pre-fill of the gaps. Through the
    API (normalise -> network -> undo normalisation) it must match the linear filler on the raw clip."""
    ck = make_checkpoint(tmp_path / "compl", model="completion", task="completion", classes=("none",),
                         clip_len=16, width=16, depth=2, merge_at=1, bank_size=4)
    rng = np.random.default_rng(6)
    kp = clip(rng, T=16)
    mask = np.ones(kp.shape[:3], bool)
    mask[0, 4:9] = False
    mask[0, 13, 7] = False
    kp[~mask] = 0
    p = finetec.load(str(ck))
    got, filled = p.complete(kp, mask, method="model")
    want, _ = p.complete(kp, mask, method="linear")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    assert filled.sum() == 5 * 17 + 1


@pytest.mark.slow
@pytest.mark.skipif("finetec" not in list_models(), reason="the FineTec model is not available")
def test_finetec_checkpoint_classifies_and_completes_with_its_module_1(tmp_path):
    ck = make_checkpoint(tmp_path / "ft", model="finetec", clip_len=16, allow_untrained_completion=True,
                         backbone="stgcnpp", backbone_overrides={"base_channels": 8, "num_stages": 2,
                                                                 "inflate_stages": [], "down_stages": []})
    p = finetec.load(str(ck))
    assert p.model_name == "finetec" and p.has_completion and not p.is_completion
    rng = np.random.default_rng(8)
    kp = clip(rng, T=16)
    mask = np.ones(kp.shape[:3], bool)
    mask[0, 3:7] = False
    kp[~mask] = 0
    top = p.predict(kp, mask, top_k=4)
    assert sorted(c for c, _ in top) == sorted(CLASSES) and sum(q for _, q in top) == pytest.approx(1, abs=1e-5)
    got, filled = p.complete(kp, mask)  # the untrained module 1 returns its linear pre-fill
    want, _ = p.complete(kp, mask, method="linear")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)
    assert filled.sum() == 4 * 17
