"""Training: one loop for CPU, one GPU and DDP (started under ``torchrun``).

``train(config, out_dir, resume=False)`` writes into ``out_dir``::

    config.yaml        the resolved configuration
    train.log          the log lines (environment, seed, effective batch, progress)
    metrics.jsonl      one JSON object per epoch: epoch, step, lr, loss, train_top1, val_*, time
    best/              checkpoint with the best VALIDATION metric (model.safetensors + checkpoint.json)
    last/              checkpoint after the latest epoch (or, with ``runtime.checkpoint_every=N``,
                       after the latest N steps inside an epoch), plus train_state.pt for --resume
    previous/          the complete ``last/`` before it (``--resume`` falls back to it)
    tb/                TensorBoard events (when the tensorboard package is installed)

Each checkpoint folder ends with its record ``complete.json`` (see
:mod:`finetec.engine.checkpoint`) and is written into a temporary folder, then renamed into place.
While training, the folder is locked (``.lock``, released when the process ends, however it
ends): a second run into the same folder fails at once, naming the holder. Temporary files a
killed run left behind are removed when the next run takes the lock.

Determinism: every random choice derives from ``config.seed``: model initialisation (a forked
torch RNG seeded with the seed), the validation carve-out (stratified, ``default_rng(seed)``), the
epoch's clip order (``default_rng([seed, epoch])``), the pipeline's per-clip randomness
(``(seed, epoch, index)``) and the model's own randomness such as dropout (a forked torch RNG
seeded from ``(seed, epoch, batch, rank)`` for each batch). Resuming from ``last/``, after an epoch
or mid-epoch, therefore reaches the same weights as an uninterrupted run: a mid-epoch checkpoint
records how many batches of the epoch were done and the epoch's running loss sums, and the
resumed run skips those batches of the epoch's order.

Optimisation: SGD with Nesterov momentum (or Adam / AdamW), weight decay, per-step learning
rate with linear warm-up then cosine decay to zero, optional label smoothing and gradient
clipping. Precision (``runtime.precision``, :mod:`finetec.engine.device`): the forward pass under
bf16 autocast on CUDA by default, or everywhere with ``bf16`` (a CPU needs native bf16); weights,
gradients, optimizer state and the loss stay float32. ``runtime.compile``: the training step's
forward and backward through ``torch.compile`` (see :meth:`Trainer._net`). Under DDP the global
batch (``optim.batch_size``) is split across ranks, per-clip losses are summed and scaled so that the averaged gradient equals the
global-batch mean, and only rank 0 logs and writes.
"""
from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from finetec.console import shown_path
from finetec.data.mirror import mirror_labels
from finetec.data.pipeline import ClipPipeline, PipelineConfig, PipelineDataset, collate
from finetec.data.pool import pool_datasets
from finetec.data.readers import open_with_options
from finetec.engine import checkpoint as ck
from finetec.engine import sanity
from finetec.engine.checkpoint import WEIGHTS
from finetec.engine.config import Config, load_config, save_config
from finetec.engine.device import autocast, compile_module, resolve_precision
from finetec.engine.distributed import ShardedBatches, all_reduce_sum, barrier, cleanup, init_distributed, loss_weight
from finetec.engine.evaluate import MultiClipDataset, make_loader
from finetec.engine.tasks import TASKS
from finetec.errors import FinetecError
from finetec.fileio import FolderLock, remove_stale_temps, write_text_atomic
from finetec.models.registry import create_model, model_options
from finetec.version import __version__

COMPARED_SECTIONS = ("task", "seed", "data", "pipeline", "model")


# -- small pure helpers -----------------------------------------------------------------------
def split_validation(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, deterministic carve-out: positions (train, val) into ``labels``.

    Per class, ``round(n_c * fraction)`` clips (at most ``n_c - 1``) go to validation, chosen by
    a permutation from ``np.random.default_rng(seed)`` (classes in increasing order).
    Unlabelled clips (-1) form their own group.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if fraction <= 0 or n == 0:
        return np.arange(n), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for c in np.unique(labels):
        pos = np.flatnonzero(labels == c)
        k = min(int(round(len(pos) * fraction)), len(pos) - 1)
        if k > 0:
            val.append(rng.permutation(pos)[:k])
    v = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    return np.setdiff1d(np.arange(n), v), v.astype(np.int64)


def lr_at(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Learning rate of optimisation step ``step`` (0-based): linear warm-up to ``peak`` over
    ``warmup_steps``, then cosine decay towards 0 at ``total_steps``."""
    if warmup_steps > 0 and step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return 0.5 * peak * (1.0 + math.cos(math.pi * progress))


def epoch_seed(seed: int, epoch: int, rank: int, batch: int = 0) -> int:
    """The torch seed of the model's own randomness (dropout, perturbations) in one batch."""
    return int(np.random.SeedSequence([seed, epoch, rank, 0x5EED, batch]).generate_state(1)[0])


class BatchNormWarmStart:
    """Running statistics of BatchNorm layers without a trace of their initial values.

    PyTorch initialises ``running_mean`` to 0 and ``running_var`` to 1 and updates them as
    ``(1 - m) * running + m * batch`` (momentum ``m``, 0.1 by default), so after ``t`` batches
    the initial values still weigh ``(1 - m) ** t``: 0.5 % after 50 steps. Normalised joint
    coordinates vary far less than 1 (the input BatchNorm of the GCN backbones sees variances
    near 0.001), so on a short run that leftover dominates the running variance and evaluation
    (which uses the running statistics) differs from training (which uses the batch's); see
    ``docs/training.md``. Call :meth:`step` before each training forward: a layer that has
    tracked ``t`` batches then averages with momentum ``max(m, 1 / (t + 1))``, the plain mean of
    the batches seen so far until ``1 / (t + 1)`` falls below ``m``, the configured
    exponential average from then on. It depends only on ``num_batches_tracked`` (saved with
    the weights), so a resumed run makes the same updates; a layer that has already tracked
    ``1 / m`` batches (a warm-started model) is left alone. Layers in eval mode
    (``runtime.freeze_bn``) are not touched.
    """

    def __init__(self, model) -> None:
        self.pending = [(mod, float(mod.momentum)) for mod in model.modules()
                        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.track_running_stats
                        and mod.momentum is not None and mod.momentum < 1]

    @property
    def warming(self) -> bool:
        """Whether a layer in training mode still averages (its momentum still changes per step)."""
        return any(mod.training for mod, _ in self.pending)

    def step(self) -> None:
        """Set each warming layer's momentum for the coming forward pass (reads the batch count
        of a layer only while it is warming, i.e. during the first ``1 / m`` steps)."""
        still = []
        for mod, m in self.pending:
            if not mod.training:
                still.append((mod, m))
                continue
            t = int(mod.num_batches_tracked)
            mod.momentum = max(m, 1.0 / (t + 1))
            if mod.momentum != m:   # still averaging: look again before the next step
                still.append((mod, m))
        self.pending = still


def build_optimizer(cfg: Config, params):
    o = cfg.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov and o.momentum > 0,
                               weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


def environment(env, device) -> dict[str, Any]:
    """Versions and hardware for the log (reproducibility)."""

    return {
        "finetec": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "numpy": np.__version__, "platform": platform.platform(), "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_threads": torch.get_num_threads(), "world_size": env.world_size,
    }


class RunLog:
    """Log lines to stderr and ``train.log`` (rank 0 only).

    Lines are kept in memory until :meth:`start` (called once the run's setup succeeded), so a
    run refused by the sanity checks leaves no output folder behind.
    """

    def __init__(self, out_dir: Path | None, enabled: bool):
        self.enabled = enabled
        self.file = (out_dir / "train.log") if (enabled and out_dir is not None) else None
        self.pending: list[str] | None = []

    def start(self) -> None:
        if self.file is not None and self.pending is not None:
            self.file.parent.mkdir(parents=True, exist_ok=True)
            with open(self.file, "a", encoding="utf-8") as f:
                f.writelines(line + "\n" for line in self.pending)
        self.pending = None

    def __call__(self, msg: str) -> None:
        if not self.enabled:
            return
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, file=sys.stderr, flush=True)
        if self.pending is not None:
            self.pending.append(line)
        elif self.file is not None:
            with open(self.file, "a", encoding="utf-8") as f:
                f.write(line + "\n")


def _tensorboard(mode: str, out_dir: Path):
    if mode == "off":
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # noqa: BLE001 - tensorboard is optional
        if mode == "on":
            raise FinetecError("runtime.tensorboard is on but the tensorboard package is not installed") from None
        return None
    return SummaryWriter(str(out_dir / "tb"))


def _auto_options(name: str, params: dict[str, Any], clip_len: int, num_persons: int) -> dict[str, Any]:
    """Fill ``clip_len`` / ``num_person`` from the data when the model takes them and the
    config leaves them unset."""

    opts = model_options(name)
    out = dict(params)
    if "clip_len" in opts and "clip_len" not in out:
        out["clip_len"] = clip_len
    if "num_person" in opts and "num_person" not in out:
        out["num_person"] = num_persons
    return out


# -- the trainer ------------------------------------------------------------------------------
class Trainer:
    """Holds the state of one run; :meth:`run` trains and returns the summary dict."""

    def __init__(self, cfg: Config, out_dir: Path, env):
        self.cfg, self.out, self.env = cfg, out_dir, env
        self.log = RunLog(out_dir, env.is_main)
        self._resume_batch, self._resume_sums = 0, None   # where a mid-epoch --resume continues
        self._best, self._history = None, []
        self.precision = "fp32"   # resolved in run(): fp32 or bf16
        self.compiled = None      # the torch.compile'd training module (runtime.compile)
        self._compiled_steps = 0  # steps run by it

    # setup ---------------------------------------------------------------------------------
    def _data(self) -> None:
        cfg = self.cfg
        sanity.check_pipeline(cfg.task, cfg.pipeline.features, cfg.pipeline.filler)
        ds = open_with_options(cfg.data.path, cfg.data.format, cfg.data.options)
        all_train = ds.split_indices(cfg.data.train_split)
        sanity.check_split(ds, all_train, cfg.data.train_split, cfg.task)
        self.task = TASKS[cfg.task](max(ds.num_classes, 1), cfg.pipeline.filler, cfg.optim.label_smoothing)
        tr, va = split_validation(self.task.split_labels(ds, all_train), cfg.data.val_fraction, cfg.seed)
        self.ds, self.train_idx, self.val_idx = ds, all_train[tr], all_train[va]
        if cfg.data.pool:  # more datasets of the family: their training clips join (validation stays)
            if cfg.task != "completion":
                raise FinetecError("data.pool (training on a list of datasets) is for task completion only",
                                   cfg.source)
            self.ds, extra = pool_datasets(ds, cfg.data.pool, cfg.data.train_split)
            self.train_idx = np.concatenate([self.train_idx, extra])
            ds = self.ds
        self.num_persons = cfg.data.max_persons or ds.max_persons
        pcfg = PipelineConfig(**cfg.pipeline_kwargs())
        common = dict(dim=ds.dim, num_persons=self.num_persons)
        self.mirror = mirror_labels(ds.class_names, ds.meta, where=shown_path(cfg.data.path))
        self.train_pipe = ClipPipeline(ds.layout, pcfg, train=True, seed=cfg.seed, mirror_labels=self.mirror,
                                       **common)
        self.val_pipe = ClipPipeline(ds.layout, PipelineConfig(**{**cfg.pipeline_kwargs(), "augment": False,
                                                                   "mixed": False}),
                                     train=False, seed=cfg.seed, **common)
        self.train_set = PipelineDataset(ds, self.train_idx, self.train_pipe)
        self.in_channels = self.train_pipe.in_channels

    def _model(self):
        cfg, ds = self.cfg, self.ds
        params = _auto_options(cfg.model.name, cfg.model.params, cfg.pipeline.clip_len, self.num_persons)
        K = max(ds.num_classes, 1)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            model = create_model(cfg.model.name, num_classes=K, layout=ds.layout, in_channels=self.in_channels,
                                 **params)
        self.task.prepare(model, self)
        model.eval()
        self.model = model.to(self.env.device)

    def probe_batch(self) -> dict[str, Any]:
        """One validation-mode batch of one training clip (for the tasks' checks)."""

        j = int(self.train_idx[0])
        return collate([self.val_pipe(self.ds[j], index=j)])

    def bank_clips(self) -> tuple[np.ndarray, np.ndarray]:
        """Clean normalised training clips (test-mode pipeline, level clean): clips (B, T, V, C)
        and their observed mask (B, T, V), one entry per person with at least one observed joint."""

        pipe = ClipPipeline(self.ds.layout, replace(self.val_pipe.cfg, level="clean", filler="none",
                                                    features=("joint",)),
                            train=False, seed=self.cfg.seed, dim=self.ds.dim, num_persons=self.num_persons)
        clips, masks = [], []
        for j in self.train_idx:
            out = pipe(self.ds[int(j)], index=int(j))
            for m in range(out["clean"].shape[0]):
                if out["clean_mask"][m].any():
                    clips.append(out["clean"][m])
                    masks.append(out["clean_mask"][m])
        return np.stack(clips).astype(np.float32), np.stack(masks)

    def _loaders(self) -> None:
        cfg, env = self.cfg, self.env
        self.sampler = ShardedBatches(len(self.train_idx), cfg.optim.batch_size, env.world_size, env.rank,
                                      seed=cfg.seed, shuffle=True)
        if len(self.sampler) == 0:
            raise FinetecError(f"the training split has {len(self.train_idx)} clip(s): too few for "
                               f"{env.world_size} process(es)", cfg.source)
        self.train_loader = make_loader(self.train_set, cfg.optim.batch_size, cfg.runtime.num_workers,
                                        batch_sampler=self.sampler)
        self.val_loader = None
        if len(self.val_idx) and env.is_main:
            per_rank = max(1, cfg.optim.batch_size // env.world_size)
            self.val_loader = make_loader(MultiClipDataset(self.ds, self.val_idx, self.val_pipe, 1), per_rank,
                                          cfg.runtime.num_workers)

    # run -----------------------------------------------------------------------------------
    def run(self, resume: bool, stop_after: int | None = None) -> dict[str, Any]:
        cfg, env, out = self.cfg, self.env, self.out
        last, previous = out / "last", out / "previous"
        if not resume and any((d / ck.INFO).exists() or (d / ck.RECORD).exists() for d in (last, previous)):
            raise FinetecError("this folder already holds a training run; pass --resume to continue it "
                               "or choose another --out", out)
        state, source = (self._resume_state(last, previous) if resume else (None, None))
        self.precision = resolve_precision(cfg.runtime.precision, env.device, "runtime.precision")
        envinfo = environment(env, env.device)
        self.log(f"finetec {envinfo['finetec']} | python {envinfo['python']} | torch {envinfo['torch']} | "
                 f"numpy {envinfo['numpy']} | {envinfo['platform']}")
        self.log(f"device {envinfo['device']} ({envinfo['device_name']}), {envinfo['cpu_threads']} CPU threads, "
                 f"world size {env.world_size}, seed {cfg.seed}")
        self.log(f"precision {self.precision} (runtime.precision {cfg.runtime.precision}: "
                 + ("bf16 autocast forward, float32 weights, gradients and loss" if self.precision == "bf16"
                    else "float32") + f"); compile {'on' if cfg.runtime.compile else 'off'}")
        self._data()
        self._model()
        self._loaders()
        model = self.model
        n_params = sum(p.numel() for p in model.parameters())
        per_rank = -(-cfg.optim.batch_size // env.world_size)
        self.log(f"data {shown_path(cfg.data.path)}: {len(self.train_idx)} train / {len(self.val_idx)} val clips "
                 f"(split {cfg.data.train_split!r}, val_fraction {cfg.data.val_fraction}), "
                 f"{self.ds.num_classes} classes, layout {self.ds.layout.name}, {self.ds.dim}D")
        if cfg.pipeline.augment and cfg.pipeline.flip_prob > 0:
            pairs = [(self.ds.class_names[i], self.ds.class_names[j]) for i, j in enumerate(self.mirror) if i < j]
            self.log(f"left/right flips (flip_prob {cfg.pipeline.flip_prob}) swap the labels of "
                     + ("; ".join(f"{a!r} <-> {b!r}" for a, b in pairs) if pairs else "no class (no mirror classes)"))
        self.log(f"model {cfg.model.name}: {n_params / 1e6:.3f} M parameters, in_channels {self.in_channels}; "
                 f"task {cfg.task}")
        self.log(f"effective batch {cfg.optim.batch_size} = {env.world_size} process(es) x ~{per_rank}; "
                 f"{len(self.sampler)} steps/epoch x {cfg.optim.epochs} epochs; optimizer {cfg.optim.name} "
                 f"lr {cfg.optim.lr} wd {cfg.optim.weight_decay}")

        if env.distributed:
            if env.device.type == "cuda" and cfg.runtime.sync_bn:
                model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
            ddp = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[env.device] if env.device.type == "cuda" else None)
        else:
            ddp = model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = build_optimizer(cfg, params)
        self.bn_warm = BatchNormWarmStart(model)
        if cfg.runtime.compile:
            self.compiled = compile_module(ddp, "runtime.compile")
        steps = len(self.sampler)
        total = steps * cfg.optim.epochs
        warmup = int(round(cfg.optim.warmup_epochs * steps))
        history: list[dict[str, Any]] = []
        start_epoch, step, best = 0, 0, None
        if state is not None:
            self._load_weights(model, source)
            try:
                opt.load_state_dict(state["optimizer"])
            except (ValueError, KeyError, TypeError, RuntimeError) as e:
                raise FinetecError(f"cannot resume: the optimizer state does not fit this model "
                                   f"({type(e).__name__})", source / ck.TRAIN_STATE) from None
            start_epoch, step, best, history = state["epoch"], state["step"], state["best"], state["history"]
            self._resume_batch, self._resume_sums = state["batch"], state["sums"]
            where = (f"at step {self._resume_batch} of epoch {start_epoch + 1}" if self._resume_batch
                     else f"after epoch {start_epoch}")
            self.log(f"resumed from {source} {where} (step {step})")
        if env.is_main:
            out.mkdir(parents=True, exist_ok=True)
            self.log.start()
            save_config(cfg, out / "config.yaml")
            self._write_metrics(history)
        tb = _tensorboard(cfg.runtime.tensorboard, out) if env.is_main else None
        try:
            for epoch in range(start_epoch, cfg.optim.epochs):
                if stop_after is not None and epoch >= stop_after:
                    self.log(f"stopping after epoch {epoch} as requested (continue with --resume)")
                    break
                self._best, self._history = best, history
                row, step = self._epoch(ddp, model, opt, epoch, step, total, warmup)
                improved = self._is_better(row, best)
                if improved and len(self.val_idx):
                    best = row.get(self.task.metric)
                row["best"] = bool(improved)
                history.append(row)
                if env.is_main:
                    info = self._info(epoch + 1, row)
                    if improved:
                        ck.save_run_checkpoint(out / "best", model, info, step=step)
                    ck.save_run_checkpoint(last, model, info, step=step, previous=previous, train_state={
                        "optimizer": opt.state_dict(), "epoch": epoch + 1, "step": step, "best": best,
                        "history": json.dumps(history), "config": json.dumps(cfg.to_dict())})
                    self._write_metrics(history)
                    if tb is not None:
                        for k, v in row.items():
                            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch":
                                tb.add_scalar(k, v, epoch + 1)
                    self.log(self._summary(row))
                barrier(env)
        finally:
            if tb is not None:
                tb.close()
        best_row = next((h for h in reversed(history) if h.get("best")), history[-1] if history else {})
        return {"out_dir": str(out), "task": cfg.task, "metric": self.task.metric,
                "best_epoch": best_row.get("epoch"), "best_metric": best_row.get(self.task.metric),
                "epochs": len(history), "history": history, "last": history[-1] if history else {}}

    def _epoch(self, ddp, model, opt, epoch: int, step: int, total: int, warmup: int):
        cfg, env = self.cfg, self.env
        start, self._resume_batch = self._resume_batch, 0
        self.sampler.set_epoch(epoch, start=start)
        self.train_set.set_epoch(epoch)
        sizes = self.sampler.global_sizes
        ddp.train()
        if cfg.runtime.freeze_bn:
            for m in model.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
        sums = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
        if self._resume_sums is not None and env.is_main:  # the global sums of the batches done
            sums.update({k: float(self._resume_sums[k]) for k in sums})
        self._resume_sums = None
        t0 = time.time()
        lr = opt.param_groups[0]["lr"]
        devices = [env.device.index or 0] if env.device.type == "cuda" else []
        bar = self._bar(epoch)
        if bar is not None and start:
            bar.update(start)
        every = cfg.runtime.checkpoint_every
        with torch.random.fork_rng(devices=devices):
            for i, batch in enumerate(self.train_loader, start):
                torch.manual_seed(epoch_seed(cfg.seed, epoch, env.rank, i))
                lr = lr_at(step, total, warmup, cfg.optim.lr)
                for g in opt.param_groups:
                    g["lr"] = lr
                batch = {k: v.to(env.device, non_blocking=True) for k, v in batch.items()}
                w = loss_weight(len(batch["label"]), sizes[i], env.world_size)
                self.bn_warm.step()
                net = self._net(ddp, sizes[i])
                compiling = net is self.compiled and not self._compiled_steps
                t_step = time.time()
                with autocast(env.device, self.precision):
                    loss, stats = self.task.loss(net, batch, w, np.random.default_rng([cfg.seed, epoch, i, env.rank]))
                sanity.check_loss(stats["loss_sum"], i, epoch)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.optim.grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                opt.step()
                step += 1
                if net is self.compiled:
                    self._compiled_steps += 1
                    if compiling:
                        self.log(f"compiled the training step at step {step} in {time.time() - t_step:.1f} s "
                                 f"(its first run; runtime.compile)")
                for k in sums:
                    sums[k] += stats[k]
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{sums['loss_sum'] / max(sums['count'], 1):.4f}", lr=f"{lr:.4g}")
                if env.is_main and (i + 1) % cfg.runtime.log_every == 0:
                    rate = sums["count"] * env.world_size / max(time.time() - t0, 1e-9)
                    self.log(f"epoch {epoch + 1} step {i + 1}/{len(self.sampler)} loss "
                             f"{sums['loss_sum'] / max(sums['count'], 1):.4f} lr {lr:.4g} {rate:.1f} clips/s")
                if every and (i + 1) % every == 0 and i + 1 < len(sizes):
                    self._save_mid_epoch(model, opt, epoch, i + 1, step, sums)
        if bar is not None:
            bar.close()
        loss_sum, correct, count = all_reduce_sum([sums["loss_sum"], sums["correct"], sums["count"]], env)
        row: dict[str, Any] = {"epoch": epoch + 1, "step": step, "lr": lr, "loss": loss_sum / max(count, 1)}
        row.update(self.task.train_metrics(correct, count))
        last = epoch + 1 == cfg.optim.epochs
        if self.val_loader is not None and ((epoch + 1) % cfg.runtime.eval_every == 0 or last):
            row.update(self.task.validate(model, self.val_loader, env.device, self.precision))
        row["time"] = time.time() - t0
        return row, step

    def _net(self, ddp, global_size: int):
        """The module of one training step: with ``runtime.compile``, the compiled one for full
        batches once the BatchNorm warm start is over (while it lasts, each step changes the
        momentum of the warming layers, a constant of the compiled graph, which would compile
        again at every step; it ends after ``1 / momentum`` steps, 10 by default); the eager
        module otherwise, also for the epoch's last, smaller batch (another shape would compile
        again)."""
        if self.compiled is None or self.bn_warm.warming or global_size != self.cfg.optim.batch_size:
            return ddp
        return self.compiled

    def _save_mid_epoch(self, model, opt, epoch: int, batch: int, step: int, sums: dict[str, float]) -> None:
        """``last/`` after ``batch`` batches of ``epoch`` (0-based), with the epoch's global loss
        sums so far, so that ``--resume`` continues inside the epoch."""

        keys = sorted(sums)
        total = dict(zip(keys, all_reduce_sum([sums[k] for k in keys], self.env)))
        if self.env.is_main:
            last = self.out / "last"
            ck.save_run_checkpoint(
                last, model, self._info(epoch, self._history[-1] if self._history else {}), step=step,
                previous=self.out / "previous", train_state={
                    "optimizer": opt.state_dict(), "epoch": epoch, "batch": batch, "step": step, "best": self._best,
                    "history": json.dumps(self._history), "sums": json.dumps(total),
                    "config": json.dumps(self.cfg.to_dict())})
            self.log(f"saved {last} at step {batch}/{len(self.sampler)} of epoch {epoch + 1}")
        barrier(self.env)

    def _bar(self, epoch: int):
        if not self.env.is_main:
            return None
        from tqdm import tqdm

        return tqdm(total=len(self.sampler), desc=f"epoch {epoch + 1}/{self.cfg.optim.epochs}", unit="step",
                    file=sys.stderr, leave=False, dynamic_ncols=True, disable=None)

    # helpers -------------------------------------------------------------------------------
    def _is_better(self, row: dict[str, Any], best: float | None) -> bool:
        """Best = best validation metric; without a validation set, the latest epoch."""
        if not len(self.val_idx):
            return True
        value = row.get(self.task.metric)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return best is None
        if best is None:
            return True
        return value > best if self.task.higher_is_better else value < best

    def _info(self, epoch: int, row: dict[str, Any]) -> dict[str, Any]:
        cfg, ds = self.cfg, self.ds
        return {"task": cfg.task, "config": cfg.to_dict(), "class_names": list(ds.class_names),
                "layout": ds.layout.to_dict(),
                "dims": {"num_persons": int(self.num_persons), "num_joints": ds.layout.num_joints,
                         "coords": ds.dim, "in_channels": int(self.in_channels)},
                "clip_len": cfg.pipeline.clip_len, "epoch": epoch, "metrics": row, "seed": cfg.seed,
                "precision": self.precision,
                "selection": f"{self.task.metric} on {len(self.val_idx)} validation clips carved from "
                             f"{cfg.data.train_split!r}" if len(self.val_idx) else "last epoch (no validation set)"}

    def _load_weights(self, model, folder: Path) -> None:
        try:
            state = load_file(str(folder / WEIGHTS), device="cpu")
            model.load_state_dict(state)
        except Exception as e:  # noqa: BLE001 - a damaged file is the user's problem to know about
            raise FinetecError(f"cannot use the saved weights ({type(e).__name__})", folder / WEIGHTS) from None

    def _resume_state(self, last: Path, previous: Path) -> tuple[dict[str, Any], Path]:
        """The training state of the newest complete checkpoint (``last/``, else ``previous/``,
        saying so on stderr), checked field by field and against the config."""

        source, notes = ck.resumable([last, previous])
        for note in notes:
            print(f"finetec train: warning: {note}", file=sys.stderr, flush=True)
        if source is None:
            raise FinetecError("nothing to resume: no complete checkpoint in last/ or previous/"
                               + (f" ({notes[0]})" if notes else ""), self.out)
        if source != last:
            print(f"finetec train: warning: resuming from the previous complete checkpoint {source} instead of "
                  f"{last}", file=sys.stderr, flush=True)
        raw = ck.load_train_state(source)
        where = source / ck.TRAIN_STATE
        try:
            state = {"optimizer": raw["optimizer"], "epoch": int(raw["epoch"]), "step": int(raw["step"]),
                     "best": None if raw.get("best") is None else float(raw["best"]),
                     "history": [dict(h) for h in json.loads(raw["history"])],
                     "config": json.loads(raw.get("config", "{}")), "batch": int(raw.get("batch", 0)),
                     "sums": json.loads(raw["sums"]) if raw.get("sums") else None}
            if not isinstance(state["optimizer"], dict) or not isinstance(state["config"], dict) \
                    or not 0 <= state["epoch"] <= self.cfg.optim.epochs or state["step"] < 0 \
                    or state["batch"] < 0 or not (state["sums"] is None or isinstance(state["sums"], dict)):
                raise ValueError("out of range")
        except (KeyError, TypeError, ValueError, AttributeError, RecursionError) as e:
            raise FinetecError(f"cannot resume: damaged training state ({type(e).__name__})", where) from None
        changed = [k for k in COMPARED_SECTIONS if state["config"].get(k) != self.cfg.to_dict().get(k)]
        if changed:
            raise FinetecError(f"cannot resume: the config differs from the interrupted run in "
                               f"{', '.join(changed)}", source)
        return state, source

    def _write_metrics(self, history: list[dict[str, Any]]) -> None:
        write_text_atomic(self.out / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in history))

    def _summary(self, row: dict[str, Any]) -> str:
        parts = [f"epoch {row['epoch']}/{self.cfg.optim.epochs}", f"loss {row['loss']:.4f}", f"lr {row['lr']:.4g}"]
        for k in ("train_top1", "val_top1", "val_mean_class", "val_mpjpe"):
            if k in row and row[k] is not None:
                parts.append(f"{k} {row[k]:.4f}")
        parts.append(f"{row['time']:.1f}s" + (" *best*" if row.get("best") else ""))
        return " | ".join(parts)


def train(config: Config | str | os.PathLike, out_dir: str | os.PathLike, resume: bool = False,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train as configured and write checkpoints/metrics into ``out_dir``.

    ``resume`` continues from ``out_dir/last``; ``stop_after=E`` ends the run after epoch E as
    if it had been interrupted there (the schedule still spans ``optim.epochs``), to split a
    long run into sessions.

    Returns ``{"out_dir", "task", "metric", "best_epoch", "best_metric", "epochs", "history",
    "last"}`` (``history``: the rows of metrics.jsonl).
    """

    cfg = config if isinstance(config, Config) else load_config(config)
    if cfg.runtime.threads:
        import torch

        torch.set_num_threads(cfg.runtime.threads)  # a process-wide runtime setting, by request
    env = init_distributed(cfg.runtime.device)
    lock = None
    try:
        if env.is_main:
            lock = lock_run_folder(Path(out_dir))
        result = Trainer(cfg, Path(out_dir), env).run(resume, stop_after)
    except BaseException:
        if lock is not None:  # a run refused before it wrote anything leaves no folder behind
            lock.release(remove_folder=True)
        raise
    else:
        if lock is not None:
            lock.release()
    finally:
        cleanup(env)
    return result


def lock_run_folder(out: Path):
    """Take the run folder's lock (one training per folder) and remove the temporary files and
    folders a killed run left in it; returns the :class:`~finetec.fileio.FolderLock`."""

    lock = FolderLock(out, "a training run").acquire()
    for folder in (out, out / "last", out / "best", out / "previous"):
        remove_stale_temps(folder, all_pids=True)
    return lock


__all__ = ["train", "Trainer", "BatchNormWarmStart", "split_validation", "lr_at", "epoch_seed",
           "build_optimizer"]
