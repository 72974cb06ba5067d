"""Streaming recognition: the frame parser, the sliding window and its cadence, `finetec stream`."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

from finetec.cli import main
from finetec.errors import FinetecError
from finetec.layouts import get_layout
from finetec.streaming import FrameError, StreamRecognizer, parse_frame

from test_api import CLASSES, clip, make_checkpoint


# -- parse_frame -------------------------------------------------------------------------------
def test_parse_joint_list_with_missing_joint_and_scores():
    f = parse_frame([[1, 2], [3, 4, 0.9], None], num_joints=3, dim=2)
    assert f.shape == (1, 3, 2)
    np.testing.assert_array_equal(f[0, :2], [[1, 2], [3, 4]])
    assert np.isnan(f[0, 2]).all()
    low = parse_frame([[1, 2, 0.0], [3, 4, 0.5], [5, 6, 0.2]], 3, 2, min_score=0.3)
    assert np.isnan(low[0, 0]).all() and np.isnan(low[0, 2]).all() and (low[0, 1] == [3, 4]).all()


def test_parse_coco_flat_list_and_people():
    f = parse_frame({"keypoints": [1, 2, 1, 3, 4, 0, 5, 6, 1]}, 3, 2)
    np.testing.assert_array_equal(f[0, [0, 2]], [[1, 2], [5, 6]])
    assert np.isnan(f[0, 1]).all()  # score 0 -> missing
    g = parse_frame({"people": [{"pose_keypoints_2d": [1, 1, 1] * 3}, {"keypoints": [[2, 2], [3, 3], [4, 4]]}]},
                    3, 2, max_persons=2)
    assert g.shape == (2, 3, 2) and g[1, 2, 0] == 4
    assert parse_frame({"people": [{"keypoints": [1, 1, 1] * 3}] * 3}, 3, 2, max_persons=1).shape == (1, 3, 2)
    h = parse_frame([[1, 2, 3], [4, 5, 6], [7, 8, 9]], 3, 3)  # 3D without score
    assert h.shape == (1, 3, 3) and h[0, 2, 2] == 9


@pytest.mark.parametrize("obj", [None, {"people": []}, [], {"keypoints": None}, [None, None, None]])
def test_parse_lost_frames(obj):
    assert parse_frame(obj, 3, 2) is None


@pytest.mark.parametrize("obj, msg", [
    ([[1, 2], [3, 4]], "expected 3 joints"),
    ({"keypoints": [1, 2, 3, 4]}, "needs 6 or 9 numbers"),
    ([[1, 2], [3, "x"], [5, 6]], "not a number"),
    ([[1, 2, 3, 4, 5], [1, 2], [1, 2]], "expected 2 coordinates"),
    ("hello", "a frame must be"),
    ({"pose": []}, "needs 'keypoints' or 'people'"),
])
def test_parse_malformed_frames(obj, msg):
    with pytest.raises(FrameError, match=msg):
        parse_frame(obj, 3, 2)


# -- the recognizer --------------------------------------------------------------------------
class FakePredictor:
    """Records what the window hands to predict()."""

    def __init__(self, clip_len: int = 8) -> None:
        self.layout = get_layout("coco17")
        self.dim, self.clip_len, self.max_persons = 2, clip_len, 1
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def predict(self, kp, mask, top_k=5):
        self.calls.append((kp, mask))
        return [("clap", 0.75), ("wave", 0.25)][:top_k]


def _frame(t: int) -> np.ndarray:
    return np.full((17, 2), float(t + 1), np.float32)


@pytest.mark.parametrize("window, every, warmup, frames, expect", [
    (10, 10, None, 30, [10, 20, 30]),
    (8, 5, None, 30, [8, 13, 18, 23, 28]),
    (64, 10, 10, 30, [10, 20, 30]),
    (5, 1, None, 7, [5, 6, 7]),
    (10, 10, None, 9, []),
])
def test_cadence(window, every, warmup, frames, expect):
    rec = StreamRecognizer(FakePredictor(), window=window, every=every, warmup=warmup)
    got = [p.frame for t in range(frames) if (p := rec.push(_frame(t))) is not None]
    assert got == expect


def test_window_slides_and_masks_lost_frames():
    fake = FakePredictor()
    rec = StreamRecognizer(fake, window=6, every=3)
    out = []
    for t in range(12):
        f = None if t in (7, 8) else _frame(t)
        if t == 10:
            f = _frame(t)
            f[3] = np.nan  # one lost joint
        out.append(rec.push(f))
    preds = [p for p in out if p is not None]
    assert [p.frame for p in preds] == [6, 9, 12]
    kp, mask = fake.calls[-1]  # frames 7..12 (1-based), i.e. t = 6..11
    assert kp.shape == (1, 6, 17, 2)
    np.testing.assert_array_equal(mask[0].all(axis=1), [True, False, False, True, False, True])
    assert mask[0, 4].sum() == 16 and not mask[0, 4, 3]
    np.testing.assert_array_equal(kp[0, :, 0, 0], [7, 0, 0, 10, 11, 12])
    assert preds[-1].observed_frames == 4 and preds[-1].window == 6
    assert preds[-1].top_k[0] == ("clap", 0.75) and preds[-1].latency_ms >= 0


def test_warm_up_predicts_once_and_leaves_the_window_empty():
    fake = FakePredictor()
    rec = StreamRecognizer(fake, window=4, every=2)
    rec.warm_up()
    assert len(fake.calls) == 1 and fake.calls[0][1].all() and rec.count == 0
    assert [rec.push(_frame(t)) is not None for t in range(6)] == [False, False, False, True, False, True]


def test_window_with_nothing_observed_gives_an_empty_prediction():
    fake = FakePredictor()
    rec = StreamRecognizer(fake, window=3, every=1)
    preds = [rec.push(None) for _ in range(3)]
    assert preds[:2] == [None, None] and preds[2].top_k == [] and preds[2].observed_frames == 0
    assert fake.calls == []


def test_bad_settings_and_bad_frames():
    with pytest.raises(FinetecError, match="--every"):
        StreamRecognizer(FakePredictor(), window=4, every=0)
    rec = StreamRecognizer(FakePredictor(), window=4)
    with pytest.raises(FinetecError, match=r"\(17, 2\)"):
        rec.push(np.zeros((13, 2)))


# -- the command -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("stream") / "ck", clip_len=16)


def _lines(n: int, bad: dict[int, str] | None = None) -> str:
    kp = clip(np.random.default_rng(0), T=n)[0]
    out = []
    for t in range(n):
        if bad and t + 1 in bad:
            out.append(bad[t + 1])
        elif t % 7 == 3:
            out.append("null")
        elif t % 2:
            out.append(json.dumps({"keypoints": np.concatenate([kp[t], np.ones((17, 1))], 1).ravel().tolist()}))
        else:
            out.append(json.dumps(kp[t].tolist()))
    return "\n".join(out) + "\n"


def _run(monkeypatch, capsys, argv, stdin: str):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_stream_prints_predictions_at_the_promised_cadence(ckpt, monkeypatch, capsys):
    rc, out, err = _run(monkeypatch, capsys, ["stream", str(ckpt), "--every", "10", "--window", "10", "--json"],
                        _lines(30, bad={7: "{not json", 15: "[[1, 2]]"}))
    assert rc == 0
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in recs] == [10, 20, 30]
    for r in recs:
        probs = [c["prob"] for c in r["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert {c["class"] for c in r["top_k"]} <= set(CLASSES)
        assert r["latency_ms"] > 0 and r["window"] == 10
    assert "line 7: not JSON" in err and "line 15: expected 17 joints" in err
    assert recs[0]["observed_frames"] == 8  # of frames 1..10: frame 4 is null, line 7 is malformed


def test_stream_text_output(ckpt, monkeypatch, capsys):
    rc, out, _ = _run(monkeypatch, capsys, ["stream", str(ckpt), "--every", "4", "--window", "8", "--top-k", "2"],
                      _lines(16))
    assert rc == 0
    lines = out.splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["frame 8", "frame 12", "frame 16"]
    assert all(" ms" in ln and ln.count("0.") >= 2 for ln in lines)


def test_stream_empty_input_is_an_error(ckpt, monkeypatch, capsys):
    rc, out, err = _run(monkeypatch, capsys, ["stream", str(ckpt)], "\n\n")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and "no frames on standard input" in err


def test_stream_too_few_frames(ckpt, monkeypatch, capsys):
    rc, out, err = _run(monkeypatch, capsys, ["stream", str(ckpt), "--window", "10"], _lines(4))
    assert rc == 1 and out == "" and "fewer than the 10" in err


def test_stream_unknown_checkpoint(tmp_path, monkeypatch, capsys):
    rc, _, err = _run(monkeypatch, capsys, ["stream", str(tmp_path / "missing")], _lines(3))
    assert rc == 2 and "no such checkpoint" in err and err.count("\n") == 1
