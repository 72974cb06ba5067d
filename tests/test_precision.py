"""Precision (runtime.precision / --precision / precision=) and compilation (runtime.compile) of
training, evaluation and prediction: bf16 autocast runs and is recorded, refused on a CPU without
native bf16 with a one-line error; the compiled training step does not compile again while the
BatchNorm warm start changes the momentum. Tiny models, synthetic data, one CPU thread."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import tiny_dataset_file
from finetec import cpu
from finetec.cli import main
from finetec.engine import device as device_mod
from finetec.engine.checkpoint import load_model
from finetec.engine.config import Config, apply_overrides
from finetec.engine.device import autocast, resolve_precision
from finetec.engine.evaluate import evaluate
from finetec.engine.train import train
from finetec.errors import FinetecError

TINY = ["model.name=stgcnpp", "model.base_channels=8", "model.num_stages=2", "model.inflate_stages=[2]",
        "model.down_stages=[2]", "runtime.threads=1", "runtime.log_every=1000", "runtime.tensorboard=off",
        "runtime.device=cpu", "pipeline.clip_len=12", "data.val_fraction=0", "optim.batch_size=4"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return tiny_dataset_file(tmp_path_factory.mktemp("data"), clips=80, seed=1, per_class=6)


@pytest.fixture
def native_bf16(monkeypatch):
    """This CPU counts as one with native bf16 (on another, autocast emulates it: slower, same math)."""
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx512_bf16"}))


@pytest.fixture
def no_bf16(monkeypatch):
    monkeypatch.setattr(cpu, "cpu_flags", lambda: frozenset({"avx2", "fma"}))


def cfg_for(path, *extra: str) -> Config:
    return apply_overrides(Config(), [f"data.path={path}", *TINY, *extra])


def test_resolve_precision():
    assert resolve_precision("auto", "cpu") == "fp32" and resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", "cpu") == "fp32"
    with pytest.raises(FinetecError, match="--precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16", "cpu")


def test_bf16_training_runs_in_bf16_and_records_it(tiny_data, tmp_path, native_bf16):
    dtypes = []

    def grab(module, args, output):
        if isinstance(module, torch.nn.Conv2d) and module.training:
            dtypes.append(output.dtype)

    handle = torch.nn.modules.module.register_module_forward_hook(grab)
    try:
        res = train(cfg_for(tiny_data, "optim.epochs=2", "runtime.precision=bf16"), tmp_path / "bf16")
    finally:
        handle.remove()
    assert dtypes and set(dtypes) == {torch.bfloat16}          # the forward ran under bf16 autocast
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in res["history"])
    model, info = load_model(tmp_path / "bf16")
    assert info["precision"] == "bf16" and info["config"]["runtime"]["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())   # weights stay fp32
    assert "precision bf16 (runtime.precision bf16" in (tmp_path / "bf16" / "train.log").read_text()
    # the same run in fp32 ends elsewhere (the option changed the arithmetic) and says so
    train(cfg_for(tiny_data, "optim.epochs=2", "runtime.precision=fp32"), tmp_path / "fp32")
    m32, info32 = load_model(tmp_path / "fp32")
    assert info32["precision"] == "fp32"
    w16, w32 = model.state_dict(), m32.state_dict()
    assert not all(torch.equal(w16[k], w32[k]) for k in w16)
    # evaluation in either precision: top-1 of the same checkpoint, within float noise of each other
    r16 = evaluate(model, info, split="train", device="cpu", precision="bf16")
    r32 = evaluate(model, info, split="train", device="cpu", precision="fp32")
    assert abs(r16["scores"] - r32["scores"]).max() < 0.1 * abs(r32["scores"]).max() + 1e-3


def test_bf16_refused_on_a_cpu_without_it(tiny_data, tmp_path, no_bf16, capsys):
    with pytest.raises(FinetecError) as e:
        train(cfg_for(tiny_data, "runtime.precision=bf16"), tmp_path / "run")
    msg = str(e.value)
    assert "\n" not in msg and "runtime.precision" in msg and "runtime.precision: fp32" in msg
    assert not (tmp_path / "run").exists()                       # refused before writing anything
    run = tmp_path / "ok"
    train(cfg_for(tiny_data, "optim.epochs=1"), run)              # auto = fp32 on a CPU: no refusal
    for cmd in (["eval", str(run), "--precision", "bf16"], ["predict", str(run), str(tiny_data), "--precision", "bf16"]):
        capsys.readouterr()
        assert main(cmd) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--precision" in err and "--precision fp32" in err, err
    import finetec

    with pytest.raises(FinetecError, match="no native bf16"):
        finetec.load(str(run), precision="bf16")
    with pytest.raises(FinetecError, match="no native bf16"):
        with autocast("cpu", "bf16"):
            pass


def test_eval_and_predict_in_bf16(tiny_data, tmp_path, native_bf16, capsys):
    run = tmp_path / "run"
    train(cfg_for(tiny_data, "optim.epochs=1"), run)
    capsys.readouterr()
    assert main(["eval", str(run), "--precision", "bf16", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["precision"] == "bf16"
    assert main(["eval", str(run), "--precision", "bf16"]) == 0
    assert "| precision bf16" in capsys.readouterr().out
    assert main(["predict", str(run), str(tiny_data), "--precision", "bf16", "--json", "--top-k", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 18
    with pytest.raises(FinetecError, match="--backend torch"):
        import finetec

        finetec.load(str(run), precision="bf16", backend="onnxruntime")


def test_compile_refused_where_it_cannot_run(monkeypatch):
    monkeypatch.setattr(device_mod, "COMPILE_BACKEND", "inductor")
    monkeypatch.setattr(device_mod.shutil, "which", lambda name: None)
    with pytest.raises(FinetecError) as e:
        device_mod.compile_module(torch.nn.Linear(2, 2), "runtime.compile")
    assert "\n" not in str(e.value) and "C++ compiler" in str(e.value) and "runtime.compile: false" in str(e.value)


def test_compiled_training_compiles_once_despite_the_batchnorm_warm_start(tiny_data, tmp_path, monkeypatch):
    """15 training clips in batches of 4 (3 full + 1 of 3 per epoch), 4 epochs with validation:
    16 steps; the warm start's first 9 steps and the short batches run eagerly, the full batches
    from step 10 on (5 steps) compiled, and the graphs are compiled once: validation (which
    folds the BatchNorms) and the momentum's last change do not compile again. The backend here
    counts graphs and their runs instead of generating code."""
    import torch._dynamo

    graphs, runs = [], []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)

        def run(*args):
            runs.append(len(graphs))
            return gm.forward(*args)
        return run

    monkeypatch.setattr(device_mod, "COMPILE_BACKEND", counting_backend)
    torch._dynamo.reset()
    try:
        res = train(cfg_for(tiny_data, "optim.epochs=4", "data.val_fraction=0.2", "runtime.compile=true"),
                    tmp_path / "c")
    finally:
        torch._dynamo.reset()
    assert len(res["history"]) == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in res["history"])
    assert graphs and len(runs) == 5 * len(graphs), (len(graphs), len(runs))
    log = (tmp_path / "c" / "train.log").read_text()
    assert "compile on" in log and "compiled the training step at step 10 in" in log
    assert json.loads((tmp_path / "c" / "last" / "checkpoint.json").read_text())["config"]["runtime"]["compile"]
