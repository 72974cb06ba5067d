"""``finetec render`` and ``finetec plot`` through the CLI: outputs, comparisons, one-line errors."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from finetec import viz
from finetec.cli import main
from finetec.data import open_dataset
from finetec.data.corruption import corrupt_dataset

SPEC = "synthetic:coco17?clips=2&frames=8"   # two short clips (lengths vary around 8)


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def _length(index: int) -> int:
    return int(open_dataset(SPEC).lengths[index])


def test_render_gif_frame_count_matches_clip(tmp_path, capsys):
    out = tmp_path / "clip.gif"
    rc, stdout, _ = run_cli(capsys, "render", SPEC, str(out), "--index", "1", "--dpi", "40")
    assert rc == 0 and f"{_length(1)} frames" in stdout
    im = Image.open(out)
    assert im.n_frames == _length(1) and im.size == viz.animation_size_px(1, 40)


def test_render_by_id_contact_sheet(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    rc, stdout, _ = run_cli(capsys, "render", SPEC, str(out), "--id", "syn00000", "--sheet", "4", "--dpi", "40")
    assert rc == 0 and "frames 1, 3, 6, 8 of 8 (--sheet indices 0,2,5,7)" in stdout  # numbered as the cells
    assert Image.open(out).size == viz.sheet_size_px(4, 1, 40) == (320, 130)
    rc, stdout, _ = run_cli(capsys, "render", SPEC, str(out), "--sheet", "0,3,", "--dpi", "40")
    assert rc == 0 and Image.open(out).size == (160, 130)


def test_render_compare_corrupted_with_clean(tmp_path, capsys):
    ds = open_dataset(SPEC)
    corrupted = corrupt_dataset(ds, "severe", "random", seed=0)
    cpath = tmp_path / "severe.finetec.npz"
    corrupted.save(cpath)
    clean = tmp_path / "clean.finetec.npz"
    ds.save(clean)
    out = tmp_path / "cmp.gif"
    rc, _, err = run_cli(capsys, "render", str(cpath), str(out), "--compare", str(clean), "--mask",
                         "--titles", "severe", "clean", "--dpi", "40")
    assert rc == 0, err
    im = Image.open(out)
    assert im.size == viz.animation_size_px(2, 40) and im.n_frames == _length(0)
    # the left timeline shows missing frames (red), the right one restored frames (blue)
    im.seek(0)
    strip = np.asarray(im.convert("RGB")).astype(int)[viz.animation_size_px(2, 40)[1] - int((viz.LEGEND_IN + 0.1) * 40)]
    half = strip.shape[0] // 2
    red, blue = np.array([0xE5, 0x39, 0x35]), np.array([0x29, 0xB6, 0xF6])
    assert (np.abs(strip[:half] - red).max(axis=1) < 40).any()
    assert (np.abs(strip[half:] - blue).max(axis=1) < 40).any()
    assert not (np.abs(strip[half:] - red).max(axis=1) < 40).any()


@pytest.mark.parametrize("argv, message", [
    (["render", "nope.finetec.npz", "{out}/a.gif"], "no such file"),
    (["render", SPEC, "{out}/a.avi"], "unknown output suffix"),
    (["render", SPEC, "{out}/a.gif", "--index", "5"], "out of range"),
    (["render", SPEC, "{out}/a.gif", "--id", "zzz"], "no clip with id"),
    (["render", SPEC, "{out}/a.gif", "--fps", "0"], "fps"),
    (["render", SPEC, "{out}/a.png", "--sheet", "x"], "--sheet"),
    (["render", SPEC, "{out}/a.png", "--sheet", "0,99"], "outside the clip"),
    (["render", SPEC, "{out}/a.gif", "--titles", "one", "two"], "--titles"),
    (["plot", "{out}/missing.json", "{out}/a.png"], "no such file"),
])
def test_bad_input_one_line_error_no_output(tmp_path, capsys, argv, message):
    argv = [a.replace("{out}", str(tmp_path)) for a in argv]
    rc, _, err = run_cli(capsys, *argv)
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith(f"finetec {argv[0]}: error:") and message in err
    assert list(tmp_path.iterdir()) == []


def test_render_mp4_without_ffmpeg_suggests_gif(tmp_path, capsys, monkeypatch):
    import matplotlib.animation as animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    rc, _, err = run_cli(capsys, "render", SPEC, str(tmp_path / "a.mp4"))
    assert rc == 2 and "ffmpeg" in err and ".gif" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a stand-in for ffmpeg")
def test_render_mp4_pipes_every_frame_to_ffmpeg(tmp_path, capsys, monkeypatch):
    import matplotlib

    fake = tmp_path / "ffmpeg"
    fake.write_text('#!/bin/sh\nfor last; do :; done\necho "$@" > "$(dirname "$0")/args.txt"\ncat > "$last"\n')
    fake.chmod(0o755)
    monkeypatch.setitem(matplotlib.rcParams, "animation.ffmpeg_path", str(fake))
    out = tmp_path / "out" / "a.mp4"
    rc, _, err = run_cli(capsys, "render", SPEC, str(out), "--index", "1", "--dpi", "40")
    assert rc == 0, err
    w, h = viz.animation_size_px(1, 40)
    assert out.stat().st_size == w * h * 4 * _length(1)          # the stand-in stores the raw RGBA frames
    args = (tmp_path / "args.txt").read_text()
    assert "-vcodec h264" in args and "trunc(iw/2)*2" in args and "-framerate 15" in args


def test_plot_eval_and_benchmark_json(tmp_path, capsys):
    ev = {"checkpoint": "runs/a/best", "data": "synthetic", "split": "test", "class_names": ["x", "y", "z"],
          "results": [{"level": lv, "pattern": "random", "num_clips": 6, "top1": t, "top5": 1.0, "mean_class": t,
                       "confusion": [[2, 0, 0], [0, 1, 1], [0, 1, 1]]} for lv, t in (("clean", 0.67), ("moderate", 0.5))]}
    (tmp_path / "eval.json").write_text(json.dumps(ev))
    rc, out, _ = run_cli(capsys, "plot", str(tmp_path / "eval.json"), str(tmp_path / "lv.png"), "--dpi", "40")
    assert rc == 0 and "levels figure" in out and Image.open(tmp_path / "lv.png").size[0] > 0
    rc, out, _ = run_cli(capsys, "plot", str(tmp_path / "eval.json"), str(tmp_path / "cm.png"),
                         "--kind", "confusion", "--level", "moderate", "--dpi", "40")
    assert rc == 0 and "confusion figure" in out
    bench = {"cells": [{"dataset": "d", "method": "m", "regime": "same", "level": lv, "top1": 0.9 - i / 10,
                        "mean_class": 0.8} for i, lv in enumerate(("clean", "minor", "severe"))]}
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    rc, out, _ = run_cli(capsys, "plot", str(tmp_path / "bench.json"), str(tmp_path / "b.svg"), "--metric", "mean_class")
    assert rc == 0 and (tmp_path / "b.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"hello": 1}', "unknown JSON schema"),
    ('{"results": [{"level": "clean"}]}', "confusion matrix"),
    ('{"cells": [{"dataset": "d", "method": "m", "level": "clean"}]}', "lacks key(s): top1"),
    ('{"cells": [{"dataset": "d", "method": "m", "level": "clean", "top1": "high"}]}', "not a finite number"),
])
def test_plot_bad_json(tmp_path, capsys, content, message):
    src = tmp_path / "r.json"
    src.write_text(content)
    kind = ["--kind", "confusion"] if "results" in content else []
    rc, _, err = run_cli(capsys, "plot", str(src), str(tmp_path / "o.png"), *kind)
    assert rc == 2 and message in err and str(src) in err and err.count("\n") == 1
    assert not (tmp_path / "o.png").exists()
