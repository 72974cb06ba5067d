"""GCN backbones (ST-GCN, ST-GCN++, CTR-GCN) and their units."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from finetec.errors import FinetecError
from finetec.layouts import builtin_layouts, get_layout
from finetec.models.gcn import SMALL, SkeletonGCN
from finetec.models.layers import (CTRGCUnit, GraphConv, MultiBranchTCN, MultiScaleTCN, TemporalConv,
                                   count_parameters)
from finetec.models.registry import create_model, list_models

BACKBONES = ("stgcn", "stgcnpp", "ctrgcn")
TINY = dict(base_channels=8, num_stages=3, inflate_stages=(3,), down_stages=(3,))


def tiny(name: str, layout="ntu25", in_channels: int = 3, num_classes: int = 5, **kw) -> SkeletonGCN:
    torch.manual_seed(0)
    return create_model(name, num_classes=num_classes, layout=layout, in_channels=in_channels, **{**TINY, **kw})


def inputs(N=2, M=1, T=8, V=25, C=3, p_missing=0.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, M, T, V, C, generator=g)
    mask = torch.rand(N, M, T, V, generator=g) > p_missing
    return x, mask


def first_feature_weight(model: SkeletonGCN) -> torch.nn.Parameter:
    """The 1x1 conv weight that first transforms the input features (not CTR-GCN's relation convs)."""
    gcn = model.blocks[0].gcn
    return gcn.feat_weight if isinstance(gcn, CTRGCUnit) else gcn.conv.weight


def test_registered_names():
    names = set(list_models())
    assert {"stgcn", "stgcnpp", "ctrgcn", "stgcn_small", "stgcnpp_small", "ctrgcn_small"} <= names


@pytest.mark.parametrize("layout", builtin_layouts())
@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("C", [2, 3])
@pytest.mark.parametrize("M", [1, 2])
def test_shapes_every_layout(name, layout, C, M):
    V = get_layout(layout).num_joints
    model = tiny(name, layout, C, num_classes=7).eval()
    x, mask = inputs(N=2, M=M, T=8, V=V, C=C)
    with torch.no_grad():
        logits = model(x, mask)
        feats = model.extract_features(x, mask)
        fmap = model.feature_map(x, mask)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    assert feats.shape == (2, 16) == (2, model.out_channels)
    assert fmap.shape[2:] == (16, 4, V)          # T' = 8 / 2 with one down stage
    assert torch.allclose(model.fc(feats), logits, atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("C", [2, 3])
def test_backward_reaches_every_parameter(name, C):
    model = tiny(name, "coco17", C).train()
    x, mask = inputs(N=3, M=2, V=17, C=C)
    loss = torch.nn.functional.cross_entropy(model(x, mask), torch.tensor([0, 1, 2]))
    loss.backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert model.fc.weight.grad.abs().sum() > 0
    assert first_feature_weight(model).grad.abs().sum() > 0


# Published parameter counts at NTU-60 3D input (C=3, V=25, K=60), head included.
@pytest.mark.parametrize("name,published", [("stgcn", 3.10e6), ("stgcnpp", 1.39e6), ("ctrgcn", 1.46e6)])
def test_parameter_counts_match_published(name, published):
    with torch.device("meta"):
        model = create_model(name, num_classes=60, layout="ntu25", in_channels=3)
    n = count_parameters(model)
    assert abs(n - published) / published < 0.05, n


@pytest.mark.parametrize("name", ["stgcn_small", "stgcnpp_small", "ctrgcn_small"])
def test_small_presets_use_the_cpu_variant(name):
    with torch.device("meta"):
        model = create_model(name, num_classes=60, layout="kinect_v1", in_channels=3)
    for k, v in SMALL.items():
        assert model.config[k] == (list(v) if isinstance(v, tuple) else v)
    assert len(model.blocks) == SMALL["num_stages"] and model.out_channels == 128
    with torch.device("meta"):
        full = create_model(name[:-6], num_classes=60, layout="kinect_v1", in_channels=3)
    assert count_parameters(model) < count_parameters(full) / 4


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("train", [False, True])
def test_masked_values_do_not_matter(name, train):
    model = tiny(name, "penn13", 2, mask_channel=True)
    model.train(train)
    x, mask = inputs(N=3, M=2, V=13, C=2, p_missing=0.4)
    clean = torch.where(mask[..., None], x, torch.zeros(()))
    garbage = clean.clone()
    garbage[~mask] = torch.tensor([1e6, float("nan")])
    with torch.no_grad():
        a = model(clean, mask)
        b = model(garbage, mask)
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", BACKBONES)
def test_mask_channel_makes_the_mask_visible(name):
    model = tiny(name, "penn13", 2, mask_channel=True).eval()
    w = first_feature_weight(model)               # conv (out, in, 1, 1) or CTR-GCN's (K, out, in)
    assert (w.shape[1] if w.dim() == 4 else w.shape[-1]) == 3    # 2 coordinates + the mask
    x = torch.zeros(2, 1, 8, 13, 2)
    m1 = torch.ones(2, 1, 8, 13, dtype=torch.bool)
    m2 = m1.clone()
    m2[:, :, ::2] = False
    with torch.no_grad():
        assert not torch.allclose(model(x, m1), model(x, m2))
        assert torch.allclose(model(x, m1), model(x, None))   # no mask = all observed


@pytest.mark.parametrize("name", BACKBONES)
def test_absent_person_is_left_out_of_the_pool(name):
    model = tiny(name, "ntu25", 3).eval()
    x, mask = inputs(N=2, M=1)
    other = 5.0 + 10.0 * torch.randn_like(x)         # a very different second person
    x2 = torch.cat([x, other], dim=1)
    mask2 = torch.cat([mask, torch.zeros_like(mask)], dim=1)
    with torch.no_grad():
        single = model.extract_features(x, mask)
        alone = model.extract_features(other, torch.ones_like(mask))
        padded = model.extract_features(x2, mask2)
        both_present = model.extract_features(x2, torch.cat([mask, torch.ones_like(mask)], dim=1))
    assert (single - alone).abs().max() > 0.1 * single.abs().max()
    assert torch.allclose(single, padded, atol=1e-5)
    assert torch.allclose(both_present, (single + alone) / 2, atol=1e-5)


def test_persons_are_pooled_symmetrically():
    model = tiny("stgcnpp", "ntu25", 3).eval()
    x, mask = inputs(N=2, M=2)
    with torch.no_grad():
        a = model(x, mask)
        b = model(x.flip(1), mask.flip(1))
    assert torch.allclose(a, b, atol=1e-5)


def test_mvc_data_bn_rejects_too_many_persons():
    model = tiny("ctrgcn", "ntu25", 3).eval()
    assert model.config["data_bn"] == "MVC" and model.config["num_person"] == 2
    x, mask = inputs(M=3)
    with pytest.raises(ValueError, match="at most 2 persons"):
        model(x, mask)


def test_wrong_input_shape_is_reported():
    model = tiny("stgcn", "ntu25", 3)
    with pytest.raises(ValueError, match="V=25 joints and C=3"):
        model(torch.zeros(1, 1, 8, 25, 2))
    with pytest.raises(ValueError, match="mask must have shape"):
        model(torch.zeros(1, 1, 8, 25, 3), torch.ones(1, 1, 8, 24, dtype=torch.bool))


@pytest.mark.parametrize("name", BACKBONES + ("stgcnpp_small",))
def test_config_rebuilds_identical_model(name):
    model = tiny(name, "utd_mhad20", 3, mask_channel=True, dropout=0.2).eval()
    cfg = json.loads(json.dumps(model.config))
    assert cfg["name"] == name and cfg["layout"] == "utd_mhad20" and cfg["dropout"] == 0.2
    rebuilt = create_model(**cfg).eval()
    sd, sd2 = model.state_dict(), rebuilt.state_dict()
    assert {k: v.shape for k, v in sd.items()} == {k: v.shape for k, v in sd2.items()}
    rebuilt.load_state_dict(sd)
    x, mask = inputs(V=20)
    with torch.no_grad():
        assert torch.equal(model(x, mask), rebuilt(x, mask))
    assert rebuilt.config == model.config


@pytest.mark.parametrize("bad,match", [
    (dict(inflate_stages=(1,)), "inflate_stages"),
    (dict(down_stages=(9,)), "down_stages"),
    (dict(data_bn="XY"), "data_bn"),
    (dict(base_channels=4), "too narrow"),
    (dict(dropout=1.5), "dropout"),
    (dict(num_stages=0), "num_stages"),
])
def test_invalid_configuration_is_a_user_error(bad, match):
    with pytest.raises(FinetecError, match=match):
        tiny("stgcnpp", **bad)


def test_unknown_option_for_backbone():
    with pytest.raises(FinetecError, match="no option.*tcn_branches"):
        tiny("ctrgcn", tcn_branches=[(3, 1)])


def test_graph_structure_per_kind():
    s, p, c = (tiny(n) for n in BACKBONES)
    g = s.blocks[1].gcn
    assert "A" in dict(g.named_buffers()) and torch.equal(g.PA.detach(), torch.ones_like(g.PA))
    assert isinstance(p.blocks[1].gcn.A, torch.nn.Parameter)
    assert isinstance(c.blocks[1].gcn, CTRGCUnit) and isinstance(c.blocks[1].gcn.A, torch.nn.Parameter)
    A = torch.as_tensor(get_layout("ntu25").adjacency())
    assert torch.equal(p.blocks[0].gcn.A.detach(), A)


# -- units --------------------------------------------------------------------------------------
def test_graph_conv_aggregates_along_the_layout_edges():
    A = torch.as_tensor(get_layout("penn13").adjacency())
    unit = GraphConv(1, 1, A, adaptive="none").eval()
    with torch.no_grad():
        unit.conv.weight.fill_(1.0)
        unit.conv.bias.zero_()
    x = torch.rand(2, 1, 4, 13)
    with torch.no_grad():
        y = unit(x)
    expected = np.einsum("nctv,kvw->nctw", x.numpy(), A.numpy()) / np.sqrt(1 + unit.bn.eps)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-5, atol=1e-6)
    # a joint with no neighbours in x receives only its own value
    e = torch.zeros(1, 1, 1, 13)
    child, parent = get_layout("penn13").edges[0]
    e[..., child] = 1.0
    with torch.no_grad():
        y = unit(e)
    assert y[0, 0, 0, parent] > 0 and y[0, 0, 0, child] > 0
    assert int((y > 0).sum()) == 2 + sum(1 for c, p in get_layout("penn13").edges if p == child)


def test_importance_and_offset_graphs():
    A = torch.as_tensor(get_layout("coco17").adjacency())
    imp = GraphConv(2, 4, A, adaptive="importance")
    with torch.no_grad():
        imp.PA.mul_(2.0)
    assert torch.allclose(imp.graph(), 2 * A)
    off = GraphConv(2, 4, A, adaptive="offset")
    assert torch.allclose(off.graph(), A, atol=1e-5)


@pytest.mark.parametrize("T,stride", [(9, 1), (9, 2), (8, 2), (1, 2)])
def test_temporal_units_keep_same_padding(T, stride):
    x = torch.randn(2, 12, T, 5)
    t_out = (T + stride - 1) // stride
    assert TemporalConv(12, 6, 9, stride)(x).shape == (2, 6, t_out, 5)
    assert MultiBranchTCN(12, 12, stride)(x).shape == (2, 12, t_out, 5)
    assert MultiScaleTCN(12, 16, 5, stride, (1, 2))(x).shape == (2, 16, t_out, 5)


def test_temporal_conv_mixes_only_along_time():
    unit = TemporalConv(1, 1, 3, norm=False)
    with torch.no_grad():
        unit.conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).view(1, 1, 3, 1))
        unit.conv.bias.zero_()
    x = torch.zeros(1, 1, 5, 2)
    x[0, 0, 2, 1] = 1.0
    y = unit(x)[0, 0].detach()
    assert torch.equal(y[:, 0], torch.zeros(5))
    assert torch.equal(y[:, 1], torch.tensor([0.0, 3.0, 2.0, 1.0, 0.0]))


def test_multibranch_channel_split_uses_every_channel():
    unit = MultiBranchTCN(8, 14, branches=((3, 1), ("max", 3), "1x1"))
    assert unit.widths == [6, 4, 4]
    assert unit.head.out_channels == 10 and unit.pointwise.out_channels == 4


def test_ctrgc_with_zero_alpha_is_a_plain_graph_conv():
    A = torch.as_tensor(get_layout("penn13").adjacency())
    unit = CTRGCUnit(4, 4, A).eval()
    x = torch.randn(2, 4, 6, 13)
    with torch.no_grad():
        feats = torch.einsum("koc,nctv->knotv", unit.feat_weight, x) + unit.feat_bias[:, None, :, None, None]
        y = sum(torch.einsum("nctv,vw->nctw", feats[k], A[k]) for k in range(A.shape[0]))
        expected = torch.relu(unit.bn(y) + x)
        assert torch.allclose(unit(x), expected, atol=1e-6)
        unit.alpha.fill_(1.0)
        unit.bn.weight.fill_(1.0)
        refined = unit(x)
        unit.alpha.fill_(0.0)
        assert not torch.allclose(refined, unit(x), atol=1e-4)
