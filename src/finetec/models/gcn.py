"""GCN backbones with a classification head: ST-GCN, ST-GCN++ and CTR-GCN.

One class, :class:`SkeletonGCN`, holds what the three share: masking of the input, the data
batch norm, the stack of :class:`~finetec.models.layers.GCNBlock` whose width doubles and whose
frame rate halves at configured blocks, pooling and the FC head. The three architectures differ
only in the spatial and temporal units of a block (``kind``):

=========  ==================================================  ==================================
kind       spatial unit                                        temporal unit
=========  ==================================================  ==================================
stgcn      GraphConv, edge importance weighting (A * W)        9 x 1 conv + BN
stgcnpp    GraphConv, learnable A initialised from the graph,  MultiBranchTCN (dilations 1-4,
           residual inside the unit                            max-pool, 1x1)
ctrgcn     CTRGCUnit (channel-wise topology refinement)        MultiScaleTCN (5 x 1, dilations
                                                               1, 2, max-pool, 1x1)
=========  ==================================================  ==================================

Input: ``x`` (N, M, T, V, C) and ``mask`` (N, M, T, V) bool (True = observed) or None. Entries
where the mask is False are replaced by zeros before anything else (whatever they contained);
with ``mask_channel=True`` the mask is also appended as an extra input channel. Persons are folded
into the batch; features are averaged over T and V, then over the persons present in the clip
(a person with no observed joint, e.g. padding, is left out of the mean when a mask is given).

The registered names (see :mod:`finetec.models.registry`) are ``stgcn``, ``stgcnpp``,
``ctrgcn`` with the published defaults, and ``stgcn_small``, ``stgcnpp_small``, ``ctrgcn_small``:
a CPU-sized variant (base width 32, 7 blocks, width doubling and stride 2 at blocks 4 and 6).
"""
from __future__ import annotations

import functools
import inspect
from typing import Any, Sequence

import torch
from torch import nn

from finetec.errors import FinetecError
from finetec.layouts import Layout
from finetec.models import layers as _layers
from finetec.models.layers import ADAPTIVE_MODES, MSTCN_BRANCHES, GCNBlock, _check_branch, fuse_batchnorm
from finetec.models.registry import register_model

KINDS = ("stgcn", "stgcnpp", "ctrgcn")
DATA_BN = ("MVC", "VC", "none")
EPS = 1e-4

# The recommended CPU variant shared by the *_small presets.
SMALL = dict(base_channels=32, num_stages=7, inflate_stages=(4, 6), down_stages=(4, 6))


class SkeletonGCN(nn.Module):
    """A GCN backbone + pooled linear classifier.

    Args:
        num_classes: K.
        layout: the skeleton layout (its ``adjacency()`` gives the (3, V, V) graph).
        in_channels: C of the input (N, M, T, V, C).
        kind: ``"stgcn"``, ``"stgcnpp"`` or ``"ctrgcn"`` (the block type, see module doc).
        base_channels: width of the first block.
        num_stages: number of blocks.
        inflate_stages: 1-based blocks at which the width is multiplied by ``ch_ratio``.
        down_stages: 1-based blocks whose temporal stride is 2.
        ch_ratio: width multiplier at an inflate stage.
        data_bn: ``"MVC"`` (BatchNorm1d over persons x joints x channels, needs ``num_person``),
            ``"VC"`` (joints x channels, shared by persons) or ``"none"``.
        num_person: persons the MVC data BN is built for; clips with fewer are zero-padded.
        mask_channel: append the observation mask as an extra input channel.
        dropout: dropout before the FC layer.
        gcn_adaptive, gcn_with_res: GraphConv options (stgcn / stgcnpp).
        tcn_kernel, tcn_dilations, tcn_branches, tcn_dropout: temporal unit options (see layers).
        rel_reduction: CTRGC relation-channel reduction (ctrgcn).
    """

    def __init__(self, num_classes: int, layout: Layout, in_channels: int, *, kind: str = "stgcnpp",
                 base_channels: int = 64, num_stages: int = 10, inflate_stages: Sequence[int] = (5, 8),
                 down_stages: Sequence[int] = (5, 8), ch_ratio: float = 2.0, data_bn: str = "VC",
                 num_person: int = 2, mask_channel: bool = False, dropout: float = 0.0,
                 gcn_adaptive: str = "init", gcn_with_res: bool = True, tcn_kernel: int = 9,
                 tcn_dilations: Sequence[int] = (1, 2), tcn_branches: Sequence[Any] = MSTCN_BRANCHES,
                 tcn_dropout: float = 0.0, rel_reduction: int = 8):
        super().__init__()
        _validate(kind, num_classes, in_channels, base_channels, num_stages, inflate_stages, down_stages,
                  ch_ratio, data_bn, num_person, dropout, gcn_adaptive, tcn_kernel, tcn_dilations, tcn_branches,
                  tcn_dropout, rel_reduction)
        self.kind = kind
        self.layout = layout
        self.num_joints = layout.num_joints
        self.in_channels = in_channels
        self.mask_channel = bool(mask_channel)
        self.data_bn_type = data_bn
        self.num_person = num_person
        A = torch.as_tensor(layout.adjacency(), dtype=torch.float32)
        c_in = in_channels + int(self.mask_channel)
        V = self.num_joints
        if data_bn == "MVC":
            self.data_bn: nn.Module = nn.BatchNorm1d(num_person * V * c_in)
        elif data_bn == "VC":
            self.data_bn = nn.BatchNorm1d(V * c_in)
        else:
            self.data_bn = nn.Identity()

        opts = dict(gcn_adaptive=gcn_adaptive, gcn_with_res=gcn_with_res, tcn_kernel=tcn_kernel,
                    tcn_dilations=tuple(tcn_dilations), tcn_branches=tuple(tcn_branches), rel_reduction=rel_reduction)
        blocks = [self.make_block(kind, c_in, base_channels, A, 1, residual=False, tcn_dropout=0.0, **opts)]
        width, inflations = base_channels, 0
        for i in range(2, num_stages + 1):
            inflations += i in inflate_stages
            out = int(base_channels * ch_ratio ** inflations + EPS)
            stride = 2 if i in down_stages else 1
            blocks.append(self.make_block(kind, width, out, A, stride, residual=True, tcn_dropout=tcn_dropout, **opts))
            width = out
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = width
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(width, num_classes)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    @staticmethod
    def make_block(kind: str, c_in: int, c_out: int, A: torch.Tensor, stride: int, **options) -> nn.Module:
        """One block of the stack (``kind``'s spatial and temporal units)."""
        return _make_block(kind, c_in, c_out, A, stride, **options)

    def fuse(self) -> "SkeletonGCN":
        """Eval mode with the BatchNorms of the blocks folded into their convolutions (inference
        only: ``train()`` or loading a state dict undoes it). Returns the model."""
        return fuse_batchnorm(self)

    # -- input ------------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Zero unobserved entries, add the mask channel, pad persons for MVC data BN.

        Returns x (N, M', T, V, C') and the mask (N, M', T, V) (None when none was given).
        """
        if x.dim() != 5:
            raise ValueError(f"expected x of shape (N, M, T, V, C), got {tuple(x.shape)}")
        N, M, T, V, C = x.shape
        if V != self.num_joints or C != self.in_channels:
            raise ValueError(f"expected V={self.num_joints} joints and C={self.in_channels} channels "
                             f"(layout {self.layout.name!r}), got V={V}, C={C}")
        if mask is not None:
            if tuple(mask.shape) != (N, M, T, V):
                raise ValueError(f"mask must have shape {(N, M, T, V)}, got {tuple(mask.shape)}")
            mask = mask.to(device=x.device, dtype=torch.bool)
            x = torch.where(mask.unsqueeze(-1), x, torch.zeros((), dtype=x.dtype, device=x.device))
        if self.mask_channel:
            m = (mask.to(x.dtype) if mask is not None else x.new_ones(N, M, T, V)).unsqueeze(-1)
            x = torch.cat([x, m], dim=-1)
        if self.data_bn_type == "MVC" and M != self.num_person:
            if M > self.num_person:
                raise ValueError(f"this model was built for at most {self.num_person} persons (data_bn='MVC'), "
                                 f"got M={M}")
            pad = self.num_person - M
            x = torch.cat([x, x.new_zeros(N, pad, T, V, x.shape[-1])], dim=1)
            if mask is not None:
                mask = torch.cat([mask, mask.new_zeros(N, pad, T, V)], dim=1)
            else:  # the padded persons are absent, the given ones present
                mask = torch.cat([x.new_ones(N, M, T, V, dtype=torch.bool), x.new_zeros(N, pad, T, V, dtype=torch.bool)], 1)
        return x, mask

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        """Data BN; (N, M, T, V, C) -> (N*M, C, T, V)."""
        N, M, T, V, C = x.shape
        x = x.permute(0, 1, 3, 4, 2).contiguous()          # N, M, V, C, T
        if self.data_bn_type == "MVC":
            x = self.data_bn(x.view(N, M * V * C, T))
        else:
            x = self.data_bn(x.view(N * M, V * C, T))
        return x.view(N, M, V, C, T).permute(0, 1, 3, 4, 2).reshape(N * M, C, T, V)

    # -- outputs ----------------------------------------------------------------------------
    def feature_map(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Backbone features (N, M', C_out, T', V), T' = T / 2**len(down_stages) (rounded up).

        M' = M, or ``num_person`` for an MVC model given fewer persons.
        """
        y, _ = self._forward_map(x, mask)
        return y

    def _forward_map(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, mask = self._prepare(x, mask)
        N, M = x.shape[:2]
        y = self._normalise(x)
        for block in self.blocks:
            y = block(y)
        return y.reshape((N, M) + y.shape[1:]), mask

    def extract_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled features (N, C_out) before the FC layer.

        Mean over T' and V, then over the persons that have at least one observed joint (all
        persons when no mask is given, or when a clip has none observed).
        """
        y, mask = self._forward_map(x, mask)
        per_person = y.mean(dim=(3, 4))                    # N, M, C_out
        if mask is None:
            return per_person.mean(dim=1)
        present = mask.flatten(2).any(dim=2).to(per_person.dtype)   # N, M
        present = torch.where(present.sum(1, keepdim=True) > 0, present, torch.ones_like(present))
        w = present / present.sum(1, keepdim=True)
        return torch.einsum("nmc,nm->nc", per_person, w)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, K) for x (N, M, T, V, C) and mask (N, M, T, V) bool or None."""
        return self.fc(self.drop(self.extract_features(x, mask)))


def _make_block(kind: str, c_in: int, c_out: int, A: torch.Tensor, stride: int, *, residual: bool,
                gcn_adaptive: str, gcn_with_res: bool, tcn_kernel: int, tcn_dilations: tuple, tcn_branches: tuple,
                tcn_dropout: float, rel_reduction: int, units: Any = None) -> GCNBlock:
    """``kind``'s block from the units of ``units`` (a namespace with the classes of
    :mod:`finetec.models.layers`; default: those)."""
    u = units if units is not None else _layers
    if kind == "ctrgcn":
        gcn: nn.Module = u.CTRGCUnit(c_in, c_out, A, rel_reduction=rel_reduction)
        tcn: nn.Module = u.MultiScaleTCN(c_out, c_out, tcn_kernel, stride, tcn_dilations, dropout=tcn_dropout)
    else:
        gcn = u.GraphConv(c_in, c_out, A, adaptive=gcn_adaptive, with_res=gcn_with_res)
        if kind == "stgcnpp":
            tcn = u.MultiBranchTCN(c_out, c_out, stride, tcn_branches, dropout=tcn_dropout)
        else:
            tcn = u.TemporalConv(c_out, c_out, tcn_kernel, stride, dropout=tcn_dropout)
    return u.GCNBlock(gcn, tcn, c_in, c_out, stride, residual)


def _validate(kind, num_classes, in_channels, base_channels, num_stages, inflate_stages, down_stages, ch_ratio,
              data_bn, num_person, dropout, gcn_adaptive, tcn_kernel, tcn_dilations, tcn_branches, tcn_dropout,
              rel_reduction) -> None:
    """Raise FinetecError for an invalid backbone configuration."""
    def posint(v, what):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise FinetecError(f"{what} must be a positive integer, got {v!r}")

    if kind not in KINDS:
        raise FinetecError(f"unknown backbone kind {kind!r}; valid: {', '.join(KINDS)}")
    for v, what in ((num_classes, "num_classes"), (in_channels, "in_channels"), (base_channels, "base_channels"),
                    (num_stages, "num_stages"), (num_person, "num_person"), (tcn_kernel, "tcn_kernel"),
                    (rel_reduction, "rel_reduction")):
        posint(v, what)
    for stages, what in ((inflate_stages, "inflate_stages"), (down_stages, "down_stages")):
        if not isinstance(stages, (list, tuple)) or any(isinstance(s, bool) or not isinstance(s, int)
                                                        or not 2 <= s <= num_stages for s in stages):
            raise FinetecError(f"{what} must list blocks in 2..{num_stages} (num_stages), got {stages!r}")
    if isinstance(ch_ratio, bool) or not isinstance(ch_ratio, (int, float)) or ch_ratio <= 0:
        raise FinetecError(f"ch_ratio must be a positive number, got {ch_ratio!r}")
    if data_bn not in DATA_BN:
        raise FinetecError(f"data_bn must be one of {', '.join(DATA_BN)}, got {data_bn!r}")
    for v, what in ((dropout, "dropout"), (tcn_dropout, "tcn_dropout")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise FinetecError(f"{what} must be in [0, 1), got {v!r}")
    if gcn_adaptive not in ADAPTIVE_MODES:
        raise FinetecError(f"gcn_adaptive must be one of {', '.join(ADAPTIVE_MODES)}, got {gcn_adaptive!r}")
    if not isinstance(tcn_dilations, (list, tuple)) or not tcn_dilations:
        raise FinetecError(f"tcn_dilations must be a non-empty list of positive integers, got {tcn_dilations!r}")
    for d in tcn_dilations:
        posint(d, "a tcn dilation")
    if not isinstance(tcn_branches, (list, tuple)) or not tcn_branches:
        raise FinetecError(f"tcn_branches must be a non-empty list, got {tcn_branches!r}")
    for b in tcn_branches:
        try:
            _check_branch(b)
        except ValueError as e:
            raise FinetecError(str(e)) from None
    widths = [base_channels * ch_ratio ** k for k in range(len(set(inflate_stages)) + 1)]
    parts = len(tcn_branches) if kind == "stgcnpp" else len(tcn_dilations) + 2 if kind == "ctrgcn" else 1
    if min(widths) < parts:
        raise FinetecError(f"base_channels={base_channels} is too narrow for {parts} temporal branches")


# -- registered models ---------------------------------------------------------------------------
# Each factory lists its options with the published defaults; the registry validates overrides
# against these signatures and records them in model.config.

@register_model("stgcn")
def stgcn(*, num_classes: int, layout: Layout, in_channels: int, base_channels: int = 64, num_stages: int = 10,
          inflate_stages: Sequence[int] = (5, 8), down_stages: Sequence[int] = (5, 8), ch_ratio: float = 2.0,
          tcn_kernel: int = 9, gcn_adaptive: str = "importance", gcn_with_res: bool = False,
          data_bn: str = "MVC", num_person: int = 2, mask_channel: bool = False, dropout: float = 0.0,
          tcn_dropout: float = 0.0) -> SkeletonGCN:
    """ST-GCN (Yan et al., AAAI 2018): edge importance weighting, 9 x 1 temporal convs."""
    return SkeletonGCN(num_classes, layout, in_channels, kind="stgcn", base_channels=base_channels,
                       num_stages=num_stages, inflate_stages=inflate_stages, down_stages=down_stages,
                       ch_ratio=ch_ratio, tcn_kernel=tcn_kernel, gcn_adaptive=gcn_adaptive,
                       gcn_with_res=gcn_with_res, data_bn=data_bn, num_person=num_person,
                       mask_channel=mask_channel, dropout=dropout, tcn_dropout=tcn_dropout)


@register_model("stgcnpp")
def stgcnpp(*, num_classes: int, layout: Layout, in_channels: int, base_channels: int = 64, num_stages: int = 10,
            inflate_stages: Sequence[int] = (5, 8), down_stages: Sequence[int] = (5, 8), ch_ratio: float = 2.0,
            tcn_branches: Sequence[Any] = MSTCN_BRANCHES, gcn_adaptive: str = "init", gcn_with_res: bool = True,
            data_bn: str = "VC", num_person: int = 2, mask_channel: bool = False, dropout: float = 0.0,
            tcn_dropout: float = 0.0) -> SkeletonGCN:
    """ST-GCN++ (PYSKL, Duan et al. 2022): learnable graph, residual GCN, multi-branch TCN."""
    return SkeletonGCN(num_classes, layout, in_channels, kind="stgcnpp", base_channels=base_channels,
                       num_stages=num_stages, inflate_stages=inflate_stages, down_stages=down_stages,
                       ch_ratio=ch_ratio, tcn_branches=tcn_branches, gcn_adaptive=gcn_adaptive,
                       gcn_with_res=gcn_with_res, data_bn=data_bn, num_person=num_person,
                       mask_channel=mask_channel, dropout=dropout, tcn_dropout=tcn_dropout)


@register_model("ctrgcn")
def ctrgcn(*, num_classes: int, layout: Layout, in_channels: int, base_channels: int = 64, num_stages: int = 10,
           inflate_stages: Sequence[int] = (5, 8), down_stages: Sequence[int] = (5, 8), ch_ratio: float = 2.0,
           tcn_kernel: int = 5, tcn_dilations: Sequence[int] = (1, 2), rel_reduction: int = 8,
           data_bn: str = "MVC", num_person: int = 2, mask_channel: bool = False, dropout: float = 0.0,
           tcn_dropout: float = 0.0) -> SkeletonGCN:
    """CTR-GCN (Chen et al., ICCV 2021): channel-wise topology refinement, multi-scale TCN."""
    return SkeletonGCN(num_classes, layout, in_channels, kind="ctrgcn", base_channels=base_channels,
                       num_stages=num_stages, inflate_stages=inflate_stages, down_stages=down_stages,
                       ch_ratio=ch_ratio, tcn_kernel=tcn_kernel, tcn_dilations=tcn_dilations,
                       rel_reduction=rel_reduction, data_bn=data_bn, num_person=num_person,
                       mask_channel=mask_channel, dropout=dropout, tcn_dropout=tcn_dropout)


def _small(factory):
    """The same options as ``factory`` with the CPU-variant width/depth as defaults."""

    sig = inspect.signature(factory)
    params = [p.replace(default=SMALL[p.name]) if p.name in SMALL else p for p in sig.parameters.values()]

    small_sig = sig.replace(parameters=params)

    @functools.wraps(factory)
    def small(**kwargs):
        bound = small_sig.bind(**kwargs)
        bound.apply_defaults()
        return factory(**bound.arguments)

    small.__signature__ = small_sig
    small.__qualname__ = factory.__qualname__ + "_small"
    small.__doc__ = f"{factory.__doc__} CPU variant: {SMALL}."
    return small


stgcn_small = register_model("stgcn_small")(_small(stgcn))
stgcnpp_small = register_model("stgcnpp_small")(_small(stgcnpp))
ctrgcn_small = register_model("ctrgcn_small")(_small(ctrgcn))

__all__ = ["DATA_BN", "KINDS", "SMALL", "SkeletonGCN", "ctrgcn", "ctrgcn_small", "stgcn", "stgcn_small", "stgcnpp",
           "stgcnpp_small"]
