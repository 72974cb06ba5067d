"""The plain formulation of the GCN backbones' units, as first written (and as in the reference
implementations: PYSKL, the official CTR-GCN): one module per branch, the graph einsum, per-subset
CTRGC modules applied to every frame, out-of-place additions, BatchNorm as a separate op.

The tests compare every unit of :mod:`finetec.models.layers` (outputs, gradients, loading of
its state dict) with these, and ``benchmarks/bench_backbones.py`` times both. Not part of the
package: this is the yardstick, not something to use.
"""
from __future__ import annotations

import sys
from typing import Sequence

import torch
from torch import nn

from finetec.models.gcn import SkeletonGCN, _make_block
from finetec.models.layers import (ADAPTIVE_MODES, MSTCN_BRANCHES, BranchSpec, Zero, _as_graph, _check_branch,
                                   _split_channels, bn_init, conv_init)
from finetec.layouts import get_layout
from finetec.models.registry import model_config

class GraphConv(nn.Module):
    """Spatial graph convolution (PYSKL ``unit_gcn`` semantics, 'pre' conv position).

    Args:
        in_channels, out_channels: channels of x (N, C_in, T, V) and of the output.
        A: (K, V, V) graph.
        adaptive: one of :data:`ADAPTIVE_MODES`.
        with_res: add a residual (1x1 conv + BN when the widths differ) before the activation.

    Shape: (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, adaptive: str = "importance",
                 with_res: bool = False):
        super().__init__()
        if adaptive not in ADAPTIVE_MODES:
            raise ValueError(f"adaptive must be one of {ADAPTIVE_MODES}, got {adaptive!r}")
        A = _as_graph(A)
        self.num_subsets = A.shape[0]
        self.out_channels = out_channels
        self.adaptive = adaptive
        if adaptive == "init":
            self.A = nn.Parameter(A)
        else:
            self.register_buffer("A", A)
        if adaptive == "importance":
            self.PA = nn.Parameter(torch.ones_like(A))
        elif adaptive == "offset":
            self.PA = nn.Parameter(torch.empty_like(A).uniform_(-1e-6, 1e-6))
        self.conv = nn.Conv2d(in_channels, out_channels * self.num_subsets, 1)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        if not with_res:
            self.down: nn.Module = Zero()
        elif in_channels != out_channels:
            self.down = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()

    def graph(self) -> torch.Tensor:
        """The effective (K, V, V) graph."""
        if self.adaptive == "importance":
            return self.A * self.PA
        if self.adaptive == "offset":
            return self.A + self.PA
        return self.A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        res = self.down(x)
        y = self.conv(x).view(n, self.num_subsets, self.out_channels, t, v)
        y = torch.einsum("nkctv,kvw->nctw", y, self.graph())
        return self.act(self.bn(y) + res)


class TemporalConv(nn.Module):
    """Temporal convolution over frames: Conv(kernel x 1, stride, dilation) + BN + dropout.

    Shape: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V) ("same" padding).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 dilation: int = 1, norm: bool = True, dropout: float = 0.0):
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1), padding=(pad, 0),
                              stride=(stride, 1), dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))


def _max_pool(kernel: int, stride: int) -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=(kernel, 1), stride=(stride, 1), padding=((kernel - 1) // 2, 0))


class MultiBranchTCN(nn.Module):
    """ST-GCN++ multi-branch temporal unit (PYSKL ``mstcn``).

    Each branch sees the input: (k, d) = 1x1 conv-BN-ReLU then a k x 1 temporal conv with dilation
    d; ("max", k) = 1x1 conv-BN-ReLU then max-pool over k frames; "1x1" = a strided 1x1 conv. The
    concatenation goes through BN-ReLU-1x1 conv, then BN and dropout.

    Shape: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 branches: Sequence[BranchSpec] = MSTCN_BRANCHES, dropout: float = 0.0):
        super().__init__()
        specs = [_check_branch(b) for b in branches]
        widths = _split_channels(out_channels, len(specs))
        mods = []
        for spec, c in zip(specs, widths):
            if spec == "1x1":
                mods.append(nn.Conv2d(in_channels, c, kernel_size=1, stride=(stride, 1)))
                continue
            pre = [nn.Conv2d(in_channels, c, kernel_size=1), nn.BatchNorm2d(c), nn.ReLU()]
            if spec[0] == "max":
                mods.append(nn.Sequential(*pre, _max_pool(spec[1], stride)))
            else:
                mods.append(nn.Sequential(*pre, TemporalConv(c, c, spec[0], stride, spec[1], norm=False)))
        self.branches = nn.ModuleList(mods)
        self.transform = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(),
                                       nn.Conv2d(out_channels, out_channels, kernel_size=1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([b(x) for b in self.branches], dim=1)
        return self.drop(self.bn(self.transform(y)))


class MultiScaleTCN(nn.Module):
    """CTR-GCN multi-scale temporal unit.

    Branches: one per dilation (1x1 conv-BN-ReLU, kernel x 1 conv with that dilation, BN), a
    max-pool branch (1x1 conv-BN-ReLU, 3-frame max-pool, BN) and a strided 1x1 conv + BN branch;
    outputs are concatenated (no residual here: the block adds it).

    Shape: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1,
                 dilations: Sequence[int] = (1, 2), dropout: float = 0.0):
        super().__init__()
        widths = _split_channels(out_channels, len(dilations) + 2)
        mods = []
        for d, c in zip(dilations, widths):
            mods.append(nn.Sequential(nn.Conv2d(in_channels, c, 1), nn.BatchNorm2d(c), nn.ReLU(),
                                      TemporalConv(c, c, kernel_size, stride, int(d))))
        c = widths[len(dilations)]
        mods.append(nn.Sequential(nn.Conv2d(in_channels, c, 1), nn.BatchNorm2d(c), nn.ReLU(),
                                  _max_pool(3, stride), nn.BatchNorm2d(c)))
        c = widths[-1]
        mods.append(nn.Sequential(nn.Conv2d(in_channels, c, 1, stride=(stride, 1)), nn.BatchNorm2d(c)))
        self.branches = nn.ModuleList(mods)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)
            elif isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.cat([b(x) for b in self.branches], dim=1))


class CTRGC(nn.Module):
    """Channel-wise topology refinement for one graph subset.

    From temporally pooled relation features it computes a per-channel refinement
    ``R = conv4(tanh(f1(x)_v - f2(x)_w))`` (N, C_out, V, V) and the transformed features
    ``conv3(x)`` (N, C_out, T, V). :class:`CTRGCUnit` aggregates the features with the topology
    ``alpha * R + A`` (the shared graph refined per channel).
    """

    def __init__(self, in_channels: int, out_channels: int, rel_reduction: int = 8):
        super().__init__()
        self.rel_channels = 8 if in_channels <= 16 else in_channels // rel_reduction
        self.conv1 = nn.Conv2d(in_channels, self.rel_channels, 1)
        self.conv2 = nn.Conv2d(in_channels, self.rel_channels, 1)
        self.conv3 = nn.Conv2d(in_channels, out_channels, 1)
        self.conv4 = nn.Conv2d(self.rel_channels, out_channels, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                conv_init(m)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, C_in, T, V) -> (refinement (N, C_out, V, V), features (N, C_out, T, V))."""
        q = self.conv1(x).mean(-2)                            # (N, R, V)
        k = self.conv2(x).mean(-2)                            # (N, R, V)
        rel = torch.tanh(q.unsqueeze(-1) - k.unsqueeze(-2))   # (N, R, V, V)
        return self.conv4(rel), self.conv3(x)


class CTRGCUnit(nn.Module):
    """CTR-GCN spatial unit: one CTRGC per subset of a learnable graph, summed, BN, residual, ReLU.

    Subset k aggregates its features with ``alpha * R_k + A[k]`` per channel; ``alpha`` (a
    learnable scalar, initialised to 0) scales the refinement. The output BN starts at scale 1e-6
    as published.

    Shape: (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, rel_reduction: int = 8):
        super().__init__()
        A = _as_graph(A)
        self.convs = nn.ModuleList(CTRGC(in_channels, out_channels, rel_reduction) for _ in range(A.shape[0]))
        self.A = nn.Parameter(A)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        bn_init(self.bn, 1e-6)
        if in_channels != out_channels:
            bn = nn.BatchNorm2d(out_channels)
            bn_init(bn, 1.0)
            conv = nn.Conv2d(in_channels, out_channels, 1)
            conv_init(conv)
            self.down: nn.Module = nn.Sequential(conv, bn)
        else:
            self.down = nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = 0
        for k, ctrgc in enumerate(self.convs):
            refinement, feats = ctrgc(x)
            topology = refinement * self.alpha + self.A[k][None, None]   # (N, C_out, V, V)
            y = y + torch.einsum("ncvw,nctv->nctw", topology, feats)
        return self.act(self.bn(y) + self.down(x))


class GCNBlock(nn.Module):
    """One spatio-temporal block: ``relu(tcn(gcn(x)) + residual(x))``.

    The residual is nothing (first block), the identity (same width, stride 1) or a strided
    1x1 temporal conv + BN.
    """

    def __init__(self, gcn: nn.Module, tcn: nn.Module, in_channels: int, out_channels: int, stride: int = 1,
                 residual: bool = True):
        super().__init__()
        self.gcn = gcn
        self.tcn = tcn
        if not residual:
            self.residual: nn.Module = Zero()
        elif in_channels == out_channels and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = TemporalConv(in_channels, out_channels, kernel_size=1, stride=stride)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.tcn(self.gcn(x)) + self.residual(x))


def make_reference_block(kind: str, c_in: int, c_out: int, A: torch.Tensor, stride: int, **options) -> GCNBlock:
    return _make_block(kind, c_in, c_out, A, stride, units=sys.modules[__name__], **options)


class ReferenceSkeletonGCN(SkeletonGCN):
    """:class:`SkeletonGCN` built from the plain units above (same options, same parameters drawn
    from the random stream in the same order)."""

    make_block = staticmethod(make_reference_block)


def reference_model(name: str, *, num_classes: int, layout: str, in_channels: int, **overrides) -> ReferenceSkeletonGCN:
    """The registered backbone ``name`` (``stgcnpp``, ``ctrgcn_small``, ...) in the plain formulation,
    with the registered defaults and ``overrides``."""
    return ReferenceSkeletonGCN(num_classes, get_layout(layout), in_channels, model_config(name, **overrides))
