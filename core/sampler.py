"""The shuffle of one epoch as a pure function of (seed, epoch): every task's training order, so a
resumed run replays exactly the batches the killed run would have seen."""
from __future__ import annotations

import torch


class EpochSampler(torch.utils.data.Sampler):
    """The shuffle of one epoch, a function of (seed, epoch) only, split across DDP ranks.

    Rank r of w takes perm[r::w] (padded by wrap-around to a multiple of w, as DistributedSampler):
    with a per-rank batch of B / w, the union of the ranks' i-th batches is the i-th batch of B of
    the single-process run, so 1 and w processes see the same global batches.
    """

    def __init__(self, n: int, seed: int, epoch: int, rank: int = 0, world_size: int = 1):
        self.n, self.rank, self.world = n, rank, world_size
        self.perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)).tolist()
        pad = (-n) % world_size
        self.perm += self.perm[:pad]

    def __iter__(self):
        return iter(self.perm[self.rank::self.world])

    def __len__(self):
        return len(self.perm) // self.world
