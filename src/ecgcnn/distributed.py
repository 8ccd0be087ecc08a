"""Data-parallel training, switched on by the environment that ``torchrun`` sets (RANK, WORLD_SIZE).

One code path: a single process is the world of size 1. Rank 0 writes every file; validation
predictions are gathered from all ranks with their positions, so metrics cover exactly the
validation set even though DistributedSampler pads the last ranks with repeated records.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def init_world() -> World:
    """Join the process group torchrun describes (gloo on CPU, nccl on GPU); a world of 1 otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    world = World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    if torch.cuda.is_available():
        torch.cuda.set_device(world.local_rank)
    return world


def device_for(world: World, requested: str) -> torch.device:
    """The rank's device: its own GPU under torchrun with CUDA, else what was asked (auto -> cuda/cpu)."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", world.local_rank)
        return torch.device("cpu")
    return torch.device(requested)


def shard(n: int, world: World) -> np.ndarray:
    """Positions 0..n-1 this rank handles, as DistributedSampler(shuffle=False) gives them (padded)."""
    if not world.distributed:
        return np.arange(n)
    per_rank = -(-n // world.size)
    padded = np.resize(
        np.arange(n), per_rank * world.size
    )  # repeats from the start, as the sampler
    return padded[world.rank :: world.size]


def gather_rows(values: np.ndarray, positions: np.ndarray, n: int, world: World) -> np.ndarray:
    """Assemble every rank's ``values`` (one row per position) into the n rows, dropping repeats."""
    if not world.distributed:
        return values
    parts: list = [None] * world.size
    dist.all_gather_object(parts, (positions, values))
    out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
    seen = np.zeros(n, dtype=bool)
    for pos, vals in parts:
        out[pos] = vals
        seen[pos] = True
    if not seen.all():
        raise RuntimeError(f"gathered predictions miss {int((~seen).sum())} validation records")
    return out


def broadcast_buffers(module: torch.nn.Module, world: World) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics), so all ranks score the same model."""
    if world.distributed:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, 0)


def reseed_for_rank(generator: torch.Generator, seed: int, epoch: int, world: World) -> None:
    """Under torchrun, seed this rank's batch generator (window crops, augmentation) for ``epoch``.

    Each rank gets its own draws, derived from (seed, epoch, rank) alone, so a resumed run repeats
    them without a generator state per rank in state.pt. A world of 1 keeps its generator running
    (it also shuffles there, and its state is saved).
    """
    if world.distributed:
        entropy = np.random.SeedSequence([seed, epoch, world.rank]).generate_state(1)[0]
        generator.manual_seed(int(entropy))


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
