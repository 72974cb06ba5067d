"""Incremental streaming: the per-block caches against the plain stream formulation, the
recognizer's incremental mode (cadence, reset, lost frames) and what it refuses."""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from finetec.api import Predictor
from finetec.errors import FinetecError
from finetec.models.incremental import IncrementalGCN
from finetec.models.layers import Fusable, MultiBranchTCN
from finetec.models.registry import create_model
from finetec.streaming import StreamRecognizer

from test_api import CLASSES, clip, make_checkpoint

SMALL = dict(base_channels=8, num_stages=4, inflate_stages=(3,), down_stages=(2, 4))


def _model(kind: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    net = create_model(kind, num_classes=5, layout="coco17", in_channels=2, **{**SMALL, **kw})
    with torch.no_grad():   # non-trivial BatchNorm statistics, so that folding matters
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.double().eval()


# -- the plain reference: the unfolded network run on the whole sequence ---------------------------
def _reference(model, x: np.ndarray) -> list[torch.Tensor]:
    """Every block's output (B, C, T_b, V) over the whole sequence x (M, T, V, C), with the
    eval-mode modules as such (BatchNorms not folded, the units' plain forward)."""
    plain = copy.deepcopy(model)
    for m in plain.modules():
        if isinstance(m, Fusable):
            m.unfuse()
    with torch.no_grad():
        xt, _ = plain._prepare(torch.as_tensor(x)[None], None)
        y = plain._normalise(xt)
        outs = []
        for block in plain.blocks:
            y = block(y)
            outs.append(y)
    return outs


def _feed(net: IncrementalGCN, x: np.ndarray, chunks: list[int]) -> list[torch.Tensor]:
    """Feed x in chunks; every block's committed output frames."""
    got = [[] for _ in net.blocks]
    mask = np.ones(x.shape[:3], bool)
    t = 0
    with torch.no_grad():
        for k in chunks:
            xt, _ = net.model._prepare(torch.as_tensor(x[:, t:t + k])[None], torch.as_tensor(mask[:, t:t + k])[None])
            y = net.model._normalise(xt)
            net.frames += k
            t += k
            for i, b in enumerate(net.blocks):
                y = b.push(y)
                if y is None:
                    break
                got[i].append(y)
    return [torch.cat(g, 2) if g else None for g in got]


def _chunks(n: int, seed: int) -> list[int]:
    out, rng = [], np.random.default_rng(seed)
    while sum(out) < n:
        out.append(int(min(rng.integers(1, 7), n - sum(out))))
    return out


@pytest.mark.parametrize("kind", ["stgcnpp", "stgcn"])
def test_committed_and_provisional_frames_equal_the_plain_network(kind):
    model = _model(kind)
    net = IncrementalGCN(model, window=16, spread=1)
    x = (clip(np.random.default_rng(1), T=45) / 300.0).astype(np.float64)
    ref = _reference(model, x)
    for feed in ([1] * 45, _chunks(45, 2), [45]):
        net.reset()
        got = _feed(net, x, feed)
        n = 45
        for i, (b, g, r) in enumerate(zip(net.blocks, got, ref)):
            # committed: every frame whose inputs `pad` ahead exist, final (the right end is never seen)
            assert b.n_out == max(0, (n - 1 - b.pad) // b.stride + 1) and g.shape[2] == b.n_out, i
            torch.testing.assert_close(g, r[:, :, :b.n_out], rtol=1e-10, atol=1e-10, msg=f"block {i}")
            n = b.n_out
    # provisional: after t + 1 frames, the network run on x[:t + 1] (zero padding after frame t)
    for t in (20, 33, 44):
        net.reset()
        _feed(net, x[:, :t + 1], _chunks(t + 1, t))
        prov, part = None, _reference(model, x[:, :t + 1])
        for b, r in zip(net.blocks, part):
            prov = b.tail(prov, 10 ** 6)
            full = torch.cat([r[:, :, :0]] + ([] if prov is None else [prov]), 2)
            assert b.n_out + full.shape[2] == r.shape[2]
            torch.testing.assert_close(full, r[:, :, b.n_out:], rtol=1e-10, atol=1e-10)
    assert net.lag == sum(b.pad * int(np.prod([c.stride for c in net.blocks[:i]]))
                          for i, b in enumerate(net.blocks))


@pytest.mark.parametrize("delay", [0, 3, 9, 1000])
def test_logits_pool_the_window_up_to_the_delay(delay):
    model = _model("stgcnpp")
    net = IncrementalGCN(model, delay=delay, window=16, spread=1)
    assert net.rate == 4 and net.lag == 4 + 4 + 2 * 4 + 2 * 4
    x = (clip(np.random.default_rng(3), T=40) / 300.0).astype(np.float64)
    for t in (5, 27, 39):
        net.reset()
        for a, k in zip(np.cumsum([0] + _chunks(t + 1, t))[:-1], _chunks(t + 1, t)):
            net.push(x[:, a:a + k], np.ones((1, k, 17), bool))
        if t < delay:
            assert not net.ready()
            continue
        last = _reference(model, x[:, :t + 1])[-1]
        j = [j for j in range(last.shape[2]) if t - delay - 16 < 4 * j <= t - delay]
        feats = last[:, :, j].mean(dim=(2, 3))[0]
        torch.testing.assert_close(net.logits(), model.fc(feats), rtol=1e-10, atol=1e-10)
    # memory stays bounded however long the stream
    for _ in range(30):
        net.push(x[:, :9], np.ones((1, 9, 17), bool))
    assert all(b.g.data.shape[2] <= 2 * b.back + b.stride * 10 for b in net.blocks)
    assert net._pooled.data.shape[2] <= (16 + delay) // 4 + 1


@pytest.mark.parametrize("spread", [2, 3, None])
def test_spread_computes_the_provisional_frames_over_several_pushes(spread):
    model = _model("stgcnpp")     # not folded yet: IncrementalGCN folds it
    net = IncrementalGCN(model, window=16, spread=spread)
    spread = spread or 4          # default: the total stride
    assert len(net.groups) == spread and sum(net.groups) == len(net.blocks)
    x = (clip(np.random.default_rng(4), T=50) / 300.0).astype(np.float64)
    described = []
    for t in range(50):
        net.push(x[:, t:t + 1], np.ones((1, 1, 17), bool))
        described.append(net.described)
        if t in (spread + 2, 31, 49) and net.ready():
            d = net.described
            last = _reference(model, x[:, :d])[-1]
            j = [j for j in range(last.shape[2]) if d - 1 - 16 < 4 * j <= d - 1]
            torch.testing.assert_close(net.logits(), model.fc(last[:, :, j].mean(dim=(2, 3))[0]),
                                       rtol=1e-10, atol=1e-10)
    # a new computation starts every `spread` frames and describes the stream as it was then
    assert described[:spread - 1] == [0] * (spread - 1)
    lagging = [t + 1 - d for t, d in enumerate(described) if d]
    assert min(lagging) == spread - 1 and max(lagging) == 2 * spread - 2
    # a push of `spread` frames or more computes them for the newest frame
    net.push(x[:, :spread], np.ones((1, spread, 17), bool))
    assert net.described == net.frames


# -- the recognizer --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("inc") / "ck", model="stgcnpp", clip_len=16, filler="linear",
                           **SMALL)


@pytest.fixture(scope="module")
def pred(ckpt):
    return Predictor.from_checkpoint(ckpt)


def _frames(n: int, seed: int = 0) -> list:
    kp = clip(np.random.default_rng(seed), T=n)[0]
    out = []
    for t in range(n):
        f = kp[t].copy()
        if t % 5 == 2:
            f[3] = np.nan
        out.append(None if t % 11 == 7 else f)
    return out


def test_incremental_cadence_reset_and_lost_frames(pred):
    frames = _frames(40)
    full = StreamRecognizer(pred, window=16, every=4)
    inc = StreamRecognizer(pred, window=16, every=4, incremental=True)   # every >= spread (4): fresh
    inc.warm_up()
    a = [p for f in frames if (p := full.push(f)) is not None]
    b = [p for f in frames if (p := inc.push(f)) is not None]
    assert [p.frame for p in b] == [p.frame for p in a] == [16, 20, 24, 28, 32, 36, 40]
    assert [p.observed_frames for p in b] == [p.observed_frames for p in a]
    assert all(p.top_k and {c for c, _ in p.top_k} <= set(CLASSES) for p in b)
    probs = np.array([[pr for _, pr in p.top_k] for p in b])
    assert np.all(np.diff(probs, axis=1) <= 0)
    # the first prediction preprocesses its window as the full-window mode does; fixed normalisation after
    assert b[0].top_k[0][0] == a[0].top_k[0][0]
    # every=1 computes the same frames, one at a time
    one = StreamRecognizer(pred, window=16, every=1, warmup=16, incremental=True, spread=1)
    c = {p.frame: p for f in frames if (p := one.push(f)) is not None}
    for p in b:
        np.testing.assert_allclose([x for _, x in c[p.frame].top_k], [x for _, x in p.top_k], rtol=1e-5)
    # reset: a new stream, the same predictions again
    inc.reset()
    again = [p for f in frames if (p := inc.push(f)) is not None]
    assert [(p.frame, p.top_k) for p in again] == [(p.frame, p.top_k) for p in b]


def test_incremental_window_with_nothing_observed(pred):
    rec = StreamRecognizer(pred, window=4, every=1, incremental=True)
    out = [rec.push(None) for _ in range(5)]
    assert out[3].top_k == [] and out[4].top_k == [] and not rec.incremental.anchored
    f = _frames(1)[0]
    p = rec.push(f)                        # anchors on the window that now holds a frame
    assert p.top_k and rec.incremental.anchored and p.observed_frames == 1
    for _ in range(4):
        p = rec.push(None)                 # the held values go on; the window empties
    assert p.top_k == [] and p.observed_frames == 0


def test_incremental_refuses_what_it_cannot_honour(pred, tmp_path):
    with pytest.raises(FinetecError, match="--delay applies to --incremental"):
        StreamRecognizer(pred, window=16, delay=4)
    with pytest.raises(FinetecError, match="--delay must be"):
        StreamRecognizer(pred, window=16, incremental=True, delay=-1)
    with pytest.raises(FinetecError, match="--spread must be"):
        StreamRecognizer(pred, window=16, incremental=True, spread=0)
    with pytest.raises(FinetecError, match="--spread applies to --incremental"):
        StreamRecognizer(pred, window=16, spread=2)
    for model, why in (("ctrgcn", "CTR-GC"), ("_test_mean_classifier", "")):
        ck = make_checkpoint(tmp_path / model, model=model, clip_len=16,
                             **(SMALL if model == "ctrgcn" else {}))
        with pytest.raises(FinetecError, match=f"--incremental supports ST-GCN.*{why}.*omit --incremental") as e:
            StreamRecognizer(Predictor.from_checkpoint(ck), window=16, incremental=True)
        assert "\n" not in str(e.value)
    ck = make_checkpoint(tmp_path / "motion", model="stgcnpp", clip_len=16, features=("joint", "motion"), **SMALL)
    with pytest.raises(FinetecError, match="joint and bone features.*motion.*omit --incremental"):
        StreamRecognizer(Predictor.from_checkpoint(ck), window=16, incremental=True)
    fake = copy.copy(pred)
    fake.backend = "onnxruntime"
    with pytest.raises(FinetecError, match="--incremental runs the PyTorch model; use --backend torch"):
        StreamRecognizer(fake, window=16, incremental=True)


def test_stream_command_incremental(ckpt, tmp_path, monkeypatch, capsys):
    from test_stream import _lines, _run

    rc, out, err = _run(monkeypatch, capsys, ["stream", str(ckpt), "--incremental", "--every", "1", "--window", "10",
                                              "--json"], _lines(30))
    assert rc == 0 and err == ""
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["frame"] for r in recs] == list(range(10, 31))
    assert all(len(r["top_k"]) == 3 and r["latency_ms"] > 0 for r in recs)
    rc, out, err = _run(monkeypatch, capsys, ["stream", str(ckpt), "--delay", "3"], _lines(12))
    assert rc == 2 and out == "" and err.count("\n") == 1 and "--delay applies to --incremental" in err
    other = make_checkpoint(tmp_path / "mean", clip_len=16)
    rc, out, err = _run(monkeypatch, capsys, ["stream", str(other), "--incremental"], _lines(12))
    assert rc == 2 and out == "" and err.count("\n") == 1 and "omit --incremental" in err
