"""The training loop: plain functions, one code path for CPU and CUDA.

``fit`` trains on the prepared training cache, validates on the val cache (the holdout cache when prepare made
one: data.holdout_cities) each epoch, keeps the
best checkpoint (by validation Dice, or loss for the course recipe), logs to DVCLive and
writes a resume checkpoint each epoch so an interrupted run continues exactly where it
stopped: shuffling is seeded per (seed, epoch) and augmentation per (seed, epoch, index), so
a resumed CPU run ends with weights identical to an uninterrupted one. SIGUSR1 or SIGTERM
(`jobs.StopSignals`) stop it after the current optimizer step with the resume state of that
step (loader position, partial epoch loss, RNG), so a cluster job loses no work.

Under ``torchrun --nproc_per_node=N`` the same code trains with DDP (`cityseg.distributed`): each rank trains
on its slice of every seeded global batch of ``train.batch_size`` images, and rank 0 alone validates, logs and
writes the checkpoints, so the outputs have the layout of a single-process run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import random
import shutil
import time
from functools import partial
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from cityseg import distributed
from cityseg.batches import images_per_epoch, make_loader, steps_per_epoch
from cityseg.config import ConfigError, ModelConfig, TrainConfig
from cityseg.dataset import CacheSplit, SegDataset, load_cache, read_manifest, validation_split
from cityseg.distill import Teacher, TeacherSpec
from cityseg.distributed import Dist
from cityseg.inference import Precision, autocast, forward, logits_at, predict_logits, resolve_device, upload
from cityseg.io import DataError, atomic_path, write_json
from cityseg.jobs import EXIT_PREEMPTED, StopSignals
from cityseg.labels import IGNORE_INDEX, NUM_CLASSES, colorize
from cityseg.metrics import ConfusionMatrix, DiceMeter
from cityseg.models import build_model, pad_multiple, save_checkpoint
from cityseg.postprocess import to_labels
from cityseg.progress import progress as progress_bar
from cityseg.tracking import RunLog, start_wandb
from cityseg.transforms import build_eval_transform, build_train_transform

log = logging.getLogger(__name__)

RESUME_NAME = "last.pt"
BEST_NAME = "best.pt"
OVERLAY_INDEX = 0  # the fixed val sample shown in the DVCLive overlay
# Train-config keys that do not change the result, so changing them keeps a resume valid.
HASH_EXCLUDED = ("num_workers", "prefetch_factor", "wandb")


# --------------------------------------------------------------------------- set-up helpers


def amp_dtype_for(device: torch.device, amp: str) -> Optional[torch.dtype]:
    """The autocast dtype of ``train.amp`` on ``device`` (None = fp32).

    ``auto``: bf16 on CUDA, and on a CPU only where oneDNN runs bf16 natively: elsewhere CPU bf16 is
    emulated and slower than fp32.
    """
    if amp == "fp32":
        return None
    if amp == "bf16" or device.type == "cuda":
        return torch.bfloat16
    return torch.bfloat16 if torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported() else None


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def config_hash(model_cfg: ModelConfig, train_cfg: TrainConfig, manifest: dict,
                teacher: Optional[TeacherSpec] = None) -> str:
    """sha256 of everything that changes the result: model + train config, the data manifest and the teacher."""
    train = {k: v for k, v in dataclasses.asdict(train_cfg).items() if k not in HASH_EXCLUDED}
    run = {"model": dataclasses.asdict(model_cfg), "train": train, "data": manifest}
    if teacher is not None:  # absent without one: the hashes of teacher-less runs stay as they were
        run["teacher"] = teacher.identity()
    blob = json.dumps(run, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (momentum, Nesterov off) with cfg.lr and cfg.weight_decay."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise ValueError(f"train.optimizer: unknown optimizer {cfg.optimizer!r}")


def lr_factor(step: int, total_steps: int, warmup_steps: int, schedule: str) -> float:
    """Multiplier of the base LR before optimizer step ``step`` (0-based).

    Linear warm-up from 1/warmup to 1 over ``warmup_steps``, then constant, poly (power 0.9)
    or cosine decay reaching 0 at ``total_steps``.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    if schedule == "poly":
        return (1.0 - t) ** 0.9
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    raise ValueError(f"train.schedule: unknown schedule {schedule!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration LambdaLR over cfg.epochs x ``steps`` optimizer steps."""
    total = cfg.epochs * steps
    warmup = min(total, int(round(cfg.warmup_epochs * steps)))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, partial(lr_factor, total_steps=total, warmup_steps=warmup, schedule=cfg.schedule))


# --------------------------------------------------------------------------- losses


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX,
                   eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the classes present in the batch's ground truth.

    logits (B, C, H, W); target (B, H, W) int64 with ``ignore_index`` pixels left out of both
    the probabilities and the one-hot target. Classes absent from the ground truth are skipped,
    so the loss does not reward predicting nothing.
    """
    c = logits.shape[1]
    valid = (target != ignore_index).unsqueeze(1)  # (B, 1, H, W)
    probs = logits.float().softmax(1) * valid
    onehot = F.one_hot(torch.where(valid[:, 0], target, 0), c).permute(0, 3, 1, 2).to(probs.dtype) * valid
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    gt_size = onehot.sum(dims)
    dice = (2 * inter + eps) / (probs.sum(dims) + gt_size + eps)
    present = gt_size > 0
    if not bool(present.any()):
        return probs.sum() * 0.0  # keeps the graph; nothing labelled in this batch
    return 1.0 - dice[present].mean()


def seg_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """CrossEntropy(ignore 255) + dice_weight x soft Dice loss, computed in float32."""
    logits = logits.float()
    loss = F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX)
    if dice_weight:
        loss = loss + dice_weight * soft_dice_loss(logits, target)
    return loss


def build_loss(cfg: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """cfg.loss "ce" or "ce_dice" as a callable (logits (B,C,H,W), target (B,H,W)) -> scalar."""
    if cfg.loss == "ce":
        return partial(seg_loss, dice_weight=0.0)
    if cfg.loss == "ce_dice":
        return partial(seg_loss, dice_weight=float(cfg.dice_weight))
    raise ValueError(f"train.loss: unknown loss {cfg.loss!r}")


# --------------------------------------------------------------------------- one epoch


def _to_device(images: torch.Tensor, masks: torch.Tensor, device: torch.device,
               channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A `SegDataset` batch (images (B,H,W,3) uint8, masks (B,H,W) uint8) -> (normalised (B,3,H,W) float32,
    channels_last when asked; masks int64) on ``device``: the uint8 bytes travel, the widening happens there."""
    return upload(images, device, channels_last), masks.to(device, non_blocking=True).long()


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    scheduler: Optional[torch.optim.lr_scheduler.LRScheduler], loss_fn: Callable,
                    device: torch.device, amp_dtype: Optional[torch.dtype], channels_last: bool,
                    progress: bool = False, desc: str = "train", start: Optional[dict] = None,
                    stop: Callable[[], bool] = lambda: False, teacher: Optional[Teacher] = None) -> dict:
    """One pass over ``loader`` (scheduler stepped per iteration): {"steps", "loss_sum", "seen", "stopped"}.

    ``start`` (such a dict) continues a pass stopped after ``start["steps"]`` batches, ``loader`` yielding
    the rest of them (`batches.EpochBatches.set_epoch`'s ``skip``). ``stop()`` is asked after every step; when
    true the pass ends there, ``stopped``. A ``teacher`` adds its distillation term to every step's loss.
    Pass the result to `mean_loss` for the epoch's mean loss per image.
    """
    model.train()
    # Summed on device (no sync per step) in float64, which a resume restores exactly from a Python float.
    total = torch.tensor(start["loss_sum"] if start else 0.0, dtype=torch.float64, device=device)
    seen, done, stopped = (start["seen"], start["steps"], False) if start else (0, 0, False)
    bar = progress_bar(loader, desc=desc, unit="batch", enabled=progress)
    for step, (images, masks) in enumerate(bar):
        images, masks = _to_device(images, masks, device, channels_last)
        with autocast(device, amp_dtype):
            logits = model(images)
        loss = loss_fn(logits, masks)
        if teacher is not None:
            loss = loss + teacher(logits, images)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total += loss.detach() * images.shape[0]
        seen += images.shape[0]
        done += 1
        if progress and (step % 10 == 0 or step == len(loader) - 1):
            bar.set_postfix(loss=f"{total.item() / seen:.4f}")
        if stop():
            stopped = True
            break
    bar.close()
    return {"steps": done, "loss_sum": total.item(), "seen": seen, "stopped": stopped}


def mean_loss(part: dict) -> float:
    """The mean training loss per image of a whole `train_one_epoch` pass (checked: some batches, finite)."""
    if part["seen"] == 0:
        raise DataError("training loader produced no batches (empty training split?)")
    mean = part["loss_sum"] / part["seen"]
    if not math.isfinite(mean):
        raise FloatingPointError(f"training loss is {mean}: diverged (lower train.lr or check the data)")
    return mean


@torch.inference_mode()
def evaluate(model: nn.Module, loader: DataLoader, loss_fn: Callable, device: torch.device,
             min_area: float) -> dict:
    """Validation: mean loss per image, competition Dice (per-image, then mean) and mIoU.

    Runs at evaluation precision (`inference.Precision.evaluation`) and post-processes with
    ``postprocess.to_labels(.., min_area)``, as evaluation does. The batches come resized by the
    DataLoader (the albumentations eval transform: cv2 bilinear, as `inference.to_batch`) as uint8, are
    normalised on the device as `inference.to_batch` does (`inference.upload`) and join the one inference
    path at `inference.forward`. Labels may be larger than the network input (the val cache at cache
    size): logits are resized to them (`inference.logits_at`), as the competition scores there.
    """
    model.eval()
    precision = Precision.evaluation(device)
    dice, cm = DiceMeter(NUM_CLASSES, IGNORE_INDEX), ConfusionMatrix(NUM_CLASSES, IGNORE_INDEX)
    total, seen = 0.0, 0
    for images, masks in loader:
        masks = masks.to(device, non_blocking=True).long()
        batch = upload(images, device, precision.channels_last)
        logits = logits_at(forward(model, batch, device, precision), masks.shape[-2:])
        total += float(loss_fn(logits, masks)) * images.shape[0]
        seen += images.shape[0]
        pred = to_labels(logits, min_area)
        dice.update(pred, masks, batched=True)
        cm.update(pred, masks)
    if seen == 0:
        raise DataError("validation loader produced no batches (empty val split?)")
    return {"loss": total / seen, "dice": dice.mean(), "miou": cm.compute()["miou"]}


def overlay(model: nn.Module, cache: CacheSplit, index: int, size: tuple[int, int], device: torch.device,
            min_area: float) -> np.ndarray:
    """image | ground truth | prediction of one cache sample, side by side: (h, 3w, 3) uint8."""
    model.eval()
    image, gt = np.asarray(cache.images[index]), np.asarray(cache.labels[index])
    pred = to_labels(predict_logits(model, [image], size, device)[0], min_area).cpu().numpy()
    return np.concatenate([image, colorize(gt), colorize(pred)], axis=1)


# --------------------------------------------------------------------------- resume state


@dataclasses.dataclass
class ResumeState:
    """What the resume checkpoint ``last.pt`` holds: enough to continue a run exactly where it stopped.

    Saved as a plain dict of these fields (tensors and plain types: loadable with weights_only=True).
    """

    config_hash: str  # `config_hash` of the run: a checkpoint of another config or data is ignored
    epoch: int = 0  # epochs done
    model: Optional[dict] = None  # state_dicts as of the end of ``epoch``
    optimizer: Optional[dict] = None
    scheduler: Optional[dict] = None
    best_score: float = -math.inf  # selection score of best.pt (higher = better)
    best: Optional[dict] = None  # {"epoch", "val_dice", "val_miou", "val_loss"} of best.pt
    history: list = dataclasses.field(default_factory=list)  # one record per epoch done
    train_time_s: float = 0.0
    loop_time_s: float = 0.0
    rng: Optional[dict] = None  # `_rng_state` (torch, numpy, python, cuda): dropout draws continue
    # Stopped inside epoch ``epoch`` (0-based; a signal): `train_one_epoch`'s {"steps", "loss_sum", "seen"} so
    # far + "loop_s"; None at an epoch boundary.
    partial: Optional[dict] = None


def write_resume(path: Path, state: ResumeState) -> None:
    """Write ``state`` atomically (an interrupted write leaves the previous checkpoint)."""
    with atomic_path(path) as tmp:
        torch.save({f.name: getattr(state, f.name) for f in dataclasses.fields(ResumeState)}, tmp)


def read_resume(path: Path, expected_hash: str) -> Optional[ResumeState]:
    """The resume state at ``path`` when it is readable and of this config and data, else None."""
    if not path.is_file():
        return None
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file: start over rather than crash
        log.warning("ignoring unreadable resume checkpoint %s (%s)", path, exc)
        return None
    if not isinstance(raw, dict) or raw.get("config_hash") != expected_hash:
        log.info("resume checkpoint %s is for another config/data; starting from scratch", path)
        return None
    names = [f.name for f in dataclasses.fields(ResumeState)]
    if any(name not in raw for name in names):
        log.warning("ignoring incomplete resume checkpoint %s (missing %s)", path, [n for n in names if n not in raw])
        return None
    return ResumeState(**{name: raw[name] for name in names})


def _rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        # numpy's state as plain types + a tensor so the file loads with weights_only=True.
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _copy_atomic(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


# --------------------------------------------------------------------------- fit


@dataclasses.dataclass
class _Setup:
    """What ``fit`` builds once: the network and its optimiser, the data, and how batches run."""

    model: nn.Module  # the network itself: checkpoints, validation, resume
    ddp: nn.Module  # what training steps call: ``model``, or its DDP wrapper under torchrun; compiled with train.compile
    dist: Dist
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    loss_fn: Callable
    train_ds: SegDataset
    train_loader: DataLoader  # one for the run (persistent workers); its `batches.EpochBatches` is set per pass
    val_loader: DataLoader
    val_cache: CacheSplit
    val_split: str  # what val_cache is: holdout when prepare made one (data.holdout_cities), else val
    device: torch.device
    amp_dtype: Optional[torch.dtype]  # training autocast (train.amp); validation runs as evaluation
    channels_last: bool  # training input memory format
    steps: int  # optimizer steps per epoch
    teacher: Optional[Teacher]  # distillation (a `distill@` stage), else None

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def _read_splits(prepared_root: str | Path) -> tuple[dict, CacheSplit, CacheSplit, str]:
    """(manifest, train cache, validation cache, the validation split's name: `dataset.validation_split`)."""
    manifest = read_manifest(prepared_root)
    val_split = validation_split(manifest)
    train_cache, val_cache = load_cache(prepared_root, "train"), load_cache(prepared_root, val_split)
    if len(train_cache) == 0 or len(val_cache) == 0:
        raise DataError(f"{prepared_root}: need training and validation images, have "
                        f"{len(train_cache)} train / {len(val_cache)} {val_split}")
    return manifest, train_cache, val_cache, val_split


def compile_for_training(module: nn.Module) -> nn.Module:
    """``torch.compile(module)`` for the training steps alone (``train.compile``).

    The compiled wrapper shares ``module``'s parameters; checkpoints, resume state and validation keep using the
    plain network (`_Setup.model`), so their state_dict keys carry no ``_orig_mod.`` prefix and evaluation and
    packaging load them unchanged. Validation runs eagerly: compiling it too would recompile for eval mode and
    every batch shape, and it is a small share of an epoch.
    """
    return torch.compile(module)


def _build_net(model_cfg: ModelConfig, train_cfg: TrainConfig, device: torch.device, channels_last: bool) -> nn.Module:
    """The seeded, freshly initialised network on ``device``, checked against ``train.size``."""
    seed_everything(train_cfg.seed)
    model = build_model(model_cfg).to(device)
    # smp models reject sizes that are not a multiple of their output stride (checked by module
    # name: importing smp costs seconds when the model is one of ours).
    multiple = pad_multiple(model) if type(model).__module__.startswith("segmentation_models_pytorch") else 1
    if any(v % multiple for v in train_cfg.size):
        raise ConfigError(f"train.size {list(train_cfg.size)} must be divisible by {multiple} for model.arch={model_cfg.arch!r}")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input size: let cuDNN pick the fastest kernels
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _build(model_cfg: ModelConfig, train_cfg: TrainConfig, prepared_root: str | Path,
           device: torch.device, dist: Dist = Dist(), teacher: Optional[TeacherSpec] = None) -> tuple[_Setup, str]:
    """(everything one run needs, the run's `config_hash`)."""
    cuda = device.type == "cuda"
    manifest, train_cache, val_cache, val_split = _read_splits(prepared_root)
    cfg_hash = config_hash(model_cfg, train_cfg, manifest, teacher)
    distributed.rank_batch_size(train_cfg.batch_size, dist)  # checks that the global batch splits evenly
    if len(train_cache) < dist.world_size:
        raise DataError(f"{len(train_cache)} training images cannot feed {dist.world_size} processes")
    channels_last = cuda or train_cfg.cpu_channels_last
    model, ddp = distributed.wrap(_build_net(model_cfg, train_cfg, device, channels_last), dist, device,
                                  train_cfg.sync_batchnorm)
    if train_cfg.compile:
        ddp = compile_for_training(ddp)
    optimizer = build_optimizer(model, train_cfg)
    steps = steps_per_epoch(len(train_cache), train_cfg.batch_size, dist.world_size)
    scheduler = build_scheduler(optimizer, train_cfg, steps)
    train_ds = SegDataset(train_cache, build_train_transform(train_cfg), seed=train_cfg.seed)
    train_loader = make_loader(train_ds, train_cfg.batch_size, shuffle=True, num_workers=train_cfg.num_workers,
                               seed=train_cfg.seed, pin_memory=cuda, dist=dist,
                               prefetch_factor=train_cfg.prefetch_factor)
    # Validation keeps the masks at cache size; the logits are resized to them.
    val_ds = SegDataset(val_cache, build_eval_transform(train_cfg.size, resize_mask=False), seed=train_cfg.seed)
    val_loader = make_loader(val_ds, train_cfg.batch_size, shuffle=False, num_workers=train_cfg.num_workers,
                             seed=train_cfg.seed, pin_memory=cuda, prefetch_factor=train_cfg.prefetch_factor)
    # The teacher runs at its own training precision ("auto"): only its logits matter, and bf16 halves its cost
    # where the CPU has it, also when the student trains in float32. At weight 0 (the no-teacher ablation) it
    # would add exactly nothing, so it does not run.
    teach = Teacher(teacher, device, amp_dtype_for(device, "auto")) if teacher and teacher.weight > 0 else None
    return _Setup(model, ddp, dist, optimizer, scheduler, build_loss(train_cfg), train_ds, train_loader, val_loader,
                  val_cache, val_split, device, amp_dtype_for(device, train_cfg.amp), channels_last, steps,
                  teach), cfg_hash


def run_resume_dir(resume_dir: str | Path, cfg_hash: str) -> Path:
    """The resume folder of one run: ``resume_dir/<config hash prefix>``, so experiments of one benchmark with
    different params (a queued sweep run in parallel) never share or overwrite each other's checkpoints."""
    return Path(resume_dir) / cfg_hash[:16]


def _resume(setup: _Setup, cfg_hash: str, resume_dir: Path, out_dir: Path, epochs: int) -> ResumeState:
    """The state to continue from: a matching ``last.pt`` loaded into ``setup``, or a fresh start."""
    state = read_resume(resume_dir / RESUME_NAME, cfg_hash)
    if state is None:
        return ResumeState(cfg_hash)
    setup.model.load_state_dict(state.model)
    setup.optimizer.load_state_dict(state.optimizer)
    setup.scheduler.load_state_dict(state.scheduler)
    _set_rng_state(state.rng)
    # `dvc repro` deletes a stage's outputs before re-running it: restore best.pt from the copy kept
    # beside last.pt.
    if setup.dist.main and not (out_dir / BEST_NAME).is_file():
        if (resume_dir / BEST_NAME).is_file():
            _copy_atomic(resume_dir / BEST_NAME, out_dir / BEST_NAME)
        else:
            log.warning("best checkpoint of the interrupted run is gone; choosing the best anew")
            state.best_score, state.best = -math.inf, None
    within = f", step {state.partial['steps']} of epoch {state.epoch + 1}" if state.partial else ""
    log.info("resuming from %s after epoch %d of %d%s", resume_dir / RESUME_NAME, state.epoch, epochs, within)
    return state


def _run_epoch(setup: _Setup, state: ResumeState, runlog: Optional[RunLog], cfg: TrainConfig, epoch: int,
               progress: bool, stop: Callable[[], bool]) -> Optional[dict]:
    """Train one epoch (or the rest of ``state.partial``), validate, log it (DVCLive row + overlay); returns the
    validation scores, or None when ``stop()`` ended the pass early (``state.partial`` then says where).
    Under DDP only rank 0 validates; the other ranks return {} once the training pass is done."""
    t0, start, dist = time.perf_counter(), state.partial, setup.dist
    setup.train_loader.batch_sampler.set_epoch(epoch, skip=start["steps"] if start else 0)
    part = train_one_epoch(setup.ddp, setup.train_loader, setup.optimizer,
                           setup.scheduler, setup.loss_fn, setup.device, setup.amp_dtype, setup.channels_last,
                           progress=progress and dist.main, desc=f"epoch {epoch + 1}/{cfg.epochs}", start=start,
                           stop=stop, teacher=setup.teacher)
    distributed.average_buffers(dist, setup.model)
    if dist.enabled:  # the epoch's loss over all ranks' images; ``start`` (rank 0's saved state) holds it once
        base = [start["loss_sum"], start["seen"]] if start else [0.0, 0]
        new = distributed.sum_over_ranks(dist, [part["loss_sum"] - base[0], part["seen"] - base[1]], setup.device)
        part["loss_sum"], part["seen"] = base[0] + new[0], base[1] + int(new[1])
    if setup.device.type == "cuda":
        torch.cuda.synchronize()
    loop_s = time.perf_counter() - t0 + (start["loop_s"] if start else 0.0)
    if part["stopped"] and part["steps"] < setup.steps:
        state.partial = {"steps": part["steps"], "loss_sum": part["loss_sum"], "seen": part["seen"], "loop_s": loop_s}
        return None
    state.partial, train_loss = None, mean_loss(part)
    if not dist.main:
        return {}
    val = evaluate(setup.model, setup.val_loader, setup.loss_fn, setup.device, cfg.min_class_area)
    record = {"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val["loss"], "val_dice": val["dice"],
              "val_miou": val["miou"], "lr": setup.optimizer.param_groups[0]["lr"],
              "images_per_s": images_per_epoch(len(setup.train_ds), cfg.batch_size, dist.world_size) / loop_s}
    state.history.append(record)
    runlog.image("overlay.png", overlay(setup.model, setup.val_cache, OVERLAY_INDEX, tuple(cfg.size), setup.device,
                                        cfg.min_class_area))
    runlog.epoch(record)
    epoch_s = time.perf_counter() - t0 + (start["loop_s"] if start else 0.0)
    state.train_time_s += epoch_s
    state.loop_time_s += loop_s
    v = setup.val_split
    log.info("epoch %d/%d: train loss %.4f, %s loss %.4f, %s dice %.4f, %s mIoU %.4f (%.1f s)",
             epoch + 1, cfg.epochs, train_loss, v, val["loss"], v, val["dice"], v, val["miou"], epoch_s)
    return val


def _keep_best(setup: _Setup, state: ResumeState, val: dict, epoch: int, model_cfg: ModelConfig,
               train_cfg: TrainConfig, resume_dir: Path, out_dir: Path) -> None:
    """Save best.pt (beside last.pt, copied to ``out_dir``) when this epoch beats the best so far."""
    score = val["dice"] if train_cfg.select_by == "dice" else -val["loss"]
    score = -math.inf if math.isnan(score) else score
    if state.best is None or score > state.best_score:
        state.best_score = score
        state.best = {"epoch": epoch + 1, "val_dice": val["dice"], "val_miou": val["miou"], "val_loss": val["loss"]}
        save_checkpoint(resume_dir / BEST_NAME, setup.model, model_cfg, **state.best,  # atomic
                        train_time_s=state.train_time_s, device=str(setup.device), select_by=train_cfg.select_by,
                        val_split=setup.val_split, train=dataclasses.asdict(train_cfg))
        _copy_atomic(resume_dir / BEST_NAME, out_dir / BEST_NAME)


def _save_resume(setup: _Setup, state: ResumeState, epochs_done: int, path: Path) -> None:
    state.epoch = epochs_done
    state.model, state.optimizer = setup.model.state_dict(), setup.optimizer.state_dict()
    state.scheduler, state.rng = setup.scheduler.state_dict(), _rng_state()
    write_resume(path, state)


def _finish(setup: _Setup, state: ResumeState, runlog: RunLog, cfg: TrainConfig, out_dir: Path, resume_dir: Path) -> dict:
    """The run summary (also to the run's logs and ``out_dir/summary.json``); removes the resume files."""
    best, history = state.best, state.history
    images_seen = len(history) * images_per_epoch(len(setup.train_ds), cfg.batch_size, setup.dist.world_size)
    summary = {
        "best_epoch": best["epoch"],
        "val_dice": best["val_dice"],
        "val_miou": best["val_miou"],
        "val_loss": best["val_loss"],
        "select_by": cfg.select_by,
        "val_split": setup.val_split,  # where val_* were measured
        "epochs": cfg.epochs,
        "final_train_loss": history[-1]["train_loss"],
        "train_time_s": round(state.train_time_s, 3),
        "train_images_per_s": round(images_seen / state.loop_time_s, 3) if state.loop_time_s > 0 else None,
        "params": setup.n_params,
        "device": str(setup.device),
        "amp": str(setup.amp_dtype).replace("torch.", "") if setup.amp_dtype else "fp32",
        "history": history,
    }
    runlog.end({key: summary[key] for key in ("best_epoch", "val_dice", "val_miou", "val_loss")})
    write_json(out_dir / "summary.json", summary)
    (resume_dir / RESUME_NAME).unlink(missing_ok=True)
    (resume_dir / BEST_NAME).unlink(missing_ok=True)
    for folder in (resume_dir, resume_dir.parent):  # the run's folder, then the benchmark's: only when empty
        with contextlib.suppress(OSError):
            folder.rmdir()
    return summary


def _interrupted(setup: _Setup, state: ResumeState, runlog: Optional[RunLog], epochs_done: int, path: Path,
                 reason: str) -> dict:
    """Write the resume state of where training stands (rank 0), close the logs; fit's result for a stopped run."""
    if setup.dist.main:
        _save_resume(setup, state, epochs_done, path)
        runlog.end(None, exit_code=EXIT_PREEMPTED)
    steps = state.partial["steps"] if state.partial else 0
    log.info("stopped (%s) after epoch %d%s; %s keeps the state to continue from", reason, state.epoch,
             f" + {steps} step(s) of epoch {state.epoch + 1}" if steps else "", path)
    return {"interrupted": True, "epochs_done": state.epoch, "steps": steps, "reason": reason}


def fit(model_cfg: ModelConfig, train_cfg: TrainConfig, prepared_root: str | Path, out_dir: str | Path,
        live_dir: str | Path, resume_dir: str | Path, device: str | torch.device | None = None,
        progress: bool = True, stop_after_epochs: Optional[int] = None, run_name: str = "train",
        teacher: Optional[TeacherSpec] = None) -> dict:
    """Train ``model_cfg`` with ``train_cfg`` on ``prepared_root``; returns the run summary.

    Writes ``out_dir/best.pt`` (via ``models.save_checkpoint``) and ``out_dir/summary.json``,
    DVCLive logs under ``live_dir`` (and W&B's, run ``run_name``, with ``train.wandb``) and, while running,
    ``resume_dir/<config hash>/last.pt`` (+ a copy of best.pt). A matching ``last.pt`` (same config and
    data hash) is resumed, even when ``out_dir`` and ``live_dir`` were deleted meanwhile (as ``dvc repro``
    does); both resume files are removed after a successful end. Keep ``resume_dir`` outside the stage's
    outputs (`jobs.resolve_resume_dir`). SIGUSR1/SIGTERM stop training after the current step, and
    ``stop_after_epochs`` (tests) after that many epochs of this call; both return
    {"interrupted": True, "epochs_done", "steps", "reason"} with the resume state written.
    Under torchrun every rank calls it (`cityseg.distributed`; on CUDA each takes GPU ``LOCAL_RANK``), rank 0
    writes all of the above, and every rank returns rank 0's result. With a ``teacher`` the loss adds its
    distillation term (`cityseg.distill`).
    """
    with distributed.session(resolve_device(device)) as (dist, device):
        result = _fit(model_cfg, train_cfg, prepared_root, Path(out_dir), Path(live_dir), Path(resume_dir), device,
                      dist, progress, stop_after_epochs, run_name, teacher)
        return distributed.from_main(dist, result)


def _fit(model_cfg: ModelConfig, train_cfg: TrainConfig, prepared_root: str | Path, out_dir: Path, live_dir: Path,
         resume_dir: Path, device: torch.device, dist: Dist, progress: bool, stop_after_epochs: Optional[int],
         run_name: str, teacher: Optional[TeacherSpec]) -> dict:
    """`fit` in this process, which ``dist`` places in the job: rank 0's summary, or {"interrupted": False}."""
    setup, cfg_hash = _build(model_cfg, train_cfg, prepared_root, device, dist, teacher)
    resume_dir = run_resume_dir(resume_dir, cfg_hash)
    state = _resume(setup, cfg_hash, resume_dir, out_dir, train_cfg.epochs)
    runlog = None  # rank 0 alone logs
    if dist.main:
        config = {"model": dataclasses.asdict(model_cfg), "train": dataclasses.asdict(train_cfg),
                  "teacher": {**dataclasses.asdict(teacher), "path": str(teacher.path)} if teacher else None}
        runlog = RunLog(live_dir, start_wandb(run_name, config) if train_cfg.wandb else None)
        for record in state.history:
            runlog.epoch(record)
    log.info("training %s (%.2f M params) on %s%s (%s): %d train / %d %s images (validation), %d steps/epoch",
             model_cfg.arch, setup.n_params / 1e6, device, f" x {dist.world_size} processes" if dist.enabled else "",
             "bf16 autocast" if setup.amp_dtype else "fp32", len(setup.train_ds), len(setup.val_cache),
             setup.val_split, setup.steps)
    if teacher is not None:
        log.info("distilling from %s (KL at temperature %g, weight %g)", teacher.path, teacher.temperature, teacher.weight)
    with StopSignals() as signals:
        # Every rank asks every rank (a collective under DDP), so all stop after the same step, also when a
        # signal reached only some of them; a single process just asks its own handler.
        stop = partial(distributed.any_rank, dist, device=device)
        for done, epoch in enumerate(range(state.epoch, train_cfg.epochs), start=1):
            val = _run_epoch(setup, state, runlog, train_cfg, epoch, progress, lambda: stop(signals.requested()))
            if val is None:  # a signal, mid-epoch
                return _interrupted(setup, state, runlog, epoch, resume_dir / RESUME_NAME,
                                    signals.name or "signal to another rank")
            if dist.main:
                _keep_best(setup, state, val, epoch, model_cfg, train_cfg, resume_dir, out_dir)
            last = epoch + 1 == train_cfg.epochs
            signalled = not last and stop(signals.requested())
            if signalled or (not last and stop_after_epochs is not None and done >= stop_after_epochs):
                return _interrupted(setup, state, runlog, epoch + 1, resume_dir / RESUME_NAME,
                                    signals.name or ("signal to another rank" if signalled else "stop_after_epochs"))
            if dist.main:
                _save_resume(setup, state, epoch + 1, resume_dir / RESUME_NAME)
            distributed.barrier(dist)  # the other ranks wait for rank 0's validation and checkpoints
    if not dist.main:
        return {"interrupted": False}  # replaced by rank 0's summary (`fit`)
    return {"interrupted": False, **_finish(setup, state, runlog, train_cfg, out_dir, resume_dir)}
