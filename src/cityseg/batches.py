"""The training batches: which images each optimizer step sees, and in which order.

The order depends only on (seed, epoch), and each sample's augmentation on (seed, epoch, index)
(`dataset.sample_seed`), so a run gives the same batches whatever the worker count, after a resume
in the middle of an epoch, and, sliced per rank (`distributed.RankShard`), under DDP. The training
DataLoader carries the epoch with every index (`EpochBatches`), so one loader with persistent workers
serves the whole run.
"""

from __future__ import annotations

import itertools
import math
from typing import Optional

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, Sampler

from cityseg.dataset import SegDataset
from cityseg.distributed import Dist, RankShard


def _epoch_seed(seed: int, epoch: int) -> int:
    """The shuffle seed of one epoch: a pure function of (seed, epoch)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), 0x5EED]).generate_state(1, np.uint64)[0])


def drops_last_batch(n: int, batch_size: int, world_size: int = 1) -> bool:
    """Whether a training epoch drops its final batch: a batch of one image (BatchNorm and pooling
    branches such as ASPP cannot train on a single 1x1 feature), or, with DDP, one too small to give every
    rank an image (`distributed.RankShard`)."""
    return n > batch_size and 0 < n % batch_size < max(2, world_size)


class EpochBatches(Sampler):
    """A training epoch's batches of ``(epoch, index)`` pairs, as the DataLoader's ``batch_sampler``.

    The order depends only on (seed, epoch): `set_epoch` picks the epoch (and how many of its batches to
    skip, to continue an epoch stopped after that many steps; their indices are drawn, not loaded). The
    epoch travels with every index to `SegDataset.__getitem__`, so DataLoader workers hold no per-epoch state
    and persist across epochs, while each sample's augmentation stays a function of (seed, epoch, index).
    With DDP (``dist``) it yields this rank's slice (`RankShard`) of each global batch of ``batch_size``.
    The last batch follows `drops_last_batch`.
    """

    def __init__(self, n: int, batch_size: int, seed: int, dist: Dist = Dist()):
        self.n, self.batch_size, self.seed, self.dist = n, batch_size, seed, dist
        self.drop_last = drops_last_batch(n, batch_size, dist.world_size)
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Yield epoch ``epoch`` from its batch ``skip`` on, from the next ``iter`` (call it between passes)."""
        self.epoch, self.skip = int(epoch), int(skip)

    def _batches(self) -> Sampler:
        generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
        # A DataLoader given this generator draws its workers' base seed from it before the sampler shuffles;
        # so did ours while a loader lived for one epoch. Drawing it here keeps the order of every earlier run
        # (results, and the resume checkpoints of runs in progress, stay valid).
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        batches = BatchSampler(RandomSampler(range(self.n), generator=generator), self.batch_size, self.drop_last)
        return RankShard(batches, self.dist) if self.dist.enabled else batches

    def __iter__(self):
        epoch, skip = self.epoch, self.skip  # fixed for the pass, even if set_epoch is called while it runs
        for batch in itertools.islice(iter(self._batches()), skip, None):
            yield [(epoch, index) for index in batch]

    def __len__(self) -> int:
        return max(0, steps_per_epoch(self.n, self.batch_size, self.dist.world_size) - self.skip)


def make_loader(dataset: SegDataset, batch_size: int, shuffle: bool, num_workers: int, seed: int,
                pin_memory: bool = False, epoch: int = 0, dist: Dist = Dist(),
                prefetch_factor: Optional[int] = None) -> DataLoader:
    """A DataLoader whose shuffle order depends only on (seed, epoch).

    A training (``shuffle``) loader serves the whole run: its ``batch_sampler`` is an `EpochBatches` at
    ``epoch``; call its ``set_epoch`` before each later pass. Its workers persist (started once, not per
    epoch), ``prefetch_factor`` batches each ahead (None: torch's default). Its own generator seeds only the
    workers' global RNGs, which no sample uses, and keeps it from drawing on torch's global RNG (dropout's).
    A validation loader (no ``shuffle``) gives the samples in order at the dataset's epoch ``epoch`` and
    starts its workers per pass. Without a generator it draws one number from the global RNG per pass, as it
    always did: a persistent one would draw once per run and change the dropout of every later epoch.
    """
    extra = {"prefetch_factor": prefetch_factor} if num_workers > 0 and prefetch_factor else {}
    if not shuffle:
        dataset.set_epoch(epoch)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                          pin_memory=pin_memory, **extra)
    batches = EpochBatches(len(dataset), batch_size, seed, dist)
    batches.set_epoch(epoch)
    return DataLoader(dataset, batch_sampler=batches, generator=torch.Generator().manual_seed(seed),
                      num_workers=num_workers, pin_memory=pin_memory, persistent_workers=num_workers > 0, **extra)


def steps_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Optimizer steps per epoch, matching ``make_loader(shuffle=True)``."""
    return n // batch_size if drops_last_batch(n, batch_size, world_size) else math.ceil(n / batch_size)


def images_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Training images seen per epoch (by all ranks together), matching ``make_loader(shuffle=True)``."""
    return n - n % batch_size if drops_last_batch(n, batch_size, world_size) else n
