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

Each architecture's options are one config dataclass, its schema (:class:`STGCNConfig`,
:class:`STGCNPPConfig`, :class:`CTRGCNConfig`, sharing :class:`GCNConfig`): the fields with the
published defaults, validated when the config is made. The registered names (see
:mod:`finetec.models.registry`, which checks overrides against these fields) are ``stgcn``,
``stgcnpp``, ``ctrgcn``, and ``stgcn_small``, ``stgcnpp_small``, ``ctrgcn_small``: the same
configs with the CPU-sized defaults of :data:`SMALL` (base width 32, 7 blocks, width doubling and
stride 2 at blocks 4 and 6).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from finetec.errors import FinetecError
from finetec.layouts import Layout
from finetec.models import layers as _layers
from finetec.models.layers import ADAPTIVE_MODES, MSTCN_BRANCHES, GCNBlock, _check_branch, fuse_batchnorm, inference_layout
from finetec.models.registry import register_model

KINDS = ("stgcn", "stgcnpp", "ctrgcn")
DATA_BN = ("MVC", "VC", "none")
EPS = 1e-4

# The recommended CPU variant shared by the *_small presets.
SMALL = dict(base_channels=32, num_stages=7, inflate_stages=(4, 6), down_stages=(4, 6))


def _tuple(value: Any) -> Any:
    return tuple(_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


@dataclass(frozen=True)
class GCNConfig:
    """Options shared by the GCN backbones (the schema of ``model.config`` besides ``num_classes``,
    ``layout`` and ``in_channels``).

    base_channels: width of the first block. num_stages: number of blocks.
    inflate_stages: 1-based blocks at which the width is multiplied by ``ch_ratio``.
    down_stages: 1-based blocks whose temporal stride is 2.
    data_bn: ``"MVC"`` (BatchNorm1d over persons x joints x channels, needs ``num_person``),
    ``"VC"`` (joints x channels, shared by persons) or ``"none"``.
    num_person: persons the MVC data BN is built for; clips with fewer are zero-padded.
    mask_channel: append the observation mask as an extra input channel.
    dropout: dropout before the FC layer; tcn_dropout: inside the temporal units.
    """

    kind: ClassVar[str] = ""
    base_channels: int = 64
    num_stages: int = 10
    inflate_stages: tuple[int, ...] = (5, 8)
    down_stages: tuple[int, ...] = (5, 8)
    ch_ratio: float = 2.0
    data_bn: str = "MVC"
    num_person: int = 2
    mask_channel: bool = False
    dropout: float = 0.0
    tcn_dropout: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):   # lists (from JSON / YAML) become tuples
            object.__setattr__(self, f.name, _tuple(getattr(self, f.name)))
        _validate(self)

    def unit_options(self) -> dict[str, Any]:
        """The options of the spatial and temporal units (see :func:`_make_block`)."""
        return {k: getattr(self, k, d) for k, d in _UNIT_DEFAULTS.items()}


@dataclass(frozen=True)
class STGCNConfig(GCNConfig):
    """ST-GCN: edge importance weighting (``gcn_adaptive``), ``tcn_kernel`` x 1 temporal convs."""

    kind: ClassVar[str] = "stgcn"
    tcn_kernel: int = 9
    gcn_adaptive: str = "importance"
    gcn_with_res: bool = False


@dataclass(frozen=True)
class STGCNPPConfig(GCNConfig):
    """ST-GCN++: learnable graph (``gcn_adaptive``), residual GCN, multi-branch TCN (``tcn_branches``)."""

    kind: ClassVar[str] = "stgcnpp"
    data_bn: str = "VC"
    tcn_branches: tuple[Any, ...] = MSTCN_BRANCHES
    gcn_adaptive: str = "init"
    gcn_with_res: bool = True


@dataclass(frozen=True)
class CTRGCNConfig(GCNConfig):
    """CTR-GCN: channel-wise topology refinement (``rel_reduction``), multi-scale TCN
    (``tcn_kernel``, ``tcn_dilations``)."""

    kind: ClassVar[str] = "ctrgcn"
    tcn_kernel: int = 5
    tcn_dilations: tuple[int, ...] = (1, 2)
    rel_reduction: int = 8


CONFIGS: dict[str, type[GCNConfig]] = {c.kind: c for c in (STGCNConfig, STGCNPPConfig, CTRGCNConfig)}
# unit options of a kind whose config does not have them (unused by its units)
_UNIT_DEFAULTS: dict[str, Any] = dict(gcn_adaptive="init", gcn_with_res=True, tcn_kernel=9, tcn_dilations=(1, 2),
                                      tcn_branches=MSTCN_BRANCHES, rel_reduction=8)


class SkeletonGCN(nn.Module):
    """A GCN backbone + pooled linear classifier.

    Args:
        num_classes: K.
        layout: the skeleton layout (its ``adjacency()`` gives the (3, V, V) graph).
        in_channels: C of the input (N, M, T, V, C).
        config: the architecture's options; its class gives the block type (``config.kind``, see the
            module doc).
    """

    def __init__(self, num_classes: int, layout: Layout, in_channels: int, config: GCNConfig):
        super().__init__()
        for v, what in ((num_classes, "num_classes"), (in_channels, "in_channels")):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise FinetecError(f"{what} must be a positive integer, got {v!r}")
        self.arch = config
        kind, base_channels, num_stages = config.kind, config.base_channels, config.num_stages
        inflate_stages, down_stages, ch_ratio = config.inflate_stages, config.down_stages, config.ch_ratio
        data_bn, num_person, tcn_dropout = config.data_bn, config.num_person, config.tcn_dropout
        self.kind = kind
        self.layout = layout
        self.num_joints = layout.num_joints
        self.in_channels = in_channels
        self.mask_channel = bool(config.mask_channel)
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

        opts = config.unit_options()
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
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
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
        y = inference_layout(self._normalise(x))
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


def _validate(c: GCNConfig) -> None:
    """Raise FinetecError for an invalid backbone configuration."""
    def posint(v, what):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise FinetecError(f"{what} must be a positive integer, got {v!r}")

    u = c.unit_options()
    if c.kind not in KINDS:
        raise FinetecError(f"unknown backbone kind {c.kind!r}; valid: {', '.join(KINDS)}")
    for v, what in ((c.base_channels, "base_channels"), (c.num_stages, "num_stages"), (c.num_person, "num_person"),
                    (u["tcn_kernel"], "tcn_kernel"), (u["rel_reduction"], "rel_reduction")):
        posint(v, what)
    for stages, what in ((c.inflate_stages, "inflate_stages"), (c.down_stages, "down_stages")):
        if not isinstance(stages, (list, tuple)) or any(isinstance(s, bool) or not isinstance(s, int)
                                                        or not 2 <= s <= c.num_stages for s in stages):
            raise FinetecError(f"{what} must list blocks in 2..{c.num_stages} (num_stages), got {stages!r}")
    if isinstance(c.ch_ratio, bool) or not isinstance(c.ch_ratio, (int, float)) or c.ch_ratio <= 0:
        raise FinetecError(f"ch_ratio must be a positive number, got {c.ch_ratio!r}")
    if c.data_bn not in DATA_BN:
        raise FinetecError(f"data_bn must be one of {', '.join(DATA_BN)}, got {c.data_bn!r}")
    for v, what in ((c.dropout, "dropout"), (c.tcn_dropout, "tcn_dropout")):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise FinetecError(f"{what} must be in [0, 1), got {v!r}")
    if u["gcn_adaptive"] not in ADAPTIVE_MODES:
        raise FinetecError(f"gcn_adaptive must be one of {', '.join(ADAPTIVE_MODES)}, got {u['gcn_adaptive']!r}")
    if not isinstance(u["tcn_dilations"], (list, tuple)) or not u["tcn_dilations"]:
        raise FinetecError(f"tcn_dilations must be a non-empty list of positive integers, got {u['tcn_dilations']!r}")
    for d in u["tcn_dilations"]:
        posint(d, "a tcn dilation")
    if not isinstance(u["tcn_branches"], (list, tuple)) or not u["tcn_branches"]:
        raise FinetecError(f"tcn_branches must be a non-empty list, got {u['tcn_branches']!r}")
    for b in u["tcn_branches"]:
        try:
            _check_branch(b)
        except ValueError as e:
            raise FinetecError(str(e)) from None
    widths = [c.base_channels * c.ch_ratio ** k for k in range(len(set(c.inflate_stages)) + 1)]
    parts = (len(u["tcn_branches"]) if c.kind == "stgcnpp" else len(u["tcn_dilations"]) + 2 if c.kind == "ctrgcn"
             else 1)
    if min(widths) < parts:
        raise FinetecError(f"base_channels={c.base_channels} is too narrow for {parts} temporal branches")


# -- registered models ---------------------------------------------------------------------------
# One factory for the three architectures; each name is its config dataclass (the published
# defaults) or, for the *_small variants, the same dataclass with the SMALL defaults.

def skeleton_gcn(*, num_classes: int, layout: Layout, in_channels: int, config: GCNConfig) -> SkeletonGCN:
    """ST-GCN (Yan et al., AAAI 2018), ST-GCN++ (PYSKL, Duan et al. 2022) or CTR-GCN (Chen et al.,
    ICCV 2021), as ``config``'s class says."""
    return SkeletonGCN(num_classes, layout, in_channels, config)


for _kind, _cfg in CONFIGS.items():
    register_model(_kind, _cfg)(skeleton_gcn)
    register_model(f"{_kind}_small", _cfg, **SMALL)(skeleton_gcn)

__all__ = ["CONFIGS", "CTRGCNConfig", "DATA_BN", "GCNConfig", "KINDS", "SMALL", "STGCNConfig", "STGCNPPConfig",
           "SkeletonGCN", "skeleton_gcn"]
