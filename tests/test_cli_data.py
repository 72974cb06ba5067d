"""``finetec inspect`` and ``finetec convert`` through the CLI entry point, good and bad input."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from finetec.cli import main
from finetec.data.dataset import SkeletonDataset
from finetec.data.readers import read_dataset

from conftest import shared_data


def _npz(tmp_path: Path) -> Path:
    """Two clips (coco17): clip 0 one person, 4 frames, 5 joints missing; clip 1 two persons, 3 frames."""
    kp = np.random.default_rng(0).uniform(1, 100, size=(2, 2, 4, 17, 2)).astype(np.float32)
    mask = np.ones((2, 2, 4, 17), bool)
    mask[0, 1] = False                            # clip 0: a single person
    mask[0, 0, 1, :5] = False                     # 5 missing joints
    mask[1, :, 3] = False                         # clip 1: 3 frames
    mask[1, 1, 0] = False                         # a frame where the second person is absent
    p = tmp_path / "clips.npz"
    np.savez(p, keypoint=kp, mask=mask, label=np.array([1, 0]), class_names=np.array(["walk", "run"]),
             layout="coco17", split__train=np.array([0]), split__test=np.array([1]))
    return p


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_inspect_json_values(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, out, err = _run(["inspect", str(_npz(tmp_path)), "--json"], capsys)
    assert rc == 0, err
    s = json.loads(out)
    assert s["num_clips"] == 2 and s["num_classes"] == 2 and s["class_names"] == ["walk", "run"]
    assert s["splits"] == {"test": 1, "train": 1} and s["layout"] == "coco17" and s["dims"] == 2
    assert s["frames"] == {"min": 3, "mean": 3.5, "max": 4, "total": 7}
    assert s["persons"]["max"] == 2 and s["persons"]["clips_by_count"] == {"1": 1, "2": 1}
    # real person-frames: clip 0: 4 x 1, clip 1: 3 x 2 -> 10 x 17 joint-frames; 5 + 17 missing
    assert s["missing_fraction"] == pytest.approx(22 / 170, abs=1e-6)
    assert s["class_counts"] == [1, 1] and s["format"] == "npz"
    ref = read_dataset(tmp_path / "clips.npz")
    obs = ref.keypoint[ref.mask]
    np.testing.assert_allclose(s["coords"]["min"], obs.min(0), atol=1e-4)
    np.testing.assert_allclose(s["coords"]["max"], obs.max(0), atol=1e-4)


def test_inspect_text_and_reader_options(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "one.npz"
    np.savez(p, keypoint=np.ones((6, 17, 2), np.float32))
    rc, out, _ = _run(["inspect", str(p), "-o", "layout=coco17"], capsys)
    assert rc == 0 and "clips: 1" in out and "coco17 (17 joints, 2D)" in out
    rc, _, err = _run(["inspect", str(p), "-o", "layout"], capsys)
    assert rc == 2 and "not KEY=VALUE" in err


def test_convert_canonical_and_pyskl(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = _npz(tmp_path)
    dst = tmp_path / "out" / "clips.finetec.npz"
    rc, out, err = _run(["convert", str(src), str(dst)], capsys)
    assert rc == 0, err
    assert "2 clips" in out
    ds, ref = SkeletonDataset.load(dst), read_dataset(src)
    np.testing.assert_array_equal(ds.keypoint, ref.keypoint)
    np.testing.assert_array_equal(ds.mask, ref.mask)
    assert ds.class_names == ["walk", "run"] and ds.splits["test"].tolist() == [1]
    pkl = tmp_path / "clips.pkl"
    rc, _, err = _run(["convert", str(dst), str(pkl)], capsys)
    assert rc == 0, err
    back = read_dataset(pkl)
    np.testing.assert_array_equal(back.mask, ref.mask)
    assert back.class_names == ["walk", "run"]
    # an existing output is kept unless --overwrite
    rc, _, err = _run(["convert", str(src), str(dst)], capsys)
    assert rc == 2 and "already exists" in err
    assert _run(["convert", str(src), str(dst), "--overwrite"], capsys)[0] == 0


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (input path, expected words in the error)."""
    d = tmp_path / "bad"
    d.mkdir()
    cases: dict[str, tuple[Path, str]] = {}
    good = pickle.dumps({"annotations": [{"frame_dir": "a", "label": 0,
                                          "keypoint": np.ones((1, 4, 17, 2), np.float32),
                                          "keypoint_score": np.ones((1, 4, 17), np.float32)}]})
    p = d / "truncated.pkl"
    p.write_bytes(good[: len(good) // 2])
    cases["truncated pickle"] = (p, "truncated")

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch owned",))

    p = d / "evil.pkl"
    p.write_bytes(pickle.dumps({"annotations": [Evil()]}))
    cases["code in pickle"] = (p, "forbidden global")
    p = d / "joints.npz"
    np.savez(p, keypoint=np.ones((4, 17, 3), np.float32), layout="ntu25")
    cases["wrong joint count"] = (p, "wrong joint count")
    p = d / "nan.npz"
    kp = np.ones((4, 17, 2), np.float32)
    kp[1, 2] = np.nan
    np.savez(p, keypoint=kp)
    cases["NaN"] = (p, "NaN or Inf")
    p = d / "empty.npz"
    np.savez(p, keypoint=np.ones((0, 17, 2), np.float32))
    cases["empty clip"] = (p, "empty")
    p = d / "allmissing.npz"
    np.savez(p, keypoint=np.ones((4, 17, 2), np.float32), mask=np.zeros((4, 17), bool))
    cases["all-missing clip"] = (p, "every frame is missing")
    p = d / "notes.txt"
    p.write_text("not skeletons")
    cases["unknown format"] = (p, "unknown format")
    p = d / "damaged.npz"
    p.write_bytes(b"PK\x03\x04 broken zip")
    cases["damaged npz"] = (p, "damaged .npz")
    nd = d / "ntu"
    nd.mkdir()
    p = nd / "S001C001P001R001A001.skeleton"
    p.write_text("3\n1\n72057594037931101 0 1 1 1 1 0 0.1 0.2 2\n25\n0.1 0.2 0.3\n")
    cases["truncated NTU"] = (p, "truncated")
    jd = d / "frames"
    jd.mkdir()
    for t in range(3):
        (jd / f"{t}.json").write_text("[]" if t != 1 else "[{\"keypoints\": [1, 2")
    cases["damaged JSON"] = (jd, "damaged JSON")
    pd = d / "penn" / "labels"
    pd.mkdir(parents=True)
    (pd / "0001.mat").write_bytes(b"MATLAB 5.0 MAT-file, truncated" + b"\0" * 40)
    cases["damaged MATLAB file"] = (pd / "0001.mat", "cannot read MATLAB file")
    p = d / "broken.finetec.npz"
    p.write_bytes(b"PK\x03\x04 not really")
    cases["damaged canonical file"] = (p, "cannot read dataset file")
    return cases


def test_bad_inputs_give_one_line_and_no_output(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    outdir = tmp_path / "outputs"
    outdir.mkdir()
    for name, (path, words) in _bad_inputs(tmp_path).items():
        src = path.parent.parent if name == "damaged MATLAB file" else path  # the dataset folder
        for cmd in (["convert", str(src), str(outdir / "x.finetec.npz")],
                    ["convert", str(src), str(outdir / "x.pkl")], ["inspect", str(src)]):
            rc, out, err = _run(cmd, capsys)
            lines = err.strip().splitlines()
            assert rc == 2, (name, cmd, err)
            assert len(lines) == 1 and lines[0].startswith(f"finetec {cmd[0]}: error: "), (name, err)
            assert words in lines[0] and str(path) in lines[0], (name, lines[0])
        assert list(outdir.iterdir()) == [], name           # no output, no leftover temp file
    assert not (tmp_path / "owned").exists()


def test_convert_refuses_unknown_destination(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rc, _, err = _run(["convert", str(_npz(tmp_path)), str(tmp_path / "out.csv")], capsys)
    assert rc == 2 and "must end in .finetec.npz" in err and not (tmp_path / "out.csv").exists()
    rc, _, err = _run(["inspect", str(tmp_path / "absent")], capsys)
    assert rc == 2 and "no such file or folder" in err


@pytest.mark.realdata
@pytest.mark.slow
def test_inspect_penn_action_missing_fraction(capsys: pytest.CaptureFixture) -> None:
    rc, out, err = _run(["inspect", str(shared_data("penn_action")), "--json"], capsys)
    assert rc == 0, err
    s = json.loads(out)
    assert s["num_clips"] == 2326 and s["splits"] == {"test": 1068, "train": 1258}
    assert s["missing_fraction"] == pytest.approx(0.22, abs=0.01)
    assert s["frames"]["min"] == 18 and s["frames"]["max"] == 663 and s["layout"] == "penn13"
