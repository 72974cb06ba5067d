"""Readers on the real datasets in ../shared/data (skipped when absent). Each set is read once."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data.readers import detect_format, read_dataset
from finetec.data.dataset import SkeletonDataset

from conftest import shared_data

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def penn() -> SkeletonDataset:
    return read_dataset(shared_data("penn_action"))


@pytest.fixture(scope="module")
def utd() -> SkeletonDataset:
    return read_dataset(shared_data("utd_mhad"))


@pytest.fixture(scope="module")
def ucla() -> SkeletonDataset:
    return read_dataset(shared_data("nw_ucla"))


def test_detection_on_real_folders() -> None:
    assert detect_format(shared_data("penn_action")) == "penn_action"
    assert detect_format(shared_data("penn_action") / "labels") == "penn_action"
    assert detect_format(shared_data("utd_mhad")) == "utd_mhad"
    assert detect_format(shared_data("nw_ucla") / "all_sqe") == "nw_ucla"


def test_penn_action(penn: SkeletonDataset) -> None:
    assert len(penn) == 2326 and penn.num_classes == 15 and penn.layout.name == "penn13"
    assert len(penn.splits["train"]) == 1258 and len(penn.splits["test"]) == 1068
    assert penn.class_names[0] == "baseball_pitch" and penn.class_names[-1] == "tennis_serve"
    assert penn.dim == 2 and penn.lengths.min() == 18 and penn.lengths.max() == 663
    missing = 1.0 - penn.mask.mean()
    assert 0.20 < missing < 0.24                       # occluded joints are real missing data
    assert (penn.keypoint[~penn.mask] == 0).all()
    s = penn[0]
    assert s.id == "0001" and penn.class_names[s.label] == "baseball_pitch"
    assert s.meta["pose"] == "back" and s.meta["dimensions"] == [360, 480, 151] and s.num_frames == 151
    assert penn[1515].meta.get("visibility_ignored") is True  # 1516.mat marks every joint occluded


def test_utd_mhad(utd: SkeletonDataset) -> None:
    assert len(utd) == 861 and utd.num_classes == 27 and utd.layout.name == "utd_mhad20"
    subjects = np.array([utd[int(i)].meta["subject"] for i in utd.splits["xsub_train"]])
    assert set(subjects.tolist()) == {1, 3, 5, 7}
    assert len(utd.splits["xsub_train"]) + len(utd.splits["xsub_test"]) == 861
    np.testing.assert_array_equal(utd.splits["train"], utd.splits["xsub_train"])
    i = int(np.flatnonzero(utd.ids == "a10_s1_t1")[0])
    assert utd.label[i] == 9 and utd.class_names[9] == "draw circle counter-clockwise"
    assert 41 <= utd.lengths.min() and utd.lengths.max() <= 125 and utd.dim == 3


def test_nw_ucla(ucla: SkeletonDataset) -> None:
    assert len(ucla) == 1484 and ucla.num_classes == 10 and ucla.layout.name == "kinect_v1"
    assert len(ucla.splits["xview_train"]) == 1020 and len(ucla.splits["xview_test"]) == 464
    np.testing.assert_array_equal(ucla.splits["test"], ucla.splits["xview_test"])
    views = {ucla[int(i)].meta["view"] for i in ucla.splits["test"]}
    assert views == {3}
    # file action ids a01..a06, a08, a09, a11, a12 map to labels 0..9
    first = {str(cid)[:3]: int(lab) for cid, lab in zip(ucla.ids, ucla.label)}
    assert first == {"a01": 0, "a02": 1, "a03": 2, "a04": 3, "a05": 4, "a06": 5, "a08": 6, "a09": 7,
                     "a11": 8, "a12": 9}
    assert ucla.lengths.min() == 1 and ucla.lengths.max() == 201


def test_nw_ucla_test_split_matches_val_label_list(ucla: SkeletonDataset) -> None:
    from finetec.data import safe_pickle

    val = safe_pickle.load(shared_data("nw_ucla") / "val_label.pkl")
    test_ids = {str(ucla.ids[i]) for i in ucla.splits["test"]}
    assert {v["file_name"] for v in val} == test_ids
    lengths = dict(zip(ucla.ids.tolist(), ucla.lengths.tolist()))
    labels = dict(zip(ucla.ids.tolist(), ucla.label.tolist()))
    assert all(lengths[v["file_name"]] == v["length"] and labels[v["file_name"]] == v["label"] - 1 for v in val)
