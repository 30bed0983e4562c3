"""Data order as a pure function of ``(seed, step)``: the batch of any step can be recomputed.

Sample position ``p = step·B + i`` (``B`` the global batch) falls in epoch ``p // N`` at offset
``p % N`` of that epoch's permutation of the ``N`` dataset indices, drawn from a generator seeded
by ``(seed, epoch)``. A run resumed at step ``k`` therefore sees exactly the batches an
uninterrupted run sees, and under DDP rank ``r`` of ``R`` takes the ``r``-th contiguous slice of
``B/R`` images of each global batch, so the ranks' slices joined in rank order are the
one-process batch.

This replaces ``torch.utils.data.DistributedSampler``, whose order depends on an epoch counter
and cannot restart in the middle of an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

_SALT = 0x6E6D  # separates the data-order stream from other uses of the seed


def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the ``n`` dataset indices in ``epoch`` (int64 ``[n]``)."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([_SALT, seed, epoch])))
    return rng.permutation(n).astype(np.int64)


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's dataset indices for steps ``start_step .. end_step - 1``.

    Args:
        n: dataset length.
        batch_size: global batch size ``B`` (all ranks together).
        seed: data-order seed.
        start_step, end_step: the half-open range of steps to yield batches for.
        rank, world_size: this process's slice: images ``[rank·B/R, (rank+1)·B/R)`` of a batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, end_step: int,
                 rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError("the dataset is empty")
        if batch_size % world_size:
            raise ValueError("batch_size must be a multiple of world_size")
        self.n, self.batch_size, self.seed = int(n), int(batch_size), int(seed)
        self.start_step, self.end_step = int(start_step), int(end_step)
        self.rank, self.world_size = int(rank), int(world_size)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return max(0, self.end_step - self.start_step)

    def _perm(self, epoch: int) -> np.ndarray:
        if epoch not in self._cache:
            if len(self._cache) >= 2:  # a batch spans at most two epochs when B <= N
                self._cache.pop(min(self._cache))
            self._cache[epoch] = epoch_permutation(self.n, self.seed, epoch)
        return self._cache[epoch]

    def global_batch(self, step: int) -> list[int]:
        """Dataset indices of the whole batch of ``step`` (every rank's slice, in rank order)."""
        pos = step * self.batch_size + np.arange(self.batch_size, dtype=np.int64)
        epochs, offsets = pos // self.n, pos % self.n
        out = np.empty(self.batch_size, np.int64)
        for e in np.unique(epochs):
            sel = epochs == e
            out[sel] = self._perm(int(e))[offsets[sel]]
        return out.tolist()

    def batch(self, step: int) -> list[int]:
        """Dataset indices this rank trains on at ``step``."""
        per = self.batch_size // self.world_size
        return self.global_batch(step)[self.rank * per:(self.rank + 1) * per]

    def __iter__(self) -> Iterator[list[int]]:
        for step in range(self.start_step, self.end_step):
            yield self.batch(step)
