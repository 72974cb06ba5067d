"""Inference backends: PyTorch (with folded BatchNorms), onnxruntime and OpenVINO agree within 1e-4."""
from __future__ import annotations

import io
import json
import sys

import numpy as np
import pytest

import finetec
from finetec.cli import main
from finetec.errors import FinetecError
from finetec.models.registry import list_models

from test_api import clip, make_checkpoint, make_dataset, tiny_finetec_predictor

TINY_GCN = {"base_channels": 8, "num_stages": 3, "inflate_stages": [3], "down_stages": [3]}
EXPORTED = ("onnxruntime", "openvino")   # the backends that run the recognizer exported to ONNX


def _needs(backend: str) -> None:
    """Skip unless the backend's packages are installed (pip install finetec[onnx] / finetec[openvino])."""
    from finetec.backends import EXTRAS

    for package in ("onnx", backend):
        pytest.importorskip(package, reason=f"--backend {backend} needs {package} (pip install finetec[{EXTRAS[backend]}])")


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


@pytest.mark.parametrize("backend, missing, extra", [("onnxruntime", "onnx", "onnx"),
                                                     ("onnxruntime", "onnxruntime", "onnx"),
                                                     ("openvino", "openvino", "openvino"),
                                                     ("openvino", "onnx", "openvino")])
def test_missing_package_names_the_option_the_extra_and_the_alternative(files, monkeypatch, capsys,
                                                                        backend, missing, extra):
    import finetec.export as ex

    monkeypatch.setattr(ex, "installed", lambda package: package != missing)
    with pytest.raises(FinetecError, match=rf"--backend {backend} needs .*{missing}.*"
                                           rf"pip install finetec\[{extra}\].*--backend torch"):
        finetec.load(str(files["gcn"]), backend=backend)
    rc = main(["predict", str(files["gcn"]), str(files["data"]), "--backend", backend])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--backend torch" in err and f"finetec[{extra}]" in err


def test_missing_onnx_through_onnx_available(files, monkeypatch):
    import finetec.export as ex

    monkeypatch.setattr(ex, "onnx_available", lambda: False)
    for backend in EXPORTED:
        with pytest.raises(FinetecError, match=rf"--backend {backend} needs the optional packages onnx"):
            finetec.load(str(files["gcn"]), backend=backend)


@pytest.mark.parametrize("backend", EXPORTED)
@pytest.mark.parametrize("name", ["gcn", "ctr"])
def test_exported_backend_matches_pytorch(files, name, backend):
    _needs(backend)
    import torch

    from finetec.export import RUNTIMES

    p = _randomised(files[name])
    other = finetec.api.Predictor(p.model, p.info, backend=backend)
    other._onnx = RUNTIMES[backend](other)
    assert other._onnx.max_abs_diff <= 1e-4
    assert not other._onnx.fixed_batch   # the backbones export with a dynamic batch axis
    if backend == "openvino":  # f32, not the bf16 that OpenVINO picks on a CPU with native bf16
        import openvino

        assert other._onnx.compiled.get_property("INFERENCE_PRECISION_HINT") == openvino.Type.f32
        assert other._onnx.compiled.get_property("INFERENCE_NUM_THREADS") == torch.get_num_threads()
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.5, size=(3, 1, 16, 17, 2)).astype(np.float32)
    mask = rng.random((3, 1, 16, 17)) > 0.2
    got = other.logits(x, mask)
    with torch.no_grad():
        ref = p.model.train().eval()(torch.from_numpy(x), torch.from_numpy(mask)).numpy()  # unfolded PyTorch
    assert got.shape == ref.shape == (3, 4) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0)
    np.testing.assert_allclose(p.logits(x, mask), ref, atol=1e-5, rtol=0)   # torch backend, folded again


def test_disagreeing_runtime_is_a_one_line_error(files, monkeypatch):
    _needs("openvino")
    from finetec.export import OpenVinoRecognizer

    run = OpenVinoRecognizer._run
    monkeypatch.setattr(OpenVinoRecognizer, "_run", lambda self, feeds: run(self, feeds) + 1e-3)
    with pytest.raises(FinetecError, match=r"--backend openvino: the exported recognizer differs from PyTorch "
                                           r"by 0\.001 .*; use --backend torch") as e:
        finetec.load(str(files["gcn"]), backend="openvino")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("backend", EXPORTED)
def test_predict_and_stream_commands_take_the_backend(files, capfd, monkeypatch, backend):
    """Same probabilities as torch; standard output (file descriptor 1, where the exporter's C++ log
    would go) holds the JSON records only."""
    _needs(backend)
    outs = {}
    for b in ("torch", backend):
        rc = main(["predict", str(files["gcn"]), str(files["data"]), "--json", "--backend", b])
        assert rc == 0
        outs[b] = _records(capfd.readouterr().out)
    a, b = outs["torch"], outs[backend]
    assert len(a) == len(b) == 3
    for ra, rb in zip(a, b):
        pa = {c["class"]: c["prob"] for c in ra["top_k"]}
        pb = {c["class"]: c["prob"] for c in rb["top_k"]}
        assert pa.keys() == pb.keys() and all(abs(pa[k] - pb[k]) < 1e-4 for k in pa)

    kp = clip(np.random.default_rng(1), T=12)[0]
    lines = "\n".join(json.dumps(kp[t].tolist()) for t in range(12)) + "\n"
    recs = {}
    for b in ("torch", backend):
        monkeypatch.setattr(sys, "stdin", io.StringIO(lines))
        rc = main(["stream", str(files["gcn"]), "--window", "8", "--every", "4", "--json", "--backend", b])
        assert rc == 0
        recs[b] = [json.loads(s) for s in capfd.readouterr().out.splitlines()]
    assert [r["frame"] for r in recs["torch"]] == [r["frame"] for r in recs[backend]] == [8, 12]
    for ra, rb in zip(recs["torch"], recs[backend]):
        for ca, cb in zip(ra["top_k"], rb["top_k"]):
            assert ca["class"] == cb["class"] and abs(ca["prob"] - cb["prob"]) < 1e-4


def test_incremental_stream_refuses_openvino(files, capsys, monkeypatch):
    _needs("openvino")
    monkeypatch.setattr(sys, "stdin", io.StringIO("[]\n"))
    rc = main(["stream", str(files["gcn"]), "--backend", "openvino", "--incremental"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == "" and captured.err.count("\n") == 1
    assert "--incremental runs the PyTorch model; use --backend torch" in captured.err
    assert "--backend openvino" in captured.err


@pytest.mark.skipif("finetec" not in list_models(), reason="the FineTec model is not available")
@pytest.mark.parametrize("backend", EXPORTED)
def test_finetec_recognizer_matches_pytorch(tmp_path, backend):
    """The FineTec graph (batch axis fixed at 1) runs clip by clip and agrees with PyTorch."""
    _needs(backend)
    p = tiny_finetec_predictor(tmp_path / "ft")
    from finetec.export import RUNTIMES

    other = finetec.api.Predictor(p.model, p.info, backend=backend)
    other._onnx = RUNTIMES[backend](other)
    assert other._onnx.fixed_batch and other._onnx.max_abs_diff <= 1e-4
    rng = np.random.default_rng(5)
    x = rng.normal(0, 0.5, size=(3, 1, 16, 17, 2)).astype(np.float32)
    mask = rng.random((3, 1, 16, 17)) > 0.2
    x[~mask] = 0
    got = other.logits(x, mask)
    assert got.shape == (3, 4)
    np.testing.assert_allclose(got, p.logits(x, mask), atol=1e-4, rtol=0)
