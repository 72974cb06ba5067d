"""Hostile inputs for the fuzz tests and ``benchmarks/hostile_inputs.py``.

Seeds: one small valid input per reader (written from a synthetic dataset). Mutations: byte level
(flip, insert, delete, truncate, splice 4/8-byte extremes, duplicate a range) and structure level
(JSON values, .npz arrays and array headers, .mat fields, .skeleton numbers and pickles replaced by
hostile values: deep nesting, huge numbers and counts, NaN/Inf, wrong types, strings, complex
numbers, float labels). :func:`check_read` runs one input through :func:`open_dataset` / the
readers and returns what went wrong, if anything (an exception other than the promised one-line
FinetecError, a multi-line message, an allocation beyond the cap).
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import random
import shutil
import signal
import struct
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

# Memory allowed for reading an input: MEMORY_FACTOR times its size on disk plus MEMORY_SLACK
# (the fixed cost of building a small dataset). Documented in docs/formats.md.
MEMORY_FACTOR = 150
MEMORY_SLACK = 32 << 20

FORMATS = ("finetec", "pyskl", "npz", "ctrgcn", "pose_json", "ntu", "nw_ucla", "penn_action", "utd_mhad")


def _synthetic(layout: str = "coco17", clips: int = 3, dim: int | None = None):
    from finetec.data import open_dataset

    ds = open_dataset(f"synthetic:{layout}?clips={clips}&seed=1")
    return ds


def write_seed(fmt: str, folder: Path) -> Path:
    """A small valid input of format ``fmt`` inside ``folder``; returns the path to read."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    if fmt == "finetec":
        p = folder / "x.finetec.npz"
        _synthetic().save(p)
        return p
    if fmt == "pyskl":
        from finetec.data.readers.pyskl import write_pyskl

        p = folder / "x.pkl"
        write_pyskl(_synthetic(), p)
        return p
    if fmt == "npz":
        p = folder / "x.npz"
        kp = rng.random((2, 1, 6, 17, 2)).astype(np.float32)
        np.savez(p, keypoint=kp, mask=np.ones(kp.shape[:-1], bool), label=np.array([0, 1]),
                 id=np.array(["a", "b"]), class_names=np.array(["c0", "c1"]), layout=np.array("coco17"))
        return p
    if fmt == "ctrgcn":
        p = folder / "x.npz"
        x = rng.random((2, 6, 150)).astype(np.float32)
        np.savez(p, x_train=x, y_train=np.eye(3)[[0, 1]], x_test=x, y_test=np.eye(3)[[2, 0]])
        return p
    if fmt == "pose_json":
        p = folder / "x.json"
        frames = [{"people": [{"pose_keypoints_2d": [float(v) for v in rng.random(17 * 3) + 0.1]}]}
                  for _ in range(5)]
        p.write_text(json.dumps({"frames": frames, "layout": "coco17"}))
        return p
    if fmt == "ntu":
        d = folder / "ntu"
        d.mkdir()
        lines = ["3"]
        for _ in range(3):
            lines += ["1", "72057594037931101 0 1 1 1 1 0 0.1 0.2 2", "25"]
            lines += [" ".join(f"{v:.4f}" for v in rng.random(11)) + " 2" for _ in range(25)]
        (d / "S001C001P001R001A001.skeleton").write_text("\n".join(lines) + "\n")
        return d
    if fmt == "nw_ucla":
        d = folder / "ucla" / "all_sqe"
        d.mkdir(parents=True)
        (d / "a01_s01_e01_v01.json").write_text(json.dumps(
            {"file_name": "a01_s01_e01_v01", "skeletons": (rng.random((4, 20, 3)) + 0.1).tolist(), "label": 1}))
        return d.parent
    if fmt == "penn_action":
        import scipy.io

        d = folder / "penn" / "labels"
        d.mkdir(parents=True)
        T = 4
        scipy.io.savemat(d / "0001.mat", {"x": rng.random((T, 13)) * 100, "y": rng.random((T, 13)) * 100,
                                          "visibility": np.ones((T, 13)), "action": "baseball_pitch",
                                          "pose": "front", "train": 1, "dimensions": [480, 640, T]})
        return d.parent
    if fmt == "utd_mhad":
        import scipy.io

        d = folder / "utd" / "Skeleton"
        d.mkdir(parents=True)
        scipy.io.savemat(d / "a1_s1_t1_skeleton.mat", {"d_skel": rng.random((20, 3, 5)) + 0.1})
        return d.parent
    raise ValueError(fmt)


def files_of(path: Path) -> list[Path]:
    """The data files of an input (the file itself, or the files inside a folder)."""
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


# -- hostile values --------------------------------------------------------------------------
def hostile_json_values(r: random.Random) -> Any:
    deep = r.choice([50, 1000, 100000])
    return r.choice([
        None, True, -1, 0, 10 ** 30, -(10 ** 30), 1e308, 1.5, "x", "", [], {}, [[]], {"a": {}},
        json.loads("[" * min(deep, 900) + "]" * min(deep, 900)), float("nan"), float("inf"),
        [0] * r.choice([1, 3, 1000]), [None] * 17, ["1"] * 51, {"keypoints": "x"}, {"people": 5},
        [[1, 2]] * r.choice([1, 17, 10000]), [1e308] * 51, [-1e308] * 51, 2 ** 63, 1 + 0j if False else [1, 0],
    ])


def _json_paths(obj: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(obj, dict):
        for k, v in list(obj.items())[:30]:
            out += _json_paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in list(enumerate(obj))[:8]:
            out += _json_paths(v, path + (i,))
    return out


def mutate_json(text: str, r: random.Random) -> str:
    """Replace one value somewhere in the document by a hostile one (or deep-nest it raw)."""
    if r.random() < 0.1:
        n = r.choice([2000, 100000])
        return "[" * n + "]" * n
    obj = json.loads(text)
    paths = _json_paths(obj)
    where = r.choice(paths)
    value = hostile_json_values(r)
    if not where:
        obj = value
    else:
        parent = obj
        for k in where[:-1]:
            parent = parent[k]
        parent[where[-1]] = value
    return json.dumps(obj, allow_nan=True)


def mutate_bytes(data: bytes, r: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(r.choice([1, 1, 2, 5])):
        op = r.choice(["flip", "insert", "delete", "truncate", "big", "dup", "zero"])
        n = len(b)
        if n == 0:
            b += bytes([r.randrange(256)])
            continue
        i = r.randrange(n)
        if op == "flip":
            b[i] ^= 1 << r.randrange(8)
        elif op == "insert":
            b[i:i] = bytes(r.randrange(256) for _ in range(r.choice([1, 4, 16])))
        elif op == "delete":
            del b[i:i + r.choice([1, 4, 64])]
        elif op == "truncate":
            del b[i:]
        elif op == "big":
            b[i:i + 8] = r.choice([struct.pack("<Q", 2 ** 63 - 1), struct.pack("<I", 0xFFFFFFFF) * 2,
                                   struct.pack("<q", -1), struct.pack("<d", float("nan")), b"\x7f" * 8])
        elif op == "dup":
            j = min(n, i + r.choice([8, 64, 512]))
            b[j:j] = b[i:j]
        elif op == "zero":
            b[i:i + 16] = bytes(16)
    return bytes(b)


def _npz_members(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def hostile_arrays(a: np.ndarray, r: random.Random) -> np.ndarray:
    return r.choice([
        a.astype(np.float64) + 0.5, a.astype(np.complex64) + 1j, a.astype(str), np.array("text"),
        np.full(a.shape, np.nan, np.float32), np.full(a.shape, np.inf), np.zeros((0,) + a.shape[1:], a.dtype),
        a.reshape(-1), a[..., None], np.array(-5), np.array([10 ** 9]), np.array([-1, 2 ** 40]),
        a.astype(np.float16), np.ones(a.shape, bool), a.astype(np.uint8), np.zeros((1,) * 7),
    ])


def write_npz_with_header(path: Path, members: dict[str, np.ndarray], lie: str | None, shape: tuple) -> None:
    """Write an uncompressed .npz whose member ``lie`` has a header claiming ``shape``."""
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, v, allow_pickle=False)
            data = buf.getvalue()
            if k == lie:
                hdr = {"descr": np.lib.format.dtype_to_descr(v.dtype), "fortran_order": False, "shape": shape}
                out = io.BytesIO()
                np.lib.format.write_array_header_1_0(out, hdr) if False else \
                    np.lib.format._write_array_header(out, hdr, (1, 0))
                off = len(data) - v.nbytes
                data = out.getvalue() + data[off:]
            z.writestr(k + ".npy", data)


def mutate_npz(path: Path, r: random.Random) -> None:
    m = _npz_members(path)
    k = r.choice(sorted(m))
    if r.random() < 0.35:
        shape = r.choice([(10 ** 12,), (2 ** 31, 2 ** 31), (1, 10 ** 9, 17, 2), tuple([2] * 40)[:32]])
        write_npz_with_header(path, m, k, shape)
        return
    if r.random() < 0.2:
        del m[k]
    else:
        m[k] = hostile_arrays(m[k], r)
    np.savez(path, **m)


def mutate_mat(path: Path, r: random.Random) -> None:
    import scipy.io

    d = {k: v for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}
    k = r.choice(sorted(d))
    v = np.asarray(d[k])
    d[k] = r.choice([np.array("text"), v.astype(complex) + 1j, np.zeros((0, 0)), v.T, v.reshape(-1)[:1],
                     np.full(v.shape, np.nan), np.array([[1e308]]), v[..., :0] if v.ndim else v,
                     np.ones((20, 3, 2, 2)), np.array([10 ** 9]), np.array([[-1]])])
    if r.random() < 0.2:
        del d[k]
    scipy.io.savemat(path, d)


def mutate_skeleton(text: str, r: random.Random) -> str:
    lines = text.split("\n")
    i = r.randrange(len(lines))
    toks = lines[i].split()
    choice = r.choice(["1000000000000", "-3", "nan", "inf", "x", "", "1e400", "25 25", "3.5", "9" * 5000])
    if toks:
        toks[r.randrange(len(toks))] = choice
        lines[i] = " ".join(toks)
    else:
        lines[i] = choice
    return "\n".join(lines)


def mutate_pickle(path: Path, r: random.Random) -> None:
    from finetec.data import safe_pickle

    obj = safe_pickle.load(path)
    anns = obj["annotations"]
    a = r.choice(anns)
    key = r.choice(sorted(a) + ["split", "class_names", "finetec_layout"])
    value = r.choice([None, "x", -1, 10 ** 12, 1.5, 2 + 1j, [], {}, np.zeros((0,)), np.full((1, 3, 17, 2), np.nan),
                      np.zeros((1, 2, 17, 2), np.complex64), np.array(["a"]), [[[[]]]], {"a": 1},
                      np.zeros((2, 5, 17, 2, 1), np.float32), np.ones((1, 5, 3, 2), np.float32), True])
    if key in ("split", "class_names", "finetec_layout"):
        obj[key] = value
    else:
        a[key] = value
    path.write_bytes(pickle.dumps(obj, protocol=r.choice([2, 4, 5])))


def mutate(fmt: str, path: Path, r: random.Random) -> None:
    """Mutate the input at ``path`` (of format ``fmt``) in place."""
    files = files_of(path)
    f = r.choice(files)
    structural = r.random() < 0.6
    try:
        if structural and f.suffix == ".json":
            f.write_text(mutate_json(f.read_text(), r))
            return
        if structural and f.suffix == ".npz":
            mutate_npz(f, r)
            return
        if structural and f.suffix == ".mat":
            mutate_mat(f, r)
            return
        if structural and f.suffix == ".skeleton":
            f.write_text(mutate_skeleton(f.read_text(), r))
            return
        if structural and f.suffix == ".pkl":
            mutate_pickle(f, r)
            return
    except Exception:  # noqa: BLE001 - a structural mutation that does not apply: mutate bytes instead
        pass
    f.write_bytes(mutate_bytes(f.read_bytes(), r))


# -- checking --------------------------------------------------------------------------------
def input_size(path: Path) -> int:
    return sum(p.stat().st_size for p in files_of(path))


class Hang(BaseException):
    """Raised by the alarm when one input takes longer than its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise :class:`Hang` in the main thread after ``seconds`` (SIGALRM)."""
    def on_alarm(signum, frame):
        raise Hang(f"took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_read(path: Path, fmt: str | None = None, seconds: float = 20.0) -> str | None:
    """Read ``path``; None when it was read or refused as promised, else what went wrong."""
    from finetec.data import open_dataset
    from finetec.errors import FinetecError

    size = input_size(path)
    tracemalloc.start()
    try:
        with time_limit(seconds):
            open_dataset(path, fmt=fmt)
        problem = None
    except FinetecError as e:
        msg = str(e)
        problem = f"multi-line error: {msg!r}" if "\n" in msg else None
    except BaseException as e:  # noqa: BLE001 - exactly what the fuzzing looks for
        problem = f"{type(e).__name__}: {str(e)[:200]}"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    if problem is None and peak > MEMORY_FACTOR * size + MEMORY_SLACK:
        problem = f"allocated {peak} bytes for a {size}-byte input"
    return problem


def hostile_pickles(r: random.Random) -> list[tuple[str, bytes]]:
    """Hand-made hostile pickles: code execution attempts, allocation bombs, deep nesting."""
    def g(mod: str, name: str) -> bytes:
        return b"c" + mod.encode() + b"\n" + name.encode() + b"\n"

    code = [(m, n) for m, n in [("os", "system"), ("builtins", "eval"), ("builtins", "exec"),
                                ("subprocess", "Popen"), ("builtins", "__import__"), ("posix", "system"),
                                ("builtins", "getattr"), ("numpy", "load"), ("numpy.lib.npyio", "load"),
                                ("copyreg", "_reconstructor"), ("builtins", "open"), ("shutil", "rmtree")]]
    out = []
    for m, n in code:
        out.append((f"global {m}.{n}", b"\x80\x02" + g(m, n) + b"X\x05\x00\x00\x00touch\x85R."))
    big = r.choice([10 ** 9, 2 ** 31, 10 ** 12])
    out += [
        ("reconstruct bomb", b"\x80\x02" + g("numpy.core.multiarray", "_reconstruct") + g("numpy", "ndarray")
         + b"\x8a\x05" + struct.pack("<q", big)[:5] + b"\x85C\x01b\x87R."),
        ("ndarray bomb", b"\x80\x02" + g("numpy", "ndarray") + b"\x8a\x05" + struct.pack("<q", big)[:5] + b"\x85\x85R."),
        ("bytes8 claim", b"\x80\x04\x8e" + struct.pack("<Q", big) + b"abc."),
        ("bytearray bomb", b"\x80\x02" + g("builtins", "bytearray") + b"\x8a\x05" + struct.pack("<q", big)[:5] + b"\x85R."),
        ("codec", b"\x80\x02" + g("_codecs", "encode") + b"X\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."),
        ("deep marks", b"\x80\x02" + b"(" * 50000 + b"."),
        ("deep lists", b"\x80\x02" + b"]" * 20000 + b"a" * 19999 + b"."),
        ("memo index bomb", b"\x80\x04r" + struct.pack("<I", 680825748) + b"N."),
        ("range", b"\x80\x02" + g("builtins", "list") + g("builtins", "range") + b"J\x00\xca\x9a;\x85R\x85R."),
    ]
    return out
