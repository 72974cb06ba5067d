"""`finetec export`: ONNX files of the recognizer and of the completion module."""
from __future__ import annotations

import json

import numpy as np
import pytest

import finetec
from finetec.cli import main
from finetec.errors import FinetecError
from finetec.models.registry import list_models

from test_api import make_checkpoint, tiny_finetec_predictor


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    return {
        "cls": make_checkpoint(d / "cls", clip_len=12),
        "compl": make_checkpoint(d / "compl", model="_test_zero_completion", task="completion", classes=("none",),
                                 clip_len=12),
    }


def test_missing_onnx_is_a_one_line_error_naming_the_extra(ckpts, tmp_path, monkeypatch, capsys):
    import finetec.export as ex

    monkeypatch.setattr(ex, "onnx_available", lambda: False)
    out = tmp_path / "m.onnx"
    rc = main(["export", str(ckpts["cls"]), str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "pip install finetec[onnx]" in err
    assert not out.exists()
    with pytest.raises(FinetecError, match=r"finetec\[onnx\]"):
        ex.export_onnx(finetec.load(str(ckpts["cls"])), out)


def test_bad_export_requests(ckpts, tmp_path, capsys):
    rc = main(["export", str(ckpts["cls"]), str(tmp_path / "m.txt")])
    assert rc == 2 and "must end in .onnx" in capsys.readouterr().err
    pytest.importorskip("onnx")
    rc = main(["export", str(ckpts["cls"]), str(tmp_path / "m.onnx"), "--what", "completion"])
    assert rc == 2 and "no completion module" in capsys.readouterr().err
    rc = main(["export", str(ckpts["compl"]), str(tmp_path / "m.onnx"), "--what", "recognizer"])
    assert rc == 2 and "--what completion" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def _run_onnx(path, x, mask):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {"keypoint": x, "mask": mask}
    return sess.run(None, {i.name: feeds[i.name] for i in sess.get_inputs()})[0]


def test_export_recognizer_matches_pytorch(ckpts, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "rec.onnx"
    rc = main(["export", str(ckpts["cls"]), str(out), "--json"])
    assert rc == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["what"] == "recognizer" and out.exists()
    assert rep["inputs"]["keypoint"] == ["batch", 1, 12, 17, 2] and rep["outputs"]["logits"] == ["batch", 4]
    pytest.importorskip("onnxruntime")
    assert rep["checked_with"] == "onnxruntime" and rep["max_abs_diff"] < 1e-4
    # the ONNX logits give the same classification as the Predictor on a real clip
    from test_api import clip

    p = finetec.load(str(ckpts["cls"]))
    kp = clip(np.random.default_rng(3), T=30)
    x, m = p.preprocess([kp])
    probs = np.exp(_run_onnx(out, x, m))
    probs /= probs.sum(axis=1, keepdims=True)
    top = p.predict(kp, top_k=4)
    np.testing.assert_allclose(np.sort(probs[0])[::-1], [q for _, q in top], atol=1e-5)


def test_export_completion_module(ckpts, tmp_path, capsys):
    pytest.importorskip("onnx")
    out = tmp_path / "compl.onnx"
    rc = main(["export", str(ckpts["compl"]), str(out)])  # --what defaults to completion here
    assert rc == 0 and out.exists()
    text = capsys.readouterr().out
    assert "completion" in text and "keypoint (" in text
    x = np.random.default_rng(0).normal(size=(3, 1, 12, 17, 2)).astype(np.float32)
    mask = np.random.default_rng(1).random((3, 1, 12, 17)) > 0.3
    got = _run_onnx(out, x, mask)
    np.testing.assert_allclose(got, np.where(mask[..., None], x, 0), atol=1e-6)


@pytest.mark.slow
@pytest.mark.skipif("stgcnpp_small" not in list_models(), reason="the GCN backbones are not available")
def test_export_real_backbone(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from finetec.export import export_onnx

    ck = make_checkpoint(tmp_path / "gcn", model="stgcnpp_small", clip_len=16)
    rep = export_onnx(finetec.load(str(ck)), tmp_path / "gcn.onnx")
    assert rep["max_abs_diff"] is not None and rep["max_abs_diff"] < 1e-3


def test_cummax_cummin_and_diag_embed_translations(tmp_path):
    """The ONNX translations added for operators the TorchScript exporter lacks, against PyTorch."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    import torch

    from finetec.export import _export, _register_symbolics

    class Net(torch.nn.Module):
        def forward(self, keypoint, mask):
            t = torch.arange(keypoint.shape[1]).view(1, -1, 1).expand(keypoint.shape[:3])
            prev = torch.where(mask, t, torch.full_like(t, -1)).cummax(dim=1).values
            nxt = torch.where(mask, t, torch.full_like(t, 99)).flip(1).cummin(dim=1).values.flip(1)
            run = keypoint.cummax(dim=1).values - keypoint.cummin(dim=1).values
            return run.sum(-1) + prev + nxt + 2 * torch.diag_embed(keypoint).sum(-1).sum(-1)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 9, 5, 3)).astype(np.float32)
    m = rng.random((2, 9, 5)) > 0.5
    _register_symbolics(17)
    out = tmp_path / "ops.onnx"
    _export(Net(), (torch.from_numpy(x), torch.from_numpy(m)), out, 17, "y", None)
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"keypoint": x, "mask": m})[0]
    want = Net()(torch.from_numpy(x), torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif("finetec" not in list_models(), reason="the FineTec model is not available")
def test_export_finetec_checkpoint(tmp_path):
    """The completion module and the whole recognizer of a FineTec checkpoint export and match PyTorch."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")

    from finetec.export import export_onnx

    p = tiny_finetec_predictor(tmp_path / "ft")
    rep = export_onnx(p, tmp_path / "c.onnx", what="completion")
    assert rep["max_abs_diff"] < 1e-4 and rep["outputs"]["completed"][1:] == [1, 16, 17, 2]
    rep = export_onnx(p, tmp_path / "r.onnx", what="recognizer")  # an export failure fails the test
    assert (tmp_path / "r.onnx").stat().st_size > 0
    assert rep["checked_with"] == "onnxruntime" and rep["max_abs_diff"] is not None and rep["max_abs_diff"] < 1e-3
