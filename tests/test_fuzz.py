"""Fuzzing (hypothesis): every reader, the canonical file (through its public entry points), the
restricted unpickler, checkpoints, the stream parser and the command line get hostile inputs; the
promise is checked on each: the input is read, or refused with a one-line FinetecError (exit
code 2 on the command line); never another exception, a traceback, an ``internal error``, a hang,
a partial or leftover output file, an allocation beyond the documented cap, or code run from a
file.

Bounded to about a minute in CI (the ``finetec-ci`` profile: fixed examples, so CI is
deterministic). ``FINETEC_FUZZ=long`` runs the ``finetec-long`` profile: random examples, 40
times as many (``FINETEC_FUZZ_EXAMPLES=N`` sets the count per test).
"""
from __future__ import annotations

import io
import json
import os
import pickle
import random
import re
import shutil
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fuzzlib
from finetec.cli import main
from finetec.data import safe_pickle
from finetec.errors import FinetecError

_BASE = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck), print_blob=True)
settings.register_profile("finetec-ci", derandomize=True, **_BASE)
settings.register_profile("finetec-long", derandomize=False, **_BASE)
LONG = os.environ.get("FINETEC_FUZZ") == "long"
settings.load_profile("finetec-long" if LONG else "finetec-ci")


def examples(ci: int) -> int:
    """Examples per test: ``ci`` in CI, 40 times as many in the long mode (or FINETEC_FUZZ_EXAMPLES)."""
    if os.environ.get("FINETEC_FUZZ_EXAMPLES"):
        return int(os.environ["FINETEC_FUZZ_EXAMPLES"])
    return ci * 40 if LONG else ci


TEMP = re.compile(r"\.tmp\d+-")


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    return {f: fuzzlib.write_seed(f, root / f) for f in fuzzlib.FORMATS}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


def _copy(src: Path, folder: Path) -> Path:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    dst = folder / src.name
    (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    return dst


def test_every_seed_is_read(seeds):
    for fmt, path in seeds.items():
        assert fuzzlib.check_read(path) is None, fmt


@settings(max_examples=examples(140))
@given(fmt=st.sampled_from(fuzzlib.FORMATS), seed=st.integers(0, 2 ** 32 - 1))
def test_readers_refuse_hostile_files_with_one_line(seeds, work, fmt, seed):
    path = _copy(seeds[fmt], work / "r")
    fuzzlib.mutate(fmt, path, random.Random(seed))
    problem = fuzzlib.check_read(path)
    assert problem is None, (fmt, seed, problem)


# -- restricted unpickler ------------------------------------------------------------------
_VALID = [pickle.dumps(o, protocol=p) for p in (2, 4, 5) for o in (
    {"annotations": [{"keypoint": np.zeros((1, 3, 17, 2), np.float32), "label": 1, "frame_dir": "a"}]},
    [1, 2.5, "x", b"y", (None, True)], np.arange(6, dtype=np.int16).reshape(2, 3), {"s": {1, 2}})]


@settings(max_examples=examples(250))
@given(base=st.sampled_from(_VALID), seed=st.integers(0, 2 ** 32 - 1))
def test_unpickler_bounded_on_mutated_pickles(base, seed):
    data = fuzzlib.mutate_bytes(base, random.Random(seed))
    _check_unpickle(data)


def _check_unpickle(data: bytes) -> None:
    tracemalloc.start()
    try:
        with fuzzlib.time_limit(10):
            safe_pickle.loads(data, "x.pkl")
    except FinetecError as e:
        assert "\n" not in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak <= fuzzlib.MEMORY_FACTOR * len(data) + (1 << 20), (peak, len(data))


def test_hostile_pickles_run_no_code_and_allocate_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name, data in fuzzlib.hostile_pickles(random.Random(0)):
        data = data.replace(b"touch", b"touch owned") if b"touch" in data else data
        with pytest.raises(FinetecError):
            _check_unpickle(data)
            safe_pickle.loads(data, name)
        assert not (tmp_path / "owned").exists(), name


# -- checkpoints ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    from finetec.engine.checkpoint import save_checkpoint
    from finetec.layouts import get_layout
    from finetec.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("stgcn", num_classes=3, layout="coco17", in_channels=2, base_channels=4, num_stages=1,
                         inflate_stages=[], down_stages=[])
    folder = tmp_path_factory.mktemp("ck") / "ck"
    save_checkpoint(folder, model, {"class_names": ["a", "b", "c"], "layout": get_layout("coco17").to_dict(),
                                    "dims": {"num_persons": 2, "num_joints": 17, "coords": 2, "in_channels": 2},
                                    "clip_len": 16, "epoch": 1, "task": "classification"})
    return folder


@settings(max_examples=examples(60))
@given(seed=st.integers(0, 2 ** 32 - 1), keep_record=st.booleans())
def test_hostile_checkpoints_are_refused_before_anything_is_built(checkpoint, work, seed, keep_record):
    from finetec.engine.checkpoint import RECORD, load_model

    r = random.Random(seed)
    folder = _copy(checkpoint, work / "c")
    if not keep_record:
        (folder / RECORD).unlink()
    target = r.choice(["checkpoint.json", "checkpoint.json", "model.safetensors"])
    f = folder / target
    if target.endswith(".json") and r.random() < 0.8:
        f.write_text(fuzzlib.mutate_json(f.read_text(), r))
    else:
        f.write_bytes(fuzzlib.mutate_bytes(f.read_bytes(), r))
    tracemalloc.start()
    try:
        with fuzzlib.time_limit(20):
            load_model(folder)
    except FinetecError as e:
        assert "\n" not in str(e)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < 256 << 20, peak


# -- stream parser -------------------------------------------------------------------------
class _Recorder:
    """Stands in for StreamRecognizer: counts pushed frames, predicts nothing."""

    num_joints, dim = 17, 2

    def __init__(self):
        self.pushed = 0

    def push(self, frame):
        self.pushed += 1
        if frame is not None:
            assert frame.ndim == 3 and frame.shape[1:] == (17, 2) and frame.dtype == np.float32
        return None


_json = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=20) | st.dictionaries(
                         st.sampled_from(["keypoints", "people", "pose_keypoints_2d", "x"]), kids, max_size=3),
                     max_leaves=60)
_line = st.one_of(
    _json.map(lambda v: json.dumps(v, allow_nan=True)),
    st.text(max_size=80).map(lambda t: t.replace("\n", " ")),
    st.integers(1, 5000).map(lambda n: "[" * n + "]" * n),
    st.just(json.dumps([[0.5, 0.5, 1.0]] * 17)), st.just("[" + ",".join(["[NaN, Infinity]"] * 17) + "]"),
    st.integers(10, 300).map(lambda n: json.dumps([[1.0, 2.0]] * 17) + " " * n),
)


@settings(max_examples=examples(150))
@given(lines=st.lists(_line, min_size=1, max_size=12))
def test_stream_keeps_going_on_any_line(lines):
    from finetec.commands.stream import stream

    rec, out, err = _Recorder(), io.StringIO(), io.StringIO()
    text = "\n".join(lines) + "\n"
    with fuzzlib.time_limit(20):
        frames, preds, bad = stream(rec, io.StringIO(text), out, err, max_line_chars=200)
    expected = sum(1 for ln in text.split("\n")[:-1] if ln.strip())
    assert frames == rec.pushed == expected
    reports = err.getvalue().splitlines()
    assert len(reports) == bad and all(r.endswith("counted as a lost frame") for r in reports)


def test_stream_nan_is_missing_and_long_lines_are_skipped():
    from finetec.commands.stream import stream

    rec, err = _Recorder(), io.StringIO()
    got = []
    rec.push = lambda f: got.append(f)  # noqa: E731
    good = json.dumps([[0.5, 0.5]] * 17)
    nan = "[" + ",".join(["[NaN, 1.0]", "[Infinity, 2.0]"] + ["[0.5, 0.5]"] * 15) + "]"
    text = good + "\n" + "[" * 10000 + "\n" + "x" * 5000 + "\n" + nan + "\n"
    frames, _, bad = stream(rec, io.StringIO(text), io.StringIO(), err, max_line_chars=1000)
    assert frames == 4 and bad == 2
    assert "line 2: " in err.getvalue() and "line 3: longer than 1000 characters" in err.getvalue()
    assert got[1] is None and got[2] is None
    # A joint with a NaN or Inf coordinate is missing (the window's mask is "all coordinates finite").
    assert (~np.isfinite(got[3][0, :2])).any(-1).all() and np.isfinite(got[3][0, 2:]).all()


def test_stream_memory_stays_flat():
    """Peak memory of 800 and of 4800 frames (with long and bad lines) is the same."""
    from finetec.commands.stream import stream

    good = json.dumps([[0.5, 0.5]] * 17)

    class Lines(io.TextIOBase):
        def __init__(self, n):
            self.n, self.i = n, 0

        def readline(self, size=-1):
            if self.i >= self.n:
                return ""
            self.i += 1
            line = (good if self.i % 5 else "x" * 3000 if self.i % 2 else "{bad") + "\n"
            return line[:size] if size >= 0 else line

    class Sink(io.TextIOBase):
        def write(self, s):
            return len(s)

    def peak(n):
        tracemalloc.start()
        stream(_Recorder(), Lines(n), Sink(), Sink(), max_line_chars=1000)
        p = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return p

    small, big = peak(800), peak(4800)
    assert big < small * 1.5 + 200_000, (small, big)


# -- command line --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli_pool(seeds, checkpoint, tmp_path_factory):
    """Hostile paths and tokens for the command line."""
    root = tmp_path_factory.mktemp("cli")
    r = random.Random(1)
    files = []
    for i, (fmt, src) in enumerate(sorted(seeds.items())):
        for j in range(2):
            dst = _copy(src, root / f"in{i}_{j}")
            fuzzlib.mutate(fmt, dst, r)
            files.append(str(dst))
        files.append(str(src))
    bad_ck = _copy(checkpoint, root / "badck")
    (bad_ck / "checkpoint.json").write_text('{"model_config": {"name": "stgcn", "base_channels": 100000}}')
    (root / "empty.json").write_text("")
    (root / "deep.json").write_text("[" * 100000)
    (root / "cfg.yaml").write_text("model: [[[")
    return {"inputs": files + [str(root / "empty.json"), str(root / "deep.json"), str(root / "nothing"),
                               "synthetic:coco17?clips=abc", "synthetic:nolayout", "/dev/null", str(root)],
            "checkpoints": [str(checkpoint), str(bad_ck), str(root / "nothing"), files[0], str(root / "cfg.yaml")],
            "out": root / "out"}


_TOKENS = ["--split", "train", "--format", "npz", "-o", "layout=coco17", "-o", "x", "--level", "severe", "--seed",
           "-1", "99999999999999999999", "--top-k", "0", "--clips", "100000000", "--json", "--method", "linear",
           "--window", "-3", "--every", "0", "--opset", "9999", "--overwrite", "nan", "", "--device", "cuda:99", "--device", "train"]
_COMMANDS = {
    "inspect": ["I"], "convert": ["I", "O*"], "corrupt": ["I", "O.finetec.npz", "--level", "minor"],
    "predict": ["C", "I"], "complete": ["C", "I", "O.npz"], "eval": ["C", "I"], "export": ["C", "O.onnx"],
    "info": [], "render": ["I", "O.png"], "stream": ["C"],
}


@settings(max_examples=examples(60))
@given(cmd=st.sampled_from(sorted(_COMMANDS)), seed=st.integers(0, 2 ** 32 - 1),
       extra=st.lists(st.sampled_from(_TOKENS), max_size=4))
def test_command_line_never_fails_internally(cli_pool, cmd, seed, extra, capsys, monkeypatch):
    r = random.Random(seed)
    out = cli_pool["out"]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    argv = [cmd]
    for a in _COMMANDS[cmd]:
        if a == "I":
            argv.append(r.choice(cli_pool["inputs"]))
        elif a == "C":
            argv.append(r.choice(cli_pool["checkpoints"]))
        elif a == "O*":
            argv.append(str(out / r.choice(["x.finetec.npz", "x.finetec", "x.pkl", "x.json"])))
        elif a.startswith("O"):
            argv.append(str(out / ("x" + a[1:])))
        else:
            argv.append(a)
    argv += extra
    monkeypatch.setattr(sys, "stdin", io.StringIO("[[1, 2]]\n{bad\n" + "[" * 3000 + "\n"))
    monkeypatch.delenv("FINETEC_DEBUG", raising=False)
    try:
        with fuzzlib.time_limit(60):
            rc = main(argv)
    except SystemExit as e:  # argparse: usage error
        rc = e.code
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err, (argv, err)
    assert rc in (0, 1, 2), (argv, rc, err)
    if rc == 2 and "usage:" not in err:  # notes and warnings aside, the error is one line
        problems = [ln for ln in err.strip().splitlines() if ": note: " not in ln and ": warning: " not in ln]
        assert len(problems) == 1 and ": error: " in problems[0], (argv, err)
    left = [p.name for p in out.rglob("*") if TEMP.search(p.name)]
    assert not left, (argv, left)
    if rc != 0:
        assert not any(out.iterdir()), (argv, list(out.iterdir()))
