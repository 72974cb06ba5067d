"""The completion task: bank from the training split, validation by MPJPE (lower is better),
exact resume, and `finetec eval` on a completion checkpoint."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finetec.cli import main
from finetec.engine.checkpoint import load_model
from finetec.engine.config import Config, apply_overrides
from finetec.engine.train import train
from finetec.errors import FinetecError

BASE = ["task=completion", "data.path=synthetic:coco17?clips=60&seed=6&subjects=3", "data.val_fraction=0.2",
        "pipeline.clip_len=12", "pipeline.level=moderate", "model.name=completion", "model.width=16",
        "model.depth=2", "model.merge_at=1", "model.bank_size=16", "optim.name=adam", "optim.lr=0.003",
        "optim.weight_decay=0", "optim.batch_size=12", "runtime.threads=1", "runtime.tensorboard=off"]



def cfg(*extra: str) -> Config:
    return apply_overrides(Config(), [*BASE, *extra])


@pytest.mark.slow
def test_completion_trains_resumes_and_evaluates(tmp_path, capsys):
    full = train(cfg("optim.epochs=4"), tmp_path / "a")
    hist = full["history"]
    assert full["metric"] == "val_mpjpe"
    assert all(np.isfinite(r["val_mpjpe"]) and "train_top1" not in r for r in hist)
    best = min(hist, key=lambda r: (r["val_mpjpe"], r["epoch"]))
    assert full["best_epoch"] == best["epoch"]          # lower is better
    model, info = load_model(tmp_path / "a")
    assert info["task"] == "completion" and int(model.bank_count) == 16
    # resume == uninterrupted (the prompt sampling is driven by the engine's per-step generator)
    train(cfg("optim.epochs=4"), tmp_path / "b", stop_after=1)
    train(cfg("optim.epochs=4"), tmp_path / "b", resume=True)
    wa = load_model(tmp_path / "a" / "last")[0].state_dict()
    wb = load_model(tmp_path / "b" / "last")[0].state_dict()
    assert all(torch.allclose(wa[k], wb[k], atol=1e-6) for k in wa)
    # eval on a completion checkpoint reports restoration errors; the trained module beats zeros
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "a"), "--level", "severe", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["results"][0]
    assert row["level"] == "severe" and row["num_missing"] > 0
    from finetec.data import open_dataset
    from finetec.engine.evaluate import MultiClipDataset, make_loader
    from finetec.models.checkpoint import CheckpointInfo
    from finetec.metrics.restoration import mpjpe
    ds = open_dataset(info["config"]["data"]["path"])
    pipe = CheckpointInfo.from_dict(info).test_pipeline("severe", "random", 0, ds.layout)
    batch = next(iter(make_loader(MultiClipDataset(ds, ds.split_indices("test"), pipe), 1000)))
    missing = ~batch["mask"].numpy() & batch["clean_mask"].numpy()
    zero = mpjpe(np.zeros_like(batch["clean"].numpy()), batch["clean"].numpy(), missing)
    assert row["mpjpe"] < 0.8 * zero, (row["mpjpe"], zero)
    # the gap-length breakdown covers every missing entry and pools back to the overall MPJPE
    groups = [g for g in row["by_gap"].values() if g["count"]]
    assert sum(g["count"] for g in groups) == row["num_missing"]
    assert abs(sum(g["mpjpe"] * g["count"] for g in groups) / row["num_missing"] - row["mpjpe"]) < 1e-6


def test_completion_needs_positions_only():
    with pytest.raises(FinetecError, match="features"):
        train(cfg("pipeline.features=[joint, bone]"), "/nonexistent/never-written")


def test_completion_task_needs_a_completion_model(tmp_path):
    from finetec.engine.config import ModelSection

    c = cfg("optim.epochs=1")
    c.model = ModelSection("stgcnpp", {"base_channels": 8, "num_stages": 2, "inflate_stages": [2],
                                       "down_stages": [2]})
    with pytest.raises(FinetecError, match="needs a completion model"):
        train(c, tmp_path / "x")
