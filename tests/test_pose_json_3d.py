"""3D pose-estimator JSON: the dim rules, the ambiguity errors, the writer, and the commands that
use them (convert to .json, predict / complete with --id and -o dim=3)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from finetec.cli import main
from finetec.data import open_dataset
from finetec.data.readers import pose_json, read_dataset
from finetec.errors import FinetecError

from test_api import make_checkpoint, make_dataset


def _frames(rng, T=6, V=25, z=3.0):
    return rng.normal(size=(T, V, 3)) * 0.3 + [0.0, 0.0, z]


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_nested_three_values_need_a_dim(tmp_path):
    kp = _frames(np.random.default_rng(0))
    p = tmp_path / "clip.json"
    p.write_text(json.dumps([{"keypoints": f.tolist()} for f in kp]))
    with pytest.raises(FinetecError, match=r"could be 2D with a score .* or 3D .*dim=3") as e:
        read_dataset(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)
    ds = read_dataset(p, dim="3")
    assert ds.dim == 3 and ds.layout.name == "ntu25"
    np.testing.assert_allclose(ds[0].keypoint[0], kp, atol=1e-5)
    two = read_dataset(p, dim=2, layout="ntu25")            # said 2D: the third value is the score
    assert two.dim == 2 and np.allclose(two[0].score[0], kp[..., 2], atol=1e-5)
    # the file may say it; a contradicting option is an error
    p.write_text(json.dumps({"dim": 3, "frames": [{"keypoints": f.tolist()} for f in kp]}))
    assert read_dataset(p).dim == 3
    with pytest.raises(FinetecError, match='says "dim": 3 but the option says dim=2'):
        read_dataset(p, dim=2)
    with pytest.raises(FinetecError, match="dim option must be 2 or 3"):
        read_dataset(p, dim=4)


def test_flat_list_with_depth_in_the_score_place_is_an_error(tmp_path):
    kp = _frames(np.random.default_rng(1))
    p = tmp_path / "flat.json"
    p.write_text(json.dumps([{"keypoints": f.reshape(-1).tolist()} for f in kp]))
    with pytest.raises(FinetecError, match=r"third values are not scores in \[0, 1\]"):
        read_dataset(p)
    assert read_dataset(p, dim=3)[0].keypoint.shape == (1, 6, 25, 3)
    # COCO's flat x, y, score stays 2D without a word (scores and 0/1/2 visibilities)
    coco = tmp_path / "coco.json"
    coco.write_text(json.dumps([{"keypoints": [10.0, 20.0, 2] * 17}, {"keypoints": [10.0, 20.0, 0.7] * 17}]))
    assert read_dataset(coco).dim == 2


def test_explicit_3d_forms(tmp_path):
    rng = np.random.default_rng(2)
    kp = _frames(rng)
    sc = rng.uniform(0.5, 1.0, size=kp.shape[:2])
    mm = tmp_path / "mmpose.json"            # mmpose 3D: nested x, y, z with separate scores
    mm.write_text(json.dumps([{"instances": [{"keypoints": f.tolist(), "keypoint_scores": s.tolist()}]}
                              for f, s in zip(kp, sc)]))
    ds = read_dataset(mm)
    assert ds.dim == 3 and np.allclose(ds[0].score[0], sc, atol=1e-6)
    op = tmp_path / "op3d.json"              # OpenPose 3D: flat x, y, z, score
    op.write_text(json.dumps([{"people": [{"pose_keypoints_3d": np.concatenate([f, s[:, None]], 1).reshape(-1)
                                           .tolist()}]} for f, s in zip(kp, sc)]))
    assert read_dataset(op).dim == 3
    four = tmp_path / "four.json"            # nested x, y, z, score
    four.write_text(json.dumps([{"keypoints": np.concatenate([f, s[:, None]], 1).tolist()} for f, s in zip(kp, sc)]))
    assert read_dataset(four).dim == 3
    with pytest.raises(FinetecError, match="pose_keypoints_2d holds 2D keypoints but dim=3"):
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps([{"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.5] * 18}]}]))
        read_dataset(bad, dim=3)


def test_writer_round_trip_2d_and_3d(tmp_path):
    rng = np.random.default_rng(3)
    for layout, C in (("ntu25", 3), ("coco17", 2)):
        ds = make_dataset(rng, n=2, layout=layout, C=C)
        out = tmp_path / f"{layout}.json"
        pose_json.write(out, ds, 1)
        doc = json.loads(out.read_text())
        assert doc["dim"] == C and doc["layout"] == layout and doc["id"] == "c01"
        back = open_dataset(out)
        s, b = ds[1], back[0]
        assert back.dim == C and b.id == "c01"
        np.testing.assert_array_equal(b.mask, s.mask)
        np.testing.assert_allclose(b.keypoint, s.keypoint, atol=1e-4)


@pytest.fixture(scope="module")
def files3d(tmp_path_factory):
    d = tmp_path_factory.mktemp("p3d")
    ds = make_dataset(np.random.default_rng(4), n=5, layout="ntu25", C=3)
    ds.save(d / "data.finetec.npz")
    return {"dir": d, "data": d / "data.finetec.npz",
            "ckpt": make_checkpoint(d / "ck", layout="ntu25", dim=3, clip_len=16),
            "compl": make_checkpoint(d / "compl", model="_test_zero_completion", task="completion",
                                     classes=("none",), layout="ntu25", dim=3)}


def test_convert_one_clip_to_pose_json_then_predict_and_complete(files3d, capsys):
    d = files3d["dir"]
    clip = d / "clip.json"
    rc, out, err = _run(capsys, "convert", files3d["data"], clip)
    assert rc == 2 and "pick one with --id" in err and not clip.exists()
    rc, out, err = _run(capsys, "convert", files3d["data"], clip, "--id", "c03")
    assert rc == 0 and "pose JSON, 3D" in out and "'c03'" in out
    assert json.loads(clip.read_text())["dim"] == 3
    # predict: the JSON clip and the same clip picked from the dataset give the same answer
    rc, a, _ = _run(capsys, "predict", files3d["ckpt"], clip, "--json")
    assert rc == 0
    rc, b, _ = _run(capsys, "predict", files3d["ckpt"], files3d["data"], "--id", "c03", "--json")
    assert rc == 0 and len(b.splitlines()) == 1
    ja, jb = json.loads(a), json.loads(b)
    assert ja["id"] == jb["id"] == "c03"
    assert [c["class"] for c in ja["top_k"]] == [c["class"] for c in jb["top_k"]]
    np.testing.assert_allclose([c["prob"] for c in ja["top_k"]], [c["prob"] for c in jb["top_k"]], atol=1e-4)
    rc, _, err = _run(capsys, "predict", files3d["ckpt"], files3d["data"], "--id", "nope")
    assert rc == 2 and "no clip with id 'nope'" in err and "'c00'" in err and err.count("\n") == 1
    # complete: 3D pose JSON out, one clip picked with --id
    done = d / "done.json"
    rc, _, err = _run(capsys, "complete", files3d["compl"], files3d["data"], done, "--method", "linear")
    assert rc == 2 and "--id" in err and not done.exists()
    rc, _, err = _run(capsys, "complete", files3d["compl"], files3d["data"], done, "--method", "linear",
                      "--id", "c03")
    assert rc == 0, err
    doc = json.loads(done.read_text())
    assert doc["dim"] == 3 and doc["completion"]["method"] == "linear"
    back = open_dataset(done)
    assert back.dim == 3 and back.meta["completion"]["method"] == "linear" and back[0].mask.all()
    # a 3D pose JSON without "dim" needs -o dim=3 in predict as well
    raw = d / "raw.json"
    raw.write_text(json.dumps([{"keypoints": f.tolist()} for f in open_dataset(clip)[0].keypoint[0]]))
    rc, _, err = _run(capsys, "predict", files3d["ckpt"], raw)
    assert rc == 2 and "dim=3" in err
    rc, _, err = _run(capsys, "predict", files3d["ckpt"], raw, "-o", "dim=2")
    assert rc == 2 and "expects 3D coordinates, the input has 2D; if it holds x, y, z" in err and "-o dim=3" in err
    rc, out, _ = _run(capsys, "predict", files3d["ckpt"], raw, "-o", "dim=3", "--top-k", "1")
    assert rc == 0 and out.startswith("raw ")  # no "id" field: the file name


def test_dataset_repr_is_one_short_line():
    ds = make_dataset(np.random.default_rng(5), n=5)
    text = repr(ds)
    assert "\n" not in text and len(text) < 300
    assert text.startswith("SkeletonDataset(5 clips, 106 frames, layout coco17 (17 joints, 2D), 4 classes")
    assert str(ds) == text
