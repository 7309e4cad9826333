"""The training batches: the seeded order, (epoch, index) items, one loader with persistent workers."""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import DataLoader

from cityseg.batches import EpochBatches, _epoch_seed, drops_last_batch, make_loader
from cityseg.config import TrainConfig
from cityseg.dataset import SegDataset, load_cache
from cityseg.distributed import Dist
from cityseg.transforms import build_eval_transform, build_train_transform
from test_train import H, W, PairEcho, make_prepared


class WorkerPid(PairEcho):
    """Item ``(epoch, index)`` -> [epoch, index, pid of the process that loaded it]."""

    def __getitem__(self, item):
        return torch.tensor([*item, os.getpid()])


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of a per-epoch DataLoader(shuffle=True) with the epoch's generator: the order of every
    run before `EpochBatches`, which resume checkpoints and committed results were made with."""
    loader = DataLoader(range(n), batch_size=batch_size, shuffle=True, drop_last=drops_last_batch(n, batch_size),
                        generator=torch.Generator().manual_seed(_epoch_seed(seed, epoch)))
    return [batch.tolist() for batch in loader]


def test_epoch_batches_keep_the_per_epoch_loader_order():
    for n, bs in ((9, 4), (5, 2), (8, 3)):
        sampler = EpochBatches(n, bs, seed=3)
        for epoch in range(3):
            sampler.set_epoch(epoch)
            expected = epoch_order(n, bs, 3, epoch)
            assert list(sampler) == [[(epoch, i) for i in batch] for batch in expected], (n, bs, epoch)
            sampler.set_epoch(epoch, skip=1)  # a resume after one step: the same batches from the second on
            assert len(sampler) == len(expected) - 1
            assert list(sampler) == [[(epoch, i) for i in batch] for batch in expected[1:]]


def test_epoch_batches_shard_the_global_batches_over_ranks():
    sampler, ranks = EpochBatches(10, 4, seed=1), [EpochBatches(10, 4, seed=1, dist=Dist(2, r)) for r in (0, 1)]
    for s in (sampler, *ranks):
        s.set_epoch(5, skip=1)
    assert [a + b for a, b in zip(*ranks)] == list(sampler)
    assert len(ranks[0]) == len(sampler) == 2


def test_one_loader_with_persistent_workers_serves_every_epoch():
    ds = WorkerPid(7)
    pids = set()
    for workers in (0, 2):
        loader = make_loader(ds, 3, shuffle=True, num_workers=workers, seed=4, prefetch_factor=3)
        assert loader.persistent_workers == (workers > 0)
        for epoch, skip in ((0, 0), (1, 0), (2, 1), (3, 0)):
            loader.batch_sampler.set_epoch(epoch, skip)
            got = [batch.tolist() for batch in loader]
            expected = epoch_order(7, 3, 4, epoch)[skip:]
            assert [[row[:2] for row in batch] for batch in got] == [[[epoch, i] for i in b] for b in expected]
            if workers:
                pids |= {row[2] for batch in got for row in batch}
    assert len(pids) == 2 and os.getpid() not in pids  # the same two workers, all four epochs


def test_persistent_workers_augment_each_epoch_afresh(tmp_path):
    """Workers started in epoch 0 see every later epoch: their samples are those of (seed, epoch, index)."""
    make_prepared(tmp_path / "prepared", n_train=4)
    cfg = TrainConfig(augment="strong", size=[H, W], seed=5)
    ds = SegDataset(load_cache(tmp_path / "prepared", "train"), build_train_transform(cfg), seed=cfg.seed)
    loader = make_loader(ds, 2, shuffle=True, num_workers=2, seed=cfg.seed)
    seen = {}
    for epoch in (0, 1, 2):
        loader.batch_sampler.set_epoch(epoch)
        order = [i for batch in epoch_order(4, 2, cfg.seed, epoch) for i in batch]
        images = torch.cat([images for images, _ in loader])
        # uint8 through the loader, HWC: normalising is the training step's job, on the device
        assert images.dtype == torch.uint8 and images.shape == (4, H, W, 3)
        for k, index in enumerate(order):
            assert torch.equal(images[k], ds[(epoch, index)][0]), (epoch, index)
        seen[epoch] = images[order.index(0)]
    assert not torch.equal(seen[0], seen[1]) and not torch.equal(seen[1], seen[2])


def test_validation_loader_is_in_order_and_uint8(tmp_path):
    make_prepared(tmp_path / "prepared", n_val=3)
    cache = load_cache(tmp_path / "prepared", "val")
    ds = SegDataset(cache, build_eval_transform([H, W], resize_mask=False))  # as training validates
    images, masks = next(iter(make_loader(ds, 3, shuffle=False, num_workers=0, seed=0)))
    assert images.dtype == torch.uint8 and masks.dtype == torch.uint8
    assert torch.equal(images, torch.from_numpy(np.array(cache.images)))
    assert torch.equal(masks, torch.from_numpy(np.array(cache.labels)))
