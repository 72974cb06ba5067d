"""`finetec predict` and `finetec complete` end to end on small files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from finetec.cli import main
from finetec.data import open_dataset

from test_api import CLASSES, make_checkpoint, make_dataset


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(0)
    ds = make_dataset(rng, n=5)
    ds.save(d / "clips.finetec.npz")
    make_dataset(rng, n=2, layout="penn13").save(d / "penn.finetec.npz")
    make_dataset(rng, n=2, layout="h36m17").save(d / "h36m.finetec.npz")   # no joint map onto coco17
    make_dataset(rng, n=1, lengths=(24,)).save(d / "one.finetec.npz")
    return {
        "dir": d, "data": d / "clips.finetec.npz", "penn": d / "penn.finetec.npz", "h36m": d / "h36m.finetec.npz", "one": d / "one.finetec.npz",
        "ckpt": make_checkpoint(d / "ck", clip_len=16),
        "compl": make_checkpoint(d / "compl", model="_test_zero_completion", task="completion", classes=("none",)),
    }


def _run(capsys, argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(rc, err):
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("finetec ") and ": error: " in err


# -- predict ---------------------------------------------------------------------------------
def test_predict_text_prints_k_classes_per_clip(files, capsys):
    rc, out, err = _run(capsys, ["predict", files["ckpt"], files["data"], "--top-k", "3"])
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 5
    for i, line in enumerate(lines):
        parts = line.split("  ")
        assert parts[0] == f"c{i:02d}"
        pairs = [p.split(" ") for p in parts[1:4]]
        assert [c for c, _ in pairs] and all(c in CLASSES for c, _ in pairs)
        probs = [float(q) for _, q in pairs]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-3
        assert line.endswith(f"[label: {CLASSES[i % 4]}]")
    assert "5 clips" in err


def test_predict_json_matches_the_api(files, capsys):
    import finetec

    rc, out, _ = _run(capsys, ["predict", files["ckpt"], files["data"], "--json", "--top-k", "4", "--batch-size", "2"])
    assert rc == 0
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in recs] == [f"c{i:02d}" for i in range(5)]
    want = finetec.load(str(files["ckpt"])).predict_batch(open_dataset(files["data"]), top_k=4)
    for r, w in zip(recs, want):
        assert set(r) == {"id", "top_k", "label"}
        assert [c["class"] for c in r["top_k"]] == [c for c, _ in w]
        np.testing.assert_allclose([c["prob"] for c in r["top_k"]], [q for _, q in w], atol=1e-5)
        assert sum(c["prob"] for c in r["top_k"]) == pytest.approx(1.0, abs=1e-4)  # all 4 classes


def test_predict_several_inputs_and_a_split(files, capsys):
    rc, out, _ = _run(capsys, ["predict", files["ckpt"], files["data"], files["one"], "--json", "--top-k", "1"])
    assert rc == 0
    recs = [json.loads(line) for line in out.splitlines()]
    assert len(recs) == 6 and recs[-1]["input"] == str(files["one"]) and len(recs[0]["top_k"]) == 1
    rc, _, err = _run(capsys, ["predict", files["ckpt"], files["data"], "--split", "test"])
    _one_line_error(rc, err)
    assert "no split named 'test'" in err


def test_predict_bad_inputs(files, capsys, tmp_path):
    rc, out, err = _run(capsys, ["predict", tmp_path / "nope", files["data"]])
    _one_line_error(rc, err)
    assert "no such checkpoint" in err and out == ""
    rc, out, err = _run(capsys, ["predict", files["ckpt"], files["h36m"]])
    _one_line_error(rc, err)
    assert "no joint map from layout 'h36m17'" in err and "h36m.finetec.npz" in err and out == ""
    empty = tmp_path / "empty.finetec.npz"
    empty.write_bytes(b"")
    rc, out, err = _run(capsys, ["predict", files["ckpt"], empty])
    _one_line_error(rc, err)
    assert out == ""
    rc, out, err = _run(capsys, ["predict", files["ckpt"], files["data"], tmp_path / "missing.json"])
    _one_line_error(rc, err)
    assert "missing.json" in err and out == ""  # checked before anything is printed
    rc, _, err = _run(capsys, ["predict", files["compl"], files["data"]])
    _one_line_error(rc, err)
    assert "does not classify" in err


# -- complete --------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["linear", "model"])
def test_complete_writes_observed_unchanged_and_fills_the_rest(files, capsys, method):
    ck = files["compl"] if method == "model" else files["ckpt"]
    out_path = files["dir"] / f"done_{method}.finetec.npz"
    rc, _, err = _run(capsys, ["complete", ck, files["data"], out_path, "--method", method])
    assert rc == 0 and "5 clip(s)" in err
    src, done = open_dataset(files["data"]), open_dataset(out_path)
    assert len(done) == len(src) and list(done.ids) == list(src.ids)
    with np.load(out_path) as z:
        filled = z["filled"]
    np.testing.assert_array_equal(filled, ~src.mask)  # every missing joint of the (single) person
    np.testing.assert_array_equal(done.keypoint[src.mask], src.keypoint[src.mask])
    assert done.mask.all() and np.isfinite(done.keypoint).all()
    assert (np.abs(done.keypoint[filled]) > 1).all()  # filled with real coordinates, not zeros
    # the fill is plausible: within the range of the clip's observed coordinates
    for i in range(len(src)):
        s, t = src[i], done[i]
        lo, hi = s.keypoint[s.mask].min(axis=0), s.keypoint[s.mask].max(axis=0)
        assert (t.keypoint >= lo - 1e-3).all() and (t.keypoint <= hi + 1e-3).all()


def test_complete_plain_npz_and_pose_json_outputs(files, capsys):
    rc, _, _ = _run(capsys, ["complete", files["ckpt"], files["one"], files["dir"] / "one.npz", "--method", "cubic"])
    assert rc == 0
    src = open_dataset(files["one"])[0]
    with np.load(files["dir"] / "one.npz") as z:
        kp, mask, filled = z["keypoint"], z["mask"], z["filled"]
        assert str(z["layout"]) == "coco17"
    assert kp.shape == src.keypoint.shape and mask.all()
    np.testing.assert_array_equal(filled, ~src.mask)
    np.testing.assert_array_equal(kp[src.mask], src.keypoint[src.mask])
    rc, _, _ = _run(capsys, ["complete", files["ckpt"], files["one"], files["dir"] / "one.json", "--method", "zero"])
    assert rc == 0
    doc = json.loads((files["dir"] / "one.json").read_text())
    assert doc["layout"] == "coco17" and len(doc["frames"]) == src.num_frames
    f0 = doc["frames"][3]["people"][0]
    assert len(f0["keypoints"]) == 17 * 3 and f0["filled"] == [int(not v) for v in src.mask[0, 3]]
    flat = np.array(f0["keypoints"]).reshape(17, 3)
    np.testing.assert_allclose(flat[src.mask[0, 3], :2], src.keypoint[0, 3][src.mask[0, 3]], atol=1e-4)
    np.testing.assert_array_equal(flat[~src.mask[0, 3], :2], 0.0)  # "zero" filler
    back = open_dataset(files["dir"] / "one.json")[0]  # the pose_json reader reads it back
    assert back.keypoint.shape == src.keypoint.shape
    np.testing.assert_allclose(back.keypoint[src.mask], src.keypoint[src.mask], atol=1e-4)


def test_predict_and_complete_pose_estimator_json(files, capsys):
    """A pose estimator's output file (COCO-style flat keypoints, a frame with nobody in it)."""
    import finetec
    from test_api import clip

    kp = clip(np.random.default_rng(7), T=20)[0]
    frames = [{"people": [{"pose_keypoints_2d": np.c_[kp[t], np.ones(17)].ravel().tolist()}]} for t in range(20)]
    frames[5] = {"people": []}
    path = files["dir"] / "estimator.json"
    path.write_text(json.dumps(frames))
    rc, out, _ = _run(capsys, ["predict", files["ckpt"], path, "--json", "--top-k", "2"])
    assert rc == 0
    rec = json.loads(out)
    mask = np.ones((1, 20, 17), bool)
    mask[0, 5] = False
    want = finetec.load(str(files["ckpt"])).predict(np.where(mask[..., None], kp[None], 0), mask, top_k=2)
    assert [c["class"] for c in rec["top_k"]] == [c for c, _ in want] and "label" not in rec
    done = files["dir"] / "estimator_done.json"
    rc, _, _ = _run(capsys, ["complete", files["ckpt"], path, done, "--method", "linear"])
    assert rc == 0
    doc = json.loads(done.read_text())
    assert doc["frames"][5]["people"][0]["filled"] == [1] * 17
    got = np.array(doc["frames"][5]["people"][0]["keypoints"]).reshape(17, 3)[:, :2]
    np.testing.assert_allclose(got, (kp[4] + kp[6]) / 2, atol=1e-3)  # linear between frames 4 and 6


def test_complete_bad_inputs_leave_no_file(files, capsys, tmp_path):
    cases = [
        (["complete", files["ckpt"], files["data"], tmp_path / "a.finetec.npz"], "no completion module"),
        (["complete", files["ckpt"], files["data"], tmp_path / "a.csv", "--method", "linear"], "unknown output format"),
        (["complete", files["ckpt"], files["h36m"], tmp_path / "a.npz", "--method", "linear"], "no joint map"),
        (["complete", files["ckpt"], files["data"], tmp_path / "a.json", "--method", "linear"], "holds one clip"),
        (["complete", tmp_path / "none", files["data"], tmp_path / "a.npz"], "no such checkpoint"),
        (["complete", files["ckpt"], tmp_path / "absent.npz", tmp_path / "a.npz", "--method", "zero"],
         "no such file"),
    ]
    for argv, msg in cases:
        rc, _, err = _run(capsys, argv)
        _one_line_error(rc, err)
        assert msg in err, err
    assert list(tmp_path.iterdir()) == []


# -- a checkpoint written by the training engine ---------------------------------------------
TINY = """
name: tiny
task: classification
seed: 0
data: {path: "synthetic:coco17?clips=56&seed=0&frames=20&subjects=4", train_split: train, test_split: test, val_fraction: 0.0}
pipeline: {clip_len: 16, level: clean, filler: linear, features: [joint, bone]}
model: {name: stgcnpp, base_channels: 8, num_stages: 2, inflate_stages: [], down_stages: []}
optim: {name: sgd, lr: 0.1, epochs: 1, warmup_epochs: 0, batch_size: 16}
runtime: {device: cpu}
"""


@pytest.mark.slow
def test_predict_agrees_with_engine_evaluation(tmp_path, capsys):
    """Same preprocessing as `finetec eval`: the probabilities are the softmax of eval's scores."""
    import finetec
    from finetec.engine.checkpoint import load_model
    from finetec.engine.config import load_config
    from finetec.engine.evaluate import evaluate
    from finetec.engine.train import train

    (tmp_path / "tiny.yaml").write_text(TINY)
    train(load_config(tmp_path / "tiny.yaml"), tmp_path / "run")
    capsys.readouterr()
    model, info = load_model(tmp_path / "run")
    res = evaluate(model, info, level="clean", split="test")
    p = finetec.load(str(tmp_path / "run"))
    assert (p.dim, p.in_channels, p.clip_len, p.max_persons) == (2, 4, 16, 1)
    ds = open_dataset(info["config"]["data"]["path"]).subset("test")
    probs = p.probabilities(ds)
    z = res["scores"] - res["scores"].max(axis=1, keepdims=True)
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, want, atol=1e-5)
    rc, out, _ = _run(capsys, ["predict", tmp_path / "run", info["config"]["data"]["path"], "--split", "test",
                               "--json", "--top-k", "1"])
    assert rc == 0
    top1 = [json.loads(line)["top_k"][0]["class"] for line in out.splitlines()]
    assert top1 == [p.class_names[j] for j in want.argmax(axis=1)]
