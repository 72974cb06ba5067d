"""One writer per output: an existing output is replaced only with --overwrite, also when two
writers race; no temporary file survives a failure; a killed writer's temporary is removed."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from finetec.errors import FinetecError
from finetec.fileio import new_output, remove_stale_temps


def _race(path, overwrite: bool) -> list[object]:
    """Two writers that both passed the early check publish at the same moment."""
    barrier = threading.Barrier(2)
    results: list[object] = [None, None]

    def writer(i: int) -> None:
        try:
            with new_output(path, overwrite) as tmp:
                tmp.write_text(f"writer {i}\n")
                barrier.wait()
            results[i] = "ok"
        except FinetecError as e:
            results[i] = e

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_racing_writers_exactly_one_wins(tmp_path):
    out = tmp_path / "out.txt"
    results = _race(out, overwrite=False)
    assert sorted(r == "ok" for r in results) == [False, True]
    loser = next(r for r in results if r != "ok")
    assert "already exists" in str(loser)
    winner = results.index("ok")
    assert out.read_text() == f"writer {winner}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_overwrite_replaces_and_refusal_keeps(tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    with pytest.raises(FinetecError, match="already exists"):
        with new_output(out) as tmp:
            tmp.write_text("new\n")
    assert out.read_text() == "old\n"
    with new_output(out, overwrite=True) as tmp:
        tmp.write_text("new\n")
    assert out.read_text() == "new\n"
    with pytest.raises(RuntimeError):
        with new_output(tmp_path / "b.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_unwritable_output_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(FinetecError, match="cannot create the output file"):
        with new_output(tmp_path / "file" / "sub" / "out.txt") as tmp:
            tmp.write_text("x")


def test_stale_temporary_of_a_dead_writer_is_removed(tmp_path):
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(p.stdout)
    stale = tmp_path / f".out.txt.tmp{dead}-abc.txt"
    stale.write_text("partial")
    live = tmp_path / f".out.txt.tmp{os.getpid()}-abc.txt"  # a writer still running: kept
    live.write_text("partial")
    with new_output(tmp_path / "out.txt") as tmp:
        tmp.write_text("x")
    assert not stale.exists() and live.exists()
    assert remove_stale_temps(tmp_path, all_pids=True) == [live]


def test_two_concurrent_converts_one_succeeds(tmp_path):
    out = tmp_path / "x.finetec.npz"
    cmd = [sys.executable, "-m", "finetec", "convert", "synthetic:coco17?clips=6&seed=1", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    res = [(p.wait(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    codes = sorted(c for c, _ in res)
    assert codes == [0, 2], res
    err = next(e for c, e in res if c == 2)
    assert len(err.strip().splitlines()) == 1 and "already exists" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.finetec.npz"]
