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
* :class:`CTRGCUnit` - channel-wise topology refinement graph convolution.
* :class:`GCNBlock` - ``relu(tcn(gcn(x)) + residual(x))``, shared by all three backbones.

Speed (same mathematics as the plain formulation, up to float rounding; the plain formulation is
kept in ``tests/reference_gcn.py`` and every unit is compared with it there): the 1x1 heads of
the multi-branch temporal units are one conv, CTR-GCN's relation convs see the temporal mean,
graph aggregations are batched products on views (no layout copies), max-pooling over frames is
a maximum of shifted views, additions and ReLUs are in place, and :func:`fuse_batchnorm`
(``SkeletonGCN.fuse()``) folds the BatchNorms into the convolutions for inference. While
gradients are recorded, 1x1 convolutions are batched matrix products (:func:`conv1x1`; on a CPU
their backward is faster than the convolution's). Checkpoints
of the earlier module layout load (their weights are mapped when the state dict is loaded).
"""
from __future__ import annotations

from typing import Sequence, Union

import math

import torch
import torch.nn.functional as F
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


# -- eval-time BatchNorm folding --------------------------------------------------------------
def bn_affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) of an eval-mode BatchNorm (``bn(x) == x * scale + shift`` per channel), or
    None for a module that is not a BatchNorm (no normalisation)."""
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        return None
    if bn.running_var is None:
        raise ValueError("a BatchNorm without running statistics cannot be folded")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale.detach(), shift.detach()


def fold_conv(conv: nn.Conv2d, bn: nn.Module | None = None, scale: torch.Tensor | None = None,
              shift: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``bn(conv(x))`` as one convolution (``bn`` eval-mode, or an explicit
    per-output-channel affine ``scale``/``shift``)."""
    w = conv.weight.detach()
    b = conv.bias.detach() if conv.bias is not None else w.new_zeros(w.shape[0])
    if bn is not None:
        aff = bn_affine(bn)
        if aff is not None:
            scale, shift = aff
    if scale is None:
        return w, b
    return w * scale.view(-1, *([1] * (w.dim() - 1))), b * scale + shift


class Fusable(nn.Module):
    """A unit with an eval-time fast path in which its BatchNorms are folded into the convolutions.

    :meth:`fuse` computes the folded weights (from the current parameters and running statistics)
    and puts the unit in eval mode; the folded path is used while the unit stays in eval mode.
    ``train()`` and loading a state dict drop the folded weights (call :meth:`fuse` again), so
    training never sees them. The folded path computes the same function as the eval-mode unit,
    up to float rounding.
    """

    _fused: dict | None = None

    def _fold(self) -> dict:
        raise NotImplementedError

    @torch.no_grad()
    def fuse(self) -> "Fusable":
        self.eval()
        self._fused = self._fold()
        return self

    def unfuse(self) -> "Fusable":
        self._fused = None
        return self

    @property
    def fused(self) -> dict | None:
        """The folded weights when the fast path applies (eval mode after :meth:`fuse`), else None."""
        return None if self.training else self._fused

    def train(self, mode: bool = True):
        if mode:
            self._fused = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        # .to(device / dtype): fold again from the moved parameters
        out = super()._apply(fn, *args, **kwargs)
        if self._fused is not None:
            with torch.no_grad():
                self._fused = self._fold()
        return out

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._fused = None
        self._upgrade_state_dict(state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _upgrade_state_dict(self, state_dict: dict, prefix: str) -> None:
        """Rename / pack the entries of an older layout of this unit (checkpoints stay loadable)."""


def fuse_batchnorm(module: nn.Module) -> nn.Module:
    """Put ``module`` in eval mode and fold the BatchNorms of every :class:`Fusable` unit in it
    (an inference-time speed-up; ``module.train()`` undoes it). Returns ``module``."""
    module.eval()
    for m in module.modules():
        if isinstance(m, Fusable):
            m.fuse()
    return module


def conv1x1(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.conv2d(x, weight, bias)`` for a 1x1 kernel, stride 1: while gradients are recorded on a
    CPU, one batched product ``weight @ x[n]`` (the same sums; its forward and backward are faster
    than oneDNN's 1x1 convolution at the units' shapes on one thread, and whole training steps with
    it are measured by ``benchmarks/bench_backbones.py``); otherwise (inference, GPU, tracing for
    export) the convolution."""
    if not torch.is_grad_enabled() or x.device.type != "cpu" or torch.jit.is_tracing():
        return F.conv2d(x, weight, bias)
    n, c, t, v = x.shape
    co = weight.shape[0]
    w = weight.reshape(1, co, c).expand(n, co, c)
    x3 = x.reshape(n, c, t * v)
    y = torch.bmm(w, x3) if bias is None else torch.baddbmm(bias.view(1, co, 1).expand(n, co, t * v), w, x3)
    return y.view(n, co, t, v)


class Conv1x1(nn.Conv2d):
    """``nn.Conv2d(in_channels, out_channels, 1, ...)`` (the same parameters, initialisation and
    state dict) computed by :func:`conv1x1` when its stride is 1."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__(in_channels, out_channels, 1, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != (1, 1):
            return super().forward(x)
        return conv1x1(x, self.weight, self.bias)


def _pack(state_dict: dict, prefix: str, new: str, old: Sequence[str], how: str = "cat") -> None:
    """state_dict[prefix+new] = concatenation (or the first) of the old entries, which are removed."""
    keys = [prefix + k for k in old]
    if prefix + new in state_dict or not keys or not all(k in state_dict for k in keys):
        return
    vals = [state_dict.pop(k) for k in keys]
    state_dict[prefix + new] = vals[0] if how == "first" else torch.stack(vals) if how == "stack" \
        else torch.cat(vals)


def _no_rng(build):
    """Build a module without consuming random numbers (its weights are overwritten right after)."""
    with torch.random.fork_rng(devices=[]):
        return build()


def _packed_conv(convs: Sequence[nn.Conv2d], **kwargs) -> nn.Conv2d:
    """One 1x1 conv whose output channels are those of ``convs`` (same input), in order."""
    out = sum(c.out_channels for c in convs)
    packed = _no_rng(lambda: Conv1x1(convs[0].in_channels, out, **kwargs))
    with torch.no_grad():
        packed.weight.copy_(torch.cat([c.weight for c in convs]))
        packed.bias.copy_(torch.cat([c.bias for c in convs]))
    return packed


def temporal_max_pool(x: torch.Tensor, kernel: int, stride: int = 1) -> torch.Tensor:
    """``nn.MaxPool2d((kernel, 1), (stride, 1), ((kernel - 1) // 2, 0))`` over the frames of x
    (N, C, T, V); without gradients a maximum of shifted views (no index tensor; several times
    faster on a CPU)."""
    pad = (kernel - 1) // 2
    if torch.is_grad_enabled() and x.requires_grad:   # max-pool's backward (indices) is the cheaper one
        return F.max_pool2d(x, (kernel, 1), (stride, 1), (pad, 0))
    t_out = (x.shape[2] + 2 * pad - kernel) // stride + 1
    if pad:
        x = F.pad(x, (0, 0, pad, pad), value=-math.inf)
    span = (t_out - 1) * stride + 1
    out = x[:, :, 0:span:stride]
    for j in range(1, kernel):
        out = torch.maximum(out, x[:, :, j:j + span:stride])
    return out if kernel > 1 else out.clone()


def is_channels_last(x: torch.Tensor) -> bool:
    """True when x (N, C, T, V) is stored channels-last (N, T, V, C in memory) and not also
    contiguous (a tensor with C = 1 or T * V = 1 is both)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def inference_layout(x: torch.Tensor) -> torch.Tensor:
    """x (N, C, T, V) stored channels-last for a forward pass on a CPU without gradients, else x.

    oneDNN's convolutions, 1x1 and temporal alike, run up to several times faster on channels-last
    inputs than on NCHW ones on a CPU (``benchmarks/bench_backbones.py``); every unit of this module
    accepts both layouts and keeps channels-last to its output. Training (gradients recorded, where
    the 1x1 units are batched products on NCHW views, :func:`conv1x1`), GPUs and tracing for export
    keep NCHW."""
    if torch.is_grad_enabled() or x.device.type != "cpu" or torch.jit.is_tracing() or x.dim() != 4:
        return x
    return x.contiguous(memory_format=torch.channels_last)


def graph_aggregate(y: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``einsum("nkctv,kvw->nctw")`` of y (N, K*C, T, V) (subset-major channels) and A (K, V, V),
    as K accumulated batched matrix products on views of y (no layout copy). A channels-last y
    gives a channels-last result: one product of A, as a (V, V*K) matrix, with each frame's
    (V*K, C) block of y."""
    n, kc, t, v = y.shape
    K = A.shape[0]
    if is_channels_last(y):
        frames = y.permute(0, 2, 3, 1).reshape(n * t, v * K, kc // K)           # a view: (v, k) rows
        out = torch.matmul(A.permute(2, 1, 0).reshape(v, v * K), frames)        # (N*T, W, C)
        return out.view(n, t, v, kc // K).permute(0, 3, 1, 2)
    yy = y.view(n, K, kc // K * t, v).unbind(1)      # (one gradient op for the K views)
    out = torch.bmm(yy[0], A[0].expand(n, v, v))
    for k in range(1, K):
        out = _accumulate(out, yy[k], A[k].expand(n, v, v))
    return out.view(n, kc // K, t, v)


def _accumulate(out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``out + a @ b`` (batched), in place when the dtypes agree (not under bf16 autocast)."""
    if a.dtype == b.dtype == out.dtype:
        return out.baddbmm_(a, b)
    return torch.baddbmm(out, a, b)



class GraphConv(Fusable):
    """Spatial graph convolution (PYSKL ``unit_gcn`` semantics, 'pre' conv position).

    Args:
        in_channels, out_channels: channels of x (N, C_in, T, V) and of the output.
        A: (K, V, V) graph.
        adaptive: one of :data:`ADAPTIVE_MODES`.
        with_res: add a residual (1x1 conv + BN when the widths differ) before the activation.

    The aggregation is K accumulated batched products on views of the 1x1 conv's output (see
    :func:`graph_aggregate`), with no copy into another layout.

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
        self.conv = Conv1x1(in_channels, out_channels * self.num_subsets)
        self.bn = nn.BatchNorm2d(out_channels)
        if not with_res:
            self.down: nn.Module = Zero()
        elif in_channels != out_channels:
            self.down = nn.Sequential(Conv1x1(in_channels, out_channels), nn.BatchNorm2d(out_channels))
        else:
            self.down = nn.Identity()

    def graph(self) -> torch.Tensor:
        """The effective (K, V, V) graph."""
        if self.adaptive == "importance":
            return self.A * self.PA
        if self.adaptive == "offset":
            return self.A + self.PA
        return self.A

    def _fold(self) -> dict:
        scale, shift = bn_affine(self.bn)
        w, b = fold_conv(self.conv, scale=scale.repeat(self.num_subsets), shift=torch.zeros_like(shift).repeat(self.num_subsets))
        f = {"w": w, "b": b, "shift": shift.view(1, -1, 1, 1), "A": self.graph().detach()}
        if isinstance(self.down, nn.Sequential):
            f["down"] = fold_conv(self.down[0], self.down[1])
        return f

    def _conv_aggregate(self, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """``graph_aggregate(conv(x))``. For a narrow input (C_in * K <= C_out, e.g. the joint
        coordinates) the graph is applied to x first (the 1x1 conv commutes with it): the K
        aggregated copies of x are small, and the conv then writes C_out channels instead of
        K * C_out; the bias becomes a per-(channel, joint) term."""
        K = self.num_subsets
        n, c, t, v = x.shape
        if c * K > self.out_channels:
            return graph_aggregate(conv1x1(x, w, b), A)
        z = torch.matmul(x.reshape(n, c * t, v), A.permute(1, 0, 2).reshape(v, K * v))     # (N, C_in*T, K*V)
        z = z.view(n, c, t, K, v).permute(0, 3, 1, 2, 4).reshape(n, K * c, t, v)         # (small) subset-major
        if is_channels_last(x):
            z = z.contiguous(memory_format=torch.channels_last)
        ci = self.conv.in_channels     # (a constant when traced for export: a dynamic batch axis)
        wk = w.view(K, self.out_channels, ci).transpose(0, 1).reshape(self.out_channels, K * ci, 1, 1)
        bias = torch.einsum("kc,kw->cw", b.view(K, self.out_channels), A.sum(1))         # (C_out, V)
        return conv1x1(z, wk).add_(bias[:, None, :])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fused
        if f is None:
            y = self.bn(self._conv_aggregate(x, self.conv.weight, self.conv.bias, self.graph()))
        else:
            y = self._conv_aggregate(x, f["w"], f["b"], f["A"]).add_(f["shift"])
        if isinstance(self.down, nn.Identity):
            y += x
        elif isinstance(self.down, nn.Sequential):
            y += self.down(x) if f is None else F.conv2d(x, *f["down"])
        return y.relu_()


class TemporalConv(Fusable):
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

    def _fold(self) -> dict:
        return {"wb": fold_conv(self.conv, self.bn)}

    def conv_folded(self, x: torch.Tensor, wb: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """This unit's convolution (geometry) with the given weight and bias."""
        c = self.conv
        return F.conv2d(x, wb[0], wb[1], c.stride, c.padding, c.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fused
        if f is not None:
            return self.conv_folded(x, f["wb"])
        c = self.conv
        y = conv1x1(x, c.weight, c.bias) if c.kernel_size == (1, 1) and c.stride == (1, 1) else c(x)
        return self.drop(self.bn(y))


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


def _temporal(c_in: int, c_out: int, kernel: int, stride: int, dilation: int) -> nn.Conv2d:
    pad = (kernel + (kernel - 1) * (dilation - 1) - 1) // 2
    return nn.Conv2d(c_in, c_out, kernel_size=(kernel, 1), padding=(pad, 0), stride=(stride, 1),
                     dilation=(dilation, 1))


def _offsets(widths: Sequence[int]) -> list[tuple[int, int]]:
    out, a = [], 0
    for w in widths:
        out.append((a, a + w))
        a += w
    return out


class MultiBranchTCN(Fusable):
    """ST-GCN++ multi-branch temporal unit (PYSKL ``mstcn``).

    Each branch sees the input: (k, d) = 1x1 conv-BN-ReLU then a k x 1 temporal conv with dilation
    d; ("max", k) = 1x1 conv-BN-ReLU then max-pool over k frames; "1x1" = a strided 1x1 conv. The
    concatenation goes through BN-ReLU-1x1 conv, then BN and dropout.

    The 1x1 conv-BN-ReLU heads of all branches are one conv (``head``) and one BN (``head_bn``);
    the "1x1" branches are one conv (``pointwise``). Checkpoints of the earlier one-module-per-branch
    layout load (their weights are packed on loading).

    Shape: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 branches: Sequence[BranchSpec] = MSTCN_BRANCHES, dropout: float = 0.0):
        super().__init__()
        self.specs = [_check_branch(b) for b in branches]
        self.widths = _split_channels(out_channels, len(self.specs))
        self.stride = stride
        # the parameters are drawn branch by branch (the random stream of the per-branch layout)
        heads, temporal, points = [], [], []
        for spec, c in zip(self.specs, self.widths):
            if spec == "1x1":
                points.append(Conv1x1(in_channels, c))
                continue
            heads.append(Conv1x1(in_channels, c))
            if spec[0] != "max":
                temporal.append(_temporal(c, c, spec[0], stride, spec[1]))
        self.head = _packed_conv(heads) if heads else None
        self.head_bn = nn.BatchNorm2d(self.head.out_channels) if heads else None
        self.temporal = nn.ModuleList(temporal)
        self.pointwise = _packed_conv(points, stride=(stride, 1)) if points else None
        self.transform = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
                                       Conv1x1(out_channels, out_channels))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def _branches(self, x, head, temporal, pointwise) -> torch.Tensor:
        """Concatenated branch outputs; head / temporal[i] / pointwise are callables."""
        heads = iter(self._split(head(x).relu_(), "1x1", True)) if self.head is not None else None
        points = iter(self._split(pointwise(x), "1x1", False)) if self.pointwise is not None else None
        outs, ti = [], 0
        for spec in self.specs:
            if spec == "1x1":
                outs.append(next(points))
            elif spec[0] == "max":
                outs.append(temporal_max_pool(next(heads), spec[1], self.stride))
            else:
                outs.append(temporal[ti](next(heads)))
                ti += 1
        return torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]

    def _split(self, h: torch.Tensor, kind: str, exclude: bool) -> tuple:
        """The channel groups of h for the branches that are (not) ``kind``, as one split (whose
        gradient is one concatenation, not one full-size zero tensor per slice)."""
        widths = [c for spec, c in zip(self.specs, self.widths) if (spec == kind) != exclude]
        return torch.split(h, widths, dim=1)

    def _fold(self) -> dict:
        # head-BN into the head conv; the transform's BN (before its ReLU) into the last linear map
        # of each branch (temporal conv, pointwise conv), as an affine after the max-pool branches.
        scale, shift = bn_affine(self.transform[0])
        offs = _offsets(self.widths)
        f: dict = {"head": fold_conv(self.head, self.head_bn) if self.head is not None else None,
                   "temporal": [], "pointwise": None, "max": []}
        pw, pb, ti = [], [], 0
        for (a, b), spec in zip(offs, self.specs):
            if spec == "1x1":
                pw.append((a, b))
            elif spec[0] == "max":
                f["max"].append((scale[a:b].view(1, -1, 1, 1), shift[a:b].view(1, -1, 1, 1)))
            else:
                f["temporal"].append(fold_conv(self.temporal[ti], scale=scale[a:b], shift=shift[a:b]))
                ti += 1
        if self.pointwise is not None:
            idx = torch.cat([torch.arange(a, b) for a, b in pw])
            f["pointwise"] = fold_conv(self.pointwise, scale=scale[idx], shift=shift[idx])
        f["transform"] = fold_conv(self.transform[2], self.bn)
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fused
        if f is None:
            y = self._branches(x, lambda z: self.head_bn(self.head(z)), self.temporal,
                               lambda z: self.pointwise(z))
            return self.drop(self.bn(self.transform(y)))
        s = self.stride
        heads = iter(self._split(F.conv2d(x, *f["head"]).relu_(), "1x1", True)) if self.head is not None else None
        points = iter(self._split(F.conv2d(x, *f["pointwise"], stride=(s, 1)), "1x1", False)) \
            if self.pointwise is not None else None
        outs, ti, mi = [], 0, 0
        for spec in self.specs:
            if spec == "1x1":
                outs.append(next(points))
                continue
            part = next(heads)
            if spec[0] == "max":
                a, b = f["max"][mi]
                mi += 1
                outs.append(temporal_max_pool(part, spec[1], s).mul_(a).add_(b))
            else:
                conv = self.temporal[ti]
                outs.append(F.conv2d(part, *f["temporal"][ti], conv.stride, conv.padding, conv.dilation))
                ti += 1
        y = torch.cat(outs, dim=1).relu_()
        return F.conv2d(y, *f["transform"])

    def _upgrade_state_dict(self, state_dict: dict, prefix: str) -> None:
        if prefix + "branches.0.0.weight" not in state_dict and prefix + "branches.0.weight" not in state_dict:
            return
        heads, temporal, points = [], [], []
        for i, spec in enumerate(self.specs):
            if spec == "1x1":
                points.append(f"branches.{i}.")
            else:
                heads.append(f"branches.{i}.")
                if spec[0] != "max":
                    temporal.append(f"branches.{i}.3.conv.")
        for p in ("weight", "bias"):
            _pack(state_dict, prefix, f"head.{p}", [h + "0." + p for h in heads])
            _pack(state_dict, prefix, f"pointwise.{p}", [q + p for q in points])
            for j, t in enumerate(temporal):
                _pack(state_dict, prefix, f"temporal.{j}.{p}", [t + p], "first")
        for p in ("weight", "bias", "running_mean", "running_var"):
            _pack(state_dict, prefix, f"head_bn.{p}", [h + "1." + p for h in heads])
        _pack(state_dict, prefix, "head_bn.num_batches_tracked", [h + "1.num_batches_tracked" for h in heads],
              "first")
        for h in heads[1:]:
            state_dict.pop(prefix + h + "1.num_batches_tracked", None)


class MultiScaleTCN(Fusable):
    """CTR-GCN multi-scale temporal unit.

    Branches: one per dilation (1x1 conv-BN-ReLU, kernel x 1 conv with that dilation, BN), a
    max-pool branch (1x1 conv-BN-ReLU, 3-frame max-pool, BN) and a strided 1x1 conv + BN branch;
    outputs are concatenated (no residual here: the block adds it).

    The 1x1 conv-BN-ReLU heads of the dilated and max-pool branches are one conv (``head``) and
    one BN (``head_bn``). Checkpoints of the earlier one-module-per-branch layout load.

    Shape: (N, C_in, T, V) -> (N, C_out, ceil(T / stride), V).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1,
                 dilations: Sequence[int] = (1, 2), dropout: float = 0.0):
        super().__init__()
        self.widths = _split_channels(out_channels, len(dilations) + 2)
        self.stride = stride
        # draw the parameters in the order of the per-branch layout (its random stream)
        convs, heads, temporal = [], [], []
        for d, c in zip(dilations, self.widths):
            heads.append(Conv1x1(in_channels, c))
            temporal.append(TemporalConv(c, c, kernel_size, stride, int(d)))
            convs += [heads[-1], temporal[-1].conv]
        c_max, c_point = self.widths[len(dilations)], self.widths[-1]
        heads.append(Conv1x1(in_channels, c_max))
        point = Conv1x1(in_channels, c_point, stride=(stride, 1))
        for conv in convs + [heads[-1], point]:
            conv_init(conv)
        self.head = _packed_conv(heads)
        self.head_bn = nn.BatchNorm2d(self.head.out_channels)
        self.temporal = nn.ModuleList(temporal)
        self.max_bn = nn.BatchNorm2d(c_max)
        self.pointwise = nn.Sequential(point, nn.BatchNorm2d(c_point))
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                bn_init(m, 1.0)

    def _fold(self) -> dict:
        return {"head": fold_conv(self.head, self.head_bn), "temporal": [t._fold()["wb"] for t in self.temporal],
                "max": tuple(v.view(1, -1, 1, 1) for v in bn_affine(self.max_bn)),
                "pointwise": fold_conv(self.pointwise[0], self.pointwise[1])}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.fused
        h = (self.head_bn(self.head(x)) if f is None else F.conv2d(x, *f["head"])).relu_()
        *parts, to_pool = torch.split(h, self.widths[:-1], dim=1)
        outs = [t(p) if f is None else t.conv_folded(p, f["temporal"][i])
                for i, (t, p) in enumerate(zip(self.temporal, parts))]
        pooled = temporal_max_pool(to_pool, 3, self.stride)
        if f is None:
            outs.append(self.max_bn(pooled))
            outs.append(self.pointwise(x))
        else:
            outs.append(pooled.mul_(f["max"][0]).add_(f["max"][1]))
            outs.append(F.conv2d(x, *f["pointwise"], stride=(self.stride, 1)))
        return self.drop(torch.cat(outs, dim=1))

    def _upgrade_state_dict(self, state_dict: dict, prefix: str) -> None:
        if prefix + "branches.0.0.weight" not in state_dict:
            return
        D = len(self.temporal)
        heads = [f"branches.{i}.0." for i in range(D + 1)]
        bns = [f"branches.{i}.1." for i in range(D + 1)]
        for p in ("weight", "bias"):
            _pack(state_dict, prefix, f"head.{p}", [h + p for h in heads])
        for p in ("weight", "bias", "running_mean", "running_var"):
            _pack(state_dict, prefix, f"head_bn.{p}", [b + p for b in bns])
        _pack(state_dict, prefix, "head_bn.num_batches_tracked", [b + "num_batches_tracked" for b in bns], "first")
        for b in bns[1:]:
            state_dict.pop(prefix + b + "num_batches_tracked", None)
        renames = {f"branches.{D}.4.": "max_bn.", f"branches.{D + 1}.0.": "pointwise.0.",
                   f"branches.{D + 1}.1.": "pointwise.1."}
        renames.update({f"branches.{i}.3.": f"temporal.{i}." for i in range(D)})
        for key in [k for k in state_dict if k.startswith(prefix + "branches.")]:
            rest = key[len(prefix):]
            for old, new in renames.items():
                if rest.startswith(old):
                    state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                    break


class CTRGCUnit(Fusable):
    """CTR-GCN spatial unit: channel-wise topology refinement graph convolution over the K subsets
    of a learnable graph, summed, BN, residual, ReLU.

    Per subset k (Chen et al.'s CTRGC): relation features ``f1(x), f2(x)`` (1x1 convs to R channels)
    pooled over time, a per-channel refinement ``R_k = f4(tanh(f1(x)_v - f2(x)_w))`` (N, C_out, V, V),
    features ``f3(x)`` (N, C_out, T, V) aggregated with the topology ``alpha * R_k + A[k]``;
    ``alpha`` (a learnable scalar, initialised to 0) scales the refinement. The output BN starts at
    scale 1e-6 as published.

    Computed as: the temporal mean of x first (a 1x1 conv commutes with it), f1 and f2 of all
    subsets as one product, f3 of all subsets as one 1x1 conv with channel-major output, f4 of all
    subsets as one product, and the aggregation as K accumulated batched products on views (no
    layout copy). Parameters: ``rel_weight`` (K, 2, R, C_in) / ``rel_bias`` (K, 2, R) for f1, f2;
    ``feat_weight`` (K, C_out, C_in) / ``feat_bias`` for f3; ``topo_weight`` (K, C_out, R) /
    ``topo_bias`` for f4. Checkpoints of the earlier per-subset layout (``convs.k.conv1`` ...) load.

    Shape: (N, C_in, T, V) -> (N, C_out, T, V).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, rel_reduction: int = 8):
        super().__init__()
        A = _as_graph(A)
        K = A.shape[0]
        self.num_subsets, self.out_channels = K, out_channels
        self.rel_channels = R = 8 if in_channels <= 16 else in_channels // rel_reduction
        # per subset, four convs drawn as in the per-subset layout (its random stream)
        subsets = []
        for _ in range(K):
            convs = [nn.Conv2d(in_channels, R, 1), nn.Conv2d(in_channels, R, 1),
                     nn.Conv2d(in_channels, out_channels, 1), nn.Conv2d(R, out_channels, 1)]
            for conv in convs:
                conv_init(conv)
            subsets.append([(c.weight.detach().flatten(1), c.bias.detach()) for c in convs])
        self.rel_weight = nn.Parameter(torch.stack([torch.stack([s[0][0], s[1][0]]) for s in subsets]))
        self.rel_bias = nn.Parameter(torch.stack([torch.stack([s[0][1], s[1][1]]) for s in subsets]))
        self.feat_weight = nn.Parameter(torch.stack([s[2][0] for s in subsets]))
        self.feat_bias = nn.Parameter(torch.stack([s[2][1] for s in subsets]))
        self.topo_weight = nn.Parameter(torch.stack([s[3][0] for s in subsets]))
        self.topo_bias = nn.Parameter(torch.stack([s[3][1] for s in subsets]))
        self.A = nn.Parameter(A)
        self.alpha = nn.Parameter(torch.zeros(1))
        self.bn = nn.BatchNorm2d(out_channels)
        bn_init(self.bn, 1e-6)
        if in_channels != out_channels:
            bn = nn.BatchNorm2d(out_channels)
            bn_init(bn, 1.0)
            conv = Conv1x1(in_channels, out_channels)
            conv_init(conv)
            self.down: nn.Module = nn.Sequential(conv, bn)
        else:
            self.down = nn.Identity()

    def _channel_major(self):
        """f3 and f4 weights/biases with output channels ordered (c, k), f4 block-diagonal."""
        K, C = self.num_subsets, self.out_channels
        w3 = self.feat_weight.transpose(0, 1).reshape(C * K, -1)
        b3 = self.feat_bias.t().reshape(C * K)
        w4 = torch.block_diag(*self.topo_weight).view(K, C, -1).transpose(0, 1).reshape(C * K, -1)
        b4 = self.topo_bias.t().reshape(C * K, 1)
        return w3, b3, w4, b4

    def _fold(self) -> dict:
        K, C = self.num_subsets, self.out_channels
        w3, b3, w4, b4 = (t.detach() for t in self._channel_major())
        scale, shift = bn_affine(self.bn)
        s = scale.repeat_interleave(K)
        V = self.A.shape[-1]
        alpha = self.alpha.detach()
        base = self.A.detach().reshape(1, K, V * V).expand(C, K, V * V).reshape(C * K, V * V) + alpha * b4
        f = {"w12": self.rel_weight.detach().flatten(0, 2), "b12": self.rel_bias.detach().reshape(-1, 1),
             "w3": (w3 * s[:, None])[:, :, None, None], "b3": b3 * s, "w4": alpha * w4, "base": base,
             "shift": shift.view(1, -1, 1, 1)}
        if isinstance(self.down, nn.Sequential):
            f["down"] = fold_conv(self.down[0], self.down[1])
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        K, C, R = self.num_subsets, self.out_channels, self.rel_channels
        f = self.fused
        if f is None:
            w3, b3, w4, b4 = self._channel_major()
            w12, b12 = self.rel_weight.flatten(0, 2), self.rel_bias.reshape(-1, 1)
        else:
            w12, b12 = f["w12"], f["b12"]
        q, kk = torch.matmul(w12, x.mean(2)).add_(b12).view(n, K, 2, R, v).unbind(2)      # (N, K, R, V)
        rel = torch.tanh(q.unsqueeze(-1) - kk.unsqueeze(-2))                              # (N, K, R, V, V)
        rel = rel.view(n, K * R, v * v)
        if f is None:   # alpha scales the (small) f4 weights, not the (N, C*K, V*V) refinement
            base = self.A.reshape(1, K, v * v).expand(C, K, v * v).reshape(C * K, v * v) + self.alpha * b4
            w4 = self.alpha * w4
            w3, b3 = w3[:, :, None, None], b3
        else:
            base, w4 = f["base"], f["w4"]
            w3, b3 = f["w3"], f["b3"]
        channels_last = is_channels_last(x)
        if channels_last:   # the per-channel topologies need each channel's (T, V) block contiguous:
            # f3 reads the channels-last x transposed and writes NCHW; its bias is added after the
            # aggregation (b3[c, k] times the column sums of topology k), to C channels, not C * K
            feats = torch.matmul(w3.flatten(1), x.permute(0, 2, 3, 1).reshape(n, t * v, -1).transpose(1, 2))
        else:
            feats = conv1x1(x, w3, b3)                                                  # (N, C*K, T, V)
        topo = torch.bmm(w4.expand(n, -1, -1), rel).add_(base)                          # (N, C*K, V*V)
        parts, graphs = feats.view(n * C, K, t, v).unbind(1), topo.view(n * C, K, v, v).unbind(1)
        y = torch.bmm(parts[0], graphs[0])      # (unbind: one gradient op, not one zero-filled
        for k in range(1, K):                   # full-size tensor per selected subset)
            y = _accumulate(y, parts[k], graphs[k])
        y = y.view(n, C, t, v)
        if channels_last:
            bias = torch.einsum("ck,nckw->ncw", b3.view(C, K), topo.view(n, C, K, v, v).sum(3))
            y = y.add_(bias.unsqueeze(2)).contiguous(memory_format=torch.channels_last)
        y = self.bn(y) if f is None else y.add_(f["shift"])
        if isinstance(self.down, nn.Identity):
            y += x
        else:
            y += self.down(x) if f is None else F.conv2d(x, *f["down"])
        return y.relu_()

    def _upgrade_state_dict(self, state_dict: dict, prefix: str) -> None:
        if prefix + "convs.0.conv1.weight" not in state_dict:
            return
        K = self.num_subsets

        def take(k, name, p):
            t = state_dict.pop(f"{prefix}convs.{k}.{name}.{p}")
            return t.flatten(1) if p == "weight" else t

        for p in ("weight", "bias"):
            state_dict[f"{prefix}rel_{p}"] = torch.stack(
                [torch.stack([take(k, "conv1", p), take(k, "conv2", p)]) for k in range(K)])
            state_dict[f"{prefix}feat_{p}"] = torch.stack([take(k, "conv3", p) for k in range(K)])
            state_dict[f"{prefix}topo_{p}"] = torch.stack([take(k, "conv4", p) for k in range(K)])


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.tcn(self.gcn(x))
        if not isinstance(self.residual, Zero):
            y += self.residual(x)
        return y.relu_()


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (elements) of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


__all__ = ["ADAPTIVE_MODES", "CTRGCUnit", "Conv1x1", "Fusable", "GCNBlock", "GraphConv", "MSTCN_BRANCHES", "MultiBranchTCN",
           "MultiScaleTCN", "TemporalConv", "Zero", "bn_affine", "bn_init", "conv_init", "count_parameters",
           "conv1x1", "fold_conv", "fuse_batchnorm", "graph_aggregate", "inference_layout", "is_channels_last",
           "temporal_max_pool"]
