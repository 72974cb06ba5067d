"""Mirror classes: which label a left/right-flipped training clip gets."""
from __future__ import annotations

import numpy as np
import pytest

from finetec.data.mirror import mirror_labels, mirror_pairs
from finetec.data.pipeline import ClipPipeline, PipelineConfig
from finetec.data.readers.names import NTU60_CLASSES, NW_UCLA_CLASSES, UTD_MHAD_CLASSES
from finetec.data.sample import Sample
from finetec.data.synthetic import CLASS_NAMES, make_dataset
from finetec.errors import FinetecError
from finetec.layouts import get_layout

PENN_ACTION = ("baseball_pitch", "baseball_swing", "bench_press", "bowl", "clean_and_jerk", "golf_swing",
               "jump_rope", "jumping_jacks", "pullup", "pushup", "situp", "squat", "strum_guitar",
               "tennis_forehand", "tennis_serve")


def _named(names, pairs):
    return {(names[i], names[j]) for i, j in pairs}


def test_utd_mhad_pairs_are_found_by_name():
    assert _named(UTD_MHAD_CLASSES, mirror_pairs(UTD_MHAD_CLASSES)) == {
        ("swipe left", "swipe right"), ("draw circle clockwise", "draw circle counter-clockwise")}


@pytest.mark.parametrize("names", [NW_UCLA_CLASSES, PENN_ACTION, NTU60_CLASSES])
def test_datasets_without_mirror_classes_keep_every_label(names):
    np.testing.assert_array_equal(mirror_labels(names), np.arange(len(names)))


def test_spellings_case_and_whole_words():
    names = ["Turn Left", "turn_right", "rotate cw", "rotate-ccw", "spin clockwise", "spin anticlockwise",
             "leftover", "rightmost", "wave"]
    assert _named(names, mirror_pairs(names)) == {
        ("Turn Left", "turn_right"), ("rotate cw", "rotate-ccw"), ("spin clockwise", "spin anticlockwise")}


def test_synthetic_declares_the_pair_the_name_rule_cannot_see():
    ds = make_dataset("coco17", clips=28, frames=20, seed=0)
    perm = mirror_labels(ds.class_names, ds.meta)
    swapped = {(ds.class_names[i], ds.class_names[j]) for i, j in enumerate(perm) if i < j}
    assert swapped == {("kick_left", "kick_right"), ("circle_right_cw", "circle_right_ccw")}
    assert list(ds.class_names) == list(CLASS_NAMES)
    assert np.array_equal(perm[perm], np.arange(len(perm)))  # an involution


@pytest.mark.parametrize("declared, message", [
    ([["a", "nope"]], "unknown class"),
    ([["a", "b"], ["a", "c"]], "more than one"),
    ([["a", "a"]], "with itself"),
    (["ab"], "pairs"),
])
def test_bad_declarations_are_one_line_errors(declared, message):
    with pytest.raises(FinetecError, match=message) as e:
        mirror_labels(["a", "b", "c"], {"mirror_classes": declared}, where="my.finetec.npz")
    assert "my.finetec.npz" in str(e.value) and "\n" not in str(e.value)


def test_a_declaration_wins_over_the_name_rule():
    names = ["step left", "step right", "hop"]
    perm = mirror_labels(names, {"mirror_classes": [["step left", "hop"]]})
    assert perm.tolist() == [2, 1, 0]


@pytest.mark.parametrize("label, expected", [(4, 5), (5, 4), (2, 3), (0, 0)])
def test_the_pipeline_swaps_the_label_of_a_flipped_mirror_class(label, expected):
    layout = get_layout("coco17")
    kp = np.random.default_rng(0).normal(size=(1, 20, 17, 2)).astype(np.float32) * 20 + 100
    s = Sample(kp, np.ones((1, 20, 17), bool), label=label, id="c")
    ds = make_dataset("coco17", clips=14, frames=20, seed=0)
    perm = mirror_labels(ds.class_names, ds.meta)
    base = dict(clip_len=16, augment=True, filler="linear")
    always = ClipPipeline(layout, PipelineConfig(**base, flip_prob=1.0), train=True, seed=3, mirror_labels=perm)
    never = ClipPipeline(layout, PipelineConfig(**base, flip_prob=0.0), train=True, seed=3, mirror_labels=perm)
    test = ClipPipeline(layout, PipelineConfig(**base, flip_prob=1.0), train=False, seed=3, mirror_labels=perm)
    assert always(s, 0)["label"] == expected
    assert never(s, 0)["label"] == label
    assert test(s, 0)["label"] == label  # test mode never augments
