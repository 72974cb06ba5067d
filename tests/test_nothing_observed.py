"""A clip with nothing observed: what the corruption protocol leaves of a clip whose only observed
joints fall in dropped frames. It is a valid Sample; a file written by ``finetec corrupt`` that
holds one reads back, inspects, evaluates and predicts; training and drawing refuse it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from finetec.cli import main
from finetec.data.corruption import corrupt_dataset, keep_frames, num_dropped, test_rng
from finetec.data.dataset import SkeletonDataset
from finetec.data.sample import Sample
from finetec.errors import FinetecError

from test_api import CLASSES, clip, make_checkpoint

T, V, SEED = 8, 17, 5
LONE = "lone"


def _lone_frame() -> int:
    """A frame that `finetec corrupt --level severe --seed SEED` drops from the clip ``LONE``."""
    keep = keep_frames(T, "severe", "random", test_rng(SEED, LONE, "severe", "random"))
    assert int((~keep).sum()) == num_dropped(T, "severe") == 6
    return int(np.flatnonzero(~keep)[0])


def _source() -> SkeletonDataset:
    """Four fully observed clips and ``LONE``, observed in one frame only and there in 5 joints
    (like the invisible joints of Penn Action)."""
    rng = np.random.default_rng(0)
    samples = [Sample(clip(rng, T=T), np.ones((1, T, V), bool), label=i, id=f"c{i}") for i in range(4)]
    kp = clip(rng, T=T)
    m = np.zeros((1, T, V), bool)
    m[0, _lone_frame(), :5] = True
    kp[~m] = 0
    samples.append(Sample(kp, m, label=1, id=LONE))
    every = list(range(5))
    return SkeletonDataset.from_samples(samples, "coco17", CLASSES, splits={"train": every, "test": every})


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("empty_clip")
    src, dst = d / "src.finetec.npz", d / "severe.finetec.npz"
    _source().save(src)
    assert main(["corrupt", str(src), str(dst), "--level", "severe", "--seed", str(SEED)]) == 0
    return {"dir": d, "src": src, "dst": dst, "ckpt": make_checkpoint(d / "mean")}


# -- the Sample ------------------------------------------------------------------------------
def test_sample_accepts_nothing_observed_and_still_rejects_malformed_clips():
    s = Sample(np.zeros((2, 3, V, 2), np.float32), np.zeros((2, 3, V), bool), label=1, id="e", num_classes=4)
    assert not s.mask.any() and s.label == 1 and s.num_frames == 3
    kp = np.zeros((1, 3, V, 2), np.float32)
    kp[0, 1, 2] = np.nan                       # unobserved: carries no meaning
    assert not Sample(kp, np.zeros((1, 3, V), bool)).mask.any()
    cases = [
        (dict(keypoint=kp, mask=np.zeros((1, 3, V + 1), bool)), "mask shape"),
        (dict(keypoint=kp, mask=np.ones((1, 3, V), bool)), "NaN or Inf in observed keypoints"),
        (dict(keypoint=np.zeros((1, 3, V, 4)), mask=np.zeros((1, 3, V), bool)), "2 or 3 coordinates"),
        (dict(keypoint=np.zeros((1, 0, V, 2)), mask=np.zeros((1, 0, V), bool)), "0 frames"),
        (dict(keypoint=np.zeros((3, V, 2)), mask=np.zeros((3, V), bool)), "must be \\(M, T, V, C\\)"),
        (dict(keypoint=np.zeros((1, 3, V, 2)), mask=np.zeros((1, 3, V), bool), score=np.zeros((1, 2, V))),
         "score shape"),
        (dict(keypoint=np.zeros((1, 3, V, 2)), mask=np.zeros((1, 3, V), bool), label=4, num_classes=4),
         "label 4 outside 0..3"),
    ]
    for kwargs, msg in cases:
        with pytest.raises(FinetecError, match=msg):
            Sample(id="bad", **kwargs)


def test_corrupt_dataset_empties_the_clip_observed_in_a_dropped_frame_only():
    src = _source()
    out = corrupt_dataset(src, "severe", "random", SEED)
    lone = out[4]
    assert lone.id == LONE and not lone.mask.any() and (lone.keypoint == 0).all()
    assert src[4].mask.sum() == 5               # the source is untouched
    for i in range(4):                          # the other clips keep 2 of their 8 frames
        assert out[i].mask[0].any(axis=-1).sum() == 2
    sub = out.subset([4, 0])                    # an empty clip survives repacking
    assert sub.ids.tolist() == [LONE, "c0"] and not sub[0].mask.any() and sub[1].mask.sum() == 2 * V


# -- the file written by `finetec corrupt` ---------------------------------------------------
def test_corrupt_file_reads_back_with_the_empty_clip(files):
    ds = SkeletonDataset.load(files["dst"])
    ref = corrupt_dataset(SkeletonDataset.load(files["src"]), "severe", "random", SEED)
    np.testing.assert_array_equal(ds.mask, ref.mask)
    np.testing.assert_array_equal(ds.keypoint, ref.keypoint)
    samples = list(ds)
    assert [s.id for s in samples] == ["c0", "c1", "c2", "c3", LONE]
    assert not samples[4].mask.any() and samples[4].label == 1
    assert [int(s.mask.sum()) for s in samples] == [2 * V] * 4 + [0]


def test_inspect_counts_the_empty_clip(files, capsys):
    capsys.readouterr()
    assert main(["inspect", str(files["dst"]), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["num_clips"] == 5 and s["class_counts"] == [1, 2, 1, 1]
    # 4 clips x 2 kept frames x 17 joints observed out of 40 frames x 17 joints
    assert s["missing_fraction"] == pytest.approx(1 - 4 * 2 * V / (40 * V))
    assert s["missing_frame_fraction"] == pytest.approx(1 - 8 / 40)
    assert s["meta"]["corruption"] == [{"level": "severe", "pattern": "random", "seed": SEED}]
    assert s["nothing_observed"] == {"clips": 1, "ids": [LONE], "splits": {"test": 1, "train": 1}}
    assert main(["inspect", str(files["dst"])]) == 0
    out = capsys.readouterr().out
    assert "80.00 % of frames empty" in out
    assert f"    empty: 1 clip with nothing observed (test 1, train 1), refused by training: '{LONE}'\n" in out
    # the source file has none: the JSON says 0, the text has no such row
    assert main(["inspect", str(files["src"]), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["nothing_observed"] == {"clips": 0, "ids": [], "splits": {"test": 0, "train": 0}}
    assert main(["inspect", str(files["src"])]) == 0
    assert "empty:" not in capsys.readouterr().out


def test_inspect_lists_a_few_of_many_empty_clips(tmp_path, capsys):
    """24 empty clips among 26: the JSON lists the first 20 ids, the text 5, with per-split counts
    that training (which reads the train split) can be checked against."""
    rng = np.random.default_rng(1)
    empty = [Sample(np.zeros((1, T, V, 2), np.float32), np.zeros((1, T, V), bool), label=i % 4, id=f"e{i:02d}")
             for i in range(24)]
    full = [Sample(clip(rng, T=T), np.ones((1, T, V), bool), label=i, id=f"c{i}") for i in range(2)]
    ds = SkeletonDataset.from_samples(empty + full, "coco17", CLASSES,
                                      splits={"train": list(range(0, 24, 3)) + [24, 25], "test": list(range(26))})
    path = tmp_path / "many.finetec.npz"
    ds.save(path)
    capsys.readouterr()
    assert main(["inspect", str(path), "--json"]) == 0
    e = json.loads(capsys.readouterr().out)["nothing_observed"]
    assert e == {"clips": 24, "ids": [f"e{i:02d}" for i in range(20)], "splits": {"test": 24, "train": 8}}
    assert main(["inspect", str(path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("empty:"))
    assert row.endswith("24 clips with nothing observed (test 24, train 8), refused by training: "
                        "'e00', 'e01', 'e02', 'e03', 'e04' and 19 more")
    with pytest.raises(FinetecError, match="8 clip\\(s\\) have no observed joint in any frame: 'e00', 'e03', 'e06'"):
        from finetec.engine.sanity import check_split

        check_split(ds, ds.split_indices("train"), "train", "classification")


def test_eval_and_predict_classify_the_empty_clip_from_an_empty_mask(files, capsys):
    """The test classifier's features are means over the observed entries: 0 for an empty mask,
    so the empty clip's logits are exactly the classifier's bias."""
    import finetec
    from finetec.engine.checkpoint import load_model

    model, _ = load_model(files["ckpt"])
    bias = model.fc.bias.detach().numpy()
    scores = files["dir"] / "scores.npz"
    capsys.readouterr()
    assert main(["eval", str(files["ckpt"]), "--data", str(files["dst"]), "--split", "test", "--json",
                 "--save-scores", str(scores)]) == 0
    res = json.loads(capsys.readouterr().out)["results"][0]
    assert res["num_clips"] == 5 and np.array(res["confusion"]).sum() == 5
    z = np.load(scores)
    assert z["id"].tolist()[4] == LONE
    np.testing.assert_allclose(z["scores"][4], bias, rtol=1e-6, atol=1e-6)
    assert not np.allclose(z["scores"][0], bias)           # an observed clip does not reduce to it
    # the Python API and `finetec predict` on the file agree
    p = finetec.load(str(files["ckpt"]))
    probs = p.probabilities(SkeletonDataset.load(files["dst"]))
    want = np.exp(bias - bias.max()) / np.exp(bias - bias.max()).sum()
    np.testing.assert_allclose(probs[4], want, rtol=1e-5)
    assert main(["predict", str(files["ckpt"]), str(files["dst"]), "--json", "--top-k", "1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[4]["top_k"][0]["class"] == CLASSES[int(np.argmax(bias))]
    # an array with nothing observed handed to predict() is still refused
    with pytest.raises(FinetecError, match="no observed joint"):
        p.predict(np.zeros((T, V, 2), np.float32))


def test_a_gcn_classifies_the_empty_clip(files):
    """A real backbone on the file: the empty clip's logits are the network's output for an
    all-zero input with an empty mask."""
    from finetec.engine.checkpoint import load_model
    from finetec.engine.evaluate import evaluate

    ck = make_checkpoint(files["dir"] / "gcn", model="stgcnpp", base_channels=8, num_stages=2,
                         inflate_stages=[], down_stages=[])
    model, info = load_model(ck)
    res = evaluate(model, info, files["dst"], "clean", split="test", device="cpu", precision="fp32")
    with torch.inference_mode():
        want = model(torch.zeros(1, 1, 16, V, 2), torch.zeros(1, 1, 16, V, dtype=torch.bool))[0].numpy()
    assert np.isfinite(res["scores"]).all()
    np.testing.assert_allclose(res["scores"][4], want, rtol=1e-5, atol=1e-6)


def test_complete_fills_nothing_in_the_empty_clip(files, capsys):
    out = files["dir"] / "done.finetec.npz"
    assert main(["complete", str(files["ckpt"]), str(files["dst"]), str(out), "--method", "linear"]) == 0
    capsys.readouterr()
    with np.load(out) as z:
        filled = z["filled"]
    done = SkeletonDataset.load(out)
    assert not done[4].mask.any() and (done[4].keypoint == 0).all()
    assert filled[32:40].sum() == 0                          # the empty clip: frames 32..39
    assert filled[:32].sum() == 4 * 6 * V and all(done[i].mask.all() for i in range(4))


def test_training_and_drawing_still_refuse_the_empty_clip(files, capsys):
    cfg = files["dir"] / "tiny.yaml"
    cfg.write_text("name: tiny\n")
    argv = ["train", str(cfg), "--out", str(files["dir"] / "run"),
            "--set", f"data.path={files['dst']}", "--set", "data.train_split=train",
            "--set", "data.val_fraction=0", "--set", "model.name=stgcnpp", "--set", "model.base_channels=8",
            "--set", "pipeline.clip_len=8", "--set", "runtime.tensorboard=off"]
    capsys.readouterr()
    assert main(argv) == 2
    last = capsys.readouterr().err.splitlines()[-1]      # (the run log goes to stderr before it)
    assert last == (f"finetec train: error: {files['dst']}: "
                    f"1 clip(s) have no observed joint in any frame: '{LONE}'")
    assert not (files["dir"] / "run" / "last").exists()
    png = files["dir"] / "lone.png"
    assert main(["render", str(files["dst"]), str(png), "--id", LONE]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"finetec render: error: {files['dst']}: clip '{LONE}' has no observed joint to draw", err
    assert not png.exists()
