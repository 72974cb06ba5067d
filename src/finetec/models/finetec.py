"""The full FineTec model (registered as ``"finetec"``): modules 1-3, fusion and a GCN head.

Data flow for a batch x (N, M, T, V, C) of normalised positions with mask (N, M, T, V)::

    S_base            = completion(x, mask)                  module 1, frozen (or a gap filler)
    S_dyna, S_stat    = decompose(S_base)                    module 2 (perturbed views)
    a_k, L_Ac,k       = lagrangian(S_k) for k in base/dyna/stat   module 3 (shared weights)
    S_pred            = fuse_pos(S_base, S_dyna, S_stat)     cross-attention per (frame, joint) token
    a_pred            = fuse_acc(a_base, a_dyna, a_stat)
    logits            = backbone(concat(S_pred, a_pred) over channels)      (N, K)
    aux_loss          = lam * mean_k L_Ac,k

``forward`` returns ``{"logits", "aux_loss"}``; the engine adds ``aux_loss`` to the cross-entropy.

Ablation switches: ``use_completion=False`` replaces module 1 with the gap filler ``filler``;
``use_decomposition=False`` drops S_dyna/S_stat and the fusions (S_pred = S_base, a_pred = a_base);
``use_physics=False`` drops module 3 (the backbone then sees positions only, aux_loss = 0).

The completion module is loaded from ``completion_checkpoint`` (a stage-1 checkpoint) and frozen:
no gradient, always in eval mode. Its architecture is recorded in ``model.config`` as
``completion_config`` (and ``completion_checkpoint`` is reset to None there), and its weights and
skeleton bank are part of this model's state dict, so ``create_model(**model.config)`` followed by
``load_state_dict`` rebuilds the full model without the stage-1 file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from finetec.data.fillers import check_filler, fill_batch
from finetec.errors import FinetecError
from finetec.layouts import Layout
from finetec.models.checkpoint import build_model, load_model
from finetec.models.decomposition import PerturbConfig, decompose, person_present, sample_generators, sample_keys
from finetec.models.fusion import FUSIONS, make_fusion
from finetec.models.physics import MATRIX_STRUCTURES, LagrangianAcceleration
from finetec.models.registry import create_model, model_options, register_model

__all__ = ["FineTec", "FineTecConfig", "finetec"]


def _fill(x: torch.Tensor, mask: torch.Tensor, method: str) -> torch.Tensor:
    """Gap filling used when module 1 is switched off: the project's one gap filler
    (:func:`finetec.data.fillers.fill`, as the baselines' pipeline uses it); ``none`` zeroes the
    missing entries. Observed entries are kept as they are."""
    if method == "none":
        return torch.where(mask[..., None], x, torch.zeros_like(x))
    return fill_batch(x, mask, method)


@dataclass(frozen=True)
class FineTecConfig:
    """FineTec's options: the schema of its ``model.config`` (besides ``num_classes``, ``layout``,
    ``in_channels``), validated when the config is made.

    clip_len: T (the completion module's temporal MLPs are built for it).
    backbone, backbone_overrides: a registered classification model and its options; it receives
    2C channels (positions + accelerations), or C without physics.
    completion_checkpoint: folder of a stage-1 ``completion`` checkpoint (frozen here).
    completion_config: the completion module's architecture (written into model.config
    automatically; lets a saved FineTec checkpoint rebuild without the stage-1 file).
    allow_untrained_completion: build a randomly initialised completion module when neither of the
    two above is given (tests, smoke runs). Otherwise that is an error.
    use_completion, use_decomposition, use_physics: the ablation switches.
    fusion: ``attention`` (default) or ``mlp``; fusion_width, fusion_heads: its size.
    lam: weight of the acceleration loss L_Ac in ``aux_loss``.
    filler: gap filler used when use_completion is False (``linear`` default, or a name from
    finetec.data.fillers.FILLERS, or ``none``).
    perturb_eval: perturb the decomposition views at evaluation too (per-sample fixed seeds).
    perturbation: overrides of :class:`~finetec.models.decomposition.PerturbConfig` fields.
    matrix_structure, physics_hidden, physics_rank: module 3 options.
    num_person: persons per clip (M), passed to backbones that build per-person layers (the
    engine fills it from the data) unless backbone_overrides sets it.
    seed: seed of the training-time perturbation generator.
    """

    clip_len: int = 64
    backbone: str = "stgcnpp"
    backbone_overrides: dict[str, Any] | None = None
    completion_checkpoint: str | None = None
    completion_config: dict[str, Any] | None = None
    allow_untrained_completion: bool = False
    use_completion: bool = True
    use_decomposition: bool = True
    use_physics: bool = True
    fusion: str = "attention"
    fusion_width: int = 16
    fusion_heads: int = 2
    lam: float = 0.1
    filler: str = "linear"
    perturb_eval: bool = True
    perturbation: dict[str, float] | None = None
    matrix_structure: str = "block"
    physics_hidden: int = 64
    physics_rank: int = 8
    num_person: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise FinetecError(f"finetec: fusion must be one of {', '.join(FUSIONS)}, got {self.fusion!r}")
        if self.matrix_structure not in MATRIX_STRUCTURES:
            raise FinetecError(f"finetec: matrix_structure must be one of {', '.join(MATRIX_STRUCTURES)}, "
                               f"got {self.matrix_structure!r}")
        if not self.use_completion:
            check_filler(self.filler)
        self.perturb_config()

    def perturb_config(self) -> PerturbConfig:
        try:
            return PerturbConfig(**(self.perturbation or {}))
        except TypeError as e:
            raise FinetecError(f"finetec: bad perturbation options ({e})") from None


class FineTec(nn.Module):
    """FineTec: restored, decomposed and physics-augmented skeleton sequences classified by a GCN.

    See the module docstring for the data flow and :class:`FineTecConfig` for the options.
    """

    def __init__(self, layout: Layout, channels: int, backbone: nn.Module, completion: nn.Module | None,
                 config: FineTecConfig):
        super().__init__()
        c = config
        self.layout, self.C = layout, channels
        self.completion = completion
        if completion is not None:
            completion.requires_grad_(False)
            completion.eval()
        self.filler = c.filler
        self.use_decomposition, self.use_physics = c.use_decomposition, c.use_physics
        self.perturb_eval, self.perturbation, self.lam = c.perturb_eval, c.perturb_config(), float(c.lam)
        self.physics = (LagrangianAcceleration(layout.num_joints, channels, hidden=c.physics_hidden,
                                               matrix_structure=c.matrix_structure, rank=c.physics_rank)
                        if c.use_physics else None)
        self.fuse_pos = (make_fusion(c.fusion, channels, c.fusion_width, c.fusion_heads)
                         if c.use_decomposition else None)
        self.fuse_acc = (make_fusion(c.fusion, channels, c.fusion_width, c.fusion_heads)
                         if c.use_decomposition and c.use_physics else None)
        self.backbone = backbone
        self._generator = torch.Generator().manual_seed(int(c.seed))
        self._config: dict[str, Any] = {}

    # model.config is set by create_model; the completion module's own config replaces its checkpoint path
    @property
    def config(self) -> dict[str, Any]:
        return self._config

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        cfg = dict(value)
        if self.completion is not None and isinstance(getattr(self.completion, "config", None), dict):
            cfg["completion_config"] = dict(self.completion.config)
            cfg["completion_checkpoint"] = None
            cfg["allow_untrained_completion"] = False
        self._config = cfg

    def train(self, mode: bool = True) -> "FineTec":
        super().train(mode)
        if self.completion is not None:
            self.completion.eval()  # frozen: BatchNorm/dropout-free anyway, and eval-mode prompts
        return self

    # -- stages ------------------------------------------------------------------------------
    def restore(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """S_base (N, M, T, V, C): module 1 (frozen, no gradient) or the configured gap filler."""
        if self.completion is None:
            return _fill(x, mask, self.filler)
        with torch.no_grad():
            return self.completion(x, mask)["completed"]

    def views(self, s_base: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """[S_base] or [S_base, S_dyna, S_stat] (module 2)."""
        if not self.use_decomposition:
            return [s_base]
        if self.training:
            gen: Any = self._generator
            perturb = True
        else:
            perturb = self.perturb_eval
            gen = sample_generators(sample_keys(torch.where(mask[..., None], s_base, 0.0))) if perturb else None
        s_dyna, s_stat, _ = decompose(s_base, mask, self.layout, gen, perturb=perturb, cfg=self.perturbation)
        return [s_base, s_dyna, s_stat]

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """{"logits": (N, K), "aux_loss": scalar} for x (N, M, T, V, C) and mask (N, M, T, V) bool."""
        if x.shape[-1] != self.C:
            raise ValueError(f"FineTec expects {self.C} position channels per joint, got {x.shape[-1]} "
                             "(use the pipeline's features: [joint])")
        if mask is None:
            mask = torch.ones(x.shape[:-1], dtype=torch.bool, device=x.device)
        mask = mask.bool()
        present = person_present(mask)
        s_base = self.restore(x, mask)
        seqs = self.views(s_base, mask)
        s_pred = self.fuse_pos(*seqs) if self.fuse_pos is not None else seqs[0]
        aux = x.new_zeros(())
        feats = s_pred
        if self.physics is not None:
            outs = [self.physics(s, present) for s in seqs]
            accs = [o["a"] for o in outs]
            aux = self.lam * torch.stack([o["loss"] for o in outs]).mean()
            a_pred = self.fuse_acc(*accs) if self.fuse_acc is not None else accs[0]
            feats = torch.cat([s_pred, a_pred], dim=-1)
        backbone_mask = present[:, :, None, None].expand(mask.shape)
        out = self.backbone(feats, backbone_mask)
        if isinstance(out, dict):
            logits = out["logits"]
            if "aux_loss" in out:
                aux = aux + out["aux_loss"]
        else:
            logits = out
        return {"logits": logits, "aux_loss": aux}


def _load_completion(path: str | os.PathLike) -> nn.Module:
    model, _ = load_model(path)
    if model.config.get("name") != "completion":
        raise FinetecError(f"not a completion checkpoint (model {model.config.get('name')!r})", path)
    return model


def _completion_module(c: FineTecConfig, layout: Layout, in_channels: int) -> nn.Module:
    """Module 1: the stage-1 checkpoint, the recorded architecture, or (tests) an untrained one."""
    if c.completion_checkpoint:
        comp = _load_completion(c.completion_checkpoint)
    elif c.completion_config:
        comp = build_model(c.completion_config, "<finetec completion_config>")
    elif c.allow_untrained_completion:
        comp = create_model("completion", num_classes=1, layout=layout, in_channels=in_channels,
                            clip_len=c.clip_len, width=32, depth=2, merge_at=1, bank_size=16)
    else:
        raise FinetecError("finetec: use_completion needs completion_checkpoint (a stage-1 completion "
                           "checkpoint); set use_completion: false to use a gap filler instead")
    if (comp.V, comp.C, comp.T) != (layout.num_joints, in_channels, c.clip_len):
        raise FinetecError(
            f"finetec: the completion module was built for V={comp.V}, C={comp.C}, clip_len={comp.T} "
            f"(layout {comp.config.get('layout')!r}) but this model has V={layout.num_joints}, C={in_channels}, "
            f"clip_len={c.clip_len}", c.completion_checkpoint)
    return comp


@register_model("finetec", FineTecConfig)
def finetec(*, num_classes: int, layout: Layout, in_channels: int, config: FineTecConfig) -> FineTec:
    """Build FineTec (options: :class:`FineTecConfig`); ``in_channels`` is C, the position channels
    (2 or 3): the pipeline must produce positions only."""
    c = config
    comp = _completion_module(c, layout, in_channels) if c.use_completion else None
    bb_opts = dict(c.backbone_overrides or {})
    if "num_person" in model_options(c.backbone):
        bb_opts.setdefault("num_person", c.num_person)
    head_channels = in_channels * (2 if c.use_physics else 1)
    net = create_model(c.backbone, num_classes=num_classes, layout=layout, in_channels=head_channels, **bb_opts)
    return FineTec(layout, in_channels, net, comp, c)
