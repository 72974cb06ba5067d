"""Module 2 of FineTec: skeleton decomposition into a dynamic and a static view.

Given the restored clip ``S_base`` (N, M, T, V, C), the per-joint motion energy is the mean L2
displacement between consecutive frames; the energy of each of the five regions of the layout
(head/torso, left arm, right arm, left leg, right leg) is the mean over its joints. Per sample the
two regions with the largest energy are *dynamic*, the other three *static*.

- ``S_dyna``: the dynamic joints get a strong spatio-temporal perturbation (a random temporal crop
  re-sampled to T frames, then a random frame drop re-filled by linear interpolation); every other
  joint keeps ``S_base`` exactly.
- ``S_stat``: the static joints get a weak spatial perturbation (with probability
  ``mirror_prob`` the body is mirrored about its vertical axis through the centre, then a small
  Gaussian jitter); every other joint keeps ``S_base`` exactly.

Everything is batched torch and differentiable with respect to ``S_base`` (crop re-sampling and
gap re-filling are gathers with linear weights). Randomness comes only from the torch generator(s)
passed in: one generator for the whole batch (training) or one per sample (evaluation, seeded from
a per-sample key, see :func:`sample_keys`), so that a sample's views do not depend on its batch.

The dropped frames of ``S_dyna`` are re-filled with the project's linear rule in torch
(:func:`finetec.data.fillers.interpolate_gaps`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from finetec.data.fillers import interpolate_gaps, observed_neighbours
from finetec.layouts import REGION_NAMES, Layout

__all__ = [
    "PerturbConfig", "gap_position", "joint_motion", "region_motion", "dynamic_joints",
    "resample_time", "decompose", "sample_keys", "sample_generators", "person_present",
]

Generators = torch.Generator | Sequence[torch.Generator] | None


@dataclass(frozen=True)
class PerturbConfig:
    """Strength of the two perturbations (units: frames as fractions of T, normalised coordinates).

    crop_min: the temporal crop keeps a window of ``U[crop_min, 1] * T`` frames.
    drop_min, drop_max: fraction of the (re-sampled) frames dropped and re-filled, ``U[drop_min, drop_max]``.
    mirror_prob: probability that the static view is mirrored about the body's vertical axis.
    jitter_std: standard deviation of the static view's Gaussian jitter.
    mirror_axis: the coordinate negated by the mirror (0 = x, the horizontal axis after normalisation).
    """

    crop_min: float = 0.6
    drop_min: float = 0.2
    drop_max: float = 0.5
    mirror_prob: float = 0.5
    jitter_std: float = 0.01
    mirror_axis: int = 0


# -- shared helpers ------------------------------------------------------------------------------
def person_present(mask: torch.Tensor) -> torch.Tensor:
    """(N, M) bool: persons with at least one observed joint, from a (N, M, T, V) mask."""
    return mask.flatten(2).any(dim=2)


def gap_position(observed: torch.Tensor) -> torch.Tensor:
    """(B, T, ..., 2) frames since the last and until the next observation, divided by T (1 where
    there is none); zeros at observed entries. ``observed``: (B, T, ...) bool."""
    T = observed.shape[1]
    prev, nxt = observed_neighbours(observed)
    shape = [1] * observed.ndim
    shape[1] = T
    t = torch.arange(T, device=observed.device).view(shape)
    since = torch.where(prev >= 0, t - prev, torch.full_like(prev, T))
    until = torch.where(nxt < T, nxt - t, torch.full_like(nxt, T))
    return torch.stack([since, until], dim=-1).float() / T


def resample_time(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor, T_out: int) -> torch.Tensor:
    """Linearly re-sample, per batch item, the window ``[start, start + length - 1]`` to ``T_out`` frames.

    x: (B, T, ...); start, length: (B,) float tensors (frames). Returns (B, T_out, ...).
    """
    B, T = x.shape[:2]
    pos = start[:, None] + torch.linspace(0, 1, T_out, device=x.device, dtype=x.dtype)[None] * (length[:, None] - 1)
    pos = pos.clamp(0, T - 1)
    lo = pos.floor().long().clamp(0, T - 1)
    hi = (lo + 1).clamp(max=T - 1)
    w = (pos - lo.to(x.dtype))
    extra = x.ndim - 2
    idx_shape = (B, T_out) + (1,) * extra
    lo_i = lo.view(idx_shape).expand((B, T_out) + x.shape[2:])
    hi_i = hi.view(idx_shape).expand((B, T_out) + x.shape[2:])
    w = w.view(idx_shape)
    return x.gather(1, lo_i) * (1 - w) + x.gather(1, hi_i) * w


# -- motion analysis -----------------------------------------------------------------------------
def joint_motion(x: torch.Tensor) -> torch.Tensor:
    """(N, M, V): mean L2 displacement of each joint between consecutive frames of x (N, M, T, V, C)."""
    if x.shape[2] < 2:
        return x.new_zeros(x.shape[0], x.shape[1], x.shape[3])
    return (x[:, :, 1:] - x[:, :, :-1]).norm(dim=-1).mean(dim=2)


def region_motion(x: torch.Tensor, layout: Layout, present: torch.Tensor | None = None) -> torch.Tensor:
    """(N, 5): per-sample motion of each region (REGION_NAMES order).

    The joint motion is averaged over the persons present (``present`` (N, M) bool; all persons
    when None), then over the joints of each region.
    """
    jm = joint_motion(x)  # (N, M, V)
    if present is None:
        jm = jm.mean(dim=1)
    else:
        w = present.to(jm.dtype)
        jm = (jm * w[..., None]).sum(1) / w.sum(1).clamp(min=1)[..., None]
    region = torch.as_tensor(layout.region_index, device=x.device)
    onehot = torch.nn.functional.one_hot(region, len(REGION_NAMES)).to(jm.dtype)  # (V, 5)
    return (jm @ onehot) / onehot.sum(0)


def dynamic_joints(x: torch.Tensor, layout: Layout, present: torch.Tensor | None = None,
                   num_dynamic: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """The dynamic regions and joints of each sample.

    Returns (regions (N, num_dynamic) long — indices into REGION_NAMES, largest motion first;
    joints (N, V) bool — True for the joints of those regions).
    """
    rm = region_motion(x.detach(), layout, present)
    top = rm.topk(num_dynamic, dim=1).indices
    region = torch.as_tensor(layout.region_index, device=x.device)
    joints = (region[None, :, None] == top[:, None, :]).any(-1)
    return top, joints


# -- randomness ----------------------------------------------------------------------------------
def sample_keys(x: torch.Tensor) -> list[int]:
    """A deterministic integer key per sample of x (N, ...), from its content.

    The coordinates are quantised (1e-3) and hashed with a fixed integer mixing, so the same clip
    gets the same key whatever batch it is in, on any device.
    """
    q = (x.detach().flatten(1).double() * 1000).round().to(torch.int64).cpu()
    n = q.shape[1]
    weights = (torch.arange(n, dtype=torch.int64) * 2654435761 + 97531) % 2147483629
    mixed = ((q % 2147483629) * weights) % 2305843009213693951
    return [int(v) % (2 ** 62) for v in mixed.sum(1).tolist()]


def sample_generators(keys: Sequence[int], salt: int = 0) -> list[torch.Generator]:
    """One CPU torch.Generator per key (seeded from key and salt)."""
    gens = []
    for k in keys:
        g = torch.Generator()
        g.manual_seed((int(k) * 1000003 + int(salt)) % (2 ** 63 - 1))
        gens.append(g)
    return gens


def _per_sample(gen: Generators, N: int) -> list[torch.Generator | None]:
    if gen is None or isinstance(gen, torch.Generator):
        return [gen] * N
    gens = list(gen)
    if len(gens) != N:
        raise ValueError(f"expected {N} generators (one per sample), got {len(gens)}")
    return gens


def _uniform(g: torch.Generator | None, lo: float, hi: float) -> float:
    return float(lo + (hi - lo) * torch.rand((), generator=g).item())


# -- the two views -------------------------------------------------------------------------------
def dynamic_view(x: torch.Tensor, gens: list[torch.Generator | None], cfg: PerturbConfig) -> torch.Tensor:
    """Strong spatio-temporal perturbation of every joint of x (N, M, T, V, C) (selection is the caller's).

    Per sample: temporal crop of ``U[crop_min, 1] * T`` frames at a random start, linearly
    re-sampled to T; then ``U[drop_min, drop_max] * T`` random frames (never all; the first and last
    are kept so the re-fill interpolates) are dropped and re-filled by linear interpolation.
    """
    N, M, T = x.shape[:3]
    starts, lengths, keep = [], [], torch.ones(N, T, dtype=torch.bool)
    for i, g in enumerate(gens):
        length = max(2.0, _uniform(g, cfg.crop_min, 1.0) * T)
        starts.append(_uniform(g, 0.0, T - length))
        lengths.append(length)
        if T > 2:
            n_drop = int(round(_uniform(g, cfg.drop_min, cfg.drop_max) * T))
            n_drop = min(max(n_drop, 0), T - 2)
            order = torch.randperm(T - 2, generator=g)[:n_drop] + 1
            keep[i, order] = False
    start = torch.tensor(starts, dtype=x.dtype, device=x.device)
    length = torch.tensor(lengths, dtype=x.dtype, device=x.device)
    folded = x.transpose(1, 2)  # (N, T, M, V, C)
    cropped = resample_time(folded, start, length, T)
    observed = keep.to(x.device).view(N, T, 1, 1).expand(cropped.shape[:-1])
    return interpolate_gaps(cropped, observed).transpose(1, 2)


def static_view(x: torch.Tensor, layout: Layout, gens: list[torch.Generator | None], cfg: PerturbConfig,
                present: torch.Tensor | None = None) -> torch.Tensor:
    """Weak spatial perturbation of every joint of x (N, M, T, V, C) (selection is the caller's).

    Per sample, with probability ``mirror_prob``: each frame's skeleton is mirrored about the vertical
    axis through the body centre (coordinate ``mirror_axis`` reflected about the centre joints'
    mean, and left/right joints swapped by the layout's flip permutation so the mirror image is a
    valid body). Then Gaussian jitter of std ``jitter_std`` on every coordinate.
    """
    N, M, T, V, C = x.shape
    flips, noise = [], []
    for g in gens:
        flips.append(_uniform(g, 0.0, 1.0) < cfg.mirror_prob)
        noise.append(torch.randn((M, T, V, C), generator=g))
    flip = torch.tensor(flips, device=x.device).view(N, 1, 1, 1, 1)
    centre = x[:, :, :, list(layout.center), :].mean(dim=3, keepdim=True)  # (N, M, T, 1, C)
    axis = torch.zeros(C, dtype=torch.bool, device=x.device)
    axis[cfg.mirror_axis] = True
    reflected = torch.where(axis, 2 * centre - x, x)
    mirrored = reflected[:, :, :, torch.as_tensor(layout.flip_permutation, device=x.device)]
    out = torch.where(flip, mirrored, x)
    out = out + cfg.jitter_std * torch.stack(noise).to(device=x.device, dtype=x.dtype)
    if present is not None:  # padded persons stay exactly as they are (zeros)
        out = torch.where(present[:, :, None, None, None], out, x)
    return out


def decompose(
    s_base: torch.Tensor,
    mask: torch.Tensor | None,
    layout: Layout,
    generator: Generators = None,
    perturb: bool = True,
    cfg: PerturbConfig = PerturbConfig(),
    num_dynamic: int = 2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Split S_base into the dynamic and static views.

    Args:
        s_base: (N, M, T, V, C) restored clips.
        mask: (N, M, T, V) bool or None; only used to find the persons present (padded persons,
            with no observed joint, are excluded from the motion statistics and never perturbed).
        layout: the skeleton layout (its five regions, centre joints and flip pairs are used).
        generator: a torch.Generator for the whole batch, a sequence of one generator per sample,
            or None (torch's default generator).
        perturb: False returns S_dyna = S_stat = S_base (the decomposition is still computed).
        cfg: perturbation strengths.
        num_dynamic: how many regions are dynamic (2 in FineTec).

    Returns:
        (S_dyna, S_stat, dynamic (N, V) bool). Joints outside the dynamic set in S_dyna, and outside
        the static set in S_stat, are bit-identical to S_base.
    """
    if s_base.ndim != 5:
        raise ValueError(f"S_base must be (N, M, T, V, C), got shape {tuple(s_base.shape)}")
    present = None if mask is None else person_present(mask)
    _, dyn = dynamic_joints(s_base, layout, present, num_dynamic)
    if not perturb:
        return s_base, s_base, dyn
    gens = _per_sample(generator, s_base.shape[0])
    d = dynamic_view(s_base, gens, cfg)
    s = static_view(s_base, layout, gens, cfg, present)
    sel = dyn[:, None, None, :, None]
    if present is not None:
        live = present[:, :, None, None, None]
        d = torch.where(live, d, s_base)
    s_dyna = torch.where(sel, d, s_base)
    s_stat = torch.where(sel, s_base, s)
    return s_dyna, s_stat, dyn
