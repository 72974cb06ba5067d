"""DDP with two CPU processes (gloo, launched by torchrun) follows the same loss curve and
reaches the same weights as one process on the same global batch.

The DDP run reads a memory-mapped ``.finetec`` folder through one DataLoader worker per process;
the single-process run reads the same clips from the in-memory synthetic dataset without workers.

BatchNorm is frozen (``runtime.freeze_bn``) for the comparison: with batch statistics each rank
would normalise by its own half batch, which legitimately differs from the single-process run
(on GPUs ``runtime.sync_bn`` makes the statistics global instead).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from finetec.engine.checkpoint import load_model
from finetec.engine.config import Config, apply_overrides
from finetec.engine.train import train

OVERRIDES = ["data.path=synthetic:coco17?clips=60&seed=5&subjects=3", "data.val_fraction=0.2",
             "pipeline.clip_len=12", "pipeline.level=moderate", "pipeline.filler=linear", "pipeline.augment=true",
             "model.name=stgcnpp", "model.base_channels=8", "model.num_stages=2", "model.inflate_stages=[2]",
             "model.down_stages=[2]", "optim.epochs=2", "optim.batch_size=10", "optim.lr=0.05",
             "runtime.freeze_bn=true", "runtime.threads=1", "runtime.tensorboard=off"]

SCRIPT = """
import json, sys
from finetec.engine.config import Config, apply_overrides
from finetec.engine.train import train
train(apply_overrides(Config(), json.loads(sys.argv[1])), sys.argv[2])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process(tmp_path):
    from finetec.data import open_dataset

    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    folder = open_dataset(OVERRIDES[0].partition("=")[2]).save(tmp_path / "data.finetec")
    ddp_overrides = [f"data.path={folder}", *OVERRIDES[1:], "runtime.num_workers=1"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", str(script), json.dumps(ddp_overrides), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch.set_num_threads(1)
    single = train(apply_overrides(Config(), OVERRIDES), tmp_path / "single")
    ddp_rows = [json.loads(l) for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert len(ddp_rows) == len(single["history"]) == 2
    for a, b in zip(ddp_rows, single["history"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["train_top1"] == pytest.approx(b["train_top1"])
        assert a["val_top1"] == pytest.approx(b["val_top1"])
    wa = load_model(tmp_path / "ddp" / "last")[0].state_dict()
    wb = load_model(tmp_path / "single" / "last")[0].state_dict()
    assert wa.keys() == wb.keys() and len(wa) > 10
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=1e-5, rtol=1e-4), k
    log = (tmp_path / "ddp" / "train.log").read_text()
    assert "world size 2" in log and "effective batch 10 = 2 process(es) x ~5" in log
