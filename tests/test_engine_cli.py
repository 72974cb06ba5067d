"""The train / eval / ensemble commands end to end on a tiny synthetic run."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finetec.cli import main

TINY = ["--set", "model.name=stgcnpp", "--set", "model.base_channels=8", "--set", "model.num_stages=2",
        "--set", "model.inflate_stages=[2]", "--set", "model.down_stages=[2]", "--set", "runtime.threads=1",
        "--set", "runtime.tensorboard=off", "--set", "pipeline.clip_len=12", "--set", "optim.batch_size=16",
        "--set", "data.path=synthetic:coco17?clips=60&seed=4&subjects=3", "--set", "data.val_fraction=0.3"]



@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cfg = root / "tiny.yaml"
    cfg.write_text("name: tiny\noptim: {epochs: 2, lr: 0.05}\n")
    torch.set_num_threads(1)
    assert main(["train", str(cfg), "--out", str(root / "run"), *TINY, "--json"]) == 0
    return root / "run"


def test_train_writes_run_folder(run_dir):
    for f in ("config.yaml", "train.log", "metrics.jsonl", "best/model.safetensors", "best/checkpoint.json",
              "last/model.safetensors", "last/train_state.pt"):
        assert (run_dir / f).exists(), f
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"epoch", "lr", "loss", "train_top1", "val_top1", "time"} <= set(rows[0])
    info = json.loads((run_dir / "best" / "checkpoint.json").read_text())
    assert {"config", "model_config", "class_names", "layout", "dims", "clip_len", "epoch", "metrics", "seed",
            "finetec_version"} <= set(info)
    assert info["clip_len"] == 12 and info["dims"]["coords"] == 2 and info["layout"]["name"] == "coco17"


def test_eval_json_schema_all_levels(run_dir, tmp_path, capsys):
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--level", "all", "--json", "--save-scores", str(tmp_path / "s.npz")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"checkpoint", "data", "split", "precision", "class_names", "results"}
    assert out["precision"] == ("bf16" if torch.cuda.is_available() else "fp32")   # auto
    assert out["split"] == "test" and len(out["class_names"]) == 14
    assert [r["level"] for r in out["results"]] == ["clean", "minor", "moderate", "severe"]
    for r in out["results"]:
        assert set(r) == {"level", "pattern", "num_clips", "top1", "top5", "mean_class", "confusion"}
        cm = np.array(r["confusion"])
        assert cm.shape == (14, 14)
        assert abs(np.trace(cm) / cm.sum() - r["top1"]) < 1e-9
        assert r["num_clips"] == cm.sum()  # test clips, not clips per sample
        assert 0 <= r["top1"] <= r["top5"] <= 1
    z = np.load(tmp_path / "s_severe.npz")
    assert z["scores"].shape == (cm.sum(), 14) and len(z["id"]) == cm.sum()
    # the same seed gives the same numbers; the corrupted test set is fixed
    main(["eval", str(run_dir), "--level", "severe", "--json"])
    again = json.loads(capsys.readouterr().out)["results"][0]
    assert again["confusion"] == out["results"][3]["confusion"]


def test_eval_multi_clip_and_text(run_dir, capsys):
    capsys.readouterr()
    assert main(["eval", str(run_dir / "best"), "--clips", "3", "--split", "train"]) == 0
    text = capsys.readouterr().out
    assert "mean-class acc" in text and "clean" in text and "split train" in text


def test_eval_errors(run_dir, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["eval", str(run_dir), "--level", "extreme"]) == 2
    assert main(["eval", str(run_dir), "--data", "synthetic:ntu25?clips=20"]) == 2
    assert "joints" in capsys.readouterr().err


def test_eval_refuses_a_layout_with_another_joint_order(run_dir, tmp_path, capsys):
    from finetec.data import open_dataset
    from finetec.layouts import Layout

    ds = open_dataset("synthetic:coco17?clips=60&seed=4&subjects=3")
    d = ds.layout.to_dict()
    perm = [1, 0] + list(range(2, len(d["joints"])))
    d["joints"] = [d["joints"][i] for i in perm]
    ds.layout = Layout.from_dict(d)
    ds.keypoint, ds.mask = ds.keypoint[:, :, perm], ds.mask[:, :, perm]
    ds.save(tmp_path / "swapped.finetec.npz")
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(tmp_path / "swapped.finetec.npz")]) == 2
    assert "orders its joints differently" in capsys.readouterr().err


def test_ensemble(run_dir, tmp_path, capsys):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["eval", str(run_dir), "--save-scores", str(a)]) == 0
    assert main(["eval", str(run_dir / "last"), "--save-scores", str(b)]) == 0
    capsys.readouterr()
    assert main(["ensemble", str(a), str(b), "--weights", "1", "0", "--json", "--out", str(tmp_path / "f.npz")]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["fused"]["top1"] == res["inputs"][0]["top1"]     # weight 0 on b: a alone
    z = np.load(tmp_path / "f.npz")
    assert z["weights"].tolist() == [1.0, 0.0] and list(z["inputs"]) == [str(a), str(b)]
    assert np.allclose(z["scores"].sum(1), 1.0, atol=1e-5)


def test_ensemble_hand_computed_and_checks(tmp_path, capsys):
    names = np.array(["x", "y", "z"])
    ids = np.array(["c1", "c2", "c3", "c4"])
    lab = np.array([0, 1, 2, 2])
    s1 = np.log(np.array([[.6, .3, .1], [.5, .4, .1], [.1, .2, .7], [.4, .35, .25]]))   # 3/4 wrong on c2,c4
    s2 = np.log(np.array([[.2, .7, .1], [.1, .8, .1], [.1, .1, .8], [.1, .3, .6]]))     # wrong on c1
    np.savez(tmp_path / "1.npz", scores=s1, label=lab, id=ids, class_names=names)
    perm = [3, 1, 0, 2]                                                               # other clip order
    np.savez(tmp_path / "2.npz", scores=s2[perm], label=lab[perm], id=ids[perm], class_names=names)
    capsys.readouterr()
    assert main(["ensemble", str(tmp_path / "1.npz"), str(tmp_path / "2.npz"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["inputs"][0]["top1"] == 0.5 and res["inputs"][1]["top1"] == 0.75
    # fused = p1 + p2: c1 [.8,1.0,.2] -> 1 (wrong), c2 -> 1, c3 -> 2, c4 [.5,.65,.85] -> 2
    assert res["fused"]["top1"] == 0.75
    np.savez(tmp_path / "3.npz", scores=s2, label=np.array([0, 1, 2, 0]), id=ids, class_names=names)
    assert main(["ensemble", str(tmp_path / "1.npz"), str(tmp_path / "3.npz")]) == 2
    assert "labels disagree" in capsys.readouterr().err
    np.savez(tmp_path / "4.npz", scores=s2, label=lab, id=np.array(["c1", "c2", "c3", "c9"]), class_names=names)
    assert main(["ensemble", str(tmp_path / "1.npz"), str(tmp_path / "4.npz")]) == 2
    assert "different clips" in capsys.readouterr().err
    assert main(["ensemble", str(tmp_path / "1.npz"), str(tmp_path / "2.npz"), "--weights", "1"]) == 2
    assert main(["ensemble", str(tmp_path / "1.npz"), "--out", str(tmp_path / "o.npz"), "--weights", "-1"]) == 2
    assert not (tmp_path / "o.npz").exists()
