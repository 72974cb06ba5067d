"""Readers on small files of the exact layouts, written into tmp_path."""
from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from finetec.data.readers import READERS, detect_format, read_dataset, reader_options
from finetec.data.readers.ntu import NTU60_XSUB_TRAIN, NTU120_XSUB_TRAIN
from finetec.data.readers.pyskl import write_pyskl
from finetec.errors import FinetecError


# -- NTU .skeleton ------------------------------------------------------------------------
def _body_lines(body_id: str, joints: np.ndarray) -> list[str]:
    """One body block: 10 body fields, joint count, 25 lines of 12 numbers."""
    out = [f"{body_id} 0 1 1 1 1 0 0.1 0.2 2", "25"]
    for j in range(25):
        x, y, z = joints[j]
        out.append(f"{x:.6f} {y:.6f} {z:.6f} 250.1 200.2 {1000 + j} {500 + j} 0.5 0.1 0.2 0.3 2")
    return out


def write_ntu(path: Path, frames: list[list[tuple[str, np.ndarray]]]) -> Path:
    lines = [str(len(frames))]
    for bodies in frames:
        lines.append(str(len(bodies)))
        for bid, joints in bodies:
            lines += _body_lines(bid, joints)
    path.write_text("\n".join(lines) + "\n")
    return path


def _joints(offset: float, scale: float = 1.0) -> np.ndarray:
    base = np.arange(75, dtype=np.float64).reshape(25, 3) * 0.01 + 0.5
    return base * scale + offset


@pytest.fixture
def ntu_folder(tmp_path: Path) -> Path:
    d = tmp_path / "nturaw"
    d.mkdir()
    # clip 1: two bodies (A still, B moving), a frame with 0 bodies in the middle
    frames = [[("111", _joints(0.0)), ("222", _joints(1.0 + 0.3 * t))] for t in range(3)]
    frames.insert(1, [])
    write_ntu(d / "S001C002P001R001A050.skeleton", frames)
    # clip 2: one body, performer 3 (test in xsub), camera 1 (test in xview)
    write_ntu(d / "S002C001P003R002A007.skeleton", [[("9", _joints(0.1 * t))] for t in range(4)])
    # clip 3: three bodies; the still one must be dropped
    frames3 = [[("1", _joints(0.0)), ("2", _joints(0.2 * t)), ("3", _joints(-0.5 * t))] for t in range(3)]
    write_ntu(d / "S001C003P002R001A001.skeleton", frames3)
    return d


def test_ntu_reader_bodies_missing_frames_and_splits(ntu_folder: Path) -> None:
    assert detect_format(ntu_folder) == "ntu"
    ds = read_dataset(ntu_folder)
    assert len(ds) == 3 and ds.num_classes == 60 and ds.layout.name == "ntu25"
    by_id = {s.id: s for s in ds}
    s = by_id["S001C002P001R001A050"]
    assert s.label == 49 and s.keypoint.shape == (2, 4, 25, 3)
    # the moving body comes first (most active), the frame with no body is missing for both
    np.testing.assert_allclose(s.keypoint[0, 0], _joints(1.0), atol=1e-5)
    np.testing.assert_allclose(s.keypoint[1, 2], _joints(0.0), atol=1e-5)
    np.testing.assert_allclose(s.keypoint[0, 3], _joints(1.6), atol=1e-5)
    assert not s.mask[:, 1].any() and s.mask[:, [0, 2, 3]].all()
    assert (s.keypoint[:, 1] == 0).all()
    s3 = by_id["S001C003P002R001A001"]
    assert s3.num_persons == 2
    np.testing.assert_allclose(s3.keypoint[0, 2], _joints(-1.0), atol=1e-5)  # largest motion first
    np.testing.assert_allclose(s3.keypoint[1, 2], _joints(0.4), atol=1e-5)
    ids = list(ds.ids)
    xsub_train = {ids[i] for i in ds.splits["xsub_train"]}
    assert xsub_train == {"S001C002P001R001A050", "S001C003P002R001A001"}
    assert {ids[i] for i in ds.splits["xview_train"]} == {"S001C002P001R001A050", "S001C003P002R001A001"}
    assert {ids[i] for i in ds.splits["xset_train"]} == {"S002C001P003R002A007"}
    np.testing.assert_array_equal(ds.splits["train"], ds.splits["xsub_train"])
    assert ds[0].meta["performer"] in (1, 2, 3)


def test_ntu_2d_coords_and_missing_list(ntu_folder: Path, tmp_path: Path) -> None:
    lst = tmp_path / "skip.txt"
    lst.write_text("S002C001P003R002A007\n")
    ds = read_dataset(ntu_folder, coords="color", missing=str(lst))
    assert len(ds) == 2 and ds.dim == 2 and ds.meta["skipped"] == ["S002C001P003R002A007"]
    s = ds[0]
    np.testing.assert_allclose(s.keypoint[0, 0, :, 0], 1000 + np.arange(25))


def test_ntu_empty_clip_and_damage(ntu_folder: Path) -> None:
    write_ntu(ntu_folder / "S003C001P001R001A002.skeleton", [[], []])
    with pytest.raises(FinetecError, match="no body in any frame") as e:
        read_dataset(ntu_folder)
    assert "S003C001P001R001A002" in str(e.value)
    ds = read_dataset(ntu_folder, skip_empty="true")
    assert len(ds) == 3 and ds.meta["skipped"] == ["S003C001P001R001A002"]
    f = ntu_folder / "S001C002P001R001A050.skeleton"
    f.write_text("\n".join(f.read_text().split("\n")[:40]))
    with pytest.raises(FinetecError, match="truncated"):
        read_dataset(ntu_folder, skip_empty=True)


def test_ntu_worker_processes_match_serial(ntu_folder: Path) -> None:
    serial, parallel = read_dataset(ntu_folder), read_dataset(ntu_folder, workers="2")
    np.testing.assert_array_equal(serial.keypoint, parallel.keypoint)
    np.testing.assert_array_equal(serial.mask, parallel.mask)
    assert serial.ids.tolist() == parallel.ids.tolist()
    write_ntu(ntu_folder / "S003C001P001R001A002.skeleton", [[], []])
    with pytest.raises(FinetecError, match="S003C001P001R001A002.skeleton: no body in any frame"):
        read_dataset(ntu_folder, workers=2)


def test_ntu_windows_line_endings(tmp_path: Path) -> None:
    f = write_ntu(tmp_path / "S001C001P001R001A001.skeleton", [[("5", _joints(0.1 * t))] for t in range(3)])
    f.write_bytes(f.read_bytes().replace(b"\n", b"\r\n"))
    s = read_dataset(f)[0]
    assert s.mask.all()
    np.testing.assert_allclose(s.keypoint[0, 2], _joints(0.2), atol=1e-5)


def test_ntu_120_classes_and_subject_lists(tmp_path: Path) -> None:
    assert set(NTU60_XSUB_TRAIN) < set(NTU120_XSUB_TRAIN) and len(NTU120_XSUB_TRAIN) == 53
    write_ntu(tmp_path / "S018C001P045R001A100.skeleton", [[("1", _joints(0.1 * t))] for t in range(3)])
    ds = read_dataset(tmp_path, fmt="ntu")
    assert ds.num_classes == 120 and ds.class_names[99] == "butt kicks (kick backward)"
    assert ds.splits["xsub_train"].tolist() == [0] and ds.splits["xset_train"].tolist() == [0]


# -- PYSKL ---------------------------------------------------------------------------------
def _pyskl_2d(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    anns = []
    for i in range(3):
        kp = rng.uniform(10, 200, size=(2, 5, 17, 2)).astype(np.float32)
        sc = rng.uniform(0.2, 1.0, size=(2, 5, 17)).astype(np.float32)
        kp[1], sc[1] = 0, 0                      # absent second person
        kp[0, 2], sc[0, 2] = 0, 0                # a padding frame
        sc[0, 0, 3] = 0.05                       # low-confidence joint, still observed by default
        anns.append({"frame_dir": f"vid{i}", "label": i % 2, "keypoint": kp, "keypoint_score": sc,
                     "total_frames": 5, "img_shape": (240, 320), "original_shape": (240, 320)})
    data = {"split": {"train": ["vid0", "vid1"], "test": ["vid2"]}, "annotations": anns}
    p = tmp_path / "gym_hrnet.pkl"
    p.write_bytes(pickle.dumps(data, protocol=4))
    return p


def test_pyskl_2d_scores_mask_split(tmp_path: Path) -> None:
    p = _pyskl_2d(tmp_path)
    assert detect_format(p) == "pyskl"
    ds = read_dataset(p)
    assert len(ds) == 3 and ds.layout.name == "coco17" and ds.class_names == ["class_0", "class_1"]
    assert ds.splits["train"].tolist() == [0, 1] and ds.splits["test"].tolist() == [2]
    s = ds[0]
    assert s.num_persons == 1                        # never-observed person dropped
    assert not s.mask[0, 2].any() and s.mask[0, [0, 1, 3, 4]].all()
    assert s.score is not None and s.score[0, 0, 3] == pytest.approx(0.05)
    assert s.meta["img_shape"] == [240, 320]
    strict = read_dataset(p, score_threshold="0.1")
    assert not strict[0].mask[0, 0, 3] and strict[0].mask[0, 0, 4]


def test_pyskl_empty_clip_error_or_skip(tmp_path: Path) -> None:
    good = {"frame_dir": "ok", "label": 0, "keypoint": np.ones((1, 3, 17, 2), np.float32),
            "keypoint_score": np.ones((1, 3, 17), np.float32)}
    empty = {"frame_dir": "nobody", "label": 1, "keypoint": np.zeros((1, 3, 17, 2), np.float32),
             "keypoint_score": np.zeros((1, 3, 17), np.float32)}
    p = tmp_path / "two.pkl"
    p.write_bytes(pickle.dumps({"split": {"train": ["ok", "nobody"]}, "annotations": [good, empty]}))
    with pytest.raises(FinetecError, match="'nobody': every frame is missing"):
        read_dataset(p)
    ds = read_dataset(p, skip_empty="yes")
    assert ds.ids.tolist() == ["ok"] and ds.meta["skipped"] == ["nobody"]
    assert ds.splits["train"].tolist() == [0] and ds.meta["split_entries_without_clip"] == {"train": 1}


def test_pyskl_3d_float16_ntu_names(tmp_path: Path) -> None:
    kp = np.zeros((2, 6, 25, 3), np.float16)
    kp[0] = 0.25
    kp[1, :3] = -0.5
    kp[0, 4, 7] = 0                                   # one untracked joint
    anns = [{"frame_dir": "S001C001P001R001A058", "label": 57, "keypoint": kp, "total_frames": 6}]
    p = tmp_path / "ntu60_3danno.pkl"
    p.write_bytes(pickle.dumps({"split": {"xsub_train": ["S001C001P001R001A058"]}, "annotations": anns}))
    ds = read_dataset(p)
    s = ds[0]
    assert ds.layout.name == "ntu25" and ds.num_classes == 60 and ds.class_names[57] == "handshaking"
    assert s.keypoint.dtype == np.float32 and s.keypoint.shape == (2, 6, 25, 3)
    assert not s.mask[0, 4, 7] and s.mask[0].sum() == 6 * 25 - 1
    assert s.mask[1, :3].all() and not s.mask[1, 3:].any()
    np.testing.assert_allclose(s.keypoint[1, 0, 0], [-0.5, -0.5, -0.5])


def test_pyskl_gym288_fields(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    gt = np.concatenate([rng.uniform(5, 100, (8, 17, 2)), rng.uniform(0.5, 1, (8, 17, 1))], -1).astype(np.float16)
    wo = gt.copy()
    wo[[1, 4, 5]] = 0                                # dropped frames
    ann = {"frame_dir": "gym_a", "label": 3, "kp_w_gt": gt, "kp_wo_gt": wo, "total_frames": 8,
           "img_shape": (720, 1280)}
    p = tmp_path / "gym288_skeleton.pkl"
    p.write_bytes(pickle.dumps({"split": {"train": ["gym_a"]}, "annotations": [ann]}))
    full = read_dataset(p)                           # no 'keypoint': kp_w_gt by default
    assert full[0].mask.all() and full.dim == 2
    np.testing.assert_allclose(full[0].keypoint[0], gt[..., :2].astype(np.float32))
    np.testing.assert_allclose(full[0].score[0], gt[..., 2].astype(np.float32))
    cor = read_dataset(p, gym288_field="kp_wo_gt")
    assert cor.meta["gym288_field"] == "kp_wo_gt"
    assert np.flatnonzero(~cor[0].mask[0].any(-1)).tolist() == [1, 4, 5]
    with pytest.raises(FinetecError, match="gym288_field"):
        read_dataset(p, gym288_field="bogus")
    with pytest.raises(FinetecError, match="has no 'keypoint'"):
        read_dataset(p, gym288_field="keypoint")


def test_write_pyskl_round_trip(tmp_path: Path) -> None:
    src = read_dataset(_pyskl_2d(tmp_path))
    out = tmp_path / "export.pkl"
    write_pyskl(src, out)
    raw = pickle.loads(out.read_bytes())
    assert set(raw) >= {"split", "annotations"} and raw["split"]["test"] == ["vid2"]
    a0 = raw["annotations"][0]
    assert a0["keypoint"].shape == (1, 5, 17, 2) and a0["keypoint_score"].shape == (1, 5, 17)
    assert a0["img_shape"] == (240, 320) and a0["label"] == 0
    back = read_dataset(out)
    assert back.class_names == src.class_names and back.layout.name == "coco17"
    for a, b in zip(src, back):
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.keypoint, b.keypoint)
        np.testing.assert_allclose(a.score, b.score)


def test_write_pyskl_3d_unlabelled(tmp_path: Path, ntu_folder: Path) -> None:
    ds = read_dataset(ntu_folder)
    out = tmp_path / "ntu.pkl"
    write_pyskl(ds, out)
    back = read_dataset(out)
    assert back.num_classes == 60 and back.splits.keys() == ds.splits.keys()
    for a, b in zip(ds, back):
        np.testing.assert_array_equal(a.mask, b.mask)
        np.testing.assert_allclose(a.keypoint, b.keypoint)


# -- CTR-GCN npz --------------------------------------------------------------------------
def test_ctrgcn_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    N, T = 3, 10
    x = np.zeros((N, T, 150), np.float32)
    x[0, :6, :75] = rng.normal(size=(6, 75))          # 6 real frames, 1 person
    x[1, :8] = rng.normal(size=(8, 150))              # 8 frames, 2 persons
    x[1, 3, 75:] = 0                                  # person 2 absent at frame 3
    x[2, :10, :75] = rng.normal(size=(10, 75))
    x[2, 4, :75] = 0                                  # a missing frame in the middle
    x[2, 0, 3:6] = 0                                  # the centring origin joint: observed
    y = np.eye(60, dtype=np.float32)[[4, 9, 59]]
    p = tmp_path / "NTU60_CS.npz"
    np.savez(p, x_train=x[:2], y_train=y[:2], x_test=x[2:], y_test=y[2:])
    assert detect_format(p) == "ctrgcn"
    ds = read_dataset(p)
    assert len(ds) == 3 and ds.num_classes == 60 and ds.label.tolist() == [4, 9, 59]
    assert ds.splits["train"].tolist() == [0, 1] and ds.splits["test"].tolist() == [2]
    assert ds.lengths.tolist() == [6, 8, 10] and ds.persons.tolist() == [1, 2, 1]
    np.testing.assert_allclose(ds[0].keypoint[0, 2], x[0, 2, :75].reshape(25, 3))
    assert not ds[1].mask[1, 3].any() and ds[1].mask[1, [2, 4]].all()
    assert not ds[2].mask[0, 4].any() and ds[2].mask[0, 0].all()
    assert ds.ids.tolist() == ["train_000000", "train_000001", "test_000000"]


# -- pose JSON ----------------------------------------------------------------------------
def _coco_person(cx: float, score: float = 0.9, V: int = 17) -> dict:
    kps = []
    for j in range(V):
        kps += [cx + j, 50.0 + 2 * j, score]
    return {"keypoints": kps, "score": score}


def test_pose_json_folder_with_empty_frame(tmp_path: Path) -> None:
    d = tmp_path / "clip7"
    d.mkdir()
    for t in range(12):
        people = [] if t == 10 else [_coco_person(100 + t), _coco_person(300 - t, 0.8)]
        if t == 3:
            people = people[::-1]                           # persons listed in swapped order
        (d / f"frame_{t}.json").write_text(json.dumps(people))
    assert detect_format(d) == "pose_json"
    ds = read_dataset(d)
    s = ds[0]
    assert s.id == "clip7" and ds.layout.name == "coco17" and s.label is None and ds.num_classes == 0
    assert s.keypoint.shape == (2, 12, 17, 2)
    assert not s.mask[:, 10].any() and s.mask[:, :10].all()
    # frame order is natural (frame_2 before frame_10) and identities stay in their slots
    np.testing.assert_allclose(s.keypoint[0, :10, 0, 0], 100 + np.arange(10))
    np.testing.assert_allclose(s.keypoint[1, :10, 0, 0], 300 - np.arange(10))


def test_pose_json_openpose_file_and_zero_joints(tmp_path: Path) -> None:
    frames = []
    for t in range(4):
        kps = []
        for j in range(18):
            kps += [0.0, 0.0, 0.0] if j == 5 else [10.0 + t, 20.0 + j, 0.7]
        frames.append({"people": [{"pose_keypoints_2d": kps}] if t != 2 else []})
    p = tmp_path / "op.json"
    p.write_text(json.dumps(frames))
    ds = read_dataset(p)
    s = ds[0]
    assert ds.layout.name == "openpose18" and s.keypoint.shape == (1, 4, 18, 2)
    assert not s.mask[0, :, 5].any() and not s.mask[0, 2].any() and s.mask[0, 0, 4]
    assert read_dataset(p, score_threshold="0.69")[0].mask.sum() == s.mask.sum()
    with pytest.raises(FinetecError, match="every frame is missing"):
        read_dataset(p, score_threshold=0.7)             # scores equal to the threshold are missing
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"people": [{"pose_keypoints_2d": [1.0] * 57}]}]))
    with pytest.raises(FinetecError, match="cannot guess the skeleton layout for 19 joints"):
        read_dataset(bad)


def test_pose_json_coco_results_grouped(tmp_path: Path) -> None:
    dets = [{"image_id": i, **_coco_person(10.0 * i)} for i in (3, 1, 2)]
    p = tmp_path / "results.json"
    p.write_text(json.dumps(dets))
    s = read_dataset(p, fmt="pose_json")[0]
    np.testing.assert_allclose(s.keypoint[0, :, 0, 0], [10, 20, 30])
    # a clip object may name its layout (17 joints read as h36m17 instead of the coco17 guess)
    named = tmp_path / "named.json"
    named.write_text(json.dumps({"layout": "h36m17", "frames": [[_coco_person(1.0)], []]}))
    ds = read_dataset(named)
    assert ds.layout.name == "h36m17" and ds[0].mask[0, 0].all() and not ds[0].mask[0, 1].any()


# -- simple npz ---------------------------------------------------------------------------
def test_simple_npz_forms(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    one = tmp_path / "one.npz"
    np.savez(one, keypoint=rng.normal(size=(7, 17, 2)).astype(np.float32), label=np.array(2))
    with pytest.raises(FinetecError, match="ambiguous: 17 joints fit coco17, h36m17") as e:
        read_dataset(one)                      # no silent guess between layouts of one joint count
    assert str(one) in str(e.value) and "-o layout=" in str(e.value)
    ds = read_dataset(one, layout="coco17")
    assert ds.meta["source_format"] == "npz" and ds[0].keypoint.shape == (1, 7, 17, 2) and ds[0].label == 2
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    kp = rng.normal(size=(3, 2, 9, 25, 3)).astype(np.float32)
    mask = np.ones((3, 2, 9, 25), bool)
    mask[0, :, 6:] = False                     # padding frames of clip 0
    mask[1, 1] = False                         # clip 1 has one person
    kp[0, 0, 1, 4] = np.nan                    # NaN at an unobserved joint is fine
    mask[0, 0, 1, 4] = False
    many = tmp_path / "many.npz"
    np.savez(many, keypoint=kp, mask=mask, label=np.array([0, 1, -1]), layout="ntu25",
             class_names=np.array(["a", "b"]), split__train=np.array([0, 1]))
    ds = read_dataset(many)
    assert ds.lengths.tolist() == [6, 9, 9] and ds.persons.tolist() == [2, 1, 2]
    assert ds.label.tolist() == [0, 1, -1] and ds.class_names == ["a", "b"]
    assert ds.splits["train"].tolist() == [0, 1]
    assert ds[0].keypoint[0, 1, 4].tolist() == [0, 0, 0]
    np.testing.assert_allclose(ds[2].keypoint, kp[2])


def test_simple_npz_bad_inputs(tmp_path: Path) -> None:
    p = tmp_path / "nan.npz"
    kp = np.ones((5, 17, 2), np.float32)
    kp[2, 3, 0] = np.inf
    np.savez(p, keypoint=kp)
    with pytest.raises(FinetecError, match="NaN or Inf") as e:
        read_dataset(p)
    assert str(p) in str(e.value)
    p2 = tmp_path / "wrong.npz"
    np.savez(p2, keypoint=np.ones((5, 17, 2), np.float32), layout="ntu25")
    with pytest.raises(FinetecError, match="wrong joint count"):
        read_dataset(p2)
    p3 = tmp_path / "allmissing.npz"
    np.savez(p3, keypoint=np.ones((5, 17, 2), np.float32), mask=np.zeros((5, 17), bool))
    with pytest.raises(FinetecError, match="every frame is missing"):
        read_dataset(p3)
    p4 = tmp_path / "empty.npz"
    np.savez(p4, keypoint=np.ones((0, 17, 2), np.float32))
    with pytest.raises(FinetecError, match="empty"):
        read_dataset(p4)


# -- detection and options ----------------------------------------------------------------
def test_detection_unknown_and_options(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("hello")
    with pytest.raises(FinetecError, match="unknown format"):
        detect_format(junk)
    with pytest.raises(FinetecError, match="no such file"):
        read_dataset(tmp_path / "absent.pkl")
    with pytest.raises(FinetecError, match="unknown format 'bogus'"):
        read_dataset(junk, fmt="bogus")
    one = tmp_path / "one.npz"
    np.savez(one, keypoint=np.ones((3, 17, 2), np.float32))
    with pytest.raises(FinetecError, match="has no option 'colour'"):
        read_dataset(one, colour="x")
    assert "layout" in reader_options("npz") and set(READERS) >= {
        "penn_action", "utd_mhad", "nw_ucla", "ntu", "pyskl", "ctrgcn", "pose_json", "npz", "finetec"}


def test_canonical_round_trip_through_readers(tmp_path: Path, ntu_folder: Path) -> None:
    ds = read_dataset(ntu_folder)
    out = tmp_path / "ntu.finetec.npz"
    ds.save(out)
    assert detect_format(out) == "finetec"
    back = read_dataset(out)
    np.testing.assert_array_equal(back.keypoint, ds.keypoint)
    assert back.splits.keys() == ds.splits.keys()


# -- the three real-data formats, on tiny synthetic files (CI has no ../shared/data) --------
def test_penn_action_small_mat_files(tmp_path: Path) -> None:
    import scipy.io

    labels = tmp_path / "penn" / "labels"
    labels.mkdir(parents=True)
    rng = np.random.default_rng(4)
    specs = [("squat", 1, "front"), ("bowl", -1, "side"), ("squat", -1, "back"), ("bowl", 1, "front")]
    for i, (action, train, pose) in enumerate(specs, start=1):
        T = 5 + i
        vis = np.ones((T, 13), np.uint8)
        vis[1, 4] = 0
        x, y = rng.uniform(0, 480, (T, 13)), rng.uniform(0, 360, (T, 13))
        scipy.io.savemat(labels / f"{i:04d}.mat", {
            "action": action, "pose": pose, "x": x, "y": y, "visibility": vis, "train": np.array([[train]]),
            "bbox": np.zeros((T, 4)), "dimensions": np.array([[360, 480, T]], np.uint16),
            "nframes": np.array([[T]])})
    for path in (tmp_path / "penn", labels):
        assert detect_format(path) == "penn_action"
    ds = read_dataset(tmp_path / "penn")
    assert ds.class_names == ["bowl", "squat"] and ds.label.tolist() == [1, 0, 1, 0]
    assert ds.splits["train"].tolist() == [0, 3] and ds.splits["test"].tolist() == [1, 2]
    s = ds[0]
    assert s.keypoint.shape == (1, 6, 13, 2) and not s.mask[0, 1, 4] and s.mask.sum() == 6 * 13 - 1
    assert s.keypoint[0, 1, 4].tolist() == [0.0, 0.0]
    ref = scipy.io.loadmat(labels / "0001.mat")
    np.testing.assert_allclose(s.keypoint[0, 0, :, 0], ref["x"][0], rtol=1e-6)
    assert s.meta["pose"] == "front" and s.meta["dimensions"] == [360, 480, 6]


def test_utd_mhad_small_mat_files(tmp_path: Path) -> None:
    import scipy.io

    sk = tmp_path / "Skeleton"
    sk.mkdir()
    rng = np.random.default_rng(5)
    for a, s, t in [(1, 1, 1), (27, 2, 1), (3, 7, 4), (3, 8, 2)]:
        d = rng.normal(size=(20, 3, 4 + a % 5))
        scipy.io.savemat(sk / f"a{a}_s{s}_t{t}_skeleton.mat", {"d_skel": d})
    ds = read_dataset(tmp_path)
    assert ds.layout.name == "utd_mhad20" and ds.num_classes == 27
    by_id = {cid: i for i, cid in enumerate(ds.ids)}
    assert ds.label[by_id["a27_s2_t1"]] == 26 and ds.class_names[26] == "squat"
    assert sorted(ds.ids[ds.splits["xsub_train"]].tolist()) == ["a1_s1_t1", "a3_s7_t4"]
    ref = scipy.io.loadmat(sk / "a3_s8_t2_skeleton.mat")["d_skel"]
    np.testing.assert_allclose(ds[by_id["a3_s8_t2"]].keypoint[0], ref.transpose(2, 0, 1), rtol=1e-6)
    scipy.io.savemat(sk / "a2_s1_t1_skeleton.mat", {"d_skel": np.ones((25, 3, 4))})
    with pytest.raises(FinetecError, match="wrong joint count: expected 20 joints, got 25"):
        read_dataset(tmp_path)


def test_nw_ucla_small_json_files(tmp_path: Path) -> None:
    sq = tmp_path / "all_sqe"
    sq.mkdir()
    rng = np.random.default_rng(6)
    for name, label in [("a01_s01_e00_v01", 1), ("a12_s02_e01_v02", 10), ("a05_s03_e02_v03", 5)]:
        sk = rng.normal(size=(3, 20, 3))
        sk[1, 7] = 0                                     # an untracked joint
        (sq / f"{name}.json").write_text(json.dumps({"file_name": name, "skeletons": sk.tolist(),
                                                     "label": label}))
    ds = read_dataset(tmp_path)
    assert ds.layout.name == "kinect_v1" and ds.label.tolist() == [0, 4, 9]
    assert ds.ids[ds.splits["xview_test"]].tolist() == ["a05_s03_e02_v03"]
    assert not ds[0].mask[0, 1, 7] and ds[0].mask.sum() == 59
    (sq / "a02_s01_e00_v01.json").write_text('{"file_name": "x", "skeletons": [[[1, 2, 3]')
    with pytest.raises(FinetecError, match="damaged JSON") as e:
        read_dataset(tmp_path)
    assert "a02_s01_e00_v01.json" in str(e.value)


def test_ctrgcn_chunk_boundaries_and_integer_labels(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from finetec.data.readers import ctrgcn

    rng = np.random.default_rng(7)
    x = rng.normal(size=(7, 5, 150)).astype(np.float32)
    x[:, :, 75:] = 0
    x[3, 4] = 0                                           # clip 3: 4 frames after trimming
    p = tmp_path / "ucla_like.npz"
    np.savez(p, x_test=x, y_test=np.arange(7) % 3)
    whole = read_dataset(p)
    monkeypatch.setattr(ctrgcn, "CHUNK", 2)
    chunked = read_dataset(p)
    assert whole.class_names == ["class_0", "class_1", "class_2"]
    assert chunked.label.tolist() == [0, 1, 2, 0, 1, 2, 0]
    np.testing.assert_array_equal(whole.keypoint, chunked.keypoint)
    assert chunked.lengths.tolist() == [5, 5, 5, 4, 5, 5, 5]
    assert chunked.splits["test"].tolist() == list(range(7))


def test_simple_npz_refuses_object_arrays(tmp_path: Path) -> None:
    p = tmp_path / "objects.npz"
    np.savez(p, keypoint=np.array([np.ones((2, 17, 2)), np.ones((3, 17, 2))], dtype=object))
    with pytest.raises(FinetecError, match="no pickle"):
        read_dataset(p)


def test_progress_bar_goes_to_stderr(ntu_folder: Path, capsys: pytest.CaptureFixture) -> None:
    read_dataset(ntu_folder, progress_bar=True)
    out, err = capsys.readouterr()
    assert out == "" and "NTU skeletons" in err and "/3 [" in err
    read_dataset(ntu_folder)                      # few files, no terminal: silent
    assert capsys.readouterr().err == ""


def test_plain_npz_writer_round_trips(tmp_path):
    """finetec.data.readers.npz.write (beside its reader) writes what npz.read reads back."""
    from finetec.data import open_dataset
    from finetec.data.readers import npz

    ds = open_dataset("synthetic:coco17?clips=3&frames=12").subset([0])   # one clip (any length)
    filled = np.zeros(ds.mask.shape, bool)
    filled[0, 0, 1] = True
    out = tmp_path / "plain.npz"
    npz.write(out, ds, filled, extra={"completion": {"method": "linear"}})
    back = npz.read(out)
    assert len(back) == 1 and back.layout == ds.layout
    assert np.array_equal(back[0].keypoint[back[0].mask], ds[0].keypoint[ds[0].mask])
    with np.load(out) as z:
        assert z["filled"].shape == z["mask"].shape and bool(z["filled"][0, 0, 1])
        assert json.loads(str(z["completion"])) == {"method": "linear"}
