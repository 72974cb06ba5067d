"""Paired differences between two methods with a 95 % confidence interval.

Every method of a benchmark is tested on the same corrupted test clips (the corruption is a pure
function of seed, clip id, level and pattern), so two methods are compared clip by clip and seed
by seed: ``d[s, i] = correct_A[s, i] - correct_B[s, i]`` for seed ``s`` and test clip ``i``. The
reported difference is the mean of ``d`` (= top-1 of A minus top-1 of B, averaged over seeds).

The interval is a **two-way percentile bootstrap over seeds and test clips**: each of
``n_boot`` replicates draws the seeds with replacement and, independently, the test clips with
replacement (the same clip draw for every seed, since the clips are shared), and takes the mean
difference; the 2.5 and 97.5 percentiles of the replicates bound the interval. Drawing the seeds
covers training noise (the spread between seeds, 1-7 points on real data), drawing the clips covers
test-set sampling. With ONE seed only the clips are drawn: the interval then says nothing about
training noise, and a difference is not called real on one seed.

With few seeds a percentile bootstrap understates training noise: two seeds allow only three
distinct seed draws, so its interval barely reaches past the two per-seed differences. Over two or
more seeds the reported interval is therefore the **union** of the bootstrap interval and the
Student t interval over the per-seed mean differences (which widens properly with few seeds but
leaves out the test-clip sampling that every seed shares); the wider bound wins on each side.

Where per-clip predictions were not recorded (older results), the interval is a Student t
interval over the per-seed differences of top-1 (``scipy.stats.t``), which needs 2 seeds or more.

A difference is called **real** only when its interval excludes 0 and at least 2 seeds were
paired; otherwise it is **not distinguishable**.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

N_BOOT = 2000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class PairedDifference:
    """mean, lo, hi: top-1 difference A - B and its 95 % interval (fractions, not points);
    n_seeds / n_clips: what was paired; method: ``bootstrap`` (seeds x clips), ``bootstrap-clips``
    (one seed: clips only), ``t-seeds`` (per-seed top-1, no per-clip predictions) or ``none``."""

    mean: float
    lo: float
    hi: float
    n_seeds: int
    n_clips: int
    method: str

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    @property
    def real(self) -> bool:
        """Interval excludes 0 and at least two seeds were paired."""
        return self.excludes_zero and self.n_seeds >= 2

    @property
    def verdict(self) -> str:
        if self.method == "none":
            return "no interval (one seed, no per-clip predictions)"
        if self.real:
            return "real" if self.mean > 0 else "real (negative)"
        if self.excludes_zero:
            return "one seed: excludes 0 on these test clips, training noise not covered"
        return "not distinguishable"

    def text(self) -> str:
        """``+1.2 [-0.4, +2.9]`` in points, with the verdict."""
        if self.method == "none":
            return f"{100 * self.mean:+.1f} (no interval)"
        return f"{100 * self.mean:+.1f} [{100 * self.lo:+.1f}, {100 * self.hi:+.1f}]"


def bootstrap_difference(diff: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                         confidence: float = CONFIDENCE) -> PairedDifference:
    """Mean of ``diff`` (S seeds, N clips) and its two-way percentile bootstrap interval."""
    d = np.asarray(diff, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"expected a non-empty (seeds, clips) array, got shape {d.shape}")
    S, N = d.shape
    rng = np.random.default_rng(seed)
    # clip weights: how often each clip is drawn in a replicate (multinomial = drawing N with replacement)
    w_clip = rng.multinomial(N, np.full(N, 1.0 / N), size=n_boot)               # (B, N)
    per_seed = w_clip @ d.T / N                                                 # (B, S)
    if S > 1:
        w_seed = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot)            # (B, S)
        reps = (w_seed * per_seed).sum(axis=1) / S
    else:
        reps = per_seed[:, 0]
    alpha = (1 - confidence) / 2
    lo, hi = (float(q) for q in np.quantile(reps, [alpha, 1 - alpha]))
    if S > 1:  # few seeds: the t interval over the per-seed differences is the honest width
        t = t_interval(d.mean(axis=1), confidence)
        lo, hi = min(lo, t.lo), max(hi, t.hi)
    return PairedDifference(float(d.mean()), lo, hi, S, N, "bootstrap" if S > 1 else "bootstrap-clips")


def t_interval(per_seed: Sequence[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """Mean of per-seed differences and its Student t interval (needs 2 seeds or more)."""
    x = np.asarray(per_seed, dtype=np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return PairedDifference(m, m, m, len(x), 0, "none")
    from scipy import stats

    half = float(stats.t.ppf(1 - (1 - confidence) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return PairedDifference(m, m - half, m + half, len(x), 0, "t-seeds")


def correct_matrix(cells: dict[Any, dict[str, Any]], labels: Sequence[int] | None) -> dict[Any, np.ndarray] | None:
    """seed -> (N,) bool correctness of each test clip, from the cells' ``pred``; None if any cell
    has no predictions or there are no labels."""
    if labels is None:
        return None
    lab = np.asarray(labels)
    out = {}
    for seed, c in cells.items():
        pred = c.get("pred")
        if pred is None or len(pred) != len(lab):
            return None
        out[seed] = np.asarray(pred) == lab
    return out


def paired_difference(a: dict[Any, dict[str, Any]], b: dict[Any, dict[str, Any]],
                      labels: Sequence[int] | None, ids_sha1: str | None = None,
                      n_boot: int = N_BOOT) -> PairedDifference | None:
    """A minus B over the seeds both ran (``a``, ``b``: seed -> cell). Per-clip bootstrap when
    every paired cell has predictions on the test clips whose ids hash to ``ids_sha1`` (the order
    of ``labels``), else a t interval over seeds; None when no seed is shared."""
    seeds = sorted(set(a) & set(b), key=str)
    if not seeds:
        return None
    a2, b2 = {s: a[s] for s in seeds}, {s: b[s] for s in seeds}
    same_clips = ids_sha1 is not None and {c.get("ids_sha1") for c in (*a2.values(), *b2.values())} == {ids_sha1}
    ca, cb = correct_matrix(a2, labels), correct_matrix(b2, labels)
    if same_clips and ca is not None and cb is not None:
        diff = np.stack([ca[s].astype(np.int8) - cb[s].astype(np.int8) for s in seeds])
        return bootstrap_difference(diff, n_boot=n_boot)
    return t_interval([float(a2[s]["top1"]) - float(b2[s]["top1"]) for s in seeds])
