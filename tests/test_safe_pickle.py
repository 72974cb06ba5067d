"""The restricted unpickler: plain data and NumPy arrays in, code execution refused."""
from __future__ import annotations

import collections
import os
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest

from finetec.data import safe_pickle
from finetec.errors import FinetecError


class _CallsSystem:
    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


class _CallsEval:
    def __reduce__(self):
        return (eval, ("1 + 1",))


def _payload() -> dict:
    return {
        "f16": np.arange(12, dtype=np.float16).reshape(2, 3, 2),
        "f32_noncontig": np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2],
        "i64": np.arange(5),
        "strs": np.array(["a", "bcd"]),
        "record": np.zeros(2, dtype=[("x", "f4"), ("y", "i2")]),
        "scalar": np.float32(2.5),
        "objects": np.array([1, "two", None], dtype=object),
        "containers": ([1, 2.0, "x", b"raw", None, True], {"k": (1, 2)}, {3, 4}, frozenset({5}), 1 + 2j),
        "ordered": collections.OrderedDict(a=1),
    }


@pytest.mark.parametrize("protocol", range(0, pickle.HIGHEST_PROTOCOL + 1))
def test_plain_data_and_arrays_round_trip(protocol: int) -> None:
    obj = _payload()
    back = safe_pickle.loads(pickle.dumps(obj, protocol=protocol))
    for k in ("f16", "f32_noncontig", "i64", "strs", "record"):
        assert back[k].dtype == obj[k].dtype
        np.testing.assert_array_equal(back[k], obj[k])
    assert back["scalar"] == np.float32(2.5) and isinstance(back["scalar"], np.float32)
    assert back["objects"].tolist() == [1, "two", None]
    assert back["containers"] == obj["containers"] and back["ordered"] == {"a": 1}


def test_numpy1_module_paths_are_accepted() -> None:
    """Pickles written by NumPy 1.x name numpy.core.multiarray, NumPy 2.x numpy._core."""
    data = pickle.dumps(np.arange(3, dtype=np.int32), protocol=2)
    if b"numpy._core.multiarray" in data:
        legacy = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    else:
        legacy = data.replace(b"numpy.core.multiarray", b"numpy._core.multiarray")
    assert legacy != data
    np.testing.assert_array_equal(safe_pickle.loads(legacy), [0, 1, 2])


def test_os_system_is_refused_and_not_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"annotations": [_CallsSystem()]}))
    with pytest.raises(FinetecError) as e:
        safe_pickle.load(p)
    msg = str(e.value)
    assert str(p) in msg and "forbidden global" in msg and "system" in msg
    assert not (tmp_path / "owned.txt").exists()


def test_eval_and_subprocess_are_refused() -> None:
    with pytest.raises(FinetecError, match="builtins.eval"):
        safe_pickle.loads(pickle.dumps(_CallsEval()), "x.pkl")

    class _Popen:
        def __reduce__(self):
            return (subprocess.Popen, (["true"],))

    with pytest.raises(FinetecError, match="subprocess.Popen"):
        safe_pickle.loads(pickle.dumps(_Popen()), "x.pkl")


def test_damaged_truncated_and_empty(tmp_path: Path) -> None:
    data = pickle.dumps(_payload(), protocol=4)
    with pytest.raises(FinetecError, match="damaged or truncated"):
        safe_pickle.loads(data[: len(data) // 2], "half.pkl")
    with pytest.raises(FinetecError, match="damaged or truncated"):
        safe_pickle.loads(b"\x80\x04not a pickle at all", "junk.pkl")
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    with pytest.raises(FinetecError, match="empty"):
        safe_pickle.load(empty)
    with pytest.raises(FinetecError, match="file not found"):
        safe_pickle.load(tmp_path / "absent.pkl")
