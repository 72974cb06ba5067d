"""The model zoo: shipped checkpoints, checksums, `finetec models`, `--model NAME`, finetec.load(NAME),
the model cards and the example clips."""
from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import finetec
from finetec import zoo
from finetec.cli import main
from finetec.errors import FinetecError

from conftest import shared_data

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
PENN = "penn-action-stgcnpp"


def _run(capsys, argv):
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(rc, err):
    assert rc == 2 and err.count("\n") == 1 and ": error: " in err, err


def _load_script(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def tampered_zoo(tmp_path, monkeypatch):
    """A copy of the zoo in which one byte of the Penn Action weights is altered."""
    copy = tmp_path / "zoo"
    shutil.copytree(zoo.HERE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    w = copy / PENN / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x01
    w.write_bytes(bytes(data))
    monkeypatch.setattr(zoo, "HERE", copy)
    return copy


# -- the registry ----------------------------------------------------------------------------
def test_every_shipped_model_is_complete_and_verifies():
    assert PENN in zoo.names() and zoo.aliases()["penn-action"] == PENN
    total = 0
    for name in zoo.names():
        m = zoo.get(name)
        zoo.verify(m)                                      # sizes and SHA-256 as recorded
        info = json.loads((m.folder / "checkpoint.json").read_text())
        assert info["class_names"] == list(m.classes) and info["layout"]["name"] == m.layout
        assert info["dims"]["coords"] == m.dim and info["clip_len"] == m.clip_len
        assert set(m.top1) == set(zoo.LEVELS) and all(0 < v <= 1 for v in m.top1.values())
        assert m.evaluation["command"] == f"finetec eval --model {name} --data {m.evaluation['command'].split('--data ')[1]}"
        assert (info["config"].get("data") or {}).get("path") is None   # no path of the training machine
        assert (info["config"].get("model") or {}).get("completion_checkpoint") is None
        assert (ROOT / m.card).is_file()
        total += m.size_bytes
    # small enough to ship in the package: well under PyPI's 100 MB per file; the FineTec models carry
    # their completion module's skeleton bank (the training split's clips, 6-14 MB of the total)
    assert total < 40e6


def test_shipped_files_are_package_data_and_not_git_ignored():
    import fnmatch
    import subprocess

    tomllib = pytest.importorskip("tomllib")   # Python 3.11+

    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["finetec"]
    pkg = ROOT / "src" / "finetec"
    for name in zoo.names():
        for f in ["zoo/models.json"] + [f"zoo/{name}/{fn}" for fn in zoo.get(name).files]:
            assert any(fnmatch.fnmatch(f, g) for g in globs), f"{f} is not package data in pyproject.toml"
            if (ROOT / ".git").exists():
                ignored = subprocess.run(["git", "check-ignore", "-q", str(pkg / f)], cwd=ROOT).returncode == 0
                assert not ignored, f"src/finetec/{f} is ignored by .gitignore"


def test_model_cards_match_the_registry():
    """The cards are written from models.json by benchmarks/build_zoo.py; they must not drift."""
    build = _load_script("build_zoo", ROOT / "benchmarks" / "build_zoo.py")
    reg = build.load_registry()
    for name, m in reg["models"].items():
        card = (ROOT / "docs" / "models" / f"{name}.md").read_text(encoding="utf-8")
        assert card == build.card_text(name, m), f"docs/models/{name}.md is stale: python benchmarks/build_zoo.py cards"
        printed = "\n".join(m["evaluation"]["printed"])
        for lv, v in m["top1"].items():   # the table's top-1 is what the command printed
            assert f"{v:.4f}" in printed and f"| {lv} |" in card
    index = (ROOT / "docs" / "models" / "README.md").read_text(encoding="utf-8")
    assert index == build.index_text(reg), "docs/models/README.md is stale: python benchmarks/build_zoo.py cards"


def test_unknown_name_lists_the_models(capsys):
    with pytest.raises(FinetecError, match=r"unknown model 'nope'; pretrained models: .*penn-action-stgcnpp"):
        zoo.get("nope")
    for argv in (["models", "nope"], ["predict", "--model", "nope", EXAMPLES / "squat_coco17.json"],
                 ["eval", "--model", "nope"], ["stream", "--model", "nope"],
                 ["complete", "--model", "nope", EXAMPLES / "squat_coco17.json", "x.json"]):
        rc, out, err = _run(capsys, argv)
        _one_line_error(rc, err)
        assert "unknown model 'nope'" in err and "penn-action (= penn-action-stgcnpp)" in err and out == ""


def test_checkpoint_or_model_not_both_nor_neither(capsys, tmp_path):
    rc, _, err = _run(capsys, ["eval", tmp_path, "--model", PENN])
    _one_line_error(rc, err)
    assert "either a checkpoint" in err
    rc, _, err = _run(capsys, ["eval"])
    _one_line_error(rc, err)
    assert "--model NAME" in err
    rc, _, err = _run(capsys, ["eval", "--model", "penn-action"])
    _one_line_error(rc, err)
    assert "needs --data: the Penn Action dataset" in err
    rc, _, err = _run(capsys, ["predict", "not-a-model", EXAMPLES / "squat_coco17.json"])
    _one_line_error(rc, err)
    assert "not-a-model: no such checkpoint" in err and "pretrained models:" in err


def test_checksum_mismatch_is_refused(tampered_zoo, capsys):
    with pytest.raises(FinetecError, match="checksum mismatch: model.safetensors"):
        finetec.load("penn-action")
    rc, out, err = _run(capsys, ["predict", "--model", "penn-action", EXAMPLES / "squat_coco17.json"])
    _one_line_error(rc, err)
    assert "checksum mismatch" in err and out == ""
    rc, out, err = _run(capsys, ["models", PENN, "--verify"])
    _one_line_error(rc, err)


# -- finetec models ----------------------------------------------------------------------------
def test_models_lists_layout_classes_size_and_accuracy(capsys):
    rc, out, err = _run(capsys, ["models"])
    assert rc == 0 and err == ""
    m = zoo.get(PENN)
    row = next(line for line in out.splitlines() if line.startswith(PENN))
    assert "penn13" in row and " 2D " in row and " 15 " in row and "1.0 MB" in row
    assert " / ".join(f"{100 * m.top1[lv]:.2f}" for lv in zoo.LEVELS) in row
    assert "penn-action = penn-action-stgcnpp" in out and "penn13 <- coco17, mediapipe33, openpose18" in out
    rc, out, _ = _run(capsys, ["models", "--json"])
    doc = json.loads(out)
    assert doc[PENN]["size_bytes"] == m.size_bytes and doc[PENN]["top1"] == m.top1
    assert doc[PENN]["accepts"] == ["coco17", "mediapipe33", "openpose18"]
    rc, out, _ = _run(capsys, ["models", "penn-action", "--verify"])
    assert rc == 0 and "checksums    verified" in out and "jumping_jacks" in out and m.files["model.safetensors"]["sha256"] in out


# -- using a model by name ---------------------------------------------------------------------
def test_load_by_name_and_by_folder_give_the_same_model():
    by_name = finetec.load("penn-action")
    by_folder = finetec.load(str(zoo.get(PENN).folder))
    assert by_name.class_names == by_folder.class_names and by_name.layout.name == "penn13"
    rng = np.random.default_rng(0)
    kp = rng.normal(200, 30, (40, 13, 2)).astype(np.float32)
    assert by_name.predict(kp, top_k=3) == by_folder.predict(kp, top_k=3)


def test_python_api_takes_another_skeleton():
    """finetec.load(NAME).predict(kp, layout="coco17") equals the CLI on the same clip."""
    from finetec.data.readers import open_with_options

    ds = open_with_options(str(EXAMPLES / "squat_coco17.json"), None, {})
    s = ds[0]
    model = finetec.load("penn-action")
    kp = np.where(s.mask[..., None], s.keypoint, np.nan)            # NaN = missing, as a user writes it
    top = model.predict(kp[0], layout="coco17", top_k=3)
    assert top == model.top_k(model.probabilities(ds.to_layout("penn13")), 3)[0]
    assert top[0][0] == "squat"
    with pytest.raises(FinetecError, match="no joint map from layout 'h36m17'"):
        model.predict(kp[0], layout="h36m17")


def test_predict_example_clips_by_name(capsys):
    """The README's first prediction: COCO-17 pose-estimator JSON through the joint map."""
    rc, out, err = _run(capsys, ["predict", "--model", "penn-action", EXAMPLES / "jumping_jacks_coco17.json",
                                 EXAMPLES / "squat_coco17.json", "--json"])
    assert rc == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["top_k"][0]["class"] for r in recs] == ["jumping_jacks", "squat"]
    # the positional form takes a name as well (an existing folder of that name would win)
    rc, out2, _ = _run(capsys, ["predict", "penn-action", EXAMPLES / "jumping_jacks_coco17.json", "--json"])
    assert rc == 0 and json.loads(out2)["top_k"] == recs[0]["top_k"]


def test_predict_3d_example_through_the_kinect_v2_map(capsys):
    rc, out, err = _run(capsys, ["predict", "--model", "nw-ucla", EXAMPLES / "sit_down_ntu25.json", "--json"])
    assert rc == 0, err
    assert json.loads(out)["top_k"][0]["class"] == "sit down"


def test_complete_and_stream_by_name(capsys, tmp_path, monkeypatch):
    import io

    out = tmp_path / "done.json"
    rc, _, err = _run(capsys, ["complete", "--model", "penn-action", EXAMPLES / "squat_coco17.json", out,
                               "--method", "linear"])
    assert rc == 0, err
    doc = json.loads(out.read_text())
    assert doc["layout"] == "penn13" or doc["layout"]["name"] == "penn13"
    assert doc["completion"]["checkpoint"] == "penn-action"
    frames = json.loads((EXAMPLES / "jumping_jacks_coco17.json").read_text())["frames"]
    lines = "".join(json.dumps({"keypoints": [v for (x, y), s in zip(f["instances"][0]["keypoints"],
                                                                       f["instances"][0]["keypoint_scores"])
                                              for v in (x, y, s)]}) + "\n" for f in frames)
    monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
    rc, text, err = _run(capsys, ["stream", "--model", "penn-action", "--layout", "coco17", "--window", "30",
                                  "--json", "--top-k", "1"])
    assert rc == 0, err
    preds = [json.loads(line) for line in text.splitlines()]
    assert preds and preds[0]["top_k"][0]["class"] == "jumping_jacks"


def test_readme_first_prediction_runs_as_written(capsys, monkeypatch):
    """The README's "First prediction" block, from the repository root; the commented line under
    a command is what it prints."""
    import re
    import shlex

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text[text.index("## First prediction"):], re.S).group(1)
    monkeypatch.chdir(ROOT)
    lines = block.splitlines()
    ran = 0
    for i, line in enumerate(lines):
        cmd = re.sub(r"\s+#.*$", "", line).strip()
        if not cmd.startswith("finetec "):
            continue
        rc, out, err = _run(capsys, shlex.split(cmd)[1:])
        assert rc == 0, (cmd, err)
        ran += 1
        if i + 1 < len(lines) and lines[i + 1].startswith("# "):
            assert out.splitlines()[0] == lines[i + 1][2:], cmd
    assert ran == 2


def test_examples_readme_shows_what_the_models_print(capsys, monkeypatch):
    import shlex

    monkeypatch.chdir(ROOT)
    text = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    block = text[text.index("$ finetec"):]
    block = block[:block.index("```")]
    runs = []
    for line in block.splitlines():
        if line.startswith("$ finetec "):
            runs.append((shlex.split(line[2:])[1:], []))
        elif line.strip():
            runs[-1][1].append(line)
    assert len(runs) == 3
    for argv, shown in runs:
        rc, out, err = _run(capsys, argv)
        assert rc == 0, err
        assert out.splitlines() == shown, argv


def test_examples_are_what_the_script_writes(tmp_path):
    make = _load_script("make_examples", EXAMPLES / "make_examples.py")
    for p in make.main(tmp_path):
        assert p.read_bytes() == (EXAMPLES / p.name).read_bytes(), f"examples/{p.name} differs from its script"


# -- real data -----------------------------------------------------------------------------------
@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.names())
def test_card_accuracy_reproduces_on_the_test_split(capsys, name):
    """`finetec eval --model NAME --data ... --level severe` prints the card's severe top-1 (one
    level, to stay fast; the card's command runs all four)."""
    m = zoo.get(name)
    dataset = m.evaluation["command"].split("--data ")[1].split()[0]      # ../shared/data/NAME
    data = shared_data(Path(dataset).name)
    rc, out, err = _run(capsys, ["eval", "--model", name, "--data", data, "--level", "severe", "--device", "cpu"])
    assert rc == 0, err
    row = next(line.split() for line in out.splitlines() if line.startswith("severe"))
    assert float(row[3]) == m.top1["severe"] and int(row[2]) == m.evaluation["clips"]
