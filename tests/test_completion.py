"""Module 1: the in-context completion network, its bank and its loss."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from finetec.errors import FinetecError
from finetec.models.completion import CompletionNet
from finetec.data.fillers import fill, fill_linear
from finetec.models.registry import create_model

T, V, C = 12, 5, 2


def smooth_clips(n: int, seed: int = 0) -> np.ndarray:
    """(n, T, V, C) smooth trajectories (sinusoids with random phase / amplitude)."""
    rng = np.random.default_rng(seed)
    t = np.arange(T)[None, :, None, None]
    amp = rng.uniform(0.2, 1.0, size=(n, 1, V, C))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, V, C))
    off = rng.normal(size=(n, 1, V, C))
    return (off + amp * np.sin(t / 3.0 + phase)).astype(np.float32)


def tiny_net(**kw) -> CompletionNet:
    torch.manual_seed(0)
    args = dict(width=16, depth=2, merge_at=1, bank_size=8)
    args.update(kw)
    net = CompletionNet(V, C, T, **args)
    net.set_bank(smooth_clips(8, seed=1))
    return net


def corrupted(N: int = 3, M: int = 2, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(smooth_clips(N * M, seed)).reshape(N, M, T, V, C)
    mask = torch.rand(N, M, T, V, generator=g) > 0.4
    mask[:, :, ::3] = False  # whole dropped frames too
    x = torch.where(mask[..., None], x, torch.full_like(x, 123.0))  # garbage at missing entries
    return x, mask


@pytest.mark.parametrize("training", [False, True])
def test_observed_entries_are_bit_identical(training):
    net = tiny_net()
    with torch.no_grad():  # a non-trivial head, so predictions differ from the input
        net.head.weight.normal_(0, 0.5)
    net.train(training)
    x, mask = corrupted()
    out = net(x, mask, rng=np.random.default_rng(0))["completed"]
    assert torch.equal(out[mask], x[mask])
    assert not torch.equal(out[~mask], x[~mask])
    assert torch.isfinite(out).all() and float(out[~mask].detach().abs().max()) < 100


def test_untrained_net_returns_linear_interpolation():
    net = tiny_net().eval()
    x, mask = corrupted()
    mask[0, 0, :, 3] = False  # a joint never observed: the linear pre-fill gives it the person's centroid
    out = net(x, mask)["completed"]
    clean_x = torch.where(mask[..., None], x, torch.zeros_like(x))
    ref = fill_linear(clean_x, mask)
    assert torch.allclose(out, ref, atol=1e-6)
    # the pre-fill is the project's one linear filler: the NumPy baseline filler gives the same values
    ref_np = np.stack([fill(clean_x[i].numpy(), mask[i].numpy(), "linear") for i in range(len(x))])
    assert torch.allclose(out, torch.from_numpy(ref_np), atol=1e-6)


def test_padded_persons_are_returned_unchanged():
    net = tiny_net()
    with torch.no_grad():
        net.head.bias.fill_(0.3)
    x, mask = corrupted()
    mask[1, 1] = False
    x[1, 1] = 0
    out = net.eval()(x, mask)["completed"]
    assert torch.equal(out[1, 1], torch.zeros(T, V, C))


def test_set_bank_prior_subsampling_and_mask_fill():
    net = CompletionNet(V, C, T, width=8, depth=1, merge_at=0, bank_size=4)
    clips = smooth_clips(10)
    assert net.set_bank(clips) == 4
    keep = np.linspace(0, 9, 4).round().astype(int)
    assert np.allclose(net.bank.numpy(), clips[keep])
    assert np.allclose(net.prior.numpy(), clips[keep].mean(0), atol=1e-6)
    assert int(net.bank_count) == 4
    # a missing joint is interpolated before storage; an all-missing clip is dropped
    m = np.ones(clips.shape[:3], dtype=bool)
    m[0, 3, 2] = False
    m[1] = False
    c2 = clips.copy()
    c2[0, 3, 2] = 99.0
    assert net.set_bank(c2[:3], m[:3]) == 2
    assert np.allclose(net.bank[0, 3, 2].numpy(), (clips[0, 2, 2] + clips[0, 4, 2]) / 2, atol=1e-6)
    assert np.allclose(net.bank[1].numpy(), clips[2])


def test_bank_errors_and_file(tmp_path):
    net = CompletionNet(V, C, T, width=8, depth=1, merge_at=0, bank_size=4)
    with pytest.raises(FinetecError, match="shape"):
        net.set_bank(np.zeros((2, T + 1, V, C)))
    with pytest.raises(FinetecError, match="NaN"):
        net.set_bank(np.full((2, T, V, C), np.nan))
    good = tmp_path / "bank.npz"
    np.savez(good, bank=smooth_clips(3))
    assert net.load_bank(good) == 3
    bad = tmp_path / "nobank.npz"
    np.savez(bad, clips=smooth_clips(3))
    with pytest.raises(FinetecError) as e:
        net.load_bank(bad)
    assert str(bad) in str(e.value) and "'bank'" in str(e.value)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, bank=np.zeros((2, 3, 4)))
    with pytest.raises(FinetecError) as e:
        net.load_bank(wrong)
    assert str(wrong) in str(e.value)
    with pytest.raises(FinetecError):
        net.load_bank(tmp_path / "absent.npz")


def test_nearest_bank_uses_only_observed_entries():
    net = tiny_net()
    q = net.bank[5:6].clone()
    m = torch.rand(1, T, V, generator=torch.Generator().manual_seed(0)) > 0.5
    q[~m] = 1e3  # unobserved entries must not matter
    assert int(net.nearest_bank(q, m)[0]) == 5


def test_nearest_bank_equals_the_plain_masked_distance():
    """The matrix form against the definition: mean squared difference over observed entries."""
    net = tiny_net()
    bank = net.bank[: int(net.bank_count)]
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, T, V, C, generator=g) + bank[:6]
    m = torch.rand(6, T, V, generator=g) > 0.4
    m[0] = False  # nothing observed: distance 0 to every clip, the first wins
    d = (((q[:, None] - bank[None]) ** 2).sum(-1) * m[:, None]).flatten(2).sum(-1)
    ref = (d / m.flatten(1).sum(1, keepdim=True).clamp(min=1)).argmin(1)
    assert net.nearest_bank(q, m).tolist() == ref.tolist()


def test_retrieval_spread_is_the_norm_of_the_standard_deviation_over_the_clips():
    net = tiny_net(retrieval=3).eval()
    g = torch.Generator().manual_seed(2)
    q = net.bank[1:3] + 0.1 * torch.randn(2, T, V, C, generator=g)
    m = torch.rand(2, T, V, generator=g) > 0.5
    _, spread = net._retrieval_fill(q, m, skip=0)
    idx = net.retrieve(q, m, 3)
    nb = net.bank[idx].reshape(6, T, V, C)
    devs = (nb - net._fill(nb, m[:, None].expand(2, 3, T, V).reshape(6, T, V))).reshape(2, 3, T, V, C)
    ref = torch.where(m, torch.zeros(()), devs.std(1).norm(dim=-1))
    torch.testing.assert_close(spread, ref)


def test_training_needs_a_bank():
    net = CompletionNet(V, C, T, width=8, depth=1, merge_at=0).train()
    x, mask = corrupted()
    with pytest.raises(RuntimeError, match="set_bank"):
        net(x, mask)


def test_loss_is_mse_on_clean_observed_entries_plus_prompt_term():
    net = tiny_net(prompt_weight=0.0).eval()
    x, mask = corrupted()
    target = torch.as_tensor(smooth_clips(6, 7)).reshape(x.shape)
    tmask = torch.rand(mask.shape, generator=torch.Generator().manual_seed(9)) > 0.2
    out = net(x, mask, target=target, target_mask=tmask)
    sel = tmask[..., None].expand_as(x)
    expected = (out["completed"] - target)[sel].pow(2).mean()
    assert torch.allclose(out["loss"], expected, atol=1e-6)
    net.prompt_weight = 1.0
    out2 = net(x, mask, target=target, target_mask=tmask)
    assert float(out2["loss"].detach()) > float(out["loss"].detach()) and torch.allclose(out2["prompt_loss"] + expected, out2["loss"])


def test_a_few_adam_steps_reduce_the_loss():
    net = tiny_net(prefill="zero")  # starts from zeros at missing entries: a large, learnable error
    clean = torch.as_tensor(smooth_clips(2, seed=4)).reshape(1, 2, T, V, C).expand(8, 2, T, V, C)
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    net.train()
    losses = []
    for _ in range(20):
        keep = torch.as_tensor(rng.random((8, 2, T)) > 0.6)
        keep[:, :, 0] = True
        mask = keep[..., None].expand(8, 2, T, V)
        out = net(torch.where(mask[..., None], clean, 0.0), mask, target=clean, rng=rng)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["query_loss"]))
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:4])


def test_registry_config_rebuilds_same_state():
    net = create_model("completion", num_classes=1, layout="coco17", in_channels=2, clip_len=8, width=8, depth=2,
                       merge_at=1, bank_size=4)
    net.set_bank(np.random.default_rng(0).normal(size=(4, 8, 17, 2)))
    cfg = dict(net.config)
    name = cfg.pop("name")
    twin = create_model(name, **cfg)
    twin.load_state_dict(net.state_dict())
    assert torch.equal(twin.prior, net.prior) and int(twin.bank_count) == 4
    x = torch.randn(1, 1, 8, 17, 2)
    m = torch.rand(1, 1, 8, 17) > 0.5
    assert torch.equal(twin.eval()(x, m)["completed"], net.eval()(x, m)["completed"])


def test_bad_options_and_shapes():
    with pytest.raises(FinetecError):
        CompletionNet(V, C, T, depth=2, merge_at=3)
    with pytest.raises(FinetecError):
        CompletionNet(V, C, T, prefill="cubic")
    with pytest.raises(FinetecError, match="dropout"):
        CompletionNet(V, C, T, dropout=1.0)
    with pytest.raises(ValueError):
        tiny_net().eval()(torch.zeros(1, 1, T + 1, V, C), None)


def test_l2_loss_is_mpjpe_on_missing_entries():
    net = tiny_net(prompt_weight=0.0, loss="l2").eval()
    x, mask = corrupted()
    target = torch.as_tensor(smooth_clips(6, 7)).reshape(x.shape)
    out = net(x, mask, target=target)
    sel = ~mask
    expected = (out["completed"] - target).norm(dim=-1)[sel].mean()
    assert torch.allclose(out["loss"], expected, atol=1e-5)
    out["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)
    with pytest.raises(FinetecError):
        tiny_net(loss="huber")


def test_prompt_enters_the_query_only_through_the_learned_merge():
    a = tiny_net()
    with torch.no_grad():
        a.head.weight.normal_(0, 0.5)
    b = tiny_net()
    b.load_state_dict(a.state_dict())
    shift = np.zeros((8, 1, 1, 1), dtype=np.float32)
    shift[0::2], shift[1::2] = 0.5, -0.5  # different clips, same frame-wise mean (the prior)
    b.set_bank(a.bank.numpy() + shift)
    assert torch.allclose(a.prior, b.prior, atol=1e-6) and not torch.allclose(a.bank, b.bank)
    x, mask = corrupted()
    a.eval(), b.eval()
    assert torch.allclose(a(x, mask)["completed"], b(x, mask)["completed"], atol=1e-4)  # zero-initialised merge
    with torch.no_grad():
        for net in (a, b):
            net.merge.weight.copy_(torch.eye(16))
    assert not torch.allclose(a(x, mask)["completed"], b(x, mask)["completed"])


def test_dropout_acts_in_training_only():
    net = tiny_net(dropout=0.5)
    with torch.no_grad():
        net.head.weight.normal_(std=0.1)  # a non-trivial head, so that the features matter
    x, mask = corrupted()
    net.eval()
    a, b = net(x, mask)["completed"], net(x, mask)["completed"]
    assert torch.equal(a, b)  # deterministic at evaluation
    net.train()
    torch.manual_seed(1)
    c = net(x, mask, rng=np.random.default_rng(0))["completed"]
    torch.manual_seed(2)
    d = net(x, mask, rng=np.random.default_rng(0))["completed"]
    assert not torch.equal(c, d)  # same prompts, different dropout masks
    assert torch.equal(torch.where(mask[..., None], c, 0 * c), torch.where(mask[..., None], x, 0 * x))


def test_train_patterns_redraw_the_query_from_the_clean_clip():
    net = tiny_net(train_patterns=("prefix",), loss="l2").train()
    x, mask = corrupted()
    target = torch.as_tensor(smooth_clips(6, 2)).reshape(3, 2, T, V, C)
    tm = torch.ones_like(mask)
    seen = []
    net._redraw_query = (lambda f: (lambda *a: seen.append(f(*a)) or seen[-1]))(net._redraw_query)
    out = net(x, mask, target=target, target_mask=tm, rng=np.random.default_rng(0))
    qx, qm = seen[0]
    # prefix: the first frames are lost, the rest is the clean clip, whatever the pipeline's mask was
    assert not qm[..., 0, :].any() and qm[..., -1, :].all()
    assert torch.equal(qx[qm], target[qm])
    assert torch.isfinite(out["loss"])
    with pytest.raises(FinetecError, match="train_patterns"):
        tiny_net(train_patterns=("sideways",))


def test_transplant_hides_the_joints_another_clip_did_not_see():
    net = tiny_net(train_patterns=("random",), transplant=1.0, loss="l2").train()
    target = torch.as_tensor(smooth_clips(3, 2)).reshape(3, 1, T, V, C)
    tm = torch.ones(3, 1, T, V, dtype=torch.bool)
    tm[1, :, :, 2] = False  # clip 1 never saw joint 2 -> clip 2 (its successor in the batch) loses it
    _, m = net._redraw_query(target, tm, tm, np.random.default_rng(0))
    assert not m[2, :, :, 2].any() and not m[1, :, :, 2].any()
    assert m[0, :, :, 2].any()


def test_uncertainty_head_predicts_an_error_per_filled_entry():
    net = tiny_net(uncertainty=True, loss="l2")
    x, mask = corrupted()
    net.eval()
    out = net(x, mask)
    u = out["uncertainty"]
    assert u.shape == mask.shape
    assert (u[mask] == 0).all() and (u[~mask] > 0).all()
    net.train()
    target = torch.as_tensor(smooth_clips(6, 2)).reshape(3, 2, T, V, C)
    loss = net(x, mask, target=target, target_mask=torch.ones_like(mask), rng=np.random.default_rng(0))["loss"]
    loss.backward()
    assert net.error_head.weight.grad.abs().sum() > 0
    assert "uncertainty" not in tiny_net()(x, mask)


def test_retrieval_borrows_the_motion_of_the_nearest_bank_clips():
    net = tiny_net(retrieval=1).eval()
    bank = net.bank[: int(net.bank_count)]
    q = bank[3:5] + torch.tensor([5.0, -2.0])                 # two bank clips, moved: same motion
    g = torch.Generator().manual_seed(0)
    m = torch.rand(2, T, V, generator=g) > 0.3
    m[:, : T // 2] = False                                    # a long hole at the start
    assert net.retrieve(q, m, 1)[:, 0].tolist() == [3, 4]     # translation-invariant match
    assert net.retrieve(q, m, 1, skip=1)[:, 0].tolist() != [3, 4]
    x = torch.where(m[..., None], q, torch.zeros_like(q))[:, None]
    with torch.no_grad():
        out = net(x, m[:, None])["completed"][:, 0]
    assert torch.allclose(out, q, atol=1e-4)                  # the hole is the bank clip's motion
    with torch.no_grad():
        lin = tiny_net().eval()(x, m[:, None])["completed"][:, 0]
    assert float((lin - q).abs().max()) > 0.1
    with pytest.raises(FinetecError, match="retrieval"):
        tiny_net(retrieval=-1)


def test_uncertainty_is_the_spread_of_the_retrieved_motions():
    net = tiny_net(retrieval=3, uncertainty=True).eval()
    x, mask = corrupted()
    with torch.no_grad():
        out = net(x, mask)
    u = out["uncertainty"]
    assert (u[mask] == 0).all() and (u[~mask] >= 0).all() and u[~mask].max() > 0
    assert not torch.equal(u, out["expected_error"])


def test_linear_below_takes_linear_interpolation_in_short_interior_gaps():
    net = tiny_net(linear_below=3)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.5)
    x, mask = corrupted()
    net.eval()
    with torch.no_grad():
        out = net(x, mask)["completed"]
        ref = tiny_net().eval()
        ref.load_state_dict(net.state_dict())
        full = ref(x, mask)["completed"]
    lin = fill_linear(torch.where(mask[..., None], x, torch.zeros_like(x)).reshape(-1, T, V, C),
                      mask.reshape(-1, T, V)).reshape(x.shape)
    from finetec.metrics.restoration import gap_lengths
    length, edge = gap_lengths(mask.numpy())
    short = torch.as_tensor((length > 0) & (length < 3) & ~edge)
    other = ~mask & ~short
    assert short.any() and other.any()
    assert torch.allclose(out[short], lin[short], atol=1e-5)
    assert torch.equal(out[other], full[other])


def test_completion_config_is_the_schema():
    """The completion module's options are its config dataclass's fields: model.config round-trips,
    an unknown option is refused with the valid ones listed, a bad value is refused by the module."""
    from finetec.errors import FinetecError
    from finetec.models.completion import CompletionConfig
    from finetec.models.registry import create_model, model_options

    assert set(model_options("completion")) == {f for f in CompletionConfig.__dataclass_fields__}
    m = create_model("completion", num_classes=1, layout="coco17", in_channels=2, clip_len=16, width=16,
                     depth=2, merge_at=1, train_patterns=["prefix", "middle"])
    assert m.config["train_patterns"] == ["prefix", "middle"] and m.train_patterns == ("prefix", "middle")
    again = create_model(**m.config)
    assert again.config == m.config
    with pytest.raises(FinetecError, match="no option.*widht.*valid options"):
        create_model("completion", num_classes=1, layout="coco17", in_channels=2, widht=8)
    with pytest.raises(FinetecError, match="train_patterns"):
        create_model("completion", num_classes=1, layout="coco17", in_channels=2, train_patterns=["sideways"])
