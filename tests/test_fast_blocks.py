"""The fast GCN units against the plain formulation (tests/reference_gcn.py): same parameters
drawn from the random stream, same outputs and gradients (train mode), same eval outputs with and
without BatchNorm folding, and checkpoints of the plain module layout load."""
from __future__ import annotations

import io

import pytest
import torch

import reference_gcn as ref
from finetec.layouts import get_layout
from finetec.models import layers
from finetec.models.registry import create_model

TINY = dict(base_channels=12, num_stages=4, inflate_stages=(3,), down_stages=(3, 4))
A = torch.as_tensor(get_layout("penn13").adjacency(), dtype=torch.float32)

UNITS = {
    "graph_conv_init_res": (lambda m: m.GraphConv(6, 10, A, adaptive="init", with_res=True), 6),
    "graph_conv_importance": (lambda m: m.GraphConv(8, 8, A, adaptive="importance"), 8),
    "graph_conv_narrow_input": (lambda m: m.GraphConv(3, 16, A, adaptive="importance", with_res=True), 3),
    "graph_conv_offset_identity_res": (lambda m: m.GraphConv(8, 8, A, adaptive="offset", with_res=True), 8),
    "temporal_conv_stride2": (lambda m: m.TemporalConv(8, 12, 9, 2), 8),
    "multibranch_stride1": (lambda m: m.MultiBranchTCN(12, 12, 1), 12),
    "multibranch_stride2": (lambda m: m.MultiBranchTCN(12, 12, 2), 12),
    "multibranch_custom": (lambda m: m.MultiBranchTCN(8, 14, 2, branches=("1x1", (5, 2), ("max", 5), "1x1")), 8),
    "multiscale_stride1": (lambda m: m.MultiScaleTCN(12, 16, 5, 1, (1, 2)), 12),
    "multiscale_stride2": (lambda m: m.MultiScaleTCN(12, 12, 5, 2, (1, 2, 3)), 12),
    "ctrgc_down": (lambda m: m.CTRGCUnit(3, 16, A), 3),
    "ctrgc_identity": (lambda m: m.CTRGCUnit(24, 24, A, rel_reduction=4), 24),
}


def _pair(build):
    torch.manual_seed(0)
    plain = build(ref)
    after_plain = torch.rand(3)
    torch.manual_seed(0)
    fast = build(layers)
    after_fast = torch.rand(3)
    return plain, fast, torch.equal(after_plain, after_fast)


def _randomise_stats(module: torch.nn.Module, seed: int = 1) -> None:
    """Non-trivial BN statistics and affine (so that eval mode and folding are exercised), and a
    non-zero CTR-GC alpha (so that the refinement matters)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.randn(m.num_features, generator=g))
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.2)
        for name, p in module.named_parameters():
            if name.endswith("alpha"):
                p.fill_(0.7)


def _mapped_grads(plain: torch.nn.Module, fast: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The plain module's parameter gradients, renamed / packed like its state dict on loading."""
    grads = {k: p.grad for k, p in plain.named_parameters()}
    for name, m in fast.named_modules():
        if isinstance(m, layers.Fusable):
            m._upgrade_state_dict(grads, name + "." if name else "")
    return grads


def _close(actual: torch.Tensor, expected: torch.Tensor, rel: float = 2e-5, scale: float | None = None) -> None:
    """Equal up to float rounding: ``rel`` of the largest magnitude of ``expected`` (or of ``scale``)."""
    scale = scale or expected.abs().max().item() or 1.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * scale)


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_unit_matches_the_plain_formulation(unit):
    build, c_in = UNITS[unit]
    plain, fast, same_stream = _pair(build)
    assert same_stream, "the unit must draw its parameters like the plain one (same numbers for a seed)"
    _randomise_stats(plain)
    fast.load_state_dict(plain.state_dict())          # the plain layout loads
    V = A.shape[-1]
    x = torch.randn(3, c_in, 11, V, generator=torch.Generator().manual_seed(2))

    # training mode: outputs, input gradients and parameter gradients
    plain.train(), fast.train()
    xp, xf = x.clone().requires_grad_(), x.clone().requires_grad_()
    yp, yf = plain(xp), fast(xf)
    _close(yf, yp)
    w = torch.randn(yp.shape, generator=torch.Generator().manual_seed(3))
    (yp * w).sum().backward()
    (yf * w).sum().backward()
    _close(xf.grad, xp.grad)
    expected = _mapped_grads(plain, fast)
    # (a conv bias before a training-mode BN has a zero gradient up to rounding: compare every
    # gradient at the scale of the largest one)
    largest = max(g.abs().max().item() for g in expected.values())
    for name, p in fast.named_parameters():
        _close(p.grad, expected[name], scale=largest)
    # the BN running statistics were updated identically
    probe = _pair(build)[1]
    probe.load_state_dict(plain.state_dict())
    fast_state = fast.state_dict()
    for k, v in probe.state_dict().items():
        _close(fast_state[k].float(), v.float())

    # eval mode, plain BN and folded BN
    plain.eval(), fast.eval()
    with torch.no_grad():
        ye = plain(x)
        _close(fast(x), ye)
        fast.fuse()
        assert fast.fused is not None
        _close(fast(x), ye)
        # the channels-last layout of CPU inference (layers.inference_layout): same outputs, and
        # the unit keeps the layout for the next one
        x_cl = layers.inference_layout(x)
        assert layers.is_channels_last(x_cl)
        y_cl = fast(x_cl)
        assert layers.is_channels_last(y_cl)
        _close(y_cl, ye)
        fast.train()
        assert fast.fused is None and fast._fused is None   # training never sees folded weights


@pytest.mark.parametrize("name", ["stgcn", "stgcnpp", "ctrgcn"])
def test_backbone_matches_the_plain_formulation(name):
    torch.manual_seed(0)
    plain = ref.reference_model(name, num_classes=5, layout="penn13", in_channels=2, num_person=2, **TINY)
    torch.manual_seed(0)
    fast = create_model(name, num_classes=5, layout="penn13", in_channels=2, num_person=2, **TINY)
    # the same parameters for a seed: numbers published before the fast units are reproduced
    expected = torch.nn.Module.state_dict(plain)
    probe = create_model(name, num_classes=5, layout="penn13", in_channels=2, num_person=2, **TINY)
    probe.load_state_dict(expected)
    for k, v in fast.state_dict().items():
        assert torch.equal(v, probe.state_dict()[k]), k
    _randomise_stats(plain)
    fast.load_state_dict(plain.state_dict())
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 2, 16, 13, 2, generator=g)
    mask = torch.rand(3, 2, 16, 13, generator=g) > 0.2
    labels = torch.tensor([0, 3, 1])

    plain.train(), fast.train()
    lp = torch.nn.functional.cross_entropy(plain(x, mask), labels)
    lf = torch.nn.functional.cross_entropy(fast(x, mask), labels)
    _close(lf, lp)
    lp.backward()
    lf.backward()
    grads = _mapped_grads(plain, fast)
    # (a conv bias before a training-mode BN has a zero gradient up to rounding: compare every
    # gradient at the scale of the largest one)
    largest = max(g.abs().max().item() for g in grads.values())
    for k, p in fast.named_parameters():
        _close(p.grad, grads[k], rel=2e-5, scale=largest)

    plain.eval()
    layouts = []
    fast.blocks[-1].register_forward_hook(lambda m, i, out: layouts.append(layers.is_channels_last(out)))
    with torch.no_grad():
        ye = plain(x, mask)
        _close(fast.eval()(x, mask), ye)
        _close(fast.fuse()(x, mask), ye)
    assert layouts == [True, True]   # CPU inference runs channels-last (layers.inference_layout)
    fast(x, mask)
    assert layouts[-1] is False      # with gradients recorded: NCHW


def test_old_checkpoint_file_loads_into_the_fast_units():
    torch.manual_seed(1)
    plain = ref.reference_model("ctrgcn", num_classes=4, layout="penn13", in_channels=2, **TINY)
    _randomise_stats(plain)
    buf = io.BytesIO()
    torch.save({"state_dict": plain.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["state_dict"]
    for name in ("ctrgcn",):
        fast = create_model(name, num_classes=4, layout="penn13", in_channels=2, **TINY)
        missing, unexpected = fast.load_state_dict(state, strict=True)
        assert not missing and not unexpected
        x = torch.randn(2, 1, 12, 13, 2)
        with torch.no_grad():
            _close(fast.eval()(x), plain.eval()(x))


def test_loading_a_state_dict_drops_the_folded_weights():
    torch.manual_seed(0)
    model = create_model("stgcnpp", num_classes=3, layout="penn13", in_channels=2, **TINY).fuse()
    x = torch.randn(1, 1, 8, 13, 2)
    with torch.no_grad():
        before = model(x)
        other = create_model("stgcnpp", num_classes=3, layout="penn13", in_channels=2, **TINY)
        _randomise_stats(other, seed=9)
        model.load_state_dict(other.state_dict())
        assert all(m._fused is None for m in model.modules() if isinstance(m, layers.Fusable))
        _close(model(x), other.eval()(x))
        assert not torch.allclose(model(x), before)


@pytest.mark.parametrize("kernel,stride,T", [(3, 1, 9), (3, 2, 9), (3, 2, 8), (5, 2, 11), (2, 1, 6), (1, 2, 5),
                                             (3, 1, 1)])
def test_temporal_max_pool_is_max_pool(kernel, stride, T):
    x = torch.randn(2, 3, T, 4, requires_grad=True)
    pool = torch.nn.MaxPool2d((kernel, 1), (stride, 1), ((kernel - 1) // 2, 0))
    expected = pool(x)
    got = layers.temporal_max_pool(x, kernel, stride)
    assert torch.equal(got, expected)
    with torch.no_grad():   # the shifted-maximum path
        assert torch.equal(layers.temporal_max_pool(x, kernel, stride), expected)
    w = torch.randn(expected.shape)
    (g1,) = torch.autograd.grad((expected * w).sum(), x)
    (g2,) = torch.autograd.grad((got * w).sum(), x)
    assert torch.equal(g1, g2)


def test_graph_aggregate_is_the_einsum():
    y = torch.randn(2, 3 * 5, 7, 13)
    expected = torch.einsum("nkctv,kvw->nctw", y.view(2, 3, 5, 7, 13), A)
    _close(layers.graph_aggregate(y, A), expected)


def test_graph_aggregate_channels_last():
    y = torch.randn(2, 3 * 5, 7, 13)
    expected = layers.graph_aggregate(y, A)
    got = layers.graph_aggregate(y.contiguous(memory_format=torch.channels_last), A)
    assert layers.is_channels_last(got)
    _close(got, expected)
