"""Seeded per-epoch orders and disjoint shards of them, shared by image and text batches."""
from __future__ import annotations

import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator whose stream depends only on (seed, epoch), so a resumed run replays it."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


def shard(indices: torch.Tensor, rank: int, world_size: int, equal: bool) -> torch.Tensor:
    """This process's disjoint share of `indices`: every world_size-th one, starting at `rank`.

    With `equal`, every process gets the same count (the few left over are skipped this epoch),
    which DistributedDataParallel needs; without it the shards cover `indices` exactly.
    Batch k of all ranks together is then batch k of one process with world_size times the batch.
    """
    mine = indices[rank::world_size]
    return mine[: len(indices) // world_size] if equal else mine


def shard_size(count: int, rank: int, world_size: int, equal: bool) -> int:
    """How many of `count` indices `shard` gives process `rank`, without drawing an order."""
    mine = len(range(rank, count, world_size))
    return min(mine, count // world_size) if equal else mine
