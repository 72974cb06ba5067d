"""Kills, fall-backs and locks: a run killed anywhere (between the files of one checkpoint
included) and resumed reaches the uninterrupted run's weights exactly; a checkpoint whose files
disagree is never resumed from; one training per folder; no temporary file survives."""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_dataset_file
from finetec.engine import checkpoint as ck
from finetec.engine.config import Config, apply_overrides
from finetec.engine.train import train
from finetec.errors import FinetecError
from finetec.fileio import FolderLock

TINY = ["model.name=stgcn", "model.base_channels=4", "model.num_stages=1", "model.inflate_stages=[]",
        "model.down_stages=[]", "runtime.threads=1", "runtime.log_every=1000", "runtime.tensorboard=off",
        "pipeline.clip_len=8", "optim.epochs=3", "optim.batch_size=4", "data.val_fraction=0.25",
        "pipeline.level=moderate", "pipeline.augment=true", "model.dropout=0.3", "optim.warmup_epochs=1"]
TEMP = re.compile(r"\.tmp\d+-")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_dataset_file(tmp_path_factory.mktemp("data"), clips=40, seed=3, per_class=4)


def cfg(path) -> Config:
    return apply_overrides(Config(), [f"data.path={path}", *TINY])


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return ck.load_model(folder)[0].state_dict()


def assert_same(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if TEMP.search(p.name) or p.name == FolderLock.NAME]


@pytest.fixture(scope="module")
def straight(data, tmp_path_factory):
    """The uninterrupted run, and the destination of every file rename it made, in order."""
    out = tmp_path_factory.mktemp("straight") / "run"
    calls: list[str] = []
    real = os.replace

    def counting(src, dst, *a, **kw):
        calls.append(str(dst))
        return real(src, dst, *a, **kw)

    os.replace = counting
    try:
        train(cfg(data), out)
    finally:
        os.replace = real
    return out, calls


def _killed_run(data, out: Path, k: int) -> int:
    """Train in a forked child that dies (os._exit, no clean-up, like SIGKILL) just before its
    k-th file rename; the child's exit status."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            real, n = os.replace, [0]

            def dying(src, dst, *a, **kw):
                n[0] += 1
                if n[0] == k:
                    os._exit(9)
                return real(src, dst, *a, **kw)

            os.replace = dying
            sys.stderr = open(os.devnull, "w")
            train(cfg(data), out)
            os._exit(0)
        except BaseException:  # noqa: BLE001
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_killed_anywhere_then_resumed_reaches_the_same_weights(data, straight, tmp_path, capfd):
    out_a, calls = straight
    n = len(calls)
    # Between the files of one checkpoint: the weights and the state of last/ written, its record not.
    between = next(i + 1 for i, c in enumerate(calls) if c.endswith(ck.RECORD) and "last" in c and ".tmp" in c)
    rng = np.random.default_rng(int(os.environ.get("FINETEC_FUZZ_SEED", "13")))
    points = sorted({between, *rng.choice(np.arange(1, n + 1), size=3, replace=False).tolist()})
    for k in points:
        out = tmp_path / f"k{k}"
        assert _killed_run(data, out, k) == 9
        try:
            train(cfg(data), out, resume=True)
        except FinetecError as e:  # killed before the first checkpoint was complete
            assert "nothing to resume" in str(e), e
            train(cfg(data), out)
        assert_same(out_a / "last", out / "last")
        assert_same(out_a / "best", out / "best")
        assert leftovers(out) == [], k
        assert ck.verify(out / "last") is None and ck.verify(out / "previous") is None
    assert "Traceback" not in capfd.readouterr().err


def test_mixed_last_falls_back_to_previous(data, straight, tmp_path, capfd):
    out_a, _ = straight
    out = tmp_path / "run"
    train(cfg(data), out, stop_after=2)
    # The finding: epoch-2 weights beside the epoch-1 state. Simulate the opposite mix too.
    shutil.copy(out / "previous" / ck.TRAIN_STATE, out / "last" / ck.TRAIN_STATE)
    capfd.readouterr()
    train(cfg(data), out, resume=True)
    err = capfd.readouterr().err
    assert "train_state.pt does not match its checksum" in err
    assert "resuming from the previous complete checkpoint" in err and "previous" in err
    assert_same(out_a / "last", out / "last")
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["epoch"] for l in lines] == [1, 2, 3]


def test_resume_without_a_complete_checkpoint_is_refused(data, tmp_path):
    out = tmp_path / "run"
    train(cfg(data), out, stop_after=1)
    (out / "last" / ck.RECORD).unlink()
    with pytest.raises(FinetecError, match="nothing to resume: no complete checkpoint.*complete.json is missing"):
        train(cfg(data), out, resume=True)
    with pytest.raises(FinetecError, match="already holds a training run"):
        train(cfg(data), out)


def test_a_second_training_into_one_folder_fails_at_once(data, tmp_path):
    out = tmp_path / "run"
    with FolderLock(out, "a training run"):
        with pytest.raises(FinetecError, match=rf"in use: process {os.getpid()} on {re.escape(socket.gethostname())}"):
            train(cfg(data), out)
        assert (out / FolderLock.NAME).exists()
    assert list(out.iterdir()) == []  # the refused run wrote nothing; the release removed the lock file


def test_a_killed_holder_releases_the_lock(tmp_path):
    out = tmp_path / "run"
    code = ("import sys; from finetec.fileio import FolderLock; FolderLock(sys.argv[1]).acquire(); "
            "print('held', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(FinetecError, match=f"in use: process {p.pid} on"):
            FolderLock(out).acquire()
    finally:
        p.kill()
        p.wait()
    lock = FolderLock(out).acquire()  # the kernel released the dead holder's lock
    lock.release()


def test_cli_second_run_is_one_line(data, tmp_path):
    out = tmp_path / "run"
    (tmp_path / "c.yaml").write_text("seed: 0\n")
    with FolderLock(out, "a training run"):
        r = subprocess.run([sys.executable, "-m", "finetec", "train", str(tmp_path / "c.yaml"), "--out", str(out), "--set",
                            f"data.path={data}", *sum((["--set", o] for o in TINY), [])],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "in use: process" in r.stderr
