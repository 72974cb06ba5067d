"""Checkpoints: save -> load round trip, errors for missing or corrupt files, train state."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from finetec.engine.checkpoint import (load_model, load_train_state, read_info, save_checkpoint,
                                       save_train_state)
from finetec.errors import FinetecError
from finetec.models.registry import create_model, register_model


class _Tiny(nn.Module):
    """A minimal classifier used only by the engine tests."""

    def __init__(self, num_classes: int, in_channels: int, width: int):
        super().__init__()
        self.fc = nn.Linear(in_channels, width)
        self.head = nn.Linear(width, num_classes)
        self.register_buffer("bank", torch.zeros(2))

    def forward(self, x, mask=None):
        if mask is not None:
            x = x * mask[..., None].to(x.dtype)
        return self.head(torch.relu(self.fc(x.mean(dim=(1, 2, 3)))))


@register_model("_engine_test_tiny")
def _tiny(*, num_classes: int, layout, in_channels: int, width: int = 8):
    return _Tiny(num_classes, in_channels, width)


def make(width: int = 8, seed: int = 0):
    torch.manual_seed(seed)
    return create_model("_engine_test_tiny", num_classes=3, layout="coco17", in_channels=2, width=width)


def test_roundtrip_restores_weights_and_info(tmp_path):
    model = make()
    model.bank.fill_(7.0)
    info = {"class_names": ["a", "b", "c"], "epoch": 2, "metrics": {"val_top1": 0.5}, "clip_len": 16,
            "config": {"name": "x"}, "seed": 1}
    save_checkpoint(tmp_path / "ck", model, info)
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["checkpoint.json", "complete.json", "model.safetensors"]
    loaded, got = load_model(tmp_path / "ck")
    assert not loaded.training
    assert got["class_names"] == ["a", "b", "c"] and got["epoch"] == 2 and got["metrics"]["val_top1"] == 0.5
    assert got["model_config"] == model.config and got["finetec_version"]
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(2, 1, 4, 17, 2)
    assert torch.allclose(model.eval()(x), loaded(x))
    # The .safetensors path and a training folder with best/ both work.
    assert load_model(tmp_path / "ck" / "model.safetensors")[1]["epoch"] == 2
    save_checkpoint(tmp_path / "run" / "best", model, {**info, "epoch": 5})
    assert load_model(tmp_path / "run")[1]["epoch"] == 5


def test_ddp_wrapper_is_unwrapped(tmp_path):
    model = make()
    wrapped = nn.DataParallel(model)
    save_checkpoint(tmp_path / "ck", wrapped, {})
    assert not any(k.startswith("module.") for k in load_model(tmp_path / "ck")[0].state_dict())


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(FinetecError, match="no such checkpoint"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FinetecError, match="checkpoint.json is missing"):
        load_model(tmp_path / "empty")
    save_checkpoint(tmp_path / "ck", make(), {})
    w = tmp_path / "ck" / "model.safetensors"
    w.write_bytes(w.read_bytes()[:40])
    with pytest.raises(FinetecError, match="model.safetensors does not match its checksum"):
        load_model(tmp_path / "ck")
    (tmp_path / "ck" / "complete.json").unlink()  # a folder without a record is read as it is
    with pytest.raises(FinetecError, match="corrupt weights") as e:
        load_model(tmp_path / "ck")
    assert e.value.path == str(w)
    (tmp_path / "ck" / "checkpoint.json").write_text("{not json")
    with pytest.raises(FinetecError, match="not readable JSON"):
        read_info(tmp_path / "ck")


def test_weights_of_another_architecture(tmp_path):
    save_checkpoint(tmp_path / "ck", make(width=8), {})
    info = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    info["model_config"]["width"] = 4
    (tmp_path / "ck" / "checkpoint.json").write_text(json.dumps(info))
    (tmp_path / "ck" / "complete.json").unlink()
    with pytest.raises(FinetecError, match=r"does not match the weights: fc.bias has shape \[8\] in the weights but \[4\]"):
        load_model(tmp_path / "ck")


def test_unknown_model_name(tmp_path):
    save_checkpoint(tmp_path / "ck", make(), {})
    info = json.loads((tmp_path / "ck" / "checkpoint.json").read_text())
    info["model_config"]["name"] = "no_such_model"
    (tmp_path / "ck" / "checkpoint.json").write_text(json.dumps(info))
    (tmp_path / "ck" / "complete.json").unlink()
    with pytest.raises(FinetecError, match="cannot rebuild"):
        load_model(tmp_path / "ck")


def test_train_state_roundtrip_weights_only(tmp_path):
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 4, 17, 2)).sum().backward()
    opt.step()
    save_train_state(tmp_path, {"optimizer": opt.state_dict(), "epoch": 3, "step": 12, "best": 0.25})
    st = load_train_state(tmp_path)
    assert st["epoch"] == 3 and st["step"] == 12 and st["best"] == 0.25
    opt2 = torch.optim.SGD(make(seed=1).parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(st["optimizer"])
    buf = [s["momentum_buffer"] for s in opt.state_dict()["state"].values()]
    buf2 = [s["momentum_buffer"] for s in opt2.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(buf, buf2))
    (tmp_path / "train_state.pt").write_bytes(b"garbage")
    with pytest.raises(FinetecError, match="cannot read training state"):
        load_train_state(tmp_path)


def test_checkpoints_of_format_1_keep_the_completion_prefill_they_were_trained_with(tmp_path):
    """Before checkpoint format 2 the completion module pre-filled a joint never observed in the clip
    with 0; a checkpoint without format_version is rebuilt with that rule, a new one uses the one
    linear filler (the person's centroid)."""
    import torch

    from finetec.data.fillers import fill_linear
    from finetec.models.checkpoint import FORMAT_VERSION
    from finetec.models.registry import create_model

    net = create_model("completion", num_classes=1, layout="coco17", in_channels=2, clip_len=8, width=16,
                       depth=1, merge_at=1, bank_size=4)
    save_checkpoint(tmp_path / "new", net, {"task": "completion"})
    new, info = load_model(tmp_path / "new")
    assert info["format_version"] == FORMAT_VERSION == 2 and new.prefill == "linear"
    old_info = json.loads((tmp_path / "new" / "checkpoint.json").read_text())
    del old_info["format_version"]
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "checkpoint.json").write_text(json.dumps(old_info))
    (tmp_path / "old" / "model.safetensors").write_bytes((tmp_path / "new" / "model.safetensors").read_bytes())
    old, _ = load_model(tmp_path / "old")
    assert old.prefill == "linear_unseen_zero" and old.config["prefill"] == "linear_unseen_zero"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 8, 17, 2, generator=g)
    mask = torch.rand(1, 1, 8, 17, generator=g) > 0.3
    mask[..., 0, :] = True                         # frame 0 observed...
    mask[..., 4] = False                           # ...but joint 4 never observed
    with torch.no_grad():                          # untrained head: the output is the pre-fill
        out_new, out_old = new(x, mask)["completed"], old(x, mask)["completed"]
    assert torch.equal(out_old[..., 4, :], torch.zeros_like(out_old[..., 4, :]))
    want = fill_linear(torch.where(mask[..., None], x, torch.zeros_like(x))[0], mask[0])[None]
    assert torch.allclose(out_new, want, atol=1e-6) and float(out_new[..., 4, :].abs().sum()) > 0
