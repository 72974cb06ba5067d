"""Temporal corruption protocol: counts, patterns, purity, dataset corruption."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data.corruption import (
    LEVELS, PATTERNS, corrupt, corrupt_dataset, draw_level, keep_frames, num_dropped, test_rng,
)
from finetec.data.dataset import SkeletonDataset
from finetec.data.sample import Sample
from finetec.errors import FinetecError


@pytest.mark.parametrize("T, level, dropped", [
    (64, "clean", 0), (64, "minor", 16), (64, "moderate", 32), (64, "severe", 48),
    (10, "minor", 3),      # 2.5 rounds half up
    (10, "severe", 8),     # 7.5 -> 8, still 2 kept
    (6, "severe", 4),      # 4.5 -> 5 would keep 1: capped at 4 (2 kept)
    (3, "severe", 1),      # 2.25 -> 2 would keep 1: capped at 1
    (2, "severe", 0), (1, "severe", 0), (0, "minor", 0),
    (100, 0.85, 85),
])
def test_num_dropped(T, level, dropped):
    assert num_dropped(T, level) == dropped


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("level", list(LEVELS))
@pytest.mark.parametrize("T", [1, 2, 3, 7, 64, 81])
def test_keep_frames_counts(pattern, level, T):
    keep = keep_frames(T, level, pattern, np.random.default_rng(0))
    assert keep.shape == (T,) and keep.dtype == bool
    assert int((~keep).sum()) == num_dropped(T, level)
    assert keep.sum() >= min(2, T)


def test_pattern_shapes():
    rng = np.random.default_rng(1)
    T = 12
    n = num_dropped(T, "moderate")  # 6
    pre = keep_frames(T, "moderate", "prefix", rng)
    assert not pre[:n].any() and pre[n:].all()
    suf = keep_frames(T, "moderate", "suffix", rng)
    assert suf[: T - n].all() and not suf[T - n:].any()
    mid = keep_frames(T, "moderate", "middle", rng)
    np.testing.assert_array_equal(mid, [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1])
    per = keep_frames(T, "moderate", "periodic", rng)
    kept = np.flatnonzero(per)
    assert np.all(np.diff(kept) == 2)
    sev = np.flatnonzero(keep_frames(16, "severe", "periodic", rng))
    assert len(sev) == 4 and np.all(np.diff(sev) == 4)
    minor = keep_frames(16, "minor", "periodic", rng)
    # every 4th frame dropped
    assert np.all(np.diff(np.flatnonzero(~minor)) == 4)


def test_random_pattern_is_uniform_over_frames():
    rng = np.random.default_rng(2)
    counts = sum(keep_frames(20, "severe", "random", rng).astype(int) for _ in range(4000))
    # each frame kept with probability 5/20
    assert np.allclose(counts / 4000, 0.25, atol=0.04)


def test_test_rng_is_pure():
    a = test_rng(0, "clip7", "severe", "random").integers(0, 1 << 30, 5)
    b = test_rng(0, "clip7", "severe", "random").integers(0, 1 << 30, 5)
    np.testing.assert_array_equal(a, b)
    for other in [(1, "clip7", "severe", "random"), (0, "clip8", "severe", "random"),
                  (0, "clip7", "moderate", "random"), (0, "clip7", "severe", "periodic")]:
        assert not np.array_equal(a, test_rng(*other).integers(0, 1 << 30, 5))


def test_test_rng_known_value():
    # stable across processes, platforms and releases (SHA-256 + PCG64, not hash()): pinned values
    k = keep_frames(8, "moderate", "random", test_rng(0, "x", "moderate", "random"))
    assert k.astype(int).tolist() == [1, 1, 0, 1, 1, 0, 0, 0]
    assert test_rng(0, "x", "moderate", "random").integers(0, 1000, 3).tolist() == [179, 614, 247]
    import subprocess, sys
    code = ("import numpy as np;from finetec.data.corruption import keep_frames,test_rng;"
            "print(keep_frames(8,'moderate','random',test_rng(0,'x','moderate','random')).astype(int).tolist())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123", **__import__("os").environ}).stdout
    assert out.strip() == str(k.astype(int).tolist())


def test_corrupt_zeroes_dropped_frames_for_all_persons():
    rng = np.random.default_rng(3)
    kp = rng.normal(size=(2, 8, 4, 3)).astype(np.float32) + 5
    mask = np.ones((2, 8, 4), bool)
    mask[0, 1, 2] = False
    kp[0, 1, 2] = 0
    x, m = corrupt(kp, mask, "moderate", "prefix", rng)
    assert not m[:, :4].any() and (x[:, :4] == 0).all()
    np.testing.assert_array_equal(x[:, 4:], kp[:, 4:])
    np.testing.assert_array_equal(m[:, 4:], mask[:, 4:])
    assert kp[0, 0, 0, 0] != 0  # input untouched


def test_draw_level():
    rng = np.random.default_rng(0)
    drawn = [draw_level(rng) for _ in range(400)]
    assert set(drawn) == set(LEVELS)
    assert draw_level(rng, ["severe"]) == "severe"


def test_unknown_names_raise():
    with pytest.raises(FinetecError, match="level"):
        keep_frames(10, "extreme", "random", np.random.default_rng())
    with pytest.raises(FinetecError, match="pattern"):
        keep_frames(10, "minor", "burst", np.random.default_rng())


def _tiny_dataset() -> SkeletonDataset:
    rng = np.random.default_rng(0)
    samples = []
    for i, T in enumerate([5, 9, 16, 1]):
        kp = rng.normal(size=(1, T, 17, 2)).astype(np.float32)
        samples.append(Sample(kp, np.ones((1, T, 17), bool), label=i % 2, id=f"c{i}"))
    return SkeletonDataset.from_samples(samples, "coco17", ["a", "b"], splits={"test": [0, 1, 2, 3]})


def test_corrupt_dataset_is_test_rng_per_clip():
    ds = _tiny_dataset()
    out = corrupt_dataset(ds, "severe", "random", seed=4)
    assert len(out) == len(ds)
    np.testing.assert_array_equal(out.offsets, ds.offsets)
    for i in range(len(ds)):
        s, c = ds[i], out[i]
        keep = keep_frames(s.num_frames, "severe", "random", test_rng(4, s.id, "severe", "random"))
        np.testing.assert_array_equal(c.mask[0].any(axis=-1), keep)
        np.testing.assert_array_equal(c.keypoint[:, keep], s.keypoint[:, keep])
        assert (c.keypoint[:, ~keep] == 0).all()
    assert out.meta["corruption"] == [{"level": "severe", "pattern": "random", "seed": 4}]
    np.testing.assert_array_equal(out.splits["test"], ds.splits["test"])
    assert ds.mask.all()  # the source is not modified


# -- the `finetec corrupt` command ------------------------------------------------------------------
def _run_cli(*argv: str) -> int:
    from finetec.cli import main

    return main(list(argv))


def test_corrupt_command_writes_reproducible_file(tmp_path, capsys):
    src = tmp_path / "src.finetec.npz"
    _tiny_dataset().save(src)
    a, b = tmp_path / "a.finetec.npz", tmp_path / "b.finetec.npz"
    assert _run_cli("corrupt", str(src), str(a), "--level", "moderate", "--seed", "3") == 0
    assert "frames dropped" in capsys.readouterr().out
    assert _run_cli("corrupt", str(src), str(b), "--level", "moderate", "--seed", "3") == 0
    assert a.read_bytes() == b.read_bytes()
    out = SkeletonDataset.load(a)
    ref = corrupt_dataset(SkeletonDataset.load(src), "moderate", "random", 3)
    np.testing.assert_array_equal(out.mask, ref.mask)
    np.testing.assert_array_equal(out.keypoint, ref.keypoint)
    # a different seed gives a different corruption
    c = tmp_path / "c.finetec.npz"
    assert _run_cli("corrupt", str(src), str(c), "--level", "moderate", "--seed", "4") == 0
    assert not np.array_equal(SkeletonDataset.load(c).mask, out.mask)


def test_corrupt_command_bytes_do_not_depend_on_the_clock(tmp_path, monkeypatch):
    import time

    src = tmp_path / "src.finetec.npz"
    _tiny_dataset().save(src)
    a, b = tmp_path / "a.finetec.npz", tmp_path / "b.finetec.npz"
    assert _run_cli("corrupt", str(src), str(a), "--level", "severe") == 0
    later = time.time() + 3 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert _run_cli("corrupt", str(src), str(b), "--level", "severe") == 0
    assert a.read_bytes() == b.read_bytes()


def test_corrupt_command_errors(tmp_path, capsys):
    src = tmp_path / "src.finetec.npz"
    _tiny_dataset().save(src)
    dst = tmp_path / "out.finetec.npz"
    assert _run_cli("corrupt", str(tmp_path / "nope.npz"), str(dst), "--level", "minor") == 2
    assert "error" in capsys.readouterr().err and not dst.exists()
    assert _run_cli("corrupt", str(src), str(tmp_path / "out.txt"), "--level", "minor") == 2
    assert _run_cli("corrupt", str(src), str(dst), "--level", "minor") == 0
    assert _run_cli("corrupt", str(src), str(dst), "--level", "minor") == 2   # exists
    assert "already exists" in capsys.readouterr().err
    assert _run_cli("corrupt", str(src), str(dst), "--level", "minor", "--overwrite") == 0
    with pytest.raises(SystemExit):
        _run_cli("corrupt", str(src), str(dst), "--level", "extreme")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
