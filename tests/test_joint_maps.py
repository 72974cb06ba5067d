"""Joint maps: a layout's ``maps`` field, find_joint_map, JointMap.apply, SkeletonDataset.to_layout,
`finetec convert --map-to`, and predict / stream on another skeleton."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

from finetec.cli import main
from finetec.data import SkeletonDataset
from finetec.data.sample import Sample
from finetec.errors import FinetecError
from finetec.layouts import Layout, builtin_layouts, find_joint_map, get_layout, layouts_mapping_onto

from conftest import shared_data

# the maps the pretrained models and the pooled completion training rely on
REQUIRED = [("coco17", "penn13"), ("openpose18", "penn13"), ("mediapipe33", "penn13"), ("penn13", "coco17"),
            ("ntu25", "kinect_v1"), ("ntu25", "utd_mhad20"), ("kinect_v1", "utd_mhad20"), ("utd_mhad20", "kinect_v1")]


def _coords(V: int, C: int = 2, T: int = 4) -> np.ndarray:
    """(T, V, C): joint v of frame t at (v + 0.1 t, 100 + v, ...) so every entry says where it came from."""
    kp = np.zeros((T, V, C), dtype=np.float32)
    kp[..., 0] = np.arange(V)[None, :] + 0.1 * np.arange(T)[:, None]
    kp[..., 1:] = 100 + np.arange(V)[None, :, None]
    return kp


@pytest.mark.parametrize("src,dst", REQUIRED)
def test_required_maps_exist_and_cover_every_target_joint(src, dst):
    m = find_joint_map(src, dst)
    assert m.source.name == src and m.target.name == dst
    assert len(m.sources) == get_layout(dst).num_joints
    kp, mask, _ = m.apply(_coords(get_layout(src).num_joints))
    for v, s in enumerate(m.sources):
        if s:   # a supplied joint is its source's coordinates, observed
            assert mask[:, v].all()
            np.testing.assert_array_equal(kp[:, v], _coords(get_layout(src).num_joints)[:, s[0]])
        else:   # an unsupplied joint is missing, never a position
            assert not mask[:, v].any() and (kp[:, v] == 0).all()


def test_every_declared_builtin_map_resolves():
    for name in builtin_layouts():
        for target in get_layout(name).maps:
            find_joint_map(name, target)   # raises if a map does not fit its target


def test_coco17_to_penn13_head_is_the_nose_and_sides_follow_penn_action():
    """Penn Action names its joints from the viewer's side (see the real-data test below), so the
    person's right shoulder of COCO-17 is Penn Action's `left_shoulder`."""
    m = find_joint_map("coco17", "penn13")
    coco, penn = get_layout("coco17"), get_layout("penn13")
    assert m.sources[penn.index("head")] == (coco.index("nose"),)
    assert m.sources[penn.index("left_shoulder")] == (coco.index("right_shoulder"),)
    assert m.sources[penn.index("right_ankle")] == (coco.index("left_ankle"),)
    back = find_joint_map("penn13", "coco17")
    assert sorted(back.unsupplied) == ["left_ear", "left_eye", "right_ear", "right_eye"]


@pytest.mark.parametrize("a,b", [("penn13", "coco17"), ("kinect_v1", "utd_mhad20"), ("utd_mhad20", "kinect_v1")])
def test_round_trip_is_exact(a, b):
    V = get_layout(a).num_joints
    kp = _coords(V, 3)
    mask = np.ones(kp.shape[:2], dtype=bool)
    mask[1, 2] = False
    kp[1, 2] = 0
    there = find_joint_map(a, b).apply(kp, mask)
    back = find_joint_map(b, a).apply(there[0], there[1])
    np.testing.assert_array_equal(back[0], kp)
    np.testing.assert_array_equal(back[1], mask)


def test_missing_source_joint_is_missing_in_the_target():
    m = find_joint_map("coco17", "penn13")
    kp = _coords(17)
    mask = np.ones(kp.shape[:2], dtype=bool)
    mask[2, 0] = False            # the nose of frame 2
    kp[:, 5] = np.nan             # a NaN left shoulder everywhere: not observed
    mask[:, 5] = False
    out, om, _ = m.apply(kp, mask)
    assert not om[2, 0] and out[2, 0].tolist() == [0.0, 0.0] and om[[0, 1, 3], 0].all()
    right = get_layout("penn13").index("right_shoulder")   # fed by COCO's left shoulder
    assert not om[:, right].any() and np.isfinite(out).all()
    # without a mask, non-finite coordinates are the missing ones
    out2, om2, _ = m.apply(kp)
    assert not om2[:, right].any() and om2[2, 0]


def test_a_list_of_sources_is_their_mean_observed_only_where_all_are(tmp_path):
    spec = get_layout("coco17").to_dict()
    spec["name"] = "coco17_mean_head"
    spec["maps"] = {"penn13": dict(spec["maps"]["penn13"], head=["left_ear", "right_ear"])}
    p = tmp_path / "mine.json"
    p.write_text(json.dumps(spec))
    lay = get_layout(str(p))
    m = find_joint_map(lay, "penn13")
    kp = _coords(17)
    mask = np.ones(kp.shape[:2], dtype=bool)
    mask[0, 3] = False            # left ear of frame 0
    out, om, _ = m.apply(kp, mask)
    np.testing.assert_allclose(out[1:, 0], (kp[1:, 3] + kp[1:, 4]) / 2)
    assert not om[0, 0] and om[1:, 0].all()
    assert "head <- left_ear + right_ear (mean)" in m.describe()


def test_maps_survive_to_dict_and_do_not_change_layout_identity():
    coco = get_layout("coco17")
    again = Layout.from_dict(json.loads(coco.to_json()))
    assert again.maps == coco.maps and again == coco
    bare = {k: v for k, v in coco.to_dict().items() if k != "maps"}
    stored = Layout.from_dict(bare)            # a layout stored by an older finetec: no maps
    assert stored == coco and not stored.maps
    assert find_joint_map(stored, "penn13").sources == find_joint_map(coco, "penn13").sources


def test_user_layout_file_adds_a_map(tmp_path):
    import yaml

    text = (tmp_path / "t.yaml")
    spec = get_layout("h36m17").to_dict()
    spec["name"] = "my_h36m"
    spec["maps"] = {"penn13": {"head": "head", "left_shoulder": "right_shoulder",
                               "right_shoulder": "left_shoulder", "left_elbow": "right_elbow",
                               "right_elbow": "left_elbow", "left_wrist": "right_wrist", "right_wrist": "left_wrist",
                               "left_hip": "right_hip", "right_hip": "left_hip", "left_knee": "right_knee",
                               "right_knee": "left_knee", "left_ankle": "right_ankle", "right_ankle": None}}
    text.write_text(yaml.safe_dump(spec))
    m = find_joint_map(str(text), "penn13")
    assert m.unsupplied == ["right_ankle"]


@pytest.mark.parametrize("table,needle", [
    ({"head": "beak"}, "maps.penn13.head: unknown joint name 'beak'"),
    ({"head": 40}, "maps.penn13.head: refers to joint 40"),
    ([1, 2], "maps: must be a mapping"),
])
def test_bad_map_in_a_layout_file_names_the_file_and_field(tmp_path, table, needle):
    spec = get_layout("coco17").to_dict()
    spec["maps"] = {"penn13": table} if isinstance(table, dict) else table
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(spec))
    with pytest.raises(FinetecError) as e:
        get_layout(str(p))
    assert str(p) in str(e.value) and needle in str(e.value)


def test_incomplete_or_foreign_map_is_refused_when_used(tmp_path):
    spec = get_layout("coco17").to_dict()
    spec["maps"] = {"penn13": {"head": "nose"}}
    p = tmp_path / "partial.json"
    p.write_text(json.dumps(spec))
    with pytest.raises(FinetecError, match="does not say where 'left_shoulder' comes from"):
        find_joint_map(str(p), "penn13")
    spec["maps"] = {"penn13": dict(get_layout("coco17").to_dict()["maps"]["penn13"], tail="nose")}
    p.write_text(json.dumps(spec))
    with pytest.raises(FinetecError, match="'penn13' has no joint 'tail'"):
        find_joint_map(str(p), "penn13")


def test_no_map_is_one_clear_error():
    with pytest.raises(FinetecError) as e:
        find_joint_map("h36m17", "penn13")
    msg = str(e.value)
    assert "no joint map from layout 'h36m17'" in msg and "coco17, mediapipe33, openpose18" in msg
    assert layouts_mapping_onto("kinect_v1") == ["ntu25", "utd_mhad20"]


def _dataset(layout: str, n: int = 3, C: int = 2, T: int = 6) -> SkeletonDataset:
    lay = get_layout(layout)
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        kp = rng.normal(0, 1, (1, T, lay.num_joints, C)).astype(np.float32)
        mask = rng.random((1, T, lay.num_joints)) > 0.2
        kp[~mask] = 0
        samples.append(Sample(keypoint=kp, mask=mask, label=i % 2, id=f"c{i}"))
    return SkeletonDataset.from_samples(samples, lay, ["a", "b"], splits={"test": [0, 1, 2]}, source="clips.npz")


def test_dataset_to_layout():
    ds = _dataset("coco17")
    assert ds.to_layout("coco17") is ds
    pn = ds.to_layout("penn13")
    assert pn.layout.name == "penn13" and pn.keypoint.shape[2] == 13 and pn.meta["mapped_from"] == "coco17"
    assert list(pn.ids) == list(ds.ids) and (pn.splits["test"] == ds.splits["test"]).all()
    pn.validate()
    np.testing.assert_array_equal(pn.mask[:, :, 0], ds.mask[:, :, 0])     # head <- nose
    back = pn.to_layout("coco17")
    assert not back.mask[:, :, 1:5].any()                                 # eyes and ears: missing
    with pytest.raises(FinetecError) as e:
        _dataset("h36m17").to_layout("penn13")
    assert str(e.value).startswith("clips.npz: no joint map")


def test_convert_map_to(tmp_path, capsys):
    src = tmp_path / "penn.finetec.npz"
    _dataset("penn13").save(src)
    out = tmp_path / "coco.finetec.npz"
    assert main(["convert", str(src), str(out), "--map-to", "coco17"]) == 0
    ds = SkeletonDataset.load(out)
    assert ds.layout.name == "coco17" and not ds.mask[:, :, 1:5].any()
    capsys.readouterr()
    assert main(["convert", str(src), str(tmp_path / "x.finetec.npz"), "--map-to", "h36m17"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no joint map from layout 'penn13'" in err
    assert not (tmp_path / "x.finetec.npz").exists()


def test_predict_and_stream_through_a_map(tmp_path, capsys):
    from test_api import make_checkpoint

    ck = make_checkpoint(tmp_path / "ck", layout="penn13", clip_len=8)
    clip = tmp_path / "coco.finetec.npz"
    _dataset("coco17").save(clip)
    native = tmp_path / "penn.finetec.npz"
    _dataset("coco17").to_layout("penn13").save(native)
    assert main(["predict", str(ck), str(clip), "--json"]) == 0
    via_map = capsys.readouterr().out
    assert main(["predict", str(ck), str(native), "--json"]) == 0
    assert capsys.readouterr().out == via_map     # the same clips, the same predictions
    # stream: COCO-17 frames with --layout coco17
    from finetec.api import Predictor
    from finetec.commands.stream import stream
    from finetec.streaming import StreamRecognizer

    rec = StreamRecognizer(Predictor.from_checkpoint(ck), window=4, every=2)
    frames = "".join(json.dumps(_coords(17)[t % 4].tolist()) + "\n" for t in range(6))
    out, err = io.StringIO(), io.StringIO()
    n, preds, bad = stream(rec, io.StringIO(frames), out, err, as_json=True,
                           joint_map=find_joint_map("coco17", "penn13"))
    assert (n, preds, bad) == (6, 2, 0) and err.getvalue() == ""
    # without the map, 17-joint frames are malformed for a 13-joint model
    rec.reset()
    n, preds, bad = stream(rec, io.StringIO(frames), io.StringIO(), err)
    assert bad == 6 and "expected 13 joints, got 17" in err.getvalue()


# -- real data -------------------------------------------------------------------------------
@pytest.mark.realdata
def test_penn_action_names_sides_from_the_viewer():
    """In Penn Action, `left_shoulder` is on the image's left for people facing the camera
    (jumping jacks, guitar players) and on its right for bowlers filmed from behind: the person's
    right shoulder. The coco17 -> penn13 map swaps the sides for that reason."""
    from finetec.data.readers import open_with_options

    ds = open_with_options(str(shared_data("penn_action")), None, {})
    frac = {}
    for name in ("jumping_jacks", "strum_guitar", "bowl"):
        idx = np.flatnonzero(ds.label == ds.class_names.index(name))
        per_clip = []
        for i in idx:
            s = ds[int(i)]
            ok = s.mask[0, :, 1] & s.mask[0, :, 2]
            if ok.any():
                per_clip.append(np.mean(s.keypoint[0, ok, 1, 0] < s.keypoint[0, ok, 2, 0]))
        frac[name] = float(np.mean(per_clip))
    assert frac["jumping_jacks"] > 0.9 and frac["strum_guitar"] > 0.9 and frac["bowl"] < 0.1, frac


@pytest.mark.realdata
def test_penn_action_as_coco17_gets_the_same_predictions():
    """Penn Action test clips written as COCO-17 (eyes and ears missing) and mapped back: the
    pretrained model gives the same probabilities (the full test split: docs/layouts.md)."""
    import finetec
    from finetec.data.readers import open_with_options

    ds = open_with_options(str(shared_data("penn_action")), None, {}).subset("test")
    ds = ds.subset(np.arange(0, len(ds), 20))            # 54 clips across the classes
    coco = ds.to_layout("coco17")
    assert coco.layout.name == "coco17" and not coco.mask[..., 1:5].any()
    model = finetec.load("penn-action")
    native = model.probabilities(ds)
    mapped = model.probabilities(coco.to_layout("penn13"))
    np.testing.assert_array_equal(mapped, native)


def test_layout_check_reports_maps_and_refuses_a_broken_one(tmp_path, capsys):
    assert main(["layout", "check", "ntu25", str(tmp_path / "n.png")]) == 0
    out = capsys.readouterr().out
    assert "joint map onto kinect_v1: 20 of 20 joints supplied" in out
    assert main(["layout", "check", "penn13", str(tmp_path / "p.png")]) == 0
    assert "joint map onto coco17: 13 of 17 joints supplied (missing: left_eye, right_eye, left_ear, right_ear)" \
        in capsys.readouterr().out
    spec = get_layout("coco17").to_dict()
    spec["name"], spec["maps"] = "mine", {"penn13": {"head": "nose"}}
    bad = tmp_path / "mine.json"
    bad.write_text(json.dumps(spec))
    assert main(["layout", "check", str(bad), str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "does not say where 'left_shoulder' comes from" in err
    assert not (tmp_path / "m.png").exists()
