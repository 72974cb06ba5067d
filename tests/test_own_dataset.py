"""Bringing your own dataset: layout choice without silent guesses, layout files as paths, layout
validation and drawing, the data checks that catch a wrong layout, ragged plain .npz files."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from finetec.cli import main
from finetec.data import open_dataset
from finetec.data.checks import layout_checks
from finetec.data.dataset import SkeletonDataset
from finetec.data.readers import read_dataset
from finetec.errors import FinetecError
from finetec.layouts import get_layout, load_layout_file

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "layouts" / "tracker20.yaml"


def _run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def _one_line_error(rc: int, err: str, *needles: str) -> None:
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], (n, lines[0])


def _save_ragged(ds: SkeletonDataset, path: Path, **extra: object) -> Path:
    """Every clip of ``ds`` back to back in one plain .npz (keypoint (M, F, V, C) + lengths)."""
    np.savez(path, keypoint=ds.keypoint.transpose(1, 0, 2, 3), mask=ds.mask.transpose(1, 0, 2),
             lengths=ds.lengths, label=ds.label, id=ds.ids, class_names=np.array(ds.class_names), **extra)
    return path


@pytest.fixture(scope="module")
def synth3d() -> SkeletonDataset:
    return open_dataset("synthetic:ntu25?clips=60&frames=24")


# -- no silent guess -----------------------------------------------------------------------------
def test_shared_joint_count_needs_a_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "k20.npz"
    np.savez(p, keypoint=np.random.default_rng(0).normal(size=(5, 20, 3)).astype(np.float32))
    for cmd in (["inspect", str(p)], ["convert", str(p), str(tmp_path / "o.finetec.npz")]):
        rc, _, err = _run(cmd, capsys)
        _one_line_error(rc, err, str(p), "ambiguous", "kinect_v1, utd_mhad20", "-o layout=", "layout")
    assert not (tmp_path / "o.finetec.npz").exists()
    rc, out, err = _run(["inspect", str(p), "-o", "layout=utd_mhad20", "--json"], capsys)
    assert rc == 0 and json.loads(out)["layout"] == "utd_mhad20" and "note" not in err


def test_a_guess_is_announced_on_every_command(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "n25.npz"
    np.savez(p, keypoint=np.random.default_rng(0).normal(size=(6, 25, 3)).astype(np.float32))
    dst = tmp_path / "n25.finetec.npz"
    for cmd in (["inspect", str(p), "--json"], ["convert", str(p), str(dst)],
                ["render", str(p), str(tmp_path / "c.png"), "--sheet", "2"]):
        rc, out, err = _run(cmd, capsys)
        assert rc == 0, err
        assert f"{p}: no layout given; assuming ntu25" in err and "note" not in out
    rc, _, err = _run(["inspect", str(dst)], capsys)       # the canonical file stores its layout
    assert rc == 0 and "assuming" not in err


def test_unknown_joint_count_says_how(tmp_path: Path) -> None:
    p = tmp_path / "v19.npz"
    np.savez(p, keypoint=np.ones((4, 19, 2), np.float32))
    with pytest.raises(FinetecError, match="no built-in layout has 19") as e:
        read_dataset(p)
    assert "layouts.md" in str(e.value)


# -- layouts as paths ------------------------------------------------------------------------------
def test_stored_layout_path_is_relative_to_the_data_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "layouts").mkdir()
    (data / "layouts" / "t20.yaml").write_text(EXAMPLE.read_text())
    p = data / "clips.npz"
    np.savez(p, keypoint=np.random.default_rng(1).normal(size=(5, 20, 3)).astype(np.float32),
             layout="layouts/t20.yaml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert read_dataset(p).layout.name == "tracker20"
    rc, out, err = _run(["inspect", str(p), "--json"], capsys)
    assert rc == 0 and json.loads(out)["layout"] == "tracker20" and "assuming" not in err
    # a missing layout file: "not found", naming the data file and the field
    np.savez(p, keypoint=np.ones((5, 20, 3), np.float32), layout="layouts/gone.yaml")
    rc, _, err = _run(["inspect", str(p)], capsys)
    _one_line_error(rc, err, str(p), "layout field", "'layouts/gone.yaml' not found")
    # a path given as an option is relative to the current folder
    (elsewhere / "mine.yaml").write_text(EXAMPLE.read_text())
    assert read_dataset(p, layout="mine.yaml").layout.name == "tracker20"
    with pytest.raises(FinetecError, match="the layout option: .*not found") as e:
        read_dataset(p, layout="absent.yaml")
    assert str(p) in str(e.value)
    with pytest.raises(FinetecError, match="unknown layout 'kinect'"):
        read_dataset(p, layout="kinect")


def test_convert_relabels_a_canonical_file(tmp_path: Path, synth3d: SkeletonDataset,
                                           capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "s.finetec.npz"
    synth3d.save(src)
    mine = get_layout("ntu25").to_dict()
    mine["name"] = "my25"
    lay = tmp_path / "my25.json"
    lay.write_text(json.dumps(mine))
    dst = tmp_path / "r.finetec.npz"
    rc, out, err = _run(["convert", str(src), str(dst), "-o", f"layout={lay}"], capsys)
    assert rc == 0, err
    assert "layout my25" in out
    back = SkeletonDataset.load(dst)
    assert back.layout.name == "my25" and back.meta["relabelled_from"] == "ntu25"
    np.testing.assert_array_equal(back.keypoint, synth3d.keypoint)
    rc, _, err = _run(["convert", str(src), str(tmp_path / "x.finetec.npz"), "-o", "layout=coco17"], capsys)
    _one_line_error(rc, err, str(src), "wrong joint count", "25 joints", "'coco17' has 17")
    assert not (tmp_path / "x.finetec.npz").exists()
    rc, out, err = _run(["render", str(src), str(tmp_path / "r.png"), "--layout", str(lay), "--sheet", "2"], capsys)
    assert rc == 0 and (tmp_path / "r.png").stat().st_size > 0, err


# -- layout validation: one line naming the file and the field -----------------------------------------
def _example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


@pytest.mark.parametrize("breakage,needles", [
    (lambda d: d["edges"].append(["head", "spine"]), ["edges", "tree", "head"]),
    (lambda d: d["edges"].__setitem__(0, ["spine", "neck"]), ["edges", "cycle"]),
    (lambda d: d["edges"].pop(), ["edges", "tree", "got 18"]),
    (lambda d: d["regions"]["left_arm"].append("left_palm"), ["regions.left_arm", "unknown joint", "left_palm"]),
    (lambda d: d["regions"].update(torso=d["regions"].pop("head_torso")), ["regions", "torso"]),
    (lambda d: d["regions"]["left_arm"].append("head"), ["regions", "exactly one region", "head"]),
    (lambda d: d.update(up_axis=[["neck"], ["neck"]]), ["up_axis", "same joint"]),
    (lambda d: d.update(across_axis=[["left_hip"], []]), ["across_axis", "at least one joint"]),
    (lambda d: d.update(center=[]), ["center", "at least one joint"]),
    (lambda d: d["flip_pairs"].append(["left_knee", 25]), ["flip_pairs", "outside 0..19"]),
    (lambda d: d["joints"].__setitem__(19, "neck"), ["joints", "not unique", "neck"]),
    (lambda d: d.pop("edges"), ["missing field", "edges"]),
])
def test_bad_layout_is_one_line_naming_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                      breakage, needles) -> None:
    d = _example()
    breakage(d)
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(d))
    rc, _, err = _run(["layout", "check", str(p), str(tmp_path / "bad.png")], capsys)
    _one_line_error(rc, err, str(p), *needles)
    assert not (tmp_path / "bad.png").exists()


def test_layout_joint_count_differs_from_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "c.npz"
    np.savez(p, keypoint=np.ones((4, 17, 2), np.float32), layout=str(EXAMPLE))
    rc, _, err = _run(["inspect", str(p)], capsys)
    _one_line_error(rc, err, str(p), "wrong joint count", "17 joints", "'tracker20' has 20")


# -- layout check and drawing ----------------------------------------------------------------------
def test_example_layout_loads_and_matches_kinect_body() -> None:
    lay = load_layout_file(EXAMPLE)
    k = get_layout("kinect_v1")
    assert lay.num_joints == 20 and lay.joints[lay.root] == "hip_center"
    kname = [{"shoulder_center": "neck"}.get(j, j) for j in k.joints]
    assert sorted(lay.joints) == sorted(kname)               # the same body ...
    assert lay.joints != kname                                # ... in another order
    named = {frozenset((lay.joints[c], lay.joints[p])) for c, p in lay.edges}
    k_named = {frozenset((kname[c], kname[p])) for c, p in k.edges}
    assert named == k_named                                   # the same bones (the root may differ)


def test_layout_check_draws_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(["layout", "check", str(EXAMPLE)], capsys)
    assert rc == 0, err
    png = tmp_path / "tracker20.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and "layout tracker20: valid" in out
    assert "up_axis: hip_center -> neck" in out and "warning" not in out
    # valid but probably wrong: a flip pair that is not left/right, no up axis
    d = _example()
    d["flip_pairs"].append(["spine", "head"])
    d.pop("up_axis")
    p = tmp_path / "odd.yaml"
    p.write_text(yaml.safe_dump(d))
    rc, out, err = _run(["layout", "check", str(p), "odd.png", "--json"], capsys)
    assert rc == 0, err
    r = json.loads(out)
    assert r["valid"] and any("flip_pairs: spine <-> head" in w for w in r["warnings"])
    assert any(w.startswith("up_axis: not set") for w in r["warnings"])


def test_layout_check_on_data_finds_a_permuted_layout(tmp_path: Path, synth3d: SkeletonDataset,
                                                      capsys: pytest.CaptureFixture) -> None:
    p = _save_ragged(synth3d, tmp_path / "s.npz", layout="ntu25")
    rc, out, err = _run(["layout", "check", "ntu25", str(tmp_path / "ok.png"), "--data", str(p), "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["checks"]["warnings"] == []
    perm = _permuted_layout(tmp_path)
    rc, out, err = _run(["layout", "check", str(perm), str(tmp_path / "perm.png"), "--data", str(p)], capsys)
    assert rc == 0, err
    assert "warning:" in out and "joint order" in out
    assert (tmp_path / "perm.png").stat().st_size > (tmp_path / "ok.png").stat().st_size * 0.5


# -- data checks that catch a wrong layout ------------------------------------------------------------
def _permuted_layout(tmp_path: Path) -> Path:
    """ntu25's layout with its joint list shuffled (edges etc. by name): the data's order is wrong for it."""
    d = get_layout("ntu25").to_dict()
    names = d["joints"]

    def by_name(x):
        return [by_name(v) for v in x] if isinstance(x, list) else names[x]

    for key in ("edges", "center", "flip_pairs", "up_axis", "across_axis"):
        d[key] = by_name(d[key])
    d["regions"] = {k: by_name(v) for k, v in d["regions"].items()}
    d["joints"] = [names[i] for i in np.random.default_rng(0).permutation(len(names))]
    d["name"] = "ntu25_shuffled"
    p = tmp_path / "shuffled.json"
    p.write_text(json.dumps(d))
    return p


def test_inspect_checks_flag_a_permuted_layout(tmp_path: Path, synth3d: SkeletonDataset,
                                               capsys: pytest.CaptureFixture) -> None:
    p = _save_ragged(synth3d, tmp_path / "s.npz", layout="ntu25")
    rc, out, err = _run(["inspect", str(p), "--json"], capsys)
    assert rc == 0, err
    good = json.loads(out)["checks"]
    assert good["warnings"] == [] and not any(b["flagged"] for b in good["bones"])
    assert good["vertical"]["agree"] and good["vertical"]["legs_below"] > 0.9
    rc, out, err = _run(["inspect", str(p), "--layout", str(_permuted_layout(tmp_path)), "--json"], capsys)
    assert rc == 0, err
    bad = json.loads(out)["checks"]
    flagged = [b for b in bad["bones"] if b["flagged"]]
    assert len(flagged) >= 3 and any("joint order" in w for w in bad["warnings"])
    assert max(b["length"] for b in bad["bones"]) > 2 * max(b["length"] for b in good["bones"])
    rc, out, err = _run(["inspect", str(p), "--layout", str(_permuted_layout(tmp_path))], capsys)
    assert rc == 0 and "  warning: " in out and "    bones: " in out and "by joint: " in out


def test_inspect_checks_reversed_torso_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """kinect_v1 data read as utd_mhad20 (the torso joints in reverse order): the up axis points
    down the body; per-joint missing fractions and the never-observed centre are counted exactly."""
    from finetec.data.readers import relabel

    ds = open_dataset("synthetic:ntu25?clips=28&frames=16")
    # a kinect_v1 body: take the ntu25 joints with the same names
    k = get_layout("kinect_v1")
    n = get_layout("ntu25")
    alias = {"hip_center": "spine_base", "spine": "spine_mid", "shoulder_center": "spine_shoulder"}
    idx = [n.joints.index(alias.get(j, j)) for j in k.joints]
    kp, mask = ds.keypoint[:, :, idx].copy(), ds.mask[:, :, idx].copy()
    a, b = int(ds.offsets[0]), int(ds.offsets[1])
    mask[a:b, :, k.index("spine")] = False                   # clip 0: the centre joint never seen
    mask[:, :, k.index("left_foot")] = False                 # a joint the tracker never sees
    import dataclasses

    kin = dataclasses.replace(ds, keypoint=np.where(mask[..., None], kp, 0), mask=mask, layout=k)
    c = layout_checks(kin)
    assert c["missing_by_joint"]["left_foot"] == 1.0 and c["most_missing"][0] == "left_foot"
    assert c["missing_by_joint"]["spine"] == pytest.approx(
        (b - a) * int(ds.persons[0]) / int(np.sum(ds.lengths * ds.persons)), abs=1e-4)
    assert c["centre_never_observed"]["clips"] == 1 and c["centre_never_observed"]["ids"] == [str(ds.ids[0])]
    assert any("never observed in 1 of 28 clips" in w for w in c["warnings"])
    assert c["vertical"]["legs_below"] == 1.0
    wrong = layout_checks(relabel(kin, "utd_mhad20"))
    assert wrong["vertical"]["legs_below"] < 0.1
    assert any("up_axis is reversed or the joint order" in w for w in wrong["warnings"])
    p = tmp_path / "k.finetec.npz"
    kin.save(p)
    rc, out, err = _run(["inspect", str(p), "--layout", "utd_mhad20"], capsys)
    assert rc == 0 and "warning: the leg joints lie below" in out, err
    rc, out, err = _run(["inspect", str(p), "--no-checks", "--json"], capsys)
    assert rc == 0 and json.loads(out)["checks"] is None


# -- ragged clips in the plain .npz ---------------------------------------------------------------------
def test_ragged_plain_npz_round_trips(tmp_path: Path, synth3d: SkeletonDataset) -> None:
    assert len(set(synth3d.lengths.tolist())) > 1
    for save in (np.savez, np.savez_compressed):
        p = tmp_path / f"{save.__name__}.npz"
        np.savez(p, x=0)
        _save_ragged(synth3d, p, layout="ntu25", title="My clips") if save is np.savez else save(
            p, keypoint=synth3d.keypoint.transpose(1, 0, 2, 3), mask=synth3d.mask.transpose(1, 0, 2),
            lengths=synth3d.lengths, label=synth3d.label, id=synth3d.ids, layout="ntu25", title="My clips")
        back = read_dataset(p)
        assert len(back) == len(synth3d) and back.lengths.tolist() == synth3d.lengths.tolist()
        assert back.ids.tolist() == synth3d.ids.tolist() and back.label.tolist() == synth3d.label.tolist()
        assert back.meta["title"] == "My clips"
        for i in (0, len(synth3d) - 1):
            np.testing.assert_array_equal(back[i].keypoint, synth3d[i].keypoint)
            np.testing.assert_array_equal(back[i].mask, synth3d[i].mask)
    compressed, plain = tmp_path / "savez_compressed.npz", tmp_path / "savez.npz"
    assert compressed.stat().st_size < plain.stat().st_size


def test_ragged_plain_npz_bad_inputs(tmp_path: Path) -> None:
    kp = np.ones((10, 25, 3), np.float32)
    p = tmp_path / "r.npz"
    np.savez(p, keypoint=kp, lengths=np.array([4, 5]), layout="ntu25")
    with pytest.raises(FinetecError, match="sum to the 10 frames") as e:
        read_dataset(p)
    assert str(p) in str(e.value)
    np.savez(p, keypoint=kp, lengths=np.array([4, 6]), label=np.array([0, 1, 2]), layout="ntu25")
    with pytest.raises(FinetecError, match="'label' must be 2"):
        read_dataset(p)
    np.savez(p, keypoint=kp, lengths=np.array([4, 6]), layout="ntu25")
    assert read_dataset(p).lengths.tolist() == [4, 6]
    # a list of differently sized arrays is an object array: refused, never unpickled
    np.savez(p, keypoint=np.array([np.ones((2, 25, 3)), np.ones((3, 25, 3))], dtype=object))
    with pytest.raises(FinetecError, match="no pickle"):
        read_dataset(p)


def test_synthetic_data_under_another_layout(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    perm = _permuted_layout(tmp_path)
    rc, out, err = _run(["inspect", "synthetic:ntu25?clips=28&frames=16", "--layout", str(perm), "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["layout"] == "ntu25_shuffled"
    rc, _, err = _run(["inspect", "synthetic:ntu25?clips=28", "-o", "colour=red"], capsys)
    _one_line_error(rc, err, "no reader option 'colour'")


def test_title_is_shown_by_inspect(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    p = tmp_path / "t.npz"
    np.savez(p, keypoint=np.ones((4, 25, 3), np.float32), layout="ntu25", title="Kitchen actions")
    rc, out, _ = _run(["inspect", str(p)], capsys)
    assert rc == 0 and "title: Kitchen actions" in out


# -- 3D contact sheets have axis labels ----------------------------------------------------------------
def test_3d_panels_name_their_axes(synth3d: SkeletonDataset) -> None:
    from matplotlib.figure import Figure

    from finetec.viz.skeleton import ClipView, _Panel

    s = synth3d[0]
    ax = Figure().add_subplot(projection="3d")
    _Panel(ax, ClipView(s.keypoint, s.mask, synth3d.layout), show_mask=False, y_down=None,
           reference_mask=None, compact=True)
    assert "y (up)" in [t.get_text() for t in ax.texts] and {ax.get_xlabel(), ax.get_ylabel()} == {"x", "z"}


def test_completed_plain_files_keep_a_user_layout(tmp_path: Path, synth3d: SkeletonDataset) -> None:
    """A plain .npz / pose JSON written by ``complete`` stores a user layout whole, so it reads back."""
    from finetec.commands.complete import write_npz, write_pose_json
    from finetec.data.readers import relabel

    mine = get_layout("ntu25").to_dict()
    mine["name"] = "my25"
    (tmp_path / "my25.json").write_text(json.dumps(mine))
    ds = relabel(synth3d.subset([0]), str(tmp_path / "my25.json"))
    out = tmp_path / "done.npz"
    write_npz(out, ds, np.zeros(ds.mask.shape, bool), {"method": "linear"})
    assert read_dataset(out).layout == ds.layout
    coco = open_dataset("synthetic:coco17?clips=14&frames=8").subset([0])
    mine2 = coco.layout.to_dict()
    mine2["name"] = "my17"
    from finetec.layouts import Layout

    ds2 = relabel(coco, Layout.from_dict(mine2))
    out2 = tmp_path / "done.json"
    write_pose_json(out2, ds2, np.zeros(ds2.mask.shape, bool), {"method": "linear"})
    assert read_dataset(out2).layout.name == "my17"


def test_format_conventions_choose_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """PYSKL 2D files and pose-estimator JSON with 17 joints are COCO-17 by convention (noted)."""
    import pickle

    p = tmp_path / "g.pkl"
    p.write_bytes(pickle.dumps({"annotations": [{"frame_dir": "a", "label": 0,
                                                 "keypoint": np.ones((1, 4, 17, 2), np.float32),
                                                 "keypoint_score": np.ones((1, 4, 17), np.float32)}]}))
    capsys.readouterr()
    assert read_dataset(p).layout.name == "coco17"
    assert f"{p}: no layout given; assuming coco17 (this format's usual layout" in capsys.readouterr().err
    assert read_dataset(p, layout="h36m17").layout.name == "h36m17"
    assert "assuming" not in capsys.readouterr().err
    j = tmp_path / "c.json"
    j.write_text(json.dumps([[{"keypoints": [10.0, 20.0, 1.0] * 17}]] * 3))
    assert read_dataset(j).layout.name == "coco17" and "assuming coco17" in capsys.readouterr().err


def test_predict_and_complete_use_the_models_layout_for_unnamed_files(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture) -> None:
    """A plain .npz that names no layout, given to a model: read under the model's layout (noted),
    not refused as ambiguous and not guessed."""
    from test_api import clip, make_checkpoint

    rng = np.random.default_rng(0)
    ck = make_checkpoint(tmp_path / "ck", layout="h36m17", clip_len=16)
    p = tmp_path / "c.npz"
    np.savez(p, keypoint=clip(rng, T=20)[0])
    with pytest.raises(FinetecError, match="ambiguous"):
        read_dataset(p)
    rc, out, err = _run(["predict", str(ck), str(p), "--top-k", "1"], capsys)
    assert rc == 0, err
    assert "using the model's layout h36m17" in err and "ambiguous" not in err
    rc, out, err = _run(["complete", str(ck), str(p), str(tmp_path / "done.npz"), "--method", "linear"], capsys)
    assert rc == 0, err
    assert read_dataset(tmp_path / "done.npz").layout.name == "h36m17"
    # a file that names another layout is not overridden
    np.savez(p, keypoint=clip(rng, T=20)[0], layout="coco17")
    rc, _, err = _run(["predict", str(ck), str(p)], capsys)
    assert rc == 2 and "coco17" in err and "h36m17" in err


def test_builtin_layouts_pass_the_review() -> None:
    from finetec.layouts import builtin_layouts
    from finetec.layouts.review import review_layout
    from finetec.viz.layout_figure import tree_positions

    for name in builtin_layouts():
        lay = get_layout(name)
        assert review_layout(lay) == [], name
        pos = tree_positions(lay)
        assert len({tuple(p) for p in pos}) == lay.num_joints, name     # no two joints drawn on one spot


def test_training_config_passes_reader_options(tmp_path: Path) -> None:
    """data.options gives a plain .npz that names no layout its layout, for train and eval."""
    from finetec.engine.config import Config, apply_overrides
    from finetec.engine.evaluate import open_eval_data
    from finetec.engine.train import train

    ds = open_dataset("synthetic:coco17?clips=28&frames=16&seed=1")
    p = tmp_path / "plain.npz"
    _save_ragged(ds, p, split__train=np.arange(len(ds)), split__test=np.arange(len(ds)))
    tiny = ["model.name=stgcnpp", "model.base_channels=8", "model.num_stages=2", "model.inflate_stages=[2]",
            "model.down_stages=[2]", "runtime.threads=1", "runtime.log_every=1000", "runtime.tensorboard=off",
            "pipeline.clip_len=8", "optim.epochs=1", f"data.path={p}"]
    with pytest.raises(FinetecError, match="ambiguous"):
        train(apply_overrides(Config(), tiny), tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    cfg = apply_overrides(Config(), [*tiny, "data.options={layout: coco17}"])
    assert cfg.data.options == {"layout": "coco17"}
    train(cfg, tmp_path / "run")
    info = {"config": cfg.to_dict()}
    back, _ = open_eval_data(info)
    assert back.layout.name == "coco17" and len(back) == len(ds)
