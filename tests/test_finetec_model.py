"""The full FineTec model: forward/backward, frozen completion, ablation switches, self-contained checkpoints."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from finetec.data.fillers import fill

from finetec.errors import FinetecError
from finetec.models.fusion import AttentionFusion, MLPFusion
from finetec.models.registry import create_model

TINY_GCN = {"base_channels": 8, "num_stages": 2, "inflate_stages": [], "down_stages": []}
T = 8


def build(layout: str = "coco17", C: int = 2, **kw):
    torch.manual_seed(0)
    opts = dict(clip_len=T, backbone="stgcnpp", backbone_overrides=TINY_GCN, allow_untrained_completion=True,
                physics_hidden=8, fusion_width=8)
    opts.update(kw)
    return create_model("finetec", num_classes=4, layout=layout, in_channels=C, **opts)


def batch(V: int, C: int, N: int = 2, M: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, M, T, V, C, generator=g)
    mask = torch.rand(N, M, T, V, generator=g) > 0.3
    mask[:, :, 1::2] = False
    x = torch.where(mask[..., None], x, torch.zeros_like(x))
    return x, mask


@pytest.mark.parametrize("layout,V,C,M", [("coco17", 17, 2, 1), ("coco17", 17, 2, 2),
                                         ("ntu25", 25, 3, 1), ("ntu25", 25, 3, 2)])
def test_forward_backward(layout, V, C, M):
    model = build(layout, C).train()
    x, mask = batch(V, C, M=M)
    if M == 2:
        mask[0, 1] = False  # a padded second person
        x[0, 1] = 0
    out = model(x, mask)
    assert out["logits"].shape == (2, 4) and torch.isfinite(out["logits"]).all()
    assert out["aux_loss"].ndim == 0 and float(out["aux_loss"].detach()) > 0
    loss = torch.nn.functional.cross_entropy(out["logits"], torch.tensor([0, 3])) + out["aux_loss"]
    loss.backward()
    for name in ("backbone", "physics", "fuse_pos", "fuse_acc"):
        grads = [p.grad for p in getattr(model, name).parameters()]
        assert any(g is not None and float(g.abs().sum()) > 0 for g in grads), name
    assert all(p.grad is None and not p.requires_grad for p in model.completion.parameters())


def test_completion_stays_frozen_in_training_mode():
    model = build().train()
    assert model.training and not model.completion.training
    before = {k: v.clone() for k, v in model.completion.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x, mask = batch(17, 2)
    out = model(x, mask)
    (out["logits"].sum() + out["aux_loss"]).backward()
    opt.step()
    after = model.completion.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_ablation_switches_change_the_module_graph():
    full = build()
    assert full.completion is not None and isinstance(full.fuse_pos, AttentionFusion)
    assert full.physics is not None and isinstance(full.fuse_acc, AttentionFusion)
    assert full.backbone.config["in_channels"] == 4
    no_comp = build(use_completion=False)
    assert no_comp.completion is None and no_comp.config["use_completion"] is False
    no_dec = build(use_decomposition=False)
    assert no_dec.fuse_pos is None and no_dec.fuse_acc is None and no_dec.physics is not None
    no_phys = build(use_physics=False)
    assert no_phys.physics is None and no_phys.fuse_acc is None and no_phys.backbone.config["in_channels"] == 2
    mlp = build(fusion="mlp")
    assert isinstance(mlp.fuse_pos, MLPFusion) and isinstance(mlp.fuse_acc, MLPFusion)
    names = {n for n, _ in full.named_parameters()}
    assert not any(n.startswith("physics.") for n, _ in no_phys.named_parameters())
    assert any(n.startswith("physics.") for n in names)
    x, mask = batch(17, 2)
    for m in (no_comp, no_dec, no_phys, mlp):
        out = m.eval()(x, mask)
        assert out["logits"].shape == (2, 4) and torch.isfinite(out["logits"]).all()
    assert float(no_phys(x, mask)["aux_loss"]) == 0.0


@pytest.mark.parametrize("filler", ["linear", "cubic", "copy_lr", "zero"])
def test_filler_replaces_completion(filler):
    model = build(use_completion=False, filler=filler, use_decomposition=False).eval()
    x, mask = batch(17, 2)
    mask[0, 0, :, 1] = False  # a joint never observed in clip 0: the filler's centroid rule
    base = model.restore(x, mask)
    assert torch.equal(base[mask], x[mask])
    if filler == "zero":
        assert torch.equal(base[~mask], torch.zeros_like(base[~mask]))
    # the values are the project's gap filler's (the baseline's NumPy path), bit for bit
    want = np.stack([fill(x[i].numpy(), mask[i].numpy(), filler) for i in range(len(x))])
    assert base.numpy().tobytes() == want.tobytes()


def test_unknown_options_are_user_errors():
    with pytest.raises(FinetecError, match="completion_checkpoint"):
        create_model("finetec", num_classes=3, layout="coco17", in_channels=2, clip_len=T)
    with pytest.raises(FinetecError):
        build(fusion="sum")
    with pytest.raises(FinetecError):
        build(matrix_structure="dense")
    with pytest.raises(FinetecError):
        build(use_completion=False, filler="spline")
    with pytest.raises(FinetecError):
        build(perturbation={"strength": 2})


def test_evaluation_is_deterministic_and_batch_independent():
    model = build().eval()
    x, mask = batch(17, 2, N=3, seed=4)
    a = model(x, mask)["logits"]
    assert torch.equal(a, model(x, mask)["logits"])
    single = model(x[1:2], mask[1:2])["logits"]
    assert torch.allclose(single, a[1:2], atol=1e-5)
    base = model.restore(x, mask)
    views = model.views(base, mask)
    assert len(views) == 3 and not torch.equal(views[1], base) and not torch.equal(views[2], base)
    again = model.views(base, mask)
    assert all(torch.equal(u, v) for u, v in zip(views, again))
    no_perturb = build(perturb_eval=False).eval()
    assert all(torch.equal(v, base) for v in no_perturb.views(base, mask))


def test_checkpoint_is_self_contained(tmp_path):
    from finetec.engine.checkpoint import load_model, save_checkpoint

    comp = create_model("completion", num_classes=1, layout="coco17", in_channels=2, clip_len=T, width=8, depth=2,
                        merge_at=1, bank_size=4)
    comp.set_bank(np.random.default_rng(0).normal(size=(4, T, 17, 2)).astype(np.float32))
    with torch.no_grad():
        comp.head.weight.normal_(0, 0.1)
    stage1 = tmp_path / "stage1"
    save_checkpoint(stage1, comp, {"epoch": 1})
    model = build(completion_checkpoint=str(stage1), allow_untrained_completion=False)
    assert model.config["completion_checkpoint"] is None
    assert model.config["completion_config"]["name"] == "completion"
    assert torch.equal(model.completion.head.weight, comp.head.weight)
    save_checkpoint(tmp_path / "stage2", model, {"epoch": 1})
    shutil.rmtree(stage1)
    loaded, _ = load_model(tmp_path / "stage2")
    x, mask = batch(17, 2)
    model.eval()
    assert torch.equal(loaded.completion.bank, comp.bank)
    assert torch.allclose(loaded(x, mask)["logits"], model(x, mask)["logits"], atol=1e-6)


def test_mismatched_completion_checkpoint(tmp_path):
    from finetec.engine.checkpoint import save_checkpoint

    comp = create_model("completion", num_classes=1, layout="coco17", in_channels=2, clip_len=2 * T, width=8,
                        depth=1, merge_at=0, bank_size=2)
    save_checkpoint(tmp_path / "c", comp, {})
    with pytest.raises(FinetecError, match="clip_len"):
        build(completion_checkpoint=str(tmp_path / "c"), allow_untrained_completion=False)
    gcn = create_model("stgcnpp", num_classes=2, layout="coco17", in_channels=2, **TINY_GCN)
    save_checkpoint(tmp_path / "g", gcn, {})
    with pytest.raises(FinetecError, match="not a completion"):
        build(completion_checkpoint=str(tmp_path / "g"), allow_untrained_completion=False)


def test_wrong_channels():
    with pytest.raises(ValueError, match="position channels"):
        build().eval()(torch.zeros(1, 1, T, 17, 4))


def test_person_count_reaches_per_person_backbones():
    """ST-GCN's data BN is built per person slot: FineTec must pass its num_person through."""
    model = build("coco17", 2, backbone="stgcn", num_person=3).eval()
    assert model.backbone.num_person == 3
    x, mask = batch(17, 2, M=3)
    assert model(x, mask)["logits"].shape == (2, 4)
    assert build("coco17", 2, backbone="stgcn", num_person=3,
                 backbone_overrides={**TINY_GCN, "num_person": 1}).backbone.num_person == 1
