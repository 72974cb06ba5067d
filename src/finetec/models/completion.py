"""Module 1 of FineTec: context-aware sequence completion (registered as ``"completion"``).

In-context completion in the Skeleton-in-Context style. Every person of every clip is a *query*
pair ``(S_corrupt, S_prior)`` and is accompanied by a *prompt* pair ``(S_mask, S_context)``:

- ``S_context`` is a clean clip from the skeleton bank (a buffer filled by :meth:`set_bank` from the
  training split's clean normalised clips, or by :meth:`load_bank` from a ``.npz`` file);
- ``S_mask`` is S_context with frames dropped: in training by one of the five corruption patterns
  (random, periodic, prefix, suffix, middle) at a drop ratio ``U[0.25, 0.85]``; at evaluation the
  bank clip nearest to the query on the query's observed entries, masked with the query's own mask
  (deterministic, and the demonstration then shows exactly the query's task);
- ``S_prior`` is the frame-wise mean clip of the bank.

Network (all widths configurable): each pair is one sequence of ``2T`` frames, ``[first slot ;
second slot]`` = ``[S_mask ; S_context]`` for the prompt and ``[S_corrupt ; S_prior]`` for the
query. Missing entries of the first slot are pre-filled by linear interpolation of the observed
ones (``prefill``) and the mask is an extra input channel per joint (the second slot's channel is
1 for the prompt's real clip and 0 for the query's prior). A frame embedding (a spatial layer
across all joints of a frame) maps ``V * (C + 1)`` to ``width``; then ``depth`` dual-stream blocks,
each running a spatial->temporal stream and a temporal->spatial stream whose outputs are fused by
a learned linear layer. Spatial MLPs mix the joint features of one frame; temporal MLPs mix the
``2T`` frames of each feature trajectory. Prompt and query share all weights; after
``merge_at`` blocks the prompt's features are added to the query's (Skeleton-in-Context's merge)
and the remaining blocks process the query alone. A linear head (zero-initialised, so training
starts from linear interpolation) predicts a residual on the pre-filled first slot.

Output: ``S_base = where(mask, S_corrupt, prediction)`` — observed entries are returned
bit-identical; persons with no observed entry (padding) are returned unchanged.

Loss: ``MSE(S_gt, S_base)`` on the query over the entries observed in the clean clip of real
persons, plus ``prompt_weight * MSE(S_context, reconstruction of S_mask)`` on the prompt (the
reconstruction is read from the prompt's features at the merge through the shared head).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from finetec.data.corruption import keep_frames
from finetec.errors import FinetecError
from finetec.layouts import Layout
from finetec.data.fillers import fill_linear, interpolate_gaps
from finetec.models.decomposition import gap_position, person_present
from finetec.models.registry import register_model

__all__ = ["CompletionConfig", "CompletionNet", "completion", "PROMPT_PATTERNS", "PROMPT_RATIO"]

PROMPT_PATTERNS: tuple[str, ...] = ("random", "periodic", "prefix", "suffix", "middle")
PROMPT_RATIO: tuple[float, float] = (0.25, 0.85)
LOSSES: tuple[str, ...] = ("mse", "l2")
PREFILLS = ("linear", "zero", "linear_unseen_zero")


class _SpatialMLP(nn.Module):
    """Mixes the features of one frame (all joints): LayerNorm -> Linear -> GELU -> Dropout -> Linear, residual."""

    def __init__(self, width: int, expansion: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width * expansion)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width * expansion, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, width)
        return x + self.fc2(self.drop(nn.functional.gelu(self.fc1(self.norm(x)))))


class _TemporalMLP(nn.Module):
    """Mixes the L frames of each feature trajectory: LayerNorm -> Linear(L) -> GELU -> Dropout -> Linear(L), residual."""

    def __init__(self, width: int, length: int, dropout: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(length, length)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(length, length)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, width)
        y = self.norm(x).transpose(1, 2)
        return x + self.fc2(self.drop(nn.functional.gelu(self.fc1(y)))).transpose(1, 2)


class _DualStreamBlock(nn.Module):
    """Spatial->temporal and temporal->spatial streams, fused by a linear layer (initialised to their mean)."""

    def __init__(self, width: int, length: int, expansion: int, dropout: float = 0.0):
        super().__init__()
        self.st = nn.Sequential(_SpatialMLP(width, expansion, dropout), _TemporalMLP(width, length, dropout))
        self.ts = nn.Sequential(_TemporalMLP(width, length, dropout), _SpatialMLP(width, expansion, dropout))
        self.fuse = nn.Linear(2 * width, width)
        with torch.no_grad():
            eye = torch.eye(width) * 0.5
            self.fuse.weight.copy_(torch.cat([eye, eye], dim=1))
            self.fuse.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.st(x), self.ts(x)], dim=-1))


class CompletionNet(nn.Module):
    """Context-aware completion of missing skeleton entries.

    Args:
        num_joints: V; channels: C (2 or 3); clip_len: T (the network's temporal MLPs have 2T inputs).
        width: feature width per frame; depth: number of dual-stream blocks; merge_at: blocks run
            on prompt and query separately before their features are merged (0..depth).
        expansion: hidden expansion of the spatial MLPs.
        bank_size: capacity of the skeleton bank buffer (clips of shape (T, V, C)).
        prompt_weight: weight of the prompt reconstruction loss.
        loss: ``mse`` (the paper's MSE over the clean entries) or ``l2`` (mean Euclidean error per
            joint over the entries missing in the input: the MPJPE itself, robust to outliers).
        prefill: ``linear`` (missing entries pre-filled by the project's linear filler,
            :func:`finetec.data.fillers.fill_linear`) or ``zero``; ``linear_unseen_zero`` is the rule
            of checkpoints written before checkpoint format 2 (a joint never observed in the clip
            pre-filled with 0, not its person's centroid), which ``load_model`` sets for them.
        gap_features: add, per joint, the frames since the last / until the next observation (/ T)
            as input channels, so the network knows where each entry sits inside its gap.
        dropout: dropout after the hidden activation of every spatial and temporal MLP (0 = off).
        train_patterns: when not empty, every training query is drawn afresh from its clean clip
            (one of these patterns at a drop ratio ``U[PROMPT_RATIO]``) instead of the pipeline's
            corruption, so the module learns long holes (prefix, suffix, middle) as well as scattered ones.
        transplant: with ``train_patterns``, the probability that a training query also loses the
            joints the previous clip of its batch did not observe (real occlusion of the data).
        retrieval: k > 0 pre-fills the query with linear interpolation plus the mean deviation of its
            k nearest bank clips (on the observed entries, translation-invariant) from their own linear
            interpolation over the query's gaps (:meth:`retrieve`); in training the nearest one is
            skipped (the query itself may be in the bank). 0 = linear pre-fill only.
        linear_below: at evaluation, entries in interior gaps shorter than this many frames take
            linear interpolation (there the keyframes' own jitter dominates and the network measured
            worse than linear, docs/results_completion.md); training is unchanged. 0 = off.
        uncertainty: predict, per filled entry, its expected Euclidean error (output ``expected_error``,
            0 on observed entries), trained by ``e / s + log s`` on the detached error ``e``.
        Output ``uncertainty`` (the confidence of ``finetec complete``; larger = less sure): with
        ``retrieval`` >= 2 the spread of the k retrieved motions at each filled entry (it ranks the
        real errors better than the error head, docs/results_completion.md), else ``expected_error``.
        seed: seed of the module's own generator for training prompts (used when forward gets no rng).

    forward(x (N, M, T, V, C), mask (N, M, T, V) bool, target (N, M, T, V, C) | None,
    target_mask (N, M, T, V) bool | None, rng: np.random.Generator | None) -> dict with
    ``completed`` (N, M, T, V, C), ``uncertainty`` / ``expected_error`` (N, M, T, V; see above) and, when target is given, ``loss`` (scalar), ``query_loss``,
    ``prompt_loss``.
    """

    def __init__(self, num_joints: int, channels: int, clip_len: int, width: int = 128, depth: int = 4,
                 merge_at: int = 2, expansion: int = 2, bank_size: int = 256, prompt_weight: float = 1.0,
                 prefill: str = "linear", loss: str = "mse", gap_features: bool = True, dropout: float = 0.0,
                 train_patterns: tuple[str, ...] | list[str] = (), transplant: float = 0.0, uncertainty: bool = False,
                 retrieval: int = 0, linear_below: int = 0, seed: int = 0):
        super().__init__()
        bad = [p for p in train_patterns if p not in PROMPT_PATTERNS]
        if bad:
            raise FinetecError(f"completion: train_patterns must be among {', '.join(PROMPT_PATTERNS)}, got {bad}")
        self.train_patterns = tuple(train_patterns)
        if not 0.0 <= float(transplant) <= 1.0:
            raise FinetecError(f"completion: transplant must be in [0, 1], got {transplant!r}")
        self.transplant = float(transplant)
        if int(retrieval) < 0:
            raise FinetecError(f"completion: retrieval must be >= 0, got {retrieval!r}")
        self.retrieval = int(retrieval)
        if int(linear_below) < 0:
            raise FinetecError(f"completion: linear_below must be >= 0, got {linear_below!r}")
        self.linear_below = int(linear_below)
        if not 0.0 <= float(dropout) < 1.0:
            raise FinetecError(f"completion: dropout must be in [0, 1), got {dropout!r}")
        if loss not in LOSSES:
            raise FinetecError(f"completion: loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        self.loss_kind = loss
        if not 0 <= merge_at <= depth:
            raise FinetecError(f"completion: merge_at must be in 0..depth ({depth}), got {merge_at}")
        if prefill not in PREFILLS:
            raise FinetecError(f"completion: prefill must be one of {', '.join(PREFILLS)}, got {prefill!r}")
        if clip_len < 2:
            raise FinetecError(f"completion: clip_len must be >= 2, got {clip_len}")
        self.V, self.C, self.T = int(num_joints), int(channels), int(clip_len)
        self.merge_at, self.prefill, self.prompt_weight = int(merge_at), prefill, float(prompt_weight)
        L = 2 * self.T
        self.gap_features = bool(gap_features)
        self.token_channels = self.C + 1 + (2 if self.gap_features else 0)
        self.embed = nn.Linear(self.V * self.token_channels, width)
        self.blocks = nn.ModuleList(_DualStreamBlock(width, L, expansion, float(dropout)) for _ in range(depth))
        self.merge = nn.Linear(width, width)  # prompt -> query at the merge; zero-initialised
        nn.init.zeros_(self.merge.weight)
        nn.init.zeros_(self.merge.bias)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, self.V * self.C)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # the expected error of each entry, as log(metres of the normalised body); None = not predicted
        self.error_head = nn.Linear(width, self.V) if uncertainty else None
        if self.error_head is not None:
            nn.init.zeros_(self.error_head.weight)
            nn.init.constant_(self.error_head.bias, float(np.log(0.05)))
        self.register_buffer("bank", torch.zeros(int(bank_size), self.T, self.V, self.C))
        self.register_buffer("bank_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("prior", torch.zeros(self.T, self.V, self.C))
        self._rng = np.random.default_rng(seed)

    # -- the skeleton bank -------------------------------------------------------------------
    @property
    def bank_size(self) -> int:
        return int(self.bank.shape[0])

    def set_bank(self, clips: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor | None = None) -> int:
        """Fill the bank with clean normalised clips (B, T, V, C); returns the number stored.

        ``mask`` (B, T, V) marks observed entries (real missing joints are then filled by linear
        interpolation before storage). When more than ``bank_size`` clips are given, ``bank_size``
        evenly spaced ones are kept. ``prior`` is recomputed as the frame-wise mean of the bank.
        """
        clips = torch.as_tensor(np.asarray(clips) if not torch.is_tensor(clips) else clips, dtype=torch.float32)
        if clips.ndim != 4 or tuple(clips.shape[1:]) != (self.T, self.V, self.C):
            raise FinetecError(f"a skeleton bank must have shape (B, {self.T}, {self.V}, {self.C}), "
                               f"got {tuple(clips.shape)}")
        if clips.shape[0] == 0:
            raise FinetecError("a skeleton bank needs at least one clip")
        if not torch.isfinite(clips).all():
            raise FinetecError("the skeleton bank contains NaN or Inf")
        if mask is not None:
            m = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask).bool()
            if tuple(m.shape) != tuple(clips.shape[:3]):
                raise FinetecError(f"bank mask must have shape {tuple(clips.shape[:3])}, got {tuple(m.shape)}")
            keep = m.flatten(1).any(1)
            clips, m = clips[keep], m[keep]
            if clips.shape[0] == 0:
                raise FinetecError("every clip of the skeleton bank is empty (mask all False)")
            clips = self._linear(clips, m)
        n = clips.shape[0]
        if n > self.bank_size:
            idx = np.linspace(0, n - 1, self.bank_size).round().astype(np.int64)
            clips, n = clips[torch.as_tensor(idx)], self.bank_size
        with torch.no_grad():
            self.bank.zero_()
            self.bank[:n] = clips.to(self.bank.device)
            self.bank_count.fill_(n)
            self.prior.copy_(self.bank[:n].mean(0))
        return n

    def load_bank(self, path: str | os.PathLike) -> int:
        """Fill the bank from a ``.npz`` file with a ``bank`` array (B, T, V, C) (optional ``mask`` (B, T, V))."""
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                if "bank" not in z.files:
                    raise FinetecError("the bank file has no 'bank' array", p)
                bank = np.asarray(z["bank"], dtype=np.float32)
                mask = np.asarray(z["mask"], dtype=bool) if "mask" in z.files else None
        except FinetecError:
            raise
        except (OSError, ValueError) as e:
            raise FinetecError(f"cannot read the skeleton bank ({type(e).__name__}: {e})", p) from None
        try:
            return self.set_bank(bank, mask)
        except FinetecError as e:
            raise FinetecError(e.problem, p) from None

    # -- prompts -----------------------------------------------------------------------------
    def _train_prompts(self, B: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """B random bank clips (B, T, V, C) and their frame keep masks (B, T) (random pattern and ratio)."""
        n = int(self.bank_count)
        idx = rng.integers(0, n, size=B)
        keep = np.stack([
            keep_frames(self.T, float(rng.uniform(*PROMPT_RATIO)), PROMPT_PATTERNS[int(rng.integers(0, 5))], rng)
            for _ in range(B)
        ])
        dev = self.bank.device
        return self.bank[torch.as_tensor(idx, device=dev)], torch.as_tensor(keep, device=dev)

    def nearest_bank(self, q: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """(B,) index of the bank clip nearest to each query q (B, T, V, C) on its observed entries m (B, T, V).

        Distance: mean squared difference over the observed entries (0 for a query with none),
        ``sum m (q - b)^2 = sum m q^2 - 2 (m q) . b + m . b^2`` as two products with the cached
        bank matrices (no per-call pass over the whole bank).
        """
        flat, sq, _ = self._bank_matrices()
        B = q.shape[0]
        mf = m.to(q.dtype).reshape(B, -1)                                           # (B, T*V)
        mq = (q.detach() * mf.reshape(q.shape[:-1])[..., None]).reshape(B, -1)     # (B, T*V*C)
        d = (mq * q.detach().reshape(B, -1)).sum(1, keepdim=True) - 2 * mq @ flat.T + mf @ sq
        return (d / mf.sum(1, keepdim=True).clamp(min=1)).argmin(dim=1)

    def _redraw_query(self, target: torch.Tensor, target_mask: torch.Tensor | None, mask: torch.Tensor,
                      rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Training query drawn afresh from the clean clip: one of ``train_patterns`` at a drop
        ratio ``U[PROMPT_RATIO]`` per person, on the entries observed in the clean clip; with probability
        ``transplant`` a clip also loses the joints that the previous clip of the batch did not observe
        (its real invisibility flags)."""
        N, M, T = target.shape[:3]
        tm = person_present(mask)[:, :, None, None] & (
            torch.ones_like(mask) if target_mask is None else target_mask.bool())
        keep = np.stack([
            keep_frames(T, float(rng.uniform(*PROMPT_RATIO)),
                        self.train_patterns[int(rng.integers(0, len(self.train_patterns)))], rng)
            for _ in range(N * M)
        ]).reshape(N, M, T)
        m = tm & torch.as_tensor(keep, device=target.device)[..., None]
        if self.transplant > 0 and N > 1:  # real occlusion: the joints another clip of the batch did not see
            donor = tm.roll(1, dims=0)[:, :1] | ~person_present(tm.roll(1, dims=0))[:, :1, None, None]
            hit = torch.as_tensor(rng.random(N) < self.transplant, device=target.device)[:, None, None, None]
            m = m & (donor | ~hit)
        m = torch.where(m.flatten(2).any(2)[:, :, None, None], m, tm)  # never a person with nothing observed
        return torch.where(m[..., None], target, torch.zeros_like(target)), m

    def _bank_matrices(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The bank as matrices for :meth:`retrieve` (cached until the bank changes): clips (n, T*V*C),
        squared norms per entry (T*V, n) and coordinates per entry (T*V, C*n)."""
        n = int(self.bank_count)
        key = (self.bank.data_ptr(), self.bank._version, n, self.bank.device)
        if getattr(self, "_bank_cache", (None,))[0] != key:
            bank = self.bank[:n].detach()
            TV = self.T * self.V
            self._bank_cache = (key, bank.reshape(n, -1), bank.pow(2).sum(-1).reshape(n, TV).T.contiguous(),
                                bank.reshape(n, TV, self.C).permute(1, 2, 0).reshape(TV, self.C * n).contiguous())
        return self._bank_cache[1:]

    def retrieve(self, q: torch.Tensor, m: torch.Tensor, k: int, skip: int = 0) -> torch.Tensor:
        """(B, k) indices of the bank clips nearest to each query q (B, T, V, C) on its observed
        entries m (B, T, V), translation-invariant (both centred on their mean over those entries);
        the ``skip`` nearest are left out (in training the query itself may be in the bank)."""
        n = int(self.bank_count)
        flat, sq, coords = self._bank_matrices()
        B = q.shape[0]
        mf = m.to(q.dtype).reshape(B, -1)                                           # (B, T*V)
        cnt = mf.sum(1).clamp(min=1)
        q = q.detach().reshape(B, -1, self.C)
        cq = (mf[..., None] * q).sum(1) / cnt[:, None]                              # (B, C)
        qc = (q - cq[:, None]) * mf[..., None]
        cb = (mf @ coords).reshape(B, self.C, n).transpose(1, 2) / cnt[:, None, None]  # (B, n, C)
        d = qc.pow(2).sum((1, 2))[:, None] - 2 * qc.reshape(B, -1) @ flat.T + mf @ sq \
            - cnt[:, None] * cb.pow(2).sum(-1)
        k = max(1, min(k, n - skip))
        return d.topk(min(n, k + skip), dim=1, largest=False).indices[:, skip:skip + k]

    def _retrieval_fill(self, x: torch.Tensor, m: torch.Tensor, skip: int,
                        linear: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Linear interpolation (``linear``, when the caller has it) plus the mean deviation of the ``retrieval`` nearest bank clips from
        their own linear interpolation over the same missing entries: the shape of the motion in a
        gap, borrowed from the clips that move most like the query where it is observed. Also
        returns the spread of those deviations per entry (B, T, V): the Euclidean norm of their
        standard deviation over the k clips (0 on observed entries)."""
        B, T, V, C = x.shape
        idx = self.retrieve(x, m, self.retrieval, skip)                              # (B, k)
        k = idx.shape[1]
        nb = self.bank[idx]                                                         # (B, k, T, V, C)
        # the k clips share the query's mask: fill them as one clip of k * C channels (the filler is
        # per channel, so this is the same arithmetic as k separate fills, done once per mask)
        wide = nb.permute(0, 2, 3, 1, 4).reshape(B, T, V, k * C)
        devs = nb - self._fill(wide, m).reshape(B, T, V, k, C).permute(0, 3, 1, 2, 4)
        mean = devs.mean(1)
        dev = torch.where(m[..., None], torch.zeros_like(mean), mean)
        # the Euclidean norm of the per-coordinate standard deviation over the k clips (unbiased)
        spread = ((devs - mean[:, None]).pow(2).sum((1, 4)) / (k - 1)).sqrt() if k > 1 else torch.zeros_like(m, dtype=x.dtype)
        linear = self._fill(x, m) if linear is None else linear
        return linear + dev, torch.where(m, torch.zeros_like(spread), spread)

    # -- network -----------------------------------------------------------------------------
    def _fill(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        x = torch.where(m[..., None], x, torch.zeros_like(x))
        return self._linear(x, m) if self.prefill != "zero" else x

    def _linear(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """The linear pre-fill: the project's one linear filler (or the rule of older checkpoints)."""
        return interpolate_gaps(x, m) if self.prefill == "linear_unseen_zero" else fill_linear(x, m)

    def _tokens(self, first: torch.Tensor, first_mask: torch.Tensor, second: torch.Tensor,
                second_flag: float) -> torch.Tensor:
        """(B, 2T, V * token_channels) frame vectors of a pair.

        Per joint: coordinates, then the mask (first slot) or ``second_flag`` (second slot), then
        (``gap_features``) the frames since the last and until the next observation / T (zeros in
        the second slot).
        """
        B = first.shape[0]
        a = [first, first_mask[..., None].to(first.dtype)]
        b = [second, torch.full_like(second[..., :1], second_flag)]
        if self.gap_features:
            a.append(gap_position(first_mask).to(first.dtype))
            b.append(torch.zeros_like(second[..., :1]).expand(*second.shape[:-1], 2))
        seq = torch.cat([torch.cat(a, dim=-1), torch.cat(b, dim=-1)], dim=1)
        return seq.reshape(B, 2 * self.T, self.V * self.token_channels)

    def _readout(self, h: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """Prediction (B, T, V, C): base + head(first-slot features)."""
        B = h.shape[0]
        return base + self.head(self.norm(h[:, :self.T])).reshape(B, self.T, self.V, self.C)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, target: torch.Tensor | None = None,
                target_mask: torch.Tensor | None = None, rng: np.random.Generator | None = None) -> dict[str, Any]:
        N, M, T, V, C = x.shape
        if (T, V, C) != (self.T, self.V, self.C):
            raise ValueError(f"completion expects clips of shape (T={self.T}, V={self.V}, C={self.C}), "
                             f"got {(T, V, C)}")
        if mask is None:
            mask = torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
        mask = mask.bool()
        B = N * M
        rng = rng if rng is not None else self._rng
        if self.training and self.train_patterns and target is not None:
            x, mask = self._redraw_query(target, target_mask, mask, rng)
        xq, mq = x.reshape(B, T, V, C), mask.reshape(B, T, V)
        present = person_present(mask).reshape(B)
        if self.training:
            if int(self.bank_count) == 0:
                raise RuntimeError("the completion module's skeleton bank is empty: call set_bank() before training")
            ctx, keep = self._train_prompts(B, rng)
            pm = keep[:, :, None].expand(B, T, V)
        else:
            ctx = self.bank[self.nearest_bank(xq, mq)] if int(self.bank_count) > 0 else torch.zeros_like(xq)
            pm = mq
        spread = None
        linear = self._fill(xq, mq)
        if self.retrieval and int(self.bank_count) > 0:
            query_base, spread = self._retrieval_fill(xq, mq, skip=1 if self.training else 0, linear=linear)
        else:
            query_base = linear
        prompt_base = self._fill(ctx, pm)
        prior = self.prior.to(x.dtype).expand(B, T, V, C)
        h = self.embed(torch.cat([self._tokens(query_base, mq, prior, 0.0),
                                  self._tokens(prompt_base, pm, ctx, 1.0)], dim=0))
        for blk in self.blocks[:self.merge_at]:
            h = blk(h)
        hq, hp = h[:B], h[B:]
        hq = hq + self.merge(hp)
        for blk in self.blocks[self.merge_at:]:
            hq = blk(hq)
        pred = self._readout(hq, query_base)
        if self.linear_below and not self.training:  # short interior gaps: linear interpolation is better
            pos = gap_position(mq) * T                                                # (B, T, V, 2)
            short = (pos[..., 0] < T) & (pos[..., 1] < T) & (pos.sum(-1) - 1 < self.linear_below)
            pred = torch.where(short[..., None], linear, pred)
        completed = torch.where(mq[..., None], xq, pred)
        completed = torch.where(present[:, None, None, None], completed, xq).reshape(N, M, T, V, C)
        out: dict[str, Any] = {"completed": completed}
        filled = ~mask & person_present(mask)[:, :, None, None]
        if self.error_head is not None:
            log_err = self.error_head(self.norm(hq[:, :self.T])).reshape(N, M, T, V)
            out["expected_error"] = torch.where(filled, log_err.exp(), torch.zeros_like(log_err))
            out["uncertainty"] = out["expected_error"]
        if spread is not None and self.retrieval > 1:  # the spread of the retrieved motions ranks errors better
            out["uncertainty"] = torch.where(filled, spread.reshape(N, M, T, V), torch.zeros_like(spread.reshape(N, M, T, V)))
        if target is not None:
            tm = torch.ones_like(mask) if target_mask is None else target_mask.bool()
            tm = tm & person_present(mask)[:, :, None, None]
            recon = torch.where(pm[..., None], prompt_base, self._readout(hp, prompt_base))
            live = present[:, None, None].expand(B, T, V)
            if self.loss_kind == "mse":
                q_loss = _masked_mse(completed, target, tm)
                p_loss = _masked_mse(recon, ctx, live)
            else:
                q_loss = _masked_l2(completed, target, tm & ~mask)
                p_loss = _masked_l2(recon, ctx, live & ~pm)
            loss = q_loss + self.prompt_weight * p_loss
            if self.error_head is not None:  # the expected error: minimiser of e / s + log s is s = E[e]
                scored = tm & filled
                e = (completed - target).detach().pow(2).sum(-1).add(1e-8).sqrt()
                nll = e * torch.exp(-log_err) + log_err
                loss = loss + (nll * scored).sum() / scored.sum().clamp(min=1)
            out.update(loss=loss, query_loss=q_loss.detach(), prompt_loss=p_loss.detach())
        return out


def _masked_mse(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the coordinates of the entries where ``where`` (..., V) is True."""
    w = where[..., None].to(pred.dtype).expand_as(pred)
    return ((pred - target).pow(2) * w).sum() / w.sum().clamp(min=1)


def _masked_l2(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Mean Euclidean error per joint over the entries where ``where`` is True (smooth at zero)."""
    d = torch.where(where[..., None], pred - target, torch.zeros_like(pred))
    err = (d.pow(2).sum(-1) + eps).sqrt() * where.to(pred.dtype)
    return err.sum() / where.sum().clamp(min=1)


@dataclass(frozen=True)
class CompletionConfig:
    """The completion module's options: the schema of its ``model.config`` (besides
    ``num_classes``, unused, ``layout`` and ``in_channels`` = C); every field is the
    :class:`CompletionNet` argument of the same name (documented there), which validates the values."""

    clip_len: int = 64
    width: int = 128
    depth: int = 4
    merge_at: int = 2
    expansion: int = 2
    bank_size: int = 256
    prompt_weight: float = 1.0
    prefill: str = "linear"
    loss: str = "mse"
    gap_features: bool = True
    dropout: float = 0.0
    train_patterns: tuple[str, ...] = ()
    transplant: float = 0.0
    uncertainty: bool = False
    retrieval: int = 0
    linear_below: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.train_patterns, str):
            raise FinetecError(f"completion: train_patterns must be a list of pattern names, "
                               f"got {self.train_patterns!r}")
        object.__setattr__(self, "train_patterns", tuple(self.train_patterns))


@register_model("completion", CompletionConfig)
def completion(*, num_classes: int, layout: Layout, in_channels: int, config: CompletionConfig) -> CompletionNet:
    """The completion module. ``in_channels`` is C (positions only); ``num_classes`` is unused."""
    return CompletionNet(layout.num_joints, in_channels, **asdict(config))

