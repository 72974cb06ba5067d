"""One code path for CPU, one GPU and DDP (``torchrun``).

When ``RANK`` and ``WORLD_SIZE`` are in the environment (as ``torchrun`` sets them) the process
group is initialised (NCCL on GPU, Gloo on CPU); otherwise the run is a single process. The
global batch is split across ranks by :class:`ShardedBatches`, which draws one permutation per
epoch from ``(seed, epoch)`` so every rank agrees on it without communication.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.distributed as dist

from finetec.engine.device import resolve_device
from finetec.errors import FinetecError


@dataclass
class DistEnv:
    """Where this process runs: rank / world size and its torch device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: "object" = "cpu"  # torch.device
    initialized: bool = False  # True when this module created the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_pref: str = "auto") -> DistEnv:
    """Initialise DDP when launched by torchrun (RANK/WORLD_SIZE set), else a single process."""

    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return DistEnv(device=resolve_device(device_pref, 0))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_pref, local_rank)
    if world == 1:
        return DistEnv(rank, 1, local_rank, device)
    created = False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world)
        created = True
    return DistEnv(rank, world, local_rank, device, created)


def cleanup(env: DistEnv) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""

    if env.initialized and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a few floats over ranks (identity in a single process)."""
    if not env.distributed:
        return list(values)

    t = torch.tensor(values, dtype=torch.float64, device=env.device)
    dist.all_reduce(t)
    return t.tolist()


def barrier(env: DistEnv) -> None:
    if env.distributed:
        import torch.distributed as dist

        dist.barrier()


def broadcast_flag(flag: bool, env: DistEnv) -> bool:
    """Rank 0's boolean, on every rank."""
    if not env.distributed:
        return flag
    return all_reduce_sum([1.0 if (flag and env.is_main) else 0.0], env)[0] > 0


class ShardedBatches:
    """Batch sampler: the same global batches on every rank, each rank taking its share.

    Per epoch, positions ``0..n-1`` are shuffled with ``np.random.default_rng([seed, epoch])``
    (or kept in order with ``shuffle=False``) and cut into global batches of ``batch_size``.
    A global batch of ``b`` clips is split into ``world_size`` near-equal contiguous parts and
    rank ``r`` yields part ``r``. A final global batch with fewer clips than ranks is dropped
    (``drop_last`` drops every incomplete final batch). ``global_sizes`` lists ``b`` per step so
    that losses can be normalised by the global batch (see :func:`loss_weight`).
    ``set_epoch(e, start=k)`` skips the epoch's first ``k`` batches (resuming mid-epoch: the
    order depends only on ``(seed, epoch)``, so the remaining batches are those an uninterrupted
    run would have drawn).
    """

    def __init__(self, n: int, batch_size: int, world_size: int = 1, rank: int = 0, seed: int = 0,
                 shuffle: bool = True, drop_last: bool = False):
        if batch_size < world_size:
            raise FinetecError(f"optim.batch_size={batch_size} is smaller than the number of processes ({world_size})")
        self.n, self.batch_size, self.world_size, self.rank = n, batch_size, world_size, rank
        self.seed, self.shuffle, self.drop_last = seed, shuffle, drop_last
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def global_batches(self) -> list[np.ndarray]:
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.n) if self.shuffle
                 else np.arange(self.n))
        out = [order[i:i + self.batch_size] for i in range(0, self.n, self.batch_size)]
        if out and (len(out[-1]) < self.world_size or (self.drop_last and len(out[-1]) < self.batch_size)):
            out.pop()
        return out

    @property
    def global_sizes(self) -> list[int]:
        return [len(b) for b in self.global_batches()]

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.global_batches()[self.start:]:
            yield np.array_split(b, self.world_size)[self.rank].tolist()

    def __len__(self) -> int:
        """Batches of a whole epoch (the same whatever ``start``)."""
        return len(self.global_batches())


def loss_weight(local: int, global_size: int, world_size: int) -> float:
    """Scale for a rank's summed per-clip losses so that DDP's gradient AVERAGE equals the mean
    over the global batch: ``sum_local / global_size * world_size``."""
    return world_size / float(global_size) if local else 0.0


__all__ = ["DistEnv", "ShardedBatches", "all_reduce_sum", "barrier", "broadcast_flag", "cleanup",
           "init_distributed", "loss_weight"]
