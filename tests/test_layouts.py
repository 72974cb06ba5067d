import json

import numpy as np
import pytest

from finetec.errors import FinetecError
from finetec.layouts import REGION_NAMES, builtin_layouts, get_layout, load_layout_file

EXPECTED = {"coco17": 17, "ntu25": 25, "kinect_v1": 20, "utd_mhad20": 20, "penn13": 13,
            "h36m17": 17, "openpose18": 18, "mediapipe33": 33}


def test_all_builtin_layouts_present():
    assert set(EXPECTED) <= set(builtin_layouts())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_layout_invariants(name):
    L = get_layout(name)
    V = EXPECTED[name]
    assert L.num_joints == V
    # a tree: V-1 edges, every joint reaches the root
    assert len(L.edges) == V - 1
    parents = L.parents
    for v in range(V):
        u, steps = v, 0
        while parents[u] != u:
            u, steps = parents[u], steps + 1
            assert steps <= V
        assert u == L.root
    # five regions partition the joints
    assert tuple(sorted(L.regions)) == tuple(sorted(REGION_NAMES))
    members = sorted(j for r in REGION_NAMES for j in L.regions[r])
    assert members == list(range(V))
    # flip pairs: a left joint swaps with a right joint; the permutation is an involution
    perm = L.flip_permutation
    assert np.array_equal(perm[perm], np.arange(V))
    for a, b in L.flip_pairs:
        na, nb = L.joints[a], L.joints[b]
        assert ("left" in na and "right" in nb) or ("right" in na and "left" in nb), (na, nb)
    # flipping maps the left arm region onto the right arm region
    assert sorted(perm[list(L.regions["left_arm"])]) == sorted(L.regions["right_arm"])
    assert sorted(perm[list(L.regions["left_leg"])]) == sorted(L.regions["right_leg"])
    # adjacency: identity, inward, outward, each normalised over incoming weights
    A = L.adjacency()
    assert A.shape == (3, V, V)
    assert np.array_equal(A[0], np.eye(V, dtype=np.float32))
    assert np.array_equal(A[1] > 0, (A[2] > 0).T)
    for k in (1, 2):
        col = A[k].sum(0)
        assert np.allclose(col[col > 0], 1.0)
    assert (A[1] > 0).sum() == V - 1
    # the root receives inward messages from its children only
    children = [c for c, p in L.edges if p == L.root]
    assert sorted(np.flatnonzero(A[1][:, L.root])) == sorted(children)


def test_user_layout_by_names(tmp_path):
    spec = {
        "name": "stick5", "joints": ["head", "left_hand", "right_hand", "left_foot", "right_foot"],
        "edges": [["left_hand", "head"], ["right_hand", "head"], ["left_foot", "head"], ["right_foot", "head"]],
        "center": ["head"],
        "regions": {"head_torso": ["head"], "left_arm": ["left_hand"], "right_arm": ["right_hand"],
                    "left_leg": ["left_foot"], "right_leg": ["right_foot"]},
        "flip_pairs": [["left_hand", "right_hand"], ["left_foot", "right_foot"]],
    }
    p = tmp_path / "stick5.json"
    p.write_text(json.dumps(spec))
    L = get_layout(str(p))
    assert L.num_joints == 5 and L.root == 0
    assert list(L.flip_permutation) == [0, 2, 1, 4, 3]
    y = tmp_path / "stick5.yaml"
    import yaml

    y.write_text(yaml.safe_dump(spec))
    assert load_layout_file(y).to_dict() == L.to_dict()


@pytest.mark.parametrize("breakage,needle", [
    (lambda d: d["regions"].update(head_torso=[]), "region"),
    (lambda d: d["regions"].update(left_arm=[0, 1]), "exactly one region"),
    (lambda d: d["edges"].append([0, 1]), "tree"),
    (lambda d: d.update(edges=[["head", "nose"]]), "unknown joint"),
    (lambda d: d.pop("center"), "missing"),
])
def test_bad_user_layout_names_the_file(tmp_path, breakage, needle):
    d = get_layout("coco17").to_dict()
    d["joints"] = d["joints"]
    d["joints"][0] = "head"
    breakage(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(FinetecError) as e:
        load_layout_file(p)
    assert str(p) in str(e.value) and needle in str(e.value)


def test_unknown_layout():
    with pytest.raises(FinetecError, match="unknown layout"):
        get_layout("nope")
