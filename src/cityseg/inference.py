"""The one inference path: images (or a normalised batch) -> logits at the label size.

Training-time validation, evaluation, robustness and OOD scoring all predict through these
functions, so a score measured in one place is the score the others reproduce:

    uint8 images --resize to the input size (cv2 bilinear)--> normalise --> device
    --> precision (autocast, memory format) --> model --> float32 logits --> bilinear to the label size

The precision rule lives here too (`Precision.evaluation`): bf16 autocast and channels_last on
CUDA, float32 on a CPU. The OOD benchmark asks for `FP32` instead: the submitted
``OODSegmenter`` runs float32 without autocast, and its decisions must match the scored ones.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cityseg.models import load_checkpoint
from cityseg.transforms import normalize_batch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; None = CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available")
    return device


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """``torch.autocast`` to ``dtype`` on ``device``'s type; None = off (float32)."""
    return torch.autocast(device.type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


@dataclasses.dataclass(frozen=True)
class Precision:
    """How a forward pass runs: the autocast dtype (None = float32) and the input memory format."""

    autocast: Optional[torch.dtype]
    channels_last: bool

    @staticmethod
    def evaluation(device: torch.device) -> "Precision":
        """Validation and evaluation: bf16 autocast + channels_last on CUDA, float32 on a CPU, so the
        validation score that picks the best checkpoint is the one evaluation reproduces from it."""
        cuda = torch.device(device).type == "cuda"
        return Precision(torch.bfloat16 if cuda else None, cuda)


FP32 = Precision(None, False)  # float32, no autocast, contiguous input: the deployed OODSegmenter


def resize_image(image: np.ndarray, input_size: Sequence[int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 at ``input_size`` [h, w], bilinear (a copy-free no-op at that size)."""
    if image.shape[:2] == tuple(input_size):
        return np.ascontiguousarray(image)  # cv2.resize to the same size is a plain copy
    return cv2.resize(image, (int(input_size[1]), int(input_size[0])), interpolation=cv2.INTER_LINEAR)


def upload(images: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """A (B, H, W, 3) uint8 batch -> (B, 3, H, W) normalised float32 on ``device`` (channels_last when asked).

    The uint8 batch travels to the device and is normalised there (a quarter of the bytes of float32).
    ``non_blocking``: a pinned batch (a DataLoader with ``pin_memory``) copies while the host runs on; from
    pageable memory the copy is synchronous, so the source may be freed right after.
    """
    return normalize_batch(images.to(device, non_blocking=True), channels_last)


def to_batch(images: Sequence[np.ndarray], input_size: Sequence[int], device: torch.device) -> torch.Tensor:
    """uint8 RGB images of any sizes -> (B, 3, h, w) normalised float32 on ``device`` at the input size."""
    stacked = np.stack([resize_image(im, input_size) for im in images])
    return upload(torch.from_numpy(stacked), device)


@torch.inference_mode()
def forward(model: nn.Module, batch: torch.Tensor, device: torch.device, precision: Precision) -> torch.Tensor:
    """A normalised batch (B, 3, h, w) -> float32 logits (B, C, h, w) on ``device``, at ``precision``."""
    batch = batch.to(device, non_blocking=True)
    if precision.channels_last:
        batch = batch.contiguous(memory_format=torch.channels_last)
    with autocast(device, precision.autocast):
        logits = model(batch)
    return logits.float()


def logits_at(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(B, C, h, w) logits bilinearly resized to ``size`` (the labels'); unchanged when already there."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits  # bilinear to the same size is the identity for finite logits
    return F.interpolate(logits.float(), size=tuple(size), mode="bilinear", align_corners=False)


def predict_logits(model: nn.Module, images: list[np.ndarray], input_size: Sequence[int], device: torch.device,
                   precision: Optional[Precision] = None) -> torch.Tensor:
    """(N, H, W, 3) uint8 images of one size -> (N, 19, H, W) float32 logits at the images' own size.

    ``precision``: None = `Precision.evaluation` (the evaluation rule).
    """
    precision = precision or Precision.evaluation(device)
    logits = forward(model, to_batch(images, input_size, device), device, precision)
    return logits_at(logits, images[0].shape[:2])


@dataclasses.dataclass
class Predictor:
    """A trained model as evaluation uses it: its input size and small-class removal travel with it."""

    model: nn.Module
    input_size: tuple[int, int]  # [h, w] the network was trained at
    # postprocess.to_labels' small-class threshold: train.min_class_area from the checkpoint, until evaluation
    # replaces it with the value its selection split chose (`evaluate.select_and_score`)
    min_area: float
    device: torch.device
    epoch: Optional[int] = None  # the checkpoint's epoch: the best one on ``epoch_split`` in training
    epoch_split: str = "val"  # the split training validated on (checkpoints before data.holdout_cities: val)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None) -> "Predictor":
        """The model of a ``models.save_checkpoint`` file with its training size and ``train.min_class_area``."""
        device = resolve_device(device)
        model, _, meta = load_checkpoint(path, device)
        return cls.from_loaded(model, meta, device)

    @classmethod
    def from_loaded(cls, model: nn.Module, meta: dict, device: torch.device) -> "Predictor":
        """``model`` with the input size and ``train.min_class_area`` of its checkpoint's ``meta``."""
        train = meta["train"]
        return cls(model, tuple(train["size"]), train.get("min_class_area", 0.0), device, meta.get("epoch"),
                   meta.get("val_split", "val"))
