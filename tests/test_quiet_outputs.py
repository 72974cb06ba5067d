"""Stdout holds only a command's own output: every --json is valid JSON (checked at the file
descriptor, so native libraries' prints count too); typed paths and run names in what is shown;
ensemble refuses mixed test sets; plot titles and axes say what they draw."""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from finetec.cli import main
from finetec.console import quiet_stdout, run_name, shown_path

from test_api import make_checkpoint, make_dataset
from test_engine_cli import TINY


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quiet")
    cfg = root / "tiny.yaml"
    cfg.write_text("name: tiny\noptim: {epochs: 1, lr: 0.05}\n")
    return root, cfg


def _json_lines(capfd, argv, stdin=None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    rc = main([str(a) for a in argv])
    cap = capfd.readouterr()
    assert rc == 0, cap.err
    lines = cap.out.splitlines()
    assert lines, f"nothing on stdout for {argv}"
    return [json.loads(line) for line in lines]  # fails on any non-JSON line


def test_every_json_option_prints_only_json(tiny_run, tmp_path, capfd, monkeypatch):
    import finetec.commands as pkg
    import pkgutil

    root, cfg = tiny_run
    run = root / "run"
    tested = set()

    def check(name, argv, **kw):
        tested.add(name)
        return _json_lines(capfd, [name, *argv, "--json"], **kw)

    check("info", [])
    check("train", [cfg, "--out", run, *TINY])
    check("eval", [run, "--level", "all"])
    check("inspect", ["synthetic:coco17?clips=20&subjects=2"])
    check("layout", ["check", "coco17", tmp_path / "coco17.png"])
    check("models", [])
    for lv in ("clean", "severe"):
        main(["eval", str(run), "--level", lv, "--save-scores", str(tmp_path / f"{lv}.npz")])
    capfd.readouterr()
    check("ensemble", [tmp_path / "clean.npz", tmp_path / "clean.npz"])
    rows = check("predict", [run, "synthetic:coco17?clips=6&subjects=2"])
    assert len(rows) == 6
    frames = "".join(json.dumps(np.random.default_rng(t).normal(300, 30, (17, 2)).tolist()) + "\n" for t in range(20))
    check("stream", [run, "--every", "4"], stdin=frames, monkeypatch=monkeypatch)
    pytest.importorskip("onnx")
    compl = make_checkpoint(tmp_path / "compl", model="completion", task="completion", classes=("none",),
                            clip_len=16, width=16, depth=2, merge_at=1, bank_size=4)
    rep = check("export", [compl, tmp_path / "c.onnx", "--what", "completion"])
    assert rep[0]["what"] == "completion" and (tmp_path / "c.onnx").exists()
    having = set()
    for m in pkgutil.iter_modules(pkg.__path__):
        src = Path(pkg.__path__[0], m.name + ".py").read_text()
        if '"--json"' in src:
            having.add(m.name)
    assert having <= tested, f"--json not tested for {having - tested}"


def test_quiet_stdout_silences_native_writes(capfd):
    print("before", flush=True)
    with quiet_stdout():
        os.write(1, b"native noise\n")
    print("after", flush=True)
    out = capfd.readouterr().out
    assert out == "before\nafter\n"


def test_shown_path_and_run_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    assert shown_path(str(tmp_path / "shared" / "data")) == "../shared/data"
    assert shown_path("../typed/as/is") == "../typed/as/is" and shown_path("synthetic:coco17") == "synthetic:coco17"
    assert shown_path("/") == "/"
    assert run_name("runs/stgcnpp_severe/best") == "stgcnpp_severe"
    assert run_name("runs/x/best/model.safetensors") == "x"
    assert run_name("runs/finetec") == "finetec"
    (tmp_path / "proj" / "myrun" / "best").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "proj" / "myrun")
    assert run_name("best") == "myrun"


def test_eval_header_shows_typed_paths(tiny_run, capsys, monkeypatch):
    root, cfg = tiny_run
    run = root / "run"
    if not (run / "best").exists():
        assert main(["train", str(cfg), "--out", str(run), *TINY]) == 0
    monkeypatch.chdir(root)
    capsys.readouterr()
    assert main(["eval", "run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("checkpoint run | data synthetic:coco17")
    assert str(root) not in out


# -- ensemble protections ------------------------------------------------------------------
def _scores(path, level="severe", pattern="random", seed=0, ids=("c1", "c2", "c3"), names=("x", "y")):
    rng = np.random.default_rng(abs(hash(str(path))) % 1000)
    np.savez(path, scores=rng.normal(size=(len(ids), len(names))), label=np.arange(len(ids)) % len(names),
             id=np.array(ids), class_names=np.array(names), level=np.array(level), pattern=np.array(pattern),
             seed=np.array(seed))


def test_ensemble_finds_level_files_and_says_which_exist(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for lv in ("clean", "severe"):
        _scores(tmp_path / f"j_{lv}.npz", level=lv)
        _scores(tmp_path / f"b_{lv}.npz", level=lv)
    assert main(["ensemble", "j.npz", "b.npz"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "j.npz: no such score file" in err
    assert "j_clean.npz, j_severe.npz" in err and "--level" in err
    assert main(["ensemble", "j.npz", "b.npz", "--level", "severe", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in res["inputs"]] == ["j_severe.npz", "b_severe.npz"]
    assert all(r["level"] == "severe" for r in res["inputs"])
    assert main(["ensemble", "j_clean.npz", "b.npz", "--level", "severe"]) == 2
    assert "holds scores at level clean, not severe" in capsys.readouterr().err
    assert main(["ensemble", "nothing.npz", "b_clean.npz"]) == 2
    err = capsys.readouterr().err
    assert "no such score file (.npz files there:" in err and "b_clean.npz" in err


def test_ensemble_refuses_different_test_sets_and_class_lists(tmp_path, capsys):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    _scores(a, level="clean")
    _scores(b, level="severe")
    assert main(["ensemble", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "will not fuse" in err and "level differs" in err and "--allow-mismatch" in err
    assert main(["ensemble", str(a), str(b), "--allow-mismatch", "--json"]) == 0
    cap = capsys.readouterr()
    assert "warning: level differs" in cap.err and json.loads(cap.out)["mismatches"]
    c = tmp_path / "c.npz"
    _scores(c, level="clean", seed=3)
    assert main(["ensemble", str(a), str(c)]) == 2 and "seed differs" in capsys.readouterr().err
    d = tmp_path / "d.npz"
    _scores(d, level="clean", names=("x", "z"))
    assert main(["ensemble", str(a), str(d)]) == 2 and "class names differ" in capsys.readouterr().err
    e = tmp_path / "e.npz"
    _scores(e, level="clean", ids=("c1", "c2", "c9"))
    assert main(["ensemble", str(a), str(e)]) == 2 and "different clips" in capsys.readouterr().err
    assert main(["ensemble", str(a), str(e), "--allow-mismatch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_clips"] == 2      # the shared clips


# -- figures -------------------------------------------------------------------------------
def _eval_json(tmp_path, top1s):
    levels = ["clean", "minor", "moderate", "severe"][: len(top1s)]
    cm = [[8, 2], [1, 9]]
    data = {"checkpoint": "runs/stgcnpp_severe/best", "data": "../shared/data/nw_ucla", "split": "xview_test",
            "class_names": ["a", "b"],
            "results": [{"level": lv, "pattern": "random", "num_clips": 20, "top1": t, "top5": 1.0,
                         "mean_class": 0.85, "confusion": cm} for lv, t in zip(levels, top1s)]}
    p = tmp_path / "eval.json"
    p.write_text(json.dumps(data))
    return p


def test_plot_titles_and_axis(tmp_path, monkeypatch):
    from finetec import viz
    from finetec.viz import plots, results

    seen = {}
    real_conf, real_save = viz.plot_confusion, plots._save_figure

    def grab(fig, path, dpi):
        seen["ylim"] = [ax.get_ylim() for ax in fig.axes]
        seen["labels"] = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
        return real_save(fig, path, dpi)

    def conf(matrix, names, path, *, title=None, dpi=100):
        seen["title"] = title
        return real_conf(matrix, names, path, title=title, dpi=dpi)

    monkeypatch.setattr(plots, "_save_figure", grab)
    monkeypatch.setattr(results, "plot_confusion", conf)
    viz.plot_result_file(_eval_json(tmp_path, [0.80, 0.79, 0.78, 0.77]), tmp_path / "lv.png")
    assert seen["ylim"][0] == (0.0, 1.0)                    # from 0: a 3-point spread looks small
    assert any(lbl.startswith("stgcnpp_severe") for lbl in seen["labels"])
    viz.plot_result_file(_eval_json(tmp_path, [0.85]), tmp_path / "cm.png")
    assert seen["title"] == "stgcnpp_severe: clean / random, top-1 0.850, mean-class 0.850"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_go_to_stderr_on_a_terminal(tiny_run, capsys, monkeypatch):
    root, cfg = tiny_run
    run = root / "run"
    if not (run / "best").exists():
        assert main(["train", str(cfg), "--out", str(run), *TINY]) == 0
    data = "synthetic:coco17?clips=210&subjects=3&frames=16"
    for argv, label in ((["predict", run, data, "--top-k", "1"], "predict"),
                        (["eval", run, "--data", data, "--split", "all"], "eval clean")):
        err = _Terminal()
        monkeypatch.setattr("sys.stderr", err)
        capsys.readouterr()
        assert main([str(a) for a in argv]) == 0
        out = capsys.readouterr().out
        assert label in err.getvalue() and "/210 [" in err.getvalue()   # the bar, on stderr
        assert "/210 [" not in out


def test_render_names_what_compare_draws(tmp_path, capsys, monkeypatch):
    from finetec import viz

    seen = []
    monkeypatch.setattr(viz, "contact_sheet", lambda *a, **k: seen.append(k["restored_label"]) or
                        {"frames": [0], "size": (1, 1), "y_down": [None]})
    spec = "synthetic:ntu25?clips=4&subjects=2&frames=16"
    for lv in ("severe", "clean"):
        assert main(["corrupt", spec, str(tmp_path / f"{lv}.finetec.npz"), "--level", lv]) == 0
    ck = make_checkpoint(tmp_path / "ck", layout="ntu25", dim=3)
    assert main(["complete", str(ck), str(tmp_path / "severe.finetec.npz"), str(tmp_path / "done.finetec.npz"),
                 "--method", "linear"]) == 0
    sev = str(tmp_path / "severe.finetec.npz")
    for other, label in (("clean", "clean reference"), ("done", "restored"), ("severe", "observed here only")):
        assert main(["render", sev, str(tmp_path / "x.png"), "--compare", str(tmp_path / f"{other}.finetec.npz")]) == 0
        assert seen[-1] == label
