"""Skeleton drawings and result figures (finetec.viz): sizes, frame counts, pixels, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from finetec import viz
from finetec.viz import skeleton
from finetec.errors import FinetecError
from finetec.layouts import get_layout

DPI = 40
COCO = get_layout("coco17")
# A standing COCO-17 pose in pixel coordinates (y grows downwards: head at small y).
POSE = np.array([[100, 40], [95, 35], [105, 35], [90, 38], [110, 38], [85, 60], [115, 60], [80, 85],
                 [120, 85], [78, 110], [122, 110], [90, 110], [110, 110], [90, 150], [110, 150],
                 [90, 190], [110, 190]], dtype=np.float32)


def clip2d(T: int = 8, missing=(3, 4)) -> tuple[np.ndarray, np.ndarray]:
    kp = np.stack([POSE + [2.0 * t, 0.0] for t in range(T)])[None]
    mask = np.ones((1, T, 17), dtype=bool)
    mask[0, list(missing)] = False
    kp[~mask] = 0.0
    return kp, mask


def red_pixels(img: np.ndarray) -> int:
    """Pixels of the missing colour (red, possibly anti-aliased to pink); orange has g >> b."""
    r, g, b = img[..., 0], img[..., 1], img[..., 2]
    return int(((r > 200) & (r - g > 70) & (np.abs(g - b) < 25)).sum())


def frames_of(path) -> list[np.ndarray]:
    im = Image.open(path)
    out = []
    for i in range(im.n_frames):
        im.seek(i)
        out.append(np.asarray(im.convert("RGB")).astype(int))
    return out


# -- helpers --------------------------------------------------------------------------------
def test_nearest_observed_index_prefers_previous_then_next():
    obs = np.array([False, True, False, False, True, False])
    assert viz.nearest_observed_index(obs).tolist() == [1, 1, 1, 1, 4, 4]
    assert viz.nearest_observed_index(np.zeros(3, bool)).tolist() == [-1, -1, -1]
    two = np.array([[True, False, False], [False, False, True]])
    assert viz.nearest_observed_index(two).tolist() == [[0, 0, 0], [2, 2, 2]]


def test_frame_states_observed_partial_missing_restored():
    m = np.ones((2, 4, 3), dtype=bool)
    m[1] = False                      # a padding person does not count
    m[0, 1, 0] = False                # partial
    m[0, 2] = False                   # missing
    assert viz.frame_states(m).tolist() == [viz.OBSERVED, viz.PARTIAL, viz.MISSING, viz.OBSERVED]
    full = np.ones((1, 4, 3), dtype=bool)
    assert viz.frame_states(full, reference_mask=m).tolist() == [0, 0, viz.RESTORED, 0]


def test_animation_frames_subsampling_rule():
    assert viz.animation_frames(10, 300).tolist() == list(range(10))
    assert viz.animation_frames(10, 4).tolist() == [0, 3, 6, 9]     # k = ceil(10/4) = 3
    assert len(viz.animation_frames(601, 300)) == 201                # k = 3
    with pytest.raises(FinetecError):
        viz.animation_frames(10, 0)


def test_sheet_frames_count_and_explicit():
    assert viz.sheet_frames(10, 8).tolist() == [0, 1, 3, 4, 5, 6, 8, 9]
    assert viz.sheet_frames(5, 8).tolist() == [0, 1, 2, 3, 4]
    assert viz.sheet_frames(10, [0, -1, 4]).tolist() == [0, 9, 4]
    with pytest.raises(FinetecError, match="outside the clip"):
        viz.sheet_frames(10, [10])
    with pytest.raises(FinetecError):
        viz.sheet_frames(10, 0)


def test_detect_y_down_from_up_axis():
    kp, m = clip2d()
    assert viz.detect_y_down(viz.ClipView(kp, m, COCO)) is True
    flipped = kp.copy()
    flipped[..., 1] = 300 - flipped[..., 1]
    flipped[~m] = 0
    assert viz.detect_y_down(viz.ClipView(flipped, m, COCO)) is False


def test_3d_up_axis_goes_vertical():
    lay = get_layout("ntu25")
    kp = np.zeros((1, 2, 25, 3), dtype=np.float32)
    kp[0, :, 1, 2] = -1.0            # spine above the base along -z
    kp[0, :, :, 0] = np.linspace(0, 0.3, 25)
    m = np.ones((1, 2, 25), bool)
    order, signs = skeleton._axes_3d(viz.ClipView(kp, m, lay))
    assert order[2] == 2 and signs[2] == -1.0


def test_clip_view_rejects_bad_shapes():
    kp, m = clip2d()
    with pytest.raises(FinetecError, match="joints"):
        viz.ClipView(kp[:, :, :5], m[:, :, :5], COCO)
    with pytest.raises(FinetecError, match="mask shape"):
        viz.ClipView(kp, m[:, :3], COCO)
    with pytest.raises(FinetecError, match="no observed joint"):
        viz.ClipView(kp, np.zeros_like(m), COCO)


# -- skeleton drawings ----------------------------------------------------------------------
def test_gif_has_one_frame_per_clip_frame_and_expected_size(tmp_path):
    kp, m = clip2d(T=7)
    out = tmp_path / "a.gif"
    res = viz.render_clip((kp, m), COCO, out, dpi=DPI)
    assert res["y_down"] == [True]
    im = Image.open(out)
    assert im.n_frames == 7 == res["frames"]
    assert im.size == viz.animation_size_px(1, DPI) == (160, 210)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]   # no temp file left


def test_gif_subsamples_long_clips(tmp_path):
    kp, m = clip2d(T=10, missing=())
    res = viz.render_clip((kp, m), COCO, tmp_path / "a.gif", dpi=DPI, max_frames=4)
    assert res["frames"] == 4 == Image.open(tmp_path / "a.gif").n_frames


def test_missing_frame_looks_different_in_timeline_and_panel(tmp_path):
    kp, m = clip2d(T=6, missing=(3,))
    out = tmp_path / "a.gif"
    viz.render_clip((kp, m), COCO, out, dpi=DPI)
    frames = frames_of(out)
    # The timeline strip (just above the legend band) is red under the missing frame.
    W, H = viz.animation_size_px(1, DPI)
    row = H - int((viz.LEGEND_IN + 0.1) * DPI)
    strip = frames[0][row]
    x_missing = int((0.15 + (3.5 / 6) * (viz.PANEL_IN - 0.3)) * DPI)
    x_observed = int((0.15 + (1.5 / 6) * (viz.PANEL_IN - 0.3)) * DPI)
    red, green = np.array([0xE5, 0x39, 0x35]), np.array([0x8B, 0xC3, 0x4A])
    assert np.abs(strip[x_missing] - red).max() < 40
    assert np.abs(strip[x_observed] - green).max() < 40
    # The missing frame's panel shows the red "missing" label; observed frames have none.
    panel = slice(int(viz.TITLE_IN * DPI), int((viz.TITLE_IN + viz.PANEL_IN) * DPI))

    assert red_pixels(frames[3][panel]) > 20
    assert red_pixels(frames[2][panel]) < 5  # (a stray anti-aliased pixel at most)


def test_mask_option_draws_missing_joints_hollow_red(tmp_path):
    kp, m = clip2d(T=4, missing=())
    m[0, 2, [9, 10, 15, 16]] = False
    kp[~m] = 0
    viz.render_clip((kp, m), COCO, tmp_path / "plain.gif", dpi=DPI)
    viz.render_clip((kp, m), COCO, tmp_path / "mask.gif", dpi=DPI, show_mask=True)
    panel = slice(int(viz.TITLE_IN * DPI), int((viz.TITLE_IN + viz.PANEL_IN) * DPI))

    plain, masked = frames_of(tmp_path / "plain.gif"), frames_of(tmp_path / "mask.gif")
    assert red_pixels(masked[2][panel]) > red_pixels(plain[2][panel]) + 10
    assert red_pixels(masked[1][panel]) < 5  # frame 1 has no missing joint


def test_compare_side_by_side(tmp_path):
    kp, m = clip2d(T=6, missing=(2, 3))
    done = kp.copy()
    done[0, 2:4] = kp[0, 1]
    res = viz.render_clip([(kp, m), (done, np.ones_like(m))], [COCO, COCO], tmp_path / "c.gif",
                          titles=["corrupted", "completed"], dpi=DPI)
    im = Image.open(tmp_path / "c.gif")
    assert im.size == (320, 210) and im.n_frames == 6 == res["frames"]
    with pytest.raises(FinetecError, match="titles"):
        viz.render_clip([(kp, m), (done, np.ones_like(m))], COCO, tmp_path / "x.gif", titles=["one"])


def test_contact_sheet_size_and_frames(tmp_path):
    kp, m = clip2d(T=10)
    res = viz.contact_sheet((kp, m), COCO, tmp_path / "s.png", frames=8, dpi=DPI)
    assert res["frames"] == [0, 1, 3, 4, 5, 6, 8, 9]
    assert Image.open(tmp_path / "s.png").size == viz.sheet_size_px(8, 1, DPI) == (640, 130)
    res = viz.contact_sheet([(kp, m), (kp, m)], COCO, tmp_path / "t.png", frames=[0, 5], dpi=DPI)
    assert Image.open(tmp_path / "t.png").size == (160, 240)


def test_3d_multi_person_clip(tmp_path):
    lay = get_layout("ntu25")
    rng = np.random.default_rng(0)
    kp = rng.normal(size=(2, 5, 25, 3)).astype(np.float32)
    m = np.ones((2, 5, 25), bool)
    m[:, 1] = False
    res = viz.render_clip((kp, m), lay, tmp_path / "d.gif", dpi=DPI)
    assert res["y_down"] == [None]
    assert Image.open(tmp_path / "d.gif").n_frames == 5 == res["frames"]
    viz.contact_sheet((kp, m), lay, tmp_path / "d.png", frames=3, dpi=DPI)
    assert Image.open(tmp_path / "d.png").size == viz.sheet_size_px(3, 1, DPI)


def test_bad_suffix_and_mp4_without_ffmpeg(tmp_path, monkeypatch):
    kp, m = clip2d()
    with pytest.raises(FinetecError, match="suffix"):
        viz.render_clip((kp, m), COCO, tmp_path / "a.avi")
    import matplotlib.animation as animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(FinetecError, match="ffmpeg"):
        viz.render_clip((kp, m), COCO, tmp_path / "a.mp4")
    assert list(tmp_path.iterdir()) == []


# -- result figures --------------------------------------------------------------------------
CELLS = [{"dataset": d, "method": meth, "regime": "same", "level": lv, "top1": acc, "mean_class": acc}
         for d in ("nw-ucla", "utd-mhad") for meth, base in (("stgcnpp", 0.9), ("finetec", 0.92))
         for lv, acc in (("clean", base), ("minor", base - 0.05), ("severe", base - 0.2))]
COMPLETION = [{"dataset": "nw-ucla", "filler": f, "level": lv, "mpjpe": e, "n_mpjpe": e / 2, "mpjve": e / 3}
              for f, k in (("linear", 1.0), ("completion", 0.5)) for lv, e in (("minor", 0.1 * k), ("severe", 0.4 * k))]


def test_accuracy_and_completion_plots(tmp_path):
    p = viz.plot_accuracy_vs_level(CELLS, tmp_path / "acc.png", dpi=50)
    w, h = Image.open(p).size
    assert (w, h) == (2 * 4.5 * 50, 3.4 * 50)           # two dataset panels side by side
    p = viz.plot_completion_vs_level(COMPLETION, tmp_path / "comp.png", dpi=50)
    assert Image.open(p).size == (3 * 4.5 * 50, 3.4 * 50)  # one panel per metric
    with pytest.raises(FinetecError, match="lacks key"):
        viz.plot_accuracy_vs_level([{"dataset": "x", "level": "clean"}], tmp_path / "bad.png")
    with pytest.raises(FinetecError, match="unknown corruption level"):
        viz.plot_accuracy_vs_level([{**CELLS[0], "level": "extreme"}], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_log_scale_only_for_wide_ranges():
    assert viz.use_log_scale([1.0, 0.04])          # zero filling 25x the best filler
    assert not viz.use_log_scale([0.4, 0.05])
    assert not viz.use_log_scale([0.0, 1.0])        # a zero cannot go on a log axis
    assert not viz.use_log_scale([])


def test_confusion_normalised_rows_and_plot(tmp_path):
    cm = [[8, 2, 0], [0, 0, 0], [1, 1, 2]]
    n = viz.normalize_confusion(cm)
    np.testing.assert_allclose(n, [[0.8, 0.2, 0], [0, 0, 0], [0.25, 0.25, 0.5]])
    p = viz.plot_confusion(cm, ["a", "b", "c"], tmp_path / "cm.png", dpi=50)
    img = np.asarray(Image.open(p).convert("RGB")).astype(int)
    assert img.shape[2] == 3 and (img.min(axis=(0, 1)) < 100).all()  # a dark (full) cell is drawn
    with pytest.raises(FinetecError, match="square"):
        viz.normalize_confusion([[1, 2, 3]])
    with pytest.raises(FinetecError, match="class names"):
        viz.plot_confusion(cm, ["a"], tmp_path / "cm2.png")


def test_plot_result_file_kinds(tmp_path):
    ev = {"checkpoint": "runs/x/best", "data": "nw-ucla", "split": "test", "class_names": ["a", "b"],
          "results": [{"level": lv, "pattern": "random", "num_clips": 4, "top1": a, "top5": 1.0,
                       "mean_class": a, "confusion": [[2, 0], [1, 1]]} for lv, a in (("clean", 0.75), ("severe", 0.5))]}
    src = tmp_path / "eval.json"
    src.write_text(json.dumps(ev))
    assert viz.plot_result_file(src, tmp_path / "a.png")[0] == "levels"
    assert viz.plot_result_file(src, tmp_path / "b.png", kind="confusion", level="severe")[0] == "confusion"
    with pytest.raises(FinetecError, match="no result for level"):
        viz.plot_result_file(src, tmp_path / "c.png", kind="confusion", level="minor")
    ev["results"] = ev["results"][:1]
    src.write_text(json.dumps(ev))
    assert viz.plot_result_file(src, tmp_path / "d.png")[0] == "confusion"
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"completion": COMPLETION}))
    assert viz.plot_result_file(bench, tmp_path / "e.png")[0] == "completion"
    with pytest.raises(FinetecError, match="no \"cells\""):
        viz.plot_result_file(bench, tmp_path / "f.png", kind="levels")
    (tmp_path / "x.json").write_text('{"foo": 1}')
    with pytest.raises(FinetecError, match="unknown JSON schema"):
        viz.plot_result_file(tmp_path / "x.json", tmp_path / "g.png")
    assert not any((tmp_path / n).exists() for n in ("c.png", "f.png", "g.png"))


def test_a_method_keeps_its_colour_in_every_panel():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from finetec.viz.plots import _colour_map, _plot_series

    colours = _colour_map(["zero", "linear", "finetec"])
    fig, (a, b) = plt.subplots(1, 2)
    _plot_series(a, {("finetec", ""): {0: 1.0}, ("linear", ""): {0: 0.5}}, colours)
    _plot_series(b, {("linear", ""): {0: 0.4}, ("finetec", ""): {0: 0.9}, ("finetec", "mixed"): {0: 0.8}}, colours)
    by_label = lambda ax: {ln.get_label(): (ln.get_color(), ln.get_linestyle()) for ln in ax.get_lines()}
    la, lb = by_label(a), by_label(b)
    assert la["finetec"][0] == lb["finetec"][0] == lb["finetec (mixed)"][0]
    assert la["linear"][0] == lb["linear"][0] != la["finetec"][0]
    assert lb["finetec (mixed)"][1] != lb["finetec"][1]
    plt.close(fig)


def test_accuracy_plot_averages_seeds_with_error_bars(tmp_path, monkeypatch):
    import matplotlib.axes

    lines, bars = [], []
    real_plot, real_errorbar = matplotlib.axes.Axes.plot, matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "plot",
                        lambda self, *a, **k: lines.append((list(a[1]), k.get("label"))) or real_plot(self, *a, **k))
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, *a, **k: bars.append((list(a[1]), list(k["yerr"]))) or real_errorbar(self, *a, **k))
    cells = [{"dataset": "d", "method": "finetec", "level": lv, "seed": s, "top1": acc}
             for s, shift in ((0, 0.0), (1, 0.1)) for lv, acc in (("clean", 0.8 + shift), ("severe", 0.6 + shift))]
    cells.append({"dataset": "d", "method": "stgcnpp", "level": "severe", "seed": 0, "top1": 0.5})
    viz.plot_accuracy_vs_level(cells, tmp_path / "acc.png", dpi=30)
    by_label = dict((label, ys) for ys, label in lines)
    assert by_label["finetec (mean ± sd of 2 seeds)"] == pytest.approx([0.85, 0.65])
    assert by_label["stgcnpp"] == pytest.approx([0.5])     # a single seed: no error bar
    assert len(bars) == 1 and bars[0][1] == pytest.approx([0.1 / 2 ** 0.5] * 2)
