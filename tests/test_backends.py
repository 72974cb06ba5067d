"""Inference backends: PyTorch (with folded BatchNorms) and onnxruntime agree within 1e-4."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

import finetec
from finetec.cli import main
from finetec.errors import FinetecError

from test_api import clip, make_checkpoint, make_dataset

TINY_GCN = {"base_channels": 8, "num_stages": 3, "inflate_stages": [3], "down_stages": [3]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("backends")
    make_dataset(np.random.default_rng(0), n=3).save(d / "clips.finetec.npz")
    return {"data": d / "clips.finetec.npz",
            "gcn": make_checkpoint(d / "gcn", model="stgcnpp", clip_len=16, **TINY_GCN),
            "ctr": make_checkpoint(d / "ctr", model="ctrgcn", clip_len=16, **TINY_GCN)}


def _randomised(path):
    """The checkpoint's predictor with non-trivial BatchNorm statistics (folding is exercised)."""
    import torch

    p = finetec.load(str(path))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in p.model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
    return p


def _records(out: str) -> list:
    """predict --json output: one JSON object per clip (a line each, or one list / document)."""
    try:
        doc = json.loads(out)
    except json.JSONDecodeError:
        return [json.loads(line) for line in out.splitlines() if line.strip()]
    return doc if isinstance(doc, list) else doc.get("predictions", [doc])


def test_unknown_backend_is_a_user_error(files):
    with pytest.raises(FinetecError, match="unknown --backend 'tvm'"):
        finetec.load(str(files["gcn"]), backend="tvm")


def test_missing_onnxruntime_names_the_option_and_the_alternative(files, monkeypatch, capsys):
    import finetec.export as ex

    monkeypatch.setattr(ex, "onnx_available", lambda: False)
    with pytest.raises(FinetecError, match=r"--backend onnxruntime needs .*finetec\[onnx\].*--backend torch"):
        finetec.load(str(files["gcn"]), backend="onnxruntime")
    rc = main(["predict", str(files["gcn"]), str(files["data"]), "--backend", "onnxruntime"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--backend torch" in err


@pytest.mark.parametrize("name", ["gcn", "ctr"])
def test_onnxruntime_backend_matches_pytorch(files, name):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import torch

    p = _randomised(files[name])
    ort = finetec.api.Predictor(p.model, p.info, backend="onnxruntime")
    from finetec.export import OnnxRecognizer

    ort._onnx = OnnxRecognizer(ort)
    assert ort._onnx.max_abs_diff <= 1e-4
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.5, size=(3, 1, 16, 17, 2)).astype(np.float32)
    mask = rng.random((3, 1, 16, 17)) > 0.2
    got = ort.logits(x, mask)
    with torch.no_grad():
        ref = p.model.train().eval()(torch.from_numpy(x), torch.from_numpy(mask)).numpy()  # unfolded PyTorch
    assert got.shape == ref.shape == (3, 4)
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(p.logits(x, mask), ref, atol=1e-5, rtol=0)   # torch backend, folded again


def test_predict_and_stream_commands_take_the_backend(files, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    outs = {}
    for backend in ("torch", "onnxruntime"):
        rc = main(["predict", str(files["gcn"]), str(files["data"]), "--json", "--backend", backend])
        assert rc == 0
        outs[backend] = _records(capsys.readouterr().out)
    a, b = outs["torch"], outs["onnxruntime"]
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        pa = {c["class"]: c["prob"] for c in ra["top_k"]}
        pb = {c["class"]: c["prob"] for c in rb["top_k"]}
        assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) < 1e-4 for k in pa)

    kp = clip(np.random.default_rng(1), T=12)[0]
    lines = "\n".join(json.dumps(kp[t].tolist()) for t in range(12)) + "\n"
    recs = {}
    for backend in ("torch", "onnxruntime"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
        rc = main(["stream", str(files["gcn"]), "--window", "8", "--every", "4", "--json", "--backend", backend])
        assert rc == 0
        recs[backend] = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    assert [r["frame"] for r in recs["torch"]] == [r["frame"] for r in recs["onnxruntime"]] == [8, 12]
    for ra, rb in zip(recs["torch"], recs["onnxruntime"]):
        for ca, cb in zip(ra["top_k"], rb["top_k"]):
            assert ca["class"] == cb["class"] and abs(ca["prob"] - cb["prob"]) < 1e-4
