"""More than one process (GPU) with PyTorch DDP: the training stage run by ``torchrun --nproc_per_node=N``.

torchrun starts N copies of ``stages/train.py`` with ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` set; `session` joins
them into one process group (NCCL on CUDA, gloo on a CPU) and gives each its device. Without those variables (or
with ``WORLD_SIZE=1``) nothing here does anything: a plain ``python stages/train.py`` runs the single-process
code path unchanged, bit for bit.

The split of the work (see `cityseg.train`): every rank draws the same seeded global batch of
``train.batch_size`` images per step and trains on its slice of it (`RankShard`); DDP averages the gradients,
so a step sees the same images as the one-process step. Rank 0 alone validates, logs and writes checkpoints;
the others wait for it at `barrier`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import logging
import os
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from cityseg.config import ConfigError

# Rank 0 validates (and writes checkpoints) while the others wait at a barrier: on a large val split that
# can take longer than NCCL's default 10-minute collective timeout.
TIMEOUT = datetime.timedelta(hours=1)


@dataclasses.dataclass(frozen=True)
class Dist:
    """This process's place in the job; the default is the single process."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Whether this process logs and writes files (rank 0)."""
        return self.rank == 0


def from_env() -> Dist:
    """The job as torchrun describes it in the environment; a single process without its variables."""
    return Dist(int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0)),
                int(os.environ.get("LOCAL_RANK", 0)))


def is_main() -> bool:
    """Whether this process is rank 0 (or the only one): the one that prints."""
    return from_env().main


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[tuple[Dist, torch.device]]:
    """(this process's `Dist`, its device) while the process group is up; torn down on exit, errors included.

    On CUDA each rank takes GPU ``LOCAL_RANK``; on a CPU all ranks share it (gloo, for tests and debugging).
    """
    dist = from_env()
    if not dist.enabled:
        yield dist, device
        return
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    if not dist.main:  # one copy of the log lines (rank 0's); warnings and errors of every rank still show
        logging.getLogger("cityseg").setLevel(logging.WARNING)
    try:
        yield dist, device
    finally:
        # The DDP wrapper sits in reference cycles; left to the interpreter's exit, its reducer (and the gloo
        # process group it holds) is destroyed in arbitrary order and the process aborts ("terminate called
        # without an active exception", in about half the CPU test runs). Collect it while the group is up.
        gc.collect()
        torch.distributed.destroy_process_group()


def rank_batch_size(batch_size: int, dist: Dist) -> int:
    """Images per rank and step: ``train.batch_size`` is the global batch, shared evenly by the ranks."""
    if batch_size % dist.world_size:
        raise ConfigError(f"train.batch_size ({batch_size}) is the global batch and must be divisible by the "
                          f"number of processes ({dist.world_size})")
    return batch_size // dist.world_size


def wrap(model: nn.Module, dist: Dist, device: torch.device, sync_batchnorm: bool) -> tuple[nn.Module, nn.Module]:
    """(the network, what the training steps call): ``model`` itself for one process, else ``model`` (with
    SyncBatchNorm layers when asked) and its DDP wrapper. Checkpoints, validation and resume use the first:
    its state_dict keys are those of a one-process run, and rank 0 can run it alone (a DDP forward syncs)."""
    if not dist.enabled:
        return model, model
    if sync_batchnorm:
        if device.type != "cuda":
            raise ConfigError("train.sync_batchnorm needs CUDA (torch's SyncBatchNorm has no CPU kernel); "
                              "set it to false for a CPU run")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # broadcast_buffers=False: each rank keeps its own BatchNorm running statistics through the epoch, and
    # `average_buffers` averages them at its end (or at a stop), rather than DDP overwriting them with rank 0's
    # at every forward. Averaging is linear in the running updates, so a run stopped mid-epoch and resumed
    # ends with the statistics of an uninterrupted one (up to rounding); training forwards use batch statistics.
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                              broadcast_buffers=False)
    return model, ddp


class RankShard(Sampler):
    """This rank's contiguous slice of every global batch of ``batches`` (the one-process batch sampler).

    Not torch's DistributedSampler: it shuffles with its own seed + epoch and pads the epoch with repeated
    images, so its steps would not be our seeded one-process batches. Slicing those keeps step k of the job
    the same images as step k of a single process. A last batch that does not split evenly gives some ranks
    one image fewer (their mean loss then weighs a little more); `batches.drops_last_batch` makes sure every
    rank gets at least one, since a rank without a batch would leave the others waiting in DDP.
    """

    def __init__(self, batches: Sampler, dist: Dist):
        self.batches, self.dist = batches, dist

    def __iter__(self):
        for batch in self.batches:
            yield np.array_split(np.asarray(batch), self.dist.world_size)[self.dist.rank].tolist()

    def __len__(self) -> int:
        return len(self.batches)


def any_rank(dist: Dist, flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on any rank; every rank must ask (a collective). For a stop signal that reached
    some ranks only: all stop after the same step, none waits forever for the others."""
    if not dist.enabled:
        return flag
    t = torch.tensor([int(flag)], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item())


def sum_over_ranks(dist: Dist, values: list[float], device: torch.device) -> list[float]:
    """``values`` summed over the ranks (float64); a single process gets them back unchanged."""
    if not dist.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    torch.distributed.all_reduce(t)
    return t.tolist()


def average_buffers(dist: Dist, model: nn.Module) -> None:
    """Average ``model``'s floating-point buffers (BatchNorm running statistics) over the ranks, in place.

    DDP keeps the parameters equal, but each rank updates its running statistics from its own shards (`wrap`);
    after this every rank holds the same weights, and rank 0 validates and saves statistics of all the images
    (the running mean is then that of the global batches, as one process would have it; the variance misses
    the spread between shards). A no-op for one process and with SyncBatchNorm (already equal).
    """
    if not dist.enabled:
        return
    for buf in model.buffers():
        if buf.is_floating_point():
            torch.distributed.all_reduce(buf)
            buf /= dist.world_size


def from_main(dist: Dist, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run summary, which rank 0 alone computes)."""
    if not dist.enabled:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier(dist: Dist) -> None:
    """Wait until every rank is here (no-op for one process)."""
    if dist.enabled:
        torch.distributed.barrier()
