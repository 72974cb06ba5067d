"""The README's "Using it" commands, run as written, in order, on a small 3D dataset.

The README is the single source of truth: its ```bash block is parsed here and every line is run
through ``finetec.cli.main`` in a scratch folder. What the test changes, and only that:

- ``../shared/data/nw_ucla`` is a small synthetic 3D dataset (NW-UCLA's split names, one test
  clip renamed to the README's example id), so the test needs no download;
- ``finetec train`` lines get ``--set`` overrides for tiny models and one epoch;
- ``my_pose_estimator --json-lines`` is the frames of the README's own ``clip.json``;
- ``finetec benchmark`` is not run (it trains a whole budget; tests/test_benchmark.py covers it).

Then the Python API block runs on the README's clip.
"""
from __future__ import annotations

import io
import json
import re
import shlex
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from finetec.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DATA = "../shared/data/nw_ucla"

TINY = {  # per config name fragment: overrides that make the README's trainings take seconds
    "": ["optim.epochs=1", "optim.warmup_epochs=0", "optim.batch_size=8", "pipeline.clip_len=16",
         "runtime.threads=1", "runtime.device=cpu", "data.val_fraction=0.2"],
    "completion": ["model.width=16", "model.depth=2", "model.merge_at=1", "model.bank_size=8"],
    "finetec": ["model.physics_hidden=8"],
}
NOT_RUN = ("finetec benchmark",)


def readme_blocks() -> tuple[list[str], str]:
    """(the commands of the "Using it" bash block, comments stripped; the Python API block)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Using it"):]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    commands = [re.sub(r"\s+#.*$", "", line).strip() for line in bash.splitlines()]
    return [c for c in commands if c and not c.startswith("#")], python


def small_3d_dataset(path: Path, example_id: str) -> None:
    from finetec.data.synthetic import make_dataset

    ds = make_dataset("ntu25", clips=42, seed=1, frames=20, subjects=3)
    test = ds.splits["test"]
    ids = ds.ids.astype(object).copy()
    ids[test[0]] = example_id
    ds = replace(ds, ids=np.asarray(ids, dtype=str),
                 splits={"xview_train": ds.splits["train"], "xview_test": test})
    ds.save(path)


def _run(argv: list[str], capsys, stdin: str | None = None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_readme_block_parses_and_names_one_example_clip():
    commands, python = readme_blocks()
    ids = {m for c in commands for m in re.findall(r"--id (\S+)", c)}
    assert len(ids) == 1, ids
    assert any(c.startswith("finetec convert") and c.split()[3].endswith(".json") for c in commands)
    assert "finetec.load(" in python


@pytest.mark.slow
def test_readme_commands_run_as_written(tmp_path, monkeypatch, capsys):
    pytest.importorskip("onnx")
    commands, python = readme_blocks()
    example_id = next(m for c in commands for m in re.findall(r"--id (\S+)", c))
    data = tmp_path / "data" / "nw_ucla_small.finetec.npz"
    data.parent.mkdir()
    small_3d_dataset(data, example_id)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    ran = []
    for line in commands:
        if line.startswith(NOT_RUN):
            continue
        line = line.replace(DATA, str(data))
        stdin = None
        if "|" in line:  # the pose estimator's output: the README clip's frames, one per line
            producer, line = (part.strip() for part in line.split("|"))
            assert producer == "my_pose_estimator --json-lines"
            frames = json.loads((work / "clip.json").read_text())["frames"]
            stdin = "".join(json.dumps(f["people"][0]["keypoints"] if f["people"] else None) + "\n"
                            for f in frames)
        target = None
        if ">" in line:
            line, target = (part.strip() for part in line.split(">"))
        argv = shlex.split(line)
        assert argv[0] == "finetec", line
        argv = argv[1:]
        if argv[0] == "train":
            config = argv[1]
            argv[1] = str(ROOT / config)
            for frag, sets in TINY.items():
                if frag in Path(config).name:
                    argv += [x for s in sets for x in ("--set", s)]
            argv += ["--set", f"data.path={data}"]
        rc, out, err = _run(argv, capsys, stdin, monkeypatch)
        assert rc == 0, f"{line}\n{err}"
        if "--json" in argv:
            for row in out.splitlines():
                json.loads(row)  # --json output is always JSON, nothing else on stdout
        if argv[0] == "export":
            assert len(out.splitlines()) <= 3, out[:500]  # its own report, no exporter graph dumps
        if target:
            (work / target).write_text(out)
        ran.append(argv[0])
    assert {"info", "inspect", "convert", "corrupt", "train", "eval", "plot", "ensemble", "predict",
            "complete", "render", "stream", "export"} <= set(ran)
    for f in ("clip.json", "clip_completed.json", "clip.gif", "model.onnx", "finetec_levels.png",
              "stgcnpp_severe.npz", "finetec_severe.npz"):
        assert (work / f).exists(), f
    clip = json.loads((work / "clip.json").read_text())
    assert clip["dim"] == 3 and clip["id"] == example_id

    # the Python API block, on the README's clip
    from finetec.data import open_dataset

    sample = open_dataset("clip.json")[0]
    env = {"keypoint": sample.keypoint, "mask": sample.mask}
    exec(compile(python, str(README), "exec"), env)  # noqa: S102 - our own README
    assert env["completed"].shape == sample.keypoint.shape and env["filled"].shape == sample.mask.shape
