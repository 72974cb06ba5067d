"""The benchmark's stage 1 trains the recipe of the completion configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finetec.benchmark.spec import BUDGETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("dataset", ["penn-action", "nw-ucla", "utd-mhad"])
def test_standard_stage1_is_the_completion_config(dataset):
    cfg = yaml.safe_load((ROOT / "configs" / f"completion_t64_retrieval_{dataset}.yaml").read_text())
    model = {k: v for k, v in cfg["model"].items() if k != "name"}
    b = BUDGETS["standard"]
    assert b.completion == model
    assert (b.completion_lr, b.completion_batch_size, b.completion_grad_clip) == \
        (cfg["optim"]["lr"], cfg["optim"]["batch_size"], cfg["optim"]["grad_clip"])
    assert b.completion_epochs == cfg["optim"]["epochs"]
    assert list(b.completion_levels) == cfg["pipeline"]["mixed_levels"]
    gpu = BUDGETS["gpu"].completion
    assert {k: v for k, v in gpu.items() if k != "width"} == {k: v for k, v in model.items() if k != "width"}
