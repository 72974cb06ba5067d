"""Incremental forward pass of the ST-GCN / ST-GCN++ backbones: new frames in, new frames out.

A backbone's blocks are ``relu(tcn(gcn(x)) + residual(x))``. The spatial unit, the 1x1 heads, the
residual and the transform are per frame; only the temporal convolutions (and ST-GCN++'s 3-frame
max-pool) look at neighbouring frames, ``pad`` frames back and ``pad`` frames ahead (4 for every
block of both models). :class:`IncrementalGCN` runs the network on a stream with one cache per
block: a new input frame computes the spatial unit and heads of that frame only, and each block
emits the output frames whose inputs now exist, at its own frame rate (a stride-2 block emits one
frame every 2 of its input frames; the phase is fixed by the first frame of the stream).

**What is computed.** The network run over the stream so far, as over one clip that starts at
the stream's first frame and ends at its newest (zero padding before and after, stride phases
from the first frame). An output frame whose inputs ``pad`` frames ahead all exist is final: it
is *committed* once and cached (:meth:`_BlockStream.push`). The frames after the committed ones
depend on the stream's end; they are *provisional* and recomputed for each prediction
(:meth:`_BlockStream.tail`), block after block, from the committed frames and the previous
block's provisional ones. A last-block frame is committed ``lag`` input frames after the frame
it stands for (48 for the ``*_small`` presets, 76 for the published models), so the provisional
frames are a minority of each block's window at full frame rate but most of it in the deepest,
quarter-rate blocks.

The classifier averages the last block's frames standing for the last ``window`` input frames
up to ``delay`` frames ago (``t - delay - window < j * rate <= t - delay``, ``t`` the newest
frame, ``rate`` the total stride), then the persons present, as
:meth:`SkeletonGCN.extract_features` does; only the provisional frames it needs are computed, so a
larger ``delay`` costs less (none at ``delay >= lag``). Each frame's value does not depend on
how the input frames were grouped into calls; the tests compare every block with the plain
(unfolded) network run on the whole sequence.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from finetec.errors import FinetecError
from finetec.models.gcn import SkeletonGCN
from finetec.models.layers import Fusable, GraphConv, MultiBranchTCN, TemporalConv, Zero, fuse_batchnorm

__all__ = ["INCREMENTAL_KINDS", "IncrementalGCN", "check_incremental"]

INCREMENTAL_KINDS = ("stgcn", "stgcnpp")


def check_incremental(model: Any) -> None:
    """FinetecError (one line, naming ``--incremental`` and the alternative) unless ``model`` is
    a backbone whose every temporal operation is a local convolution or max-pool."""
    name = getattr(model, "config", {}).get("name") if isinstance(getattr(model, "config", None), dict) else None
    kind = getattr(model, "kind", None) if isinstance(model, SkeletonGCN) else None
    if kind in INCREMENTAL_KINDS and all(isinstance(b.gcn, GraphConv) for b in model.blocks):
        return
    why = {"ctrgcn": "its CTR-GC topology pools every frame of the window",
           "finetec": "its completion module mixes every frame of the window"}.get(kind or name or "", "")
    raise FinetecError(
        f"--incremental supports ST-GCN and ST-GCN++ models ({', '.join(INCREMENTAL_KINDS)}); this checkpoint is "
        f"{kind or name or type(model).__name__}{' (' + why + ')' if why else ''}; omit --incremental to stream "
        "it with full-window predictions")


class _Frames:
    """The recent frames of one feature map: ``data`` (B, C, L, V) holds stream frames
    ``start .. start + L - 1``."""

    def __init__(self) -> None:
        self.data: torch.Tensor | None = None
        self.start = 0

    @property
    def end(self) -> int:
        return self.start + (0 if self.data is None else self.data.shape[2])

    def append(self, new: torch.Tensor) -> None:
        self.data = new if self.data is None else torch.cat([self.data, new], dim=2)

    def trim(self, first: int) -> None:
        """Forget the frames before ``first``."""
        if self.data is not None and first > self.start:
            k = min(first - self.start, self.data.shape[2])
            self.data = self.data[:, :, k:]
            self.start += k

    def span(self, lo: int, hi: int) -> torch.Tensor:
        """Frames ``lo .. hi - 1``, zeros for those before the stream or not yet there."""
        assert self.data is not None and (lo >= self.start or self.start == 0)
        a, b = max(lo, self.start), min(hi, self.end)
        part = self.data[:, :, a - self.start:max(a, b) - self.start]
        if a - lo or hi - max(a, b):
            part = F.pad(part, (0, 0, a - lo, hi - max(a, b)))
        return part


def _taps(conv: nn.Conv2d) -> list[int]:
    """Frame offsets of the taps of a (kernel x 1) temporal convolution."""
    k, d, p = conv.kernel_size[0], conv.dilation[0], conv.padding[0]
    return [q * d - p for q in range(k)]


def _drop_taps(conv: nn.Conv2d, w: torch.Tensor, lookahead: int) -> torch.Tensor:
    """``w`` (a folded weight of ``conv``'s geometry) with the taps beyond ``lookahead`` frames zeroed."""
    w = w.clone()
    for q, off in enumerate(_taps(conv)):
        if off > lookahead:
            w[:, :, q] = 0
    return w


class _BlockStream:
    """One :class:`~finetec.models.layers.GCNBlock` run incrementally (its folded weights).

    ``n_in`` input frames are committed; ``n_out`` output frames are committed (those whose
    input frames, ``pad`` ahead, are all committed); :meth:`tail` computes the provisional
    frames after them."""

    def __init__(self, block: nn.Module, lookahead: int | None = None) -> None:
        self.block = block
        tcn = block.tcn
        self.multi = isinstance(tcn, MultiBranchTCN)
        self.f = tcn.fused
        if self.multi:
            self.stride = tcn.stride
            self.convs = list(tcn.temporal)
            self.max_taps = [[q - (k - 1) // 2 for q in range(k)]
                             for k in (spec[1] for spec in tcn.specs if spec != "1x1" and spec[0] == "max")]
            taps = [_taps(c) for c in self.convs] + self.max_taps
            self.wbs = self.f["temporal"]
            # per branch in concatenation order: (kind, index of its input part, index of its unit)
            self.plan, counts = [], {"1x1": 0, "max": 0, "conv": 0, "head": 0}
            for spec in tcn.specs:
                kind = "1x1" if spec == "1x1" else "max" if spec[0] == "max" else "conv"
                part = counts["1x1"] if kind == "1x1" else counts["head"]
                self.plan.append((kind, part, counts[kind]))
                counts[kind] += 1
                counts["head"] += kind != "1x1"
        else:
            self.stride = tcn.conv.stride[0]
            self.convs = [tcn.conv]
            taps = [_taps(tcn.conv)]
            self.wbs = [self.f["wb"]]
        self.pad = max([t[-1] for t in taps] + [0])      # frames ahead a temporal kernel reaches
        self.back = max([-t[0] for t in taps] + [0])     # frames back
        # the taps beyond the lookahead are left out (zero weights; the max-pool skips them)
        self.lookahead = a = self.pad if lookahead is None else max(0, min(int(lookahead), self.pad))
        if a < self.pad:
            self.wbs = [(_drop_taps(c, w, a), b) for c, (w, b) in zip(self.convs, self.wbs)]
            if self.multi:
                self.max_taps = [[o for o in t if o <= a] for t in self.max_taps]
        res = block.residual
        self.res_wb = res.fused["wb"] if isinstance(res, TemporalConv) else None
        self.res_kind = "zero" if isinstance(res, Zero) else "conv" if self.res_wb is not None else "identity"
        self.reset()

    def reset(self) -> None:
        self.x, self.g, self.h = _Frames(), _Frames(), _Frames()
        self.n_in = self.n_out = 0

    def _append(self, x: torch.Tensor) -> None:
        g = self.block.gcn(x)
        self.x.append(x)
        self.g.append(g)
        if self.multi and self.f["head"] is not None:
            self.h.append(F.conv2d(g, *self.f["head"]).relu_())

    def push(self, x: torch.Tensor) -> torch.Tensor | None:
        """New committed input frames (B, C_in, k, V) -> the output frames they commit
        (B, C_out, n, V), or None."""
        self._append(x)
        self.n_in += x.shape[2]
        s = self.stride
        last = (self.n_in - 1 - self.lookahead) // s
        if last < self.n_out:
            return None
        y = self._frames(self.n_out, last)
        self.n_out = last + 1
        keep = self.n_out * s - self.back
        for buf in (self.x, self.g, self.h):
            buf.trim(keep)
        return y

    def tail(self, prov: torch.Tensor | None, need: int) -> torch.Tensor | None:
        """The provisional output frames after the committed ones (at most up to frame ``need``)
        as if the stream ended after the committed input frames and ``prov`` (the previous
        block's provisional frames that follow them): zero padding after its end, as at the end
        of a window. Nothing is kept."""
        n_in, n_out = self.n_in, self.n_out
        saved = [(b.data, b.start) for b in (self.x, self.g, self.h)]
        total = n_in
        if prov is not None:
            self._append(prov)
            total += prov.shape[2]
        last = min((total - 1) // self.stride, need)
        y = self._frames(n_out, last) if last >= n_out and total > 0 else None
        for b, (data, start) in zip((self.x, self.g, self.h), saved):
            b.data, b.start = data, start
        return y

    def _frames(self, j0: int, last: int) -> torch.Tensor:
        """Output frames j0 .. last from the stored input frames (zeros after them)."""
        s, n = self.stride, last - j0 + 1
        if self.multi:
            y = self._multi(j0, n)
        else:
            y = self._conv(self.g.span(j0 * s - self.back, last * s + self.pad + 1), 0, n)
        if self.res_kind != "zero":
            xs = self.x.span(j0 * s, last * s + 1)[:, :, ::s]
            y += F.conv2d(xs, *self.res_wb) if self.res_kind == "conv" else xs
        return y.relu_()

    def _conv(self, span: torch.Tensor, i: int, n: int) -> torch.Tensor:
        """Temporal convolution ``i``'s n outputs over ``span``, which starts ``back`` frames
        before the first output's centre."""
        conv, (w, b) = self.convs[i], self.wbs[i]
        d, p = conv.dilation[0], conv.padding[0]
        first = self.back - p
        stop = first + (n - 1) * self.stride + (conv.kernel_size[0] - 1) * d + 1
        return F.conv2d(span[:, :, first:stop], w, b, (self.stride, 1), 0, (d, 1))

    def _multi(self, j0: int, n: int) -> torch.Tensor:
        tcn, f, s = self.block.tcn, self.f, self.stride
        lo, hi = j0 * s - self.back, (j0 + n - 1) * s + self.pad + 1
        heads = tcn._split(self.h.span(lo, hi), "1x1", True) if f["head"] is not None else ()
        points: tuple = ()
        if f["pointwise"] is not None:
            gs = self.g.span(j0 * s, (j0 + n - 1) * s + 1)[:, :, ::s]
            points = tcn._split(F.conv2d(gs, *f["pointwise"]), "1x1", False)
        outs = [points[i] if kind == "1x1" else self._max(heads[i], j, n) if kind == "max"
                else self._conv(heads[i], j, n) for kind, i, j in self.plan]
        return F.conv2d(torch.cat(outs, dim=1).relu_(), *f["transform"])

    def _max(self, part: torch.Tensor, i: int, n: int) -> torch.Tensor:
        """Max-pool branch ``i`` (its folded affine after): n outputs over ``part``. The heads are
        >= 0 (ReLU), so the zero padding of ``part`` acts as the pool's -inf padding."""
        s = self.stride
        out = None
        for o in self.max_taps[i]:
            v = part[:, :, self.back + o:self.back + o + (n - 1) * s + 1:s]
            out = v.clone() if out is None else torch.maximum(out, v)
        return out.mul_(self.f["max"][i][0]).add_(self.f["max"][i][1])


def _partition(cost: list[float], parts: int) -> list[int]:
    """Sizes of ``parts`` consecutive non-empty groups of ``cost`` whose largest sum is smallest."""
    n = len(cost)
    pre = [0.0]
    for c in cost:
        pre.append(pre[-1] + c)
    best = {(0, 0): (0.0, [])}      # (items, groups) -> (largest group sum, sizes)
    for g in range(1, parts + 1):
        for i in range(g, n - (parts - g) + 1):
            best[(i, g)] = min((max(best[(j, g - 1)][0], pre[i] - pre[j]), best[(j, g - 1)][1] + [i - j])
                               for j in range(g - 1, i) if (j, g - 1) in best)
    return best[(n, parts)][1]


class _Refresh:
    """One computation, block group after block group: commit the frames queued before it
    started, compute the provisional frames of the stream as it then was."""

    def __init__(self, net: "IncrementalGCN", carry: torch.Tensor) -> None:
        self.frames = net.frames
        first, last = net._span(self.frames)
        self.need, n = [], last
        for b in reversed(net.blocks):
            self.need.append(n)
            n = n * b.stride + b.lookahead
        self.need.reverse()
        self.next = 0
        self.carry: torch.Tensor | None = carry      # frames committed so far, not yet by block `next`
        self.prov: torch.Tensor | None = None
        self.n_out = 0                               # the last block's committed frames, once done

    def run(self, net: "IncrementalGCN", blocks: int) -> bool:
        """The next ``blocks`` blocks; True when the last block is done."""
        for i in range(self.next, min(self.next + blocks, len(net.blocks))):
            b = net.blocks[i]
            if self.carry is not None:
                self.carry = b.push(self.carry)
            self.prov = b.tail(self.prov, self.need[i])
            self.next = i + 1
        if self.next < len(net.blocks):
            return False
        if self.carry is not None:
            net._pooled.append(self.carry.mean(dim=3, keepdim=True))     # (B, C_out, n, 1)
            self.carry = None
        self.n_out = net.blocks[-1].n_out
        self.prov = None if self.prov is None else self.prov.mean(dim=3)    # (B, C_out, n)
        return True


class IncrementalGCN:
    """A :class:`SkeletonGCN` (``stgcn`` / ``stgcnpp``) run on a stream, new frames at a time.

    model:  the backbone; it is put in eval mode with folded BatchNorms (as for inference).
    delay:  the classifier describes the stream up to ``delay`` input frames before the moment
            of its provisional frames (0: up to the newest frame); a larger delay leaves fewer
            provisional frames to compute.
    window: input frames the classifier averages over.
    spread: the provisional frames are computed over ``spread`` pushes (block groups of about
            equal cost), so a push costs about 1 / ``spread`` of them; the classifier then
            describes the stream as it was ``spread - 1`` to ``2 * spread - 2`` frames
            earlier (one frame per push; a push of ``spread`` frames or more computes them for
            its newest frame). 1: at every push, for the newest frame. Default: the network's
            total stride (4 for the presets), the input frames per last-block frame.
    lookahead: per block (or for all), frames ahead a temporal kernel may see (default: all
            of them, ``pad``); the taps beyond are left out, which changes the network (for
            measurements: see ``benchmarks/bench_stream.py``).

    :meth:`push` takes model inputs (M, k, V, C_in) and mask (M, k, V) (the network's own input,
    after preprocessing), :meth:`logits` classifies. Memory stays flat however long the stream.
    """

    def __init__(self, model: SkeletonGCN, delay: int = 0, window: int = 64, spread: int | None = None,
                 lookahead: int | list | None = None) -> None:
        check_incremental(model)
        if any(m.fused is None for m in model.modules() if isinstance(m, Fusable)) or model.training:
            fuse_batchnorm(model)
        la = lookahead if isinstance(lookahead, (list, tuple)) else [lookahead] * len(model.blocks)
        self.blocks = [_BlockStream(b, a) for b, a in zip(model.blocks, la)]
        if spread is None:   # the total stride
            spread = int(torch.tensor([b.stride for b in self.blocks]).prod())
        for v, what, low in ((delay, "--delay", 0), (spread, "--spread", 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise FinetecError(f"{what} must be an integer >= {low}, got {v!r}")
        self.model = model
        self.window = int(window)
        self.delay = delay
        rate, lag, cost = 1, 0, []
        for b in self.blocks:
            lag += b.lookahead * rate
            rate *= b.stride
            # estimated ms on one core: a fixed cost per block (its ~40 operations, which dominate
            # for few frames) plus its multiply-adds (~8 C^2 per joint and frame, at 50 GFLOP/s)
            width = b.block.tcn.fused["transform"][0].shape[0] if b.multi else b.wbs[0][0].shape[0]
            per_frame = 16 * width * width * model.num_joints / 5e7
            cost.append(0.3 + per_frame * (lag / rate + 1)        # its provisional frames
                        + 0.6 + per_frame * spread / rate)        # its frames committed per computation
        self.rate = rate      # input frames per last-block frame
        self.lag = lag        # input frames after which a last-block frame is committed
        self.spread = min(spread, len(self.blocks))
        self.groups = _partition(cost, self.spread)   # blocks per group, one group per push
        self.reset()

    def reset(self) -> None:
        for b in self.blocks:
            b.reset()
        self.frames = 0
        self._pooled = _Frames()    # committed last-block frames, averaged over the joints
        self._job: _Refresh | None = None
        self._done: _Refresh | None = None
        self._step = 0
        self._queue: list = []      # input frames not committed yet (x, mask), fewer than ``spread``

    @torch.inference_mode()
    def push(self, x: Any, mask: Any) -> None:
        """Model input frames: x (M, k, V, C_in), mask (M, k, V) bool (arrays or tensors).

        Runs ``k`` block groups of the current computation. When none is running, a new one
        starts for the stream as it is now: it commits the frames pushed since the last one
        started, together (fewer, larger operations), group after group, then computes the
        provisional frames of each block. ``k`` groups or more make a whole computation: a
        running one is finished first."""
        w = self.model.fc.weight
        self._queue.append((torch.as_tensor(x, dtype=w.dtype, device=w.device),
                            torch.as_tensor(mask, dtype=torch.bool, device=w.device)))
        k = self._queue[-1][0].shape[1]
        if self._job is not None and k >= len(self.groups):
            self._job.run(self, len(self.blocks))
            self._done, self._job = self._job, None
        if self._job is None:
            self._job, self._step = _Refresh(self, self._inputs()), 0
        n = sum(self.groups[self._step:self._step + k])
        self._step += k
        if self._job.run(self, n):
            self._done, self._job = self._job, None
        oldest = min([r.frames for r in (self._job, self._done) if r is not None], default=self.frames)
        self._pooled.trim(self._span(oldest)[0])

    def _inputs(self) -> torch.Tensor:
        """The queued input frames as the first block's input (data BN applied); counted."""
        xt = torch.cat([q[0] for q in self._queue], dim=1)[None]
        mt = torch.cat([q[1] for q in self._queue], dim=1)[None]
        self._queue.clear()
        xt, mt = self.model._prepare(xt, mt)
        self.frames += xt.shape[2]
        return self.model._normalise(xt)

    def _span(self, frames: int) -> tuple[int, int]:
        """The last-block frames the classifier averages for a stream of ``frames`` frames:
        j with ``t - delay - window < j * rate <= t - delay``, t = frames - 1."""
        t = frames - 1 - self.delay
        return max(0, (t - self.window) // self.rate + 1), t // self.rate

    def ready(self) -> bool:
        """Whether there is a frame to describe (provisional frames computed, stream longer than ``delay``)."""
        return self._done is not None and self._done.frames > self.delay

    @property
    def described(self) -> int:
        """Frames of the stream the classifier describes now (0 before :meth:`ready`)."""
        return self._done.frames - self.delay if self.ready() else 0

    @torch.inference_mode()
    def feature_frames(self) -> torch.Tensor:
        """The last block's frames the classifier averages (B, C_out, n): those of the network run
        over the first :attr:`described` frames of the stream, committed or provisional."""
        done = self._done
        first, last = self._span(done.frames)
        n_out = done.n_out              # the last block's committed frames at that moment
        parts = []
        if self._pooled.data is not None and n_out > self._pooled.start:
            parts.append(self._pooled.data[:, :, :n_out - self._pooled.start, 0])
        if done.prov is not None:
            parts.append(done.prov)
        start = min(self._pooled.start, n_out) if self._pooled.data is not None else n_out
        return torch.cat(parts, dim=2)[:, :, first - start:last - start + 1]

    @torch.inference_mode()
    def logits(self, present: Any = None) -> torch.Tensor:
        """(K,) logits; ``present`` (M,) bool: the persons to average (None: all; padded MVC
        slots count as absent)."""
        if not self.ready():
            raise RuntimeError("no frame to describe yet (see ready())")
        feats = self.feature_frames().mean(dim=2)   # (B, C_out)
        w = torch.ones(feats.shape[0], dtype=feats.dtype, device=feats.device)
        if present is not None:
            p = torch.as_tensor(present, dtype=feats.dtype, device=feats.device).flatten()
            w = torch.zeros_like(w)
            w[:p.numel()] = p[:w.numel()]
            if w.sum() == 0:
                w = torch.ones_like(w)
        return self.model.fc(feats.T @ (w / w.sum()))
