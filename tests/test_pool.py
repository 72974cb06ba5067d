"""Pooling datasets of one skeleton family for the completion module (data.pool)."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data import open_dataset
from finetec.data.pool import POOL_SPLIT, member_train_indices, pool_datasets
from finetec.engine.config import Config, apply_overrides
from finetec.errors import FinetecError

from conftest import tiny_dataset_file


def test_pool_adds_the_members_training_clips_unlabelled(tmp_path):
    main = open_dataset(str(tiny_dataset_file(tmp_path, clips=60, seed=1, per_class=4)))
    member = open_dataset("synthetic:coco17?clips=12&seed=9")
    member.splits = {"train": np.arange(8), "test": np.arange(8, 12)}
    pooled, extra = pool_datasets(main, [member], "xsub_train")
    assert len(pooled) == len(main) + 8 and extra.tolist() == list(range(len(main), len(main) + 8))
    assert pooled.split_indices(POOL_SPLIT).tolist() == extra.tolist()
    assert pooled.split_indices("train").tolist() == main.split_indices("train").tolist()
    assert (pooled.label[extra] == -1).all() and (pooled.label[: len(main)] == main.label).all()
    np.testing.assert_array_equal(pooled[len(main)].keypoint, member[0].keypoint)


def test_member_training_split_never_includes_its_test_clips():
    ds = open_dataset("synthetic:coco17?clips=10&seed=2")
    ds.splits = {"xsub_train": np.arange(6), "xsub_test": np.arange(6, 10)}
    assert member_train_indices(ds, "xview_train").tolist() == list(range(6))
    ds.splits = {"a_train": np.arange(3), "b_train": np.arange(3, 6), "test": np.arange(6, 10)}
    with pytest.raises(FinetecError, match="several training splits"):
        member_train_indices(ds, "train")
    ds.splits = {"test": np.arange(6, 10)}
    assert member_train_indices(ds, "train").tolist() == list(range(6))


def test_a_member_without_a_joint_map_is_a_one_line_error(tmp_path):
    from dataclasses import replace

    from finetec.layouts import Layout, get_layout

    main = open_dataset("synthetic:coco17?clips=6&seed=1")
    d = get_layout("coco17").to_dict()
    d["name"], d["joints"] = "renamed17", [f"j{i}" for i in range(17)]
    d.pop("maps", None)
    other = tmp_path / "other.finetec.npz"
    replace(open_dataset("synthetic:coco17?clips=6&seed=2"), layout=Layout.from_dict(d)).save(other)
    with pytest.raises(FinetecError, match="no joint map") as e:
        pool_datasets(main, [str(other)], "train")
    assert str(other) in str(e.value) and "\n" not in str(e.value)
    three_d = tmp_path / "ntu.finetec.npz"
    open_dataset("synthetic:ntu25?clips=6&seed=1").save(three_d)
    with pytest.raises(FinetecError, match="3D coordinates") as e:
        pool_datasets(main, [str(three_d)], "train")
    assert str(three_d) in str(e.value)


def test_kinect_family_pool_maps_ntu25_onto_kinect_v1():
    from finetec.layouts import get_layout

    main = open_dataset("synthetic:ntu25?clips=6&seed=1").to_layout(get_layout("kinect_v1"))
    pooled, extra = pool_datasets(main, ["synthetic:ntu25?clips=4&seed=3"], "train")
    assert pooled.layout.name == "kinect_v1" and len(extra) == 4
    assert pooled[int(extra[0])].num_joints == 20


@pytest.mark.slow
def test_training_on_a_pool(tmp_path):
    from finetec.engine.train import train

    data = tiny_dataset_file(tmp_path, clips=60, seed=1, per_class=4)
    base = ["task=completion", f"data.path={data}", "data.val_fraction=0.25", "pipeline.clip_len=12",
            "model.name=completion", "model.width=16", "model.depth=2", "model.merge_at=1", "model.bank_size=8",
            "optim.name=adam", "optim.epochs=1", "optim.batch_size=8", "runtime.threads=1",
            "runtime.tensorboard=off"]
    res = train(apply_overrides(Config(), [*base, "data.pool=['synthetic:coco17?clips=16&seed=4']"]), tmp_path / "r")
    assert res["epochs"] == 1
    log = (tmp_path / "r" / "train.log").read_text()
    assert "train" in log
    with pytest.raises(FinetecError, match="task completion only"):
        train(apply_overrides(Config(), [*[b for b in base if not b.startswith(("task", "model"))],
                                         "data.pool=['synthetic:coco17?clips=16&seed=4']"]), tmp_path / "c")
