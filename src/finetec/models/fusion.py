"""Fusion of FineTec's three views (base, dynamic, static) into one sequence.

Both fusions work per token, a token being one joint of one person in one frame: the three views
of that token (each a C-vector: a position or an acceleration) are combined, and the result is
added to the base view (a residual, zero at initialisation, so an untrained fusion returns the
base view exactly and training only has to learn what the two perturbed views add).

- :class:`AttentionFusion` (default): the base view's token queries the three views' tokens
  (multi-head cross-attention over 3 keys; a learned view embedding tells the views apart).
- :class:`MLPFusion`: the three views are concatenated (3C) and mapped by a two-layer MLP.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["FUSIONS", "AttentionFusion", "MLPFusion", "make_fusion"]

FUSIONS = ("attention", "mlp")


class AttentionFusion(nn.Module):
    """Cross-attention across the three views, per (person, frame, joint) token.

    forward(base, dyna, stat: (N, M, T, V, C)) -> (N, M, T, V, C) =
    base + out(softmax(q(base) . k(views) / sqrt(d)) v(views)).
    """

    def __init__(self, channels: int, width: int = 16, heads: int = 2, num_views: int = 3):
        super().__init__()
        if width % heads:
            raise ValueError(f"fusion width {width} must be divisible by heads {heads}")
        self.heads, self.dh = heads, width // heads
        self.embed = nn.Linear(channels, width)
        self.view = nn.Parameter(torch.zeros(num_views, width))
        nn.init.normal_(self.view, std=0.02)
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, channels)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _qkv(self, views: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e = self.embed(torch.stack(views, dim=-2)) + self.view  # (..., 3, width)
        q = self.q(e[..., 0, :]).unflatten(-1, (self.heads, self.dh))  # (..., h, dh)
        k, v = self.kv(e).chunk(2, dim=-1)
        return q, k.unflatten(-1, (self.heads, self.dh)), v.unflatten(-1, (self.heads, self.dh))

    def attention(self, base: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        """(..., heads, num_views) attention weights of the base token over the views."""
        q, k, _ = self._qkv((base,) + others)
        return torch.einsum("...hd,...khd->...hk", q, k).div(self.dh ** 0.5).softmax(dim=-1)

    def forward(self, base: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        q, k, v = self._qkv((base,) + others)
        w = torch.einsum("...hd,...khd->...hk", q, k).div(self.dh ** 0.5).softmax(dim=-1)
        mixed = torch.einsum("...hk,...khd->...hd", w, v).flatten(-2)
        return base + self.out(mixed)


class MLPFusion(nn.Module):
    """MLP over the concatenated views: base + MLP([base, dyna, stat]) per token."""

    def __init__(self, channels: int, width: int = 16, num_views: int = 3):
        super().__init__()
        self.fc1 = nn.Linear(num_views * channels, width)
        self.fc2 = nn.Linear(width, channels)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, base: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
        z = torch.cat((base,) + others, dim=-1)
        return base + self.fc2(nn.functional.gelu(self.fc1(z)))


def make_fusion(kind: str, channels: int, width: int = 16, heads: int = 2) -> nn.Module:
    """``attention`` or ``mlp`` fusion of three views with ``channels`` values per token."""
    if kind == "attention":
        return AttentionFusion(channels, width, heads)
    if kind == "mlp":
        return MLPFusion(channels, width)
    raise ValueError(f"fusion must be one of {FUSIONS}, got {kind!r}")
