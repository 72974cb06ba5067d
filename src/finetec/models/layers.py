"""Building blocks of the skeleton GCN backbones.

All units work on feature maps ``x`` of shape (N, C, T, V): batch (persons folded in), channels,
frames, joints. Graphs are ``A`` tensors of shape (K, V, V) with the layout convention
``A[k, v, w]`` = weight with which joint ``v`` contributes to joint ``w`` (see
:meth:`finetec.layouts.Layout.adjacency`), so a graph convolution is
``y[n, c, t, w] = sum_k sum_v x_k[n, c, t, v] * A[k, v, w]``.

Units (faithful to the published blocks, written for this project):

* :class:`GraphConv` - ST-GCN / ST-GCN++ spatial unit: 1x1 conv to K subsets, graph aggregation,
  BN, optional residual, ReLU. ``adaptive``: ``"none"`` (fixed A), ``"importance"`` (ST-GCN edge
  importance weighting, A * W with W initialised to 1), ``"offset"`` (A + W, W ~ 0) or ``"init"``
  (ST-GCN++: A itself is a parameter initialised from the graph).
* :class:`TemporalConv` - temporal convolution (kernel x 1) + BN + dropout (ST-GCN's TCN).
* :class:`MultiBranchTCN` - ST-GCN++ multi-branch temporal unit (dilated convs, max-pool and
  1x1 branches, then a BN-ReLU-1x1 transform).
* :class:`MultiScaleTCN` - CTR-GCN's multi-scale temporal unit (dilated convs, max-pool, 1x1
  branches, each ending in BN, concatenated).
* :class:`CTRGC` / :class:`CTRGCUnit` - channel-wise topology refinement graph convolution.
* :class:`GCNBlock` - ``relu(tcn(gcn(x)) + residual(x))``, shared by all three backbones.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

ADAPTIVE_MODES = ("none", "importance", "offset", "init")
BranchSpec = Union[Sequence, str]   # (kernel, dilation) | ("max", kernel) | "1x1"
MSTCN_BRANCHES: tuple = ((3, 1), (3, 2), (3, 3), (3, 4), ("max", 3), "1x1")


def conv_init(conv: nn.Module) -> None:
    """Kaiming-normal (fan-out) weights, zero bias."""
    nn.init.kaiming_normal_(conv.weight, mode="fan_out")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


def bn_init(bn: nn.Module, scale: float) -> None:
    """Constant BN scale, zero shift."""
    nn.init.constant_(bn.weight, scale)
    nn.init.zeros_(bn.bias)


class Zero(nn.Module):
    """A residual path that contributes nothing."""

    def forward(self, x: torch.Tensor) -> torch.Tensor | int:
        return 0


def _as_graph(A: torch.Tensor) -> torch.Tensor:
    A = torch.as_tensor(A, dtype=torch.float32)
    if A.dim() != 3 or A.shape[1] != A.shape[2]:
        raise ValueError(f"a graph must have shape (K, V, V), got {tuple(A.shape)}")
    return A.clone()


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


def _split_channels(total: int, parts: int) -> list[int]:
    """Channel widths of ``parts`` branches summing to ``total`` (the first takes the remainder)."""
    if total < parts:
        raise ValueError(f"{total} channels cannot be split into {parts} branches")
    each = total // parts
    return [total - each * (parts - 1)] + [each] * (parts - 1)


def _check_branch(spec: BranchSpec) -> BranchSpec:
    if spec == "1x1":
        return spec
    if isinstance(spec, (list, tuple)) and len(spec) == 2:
        a, b = spec
        if a == "max" and isinstance(b, int) and b >= 1:
            return ("max", b)
        if isinstance(a, int) and isinstance(b, int) and a >= 1 and b >= 1:
            return (a, b)
    raise ValueError(f"a temporal branch is (kernel, dilation), ('max', kernel) or '1x1', got {spec!r}")


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


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ADAPTIVE_MODES", "CTRGC", "CTRGCUnit", "GCNBlock", "GraphConv", "MSTCN_BRANCHES", "MultiBranchTCN",
           "MultiScaleTCN", "TemporalConv", "Zero", "bn_init", "conv_init", "count_parameters"]
