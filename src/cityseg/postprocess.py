"""Logits to a label map, with optional small-class removal.

The competition's Dice is computed per image over the classes present in the prediction *or* the
ground truth, so a class the model predicts on a few stray pixels of an image where it is absent
scores Dice 0 and pulls that image's mean down by a whole class. ``min_area`` removes such
classes: a class covering less than ``min_area`` (a fraction of the image's pixels) is dropped
and its pixels take their next most likely class. The largest predicted class is always kept.
"""

from __future__ import annotations

import torch

MAX_PASSES = 3  # a dropped class can hand its pixels to another tiny class; a few passes settle it


def to_labels(logits: torch.Tensor, min_area: float = 0.0) -> torch.Tensor:
    """(C, H, W) or (B, C, H, W) logits -> (H, W) or (B, H, W) uint8 class ids, on the logits' device.

    ``max(1).indices`` rather than ``argmax(1)``: the same ids (first maximum on ties) but about
    2.5x faster on CPU for a reduction over the class dimension, which dominates scoring time.
    """
    if not 0.0 <= min_area < 1.0:
        raise ValueError(f"min_area must be a fraction in [0, 1), got {min_area}")
    single = logits.ndim == 3
    batch = logits[None] if single else logits
    if batch.ndim != 4:
        raise ValueError(f"to_labels: logits must be (C, H, W) or (B, C, H, W), got {tuple(logits.shape)}")
    labels = batch.max(1).indices  # (B, H, W) int64
    if min_area > 0:
        c, pixels = batch.shape[1], labels[0].numel()
        for b in range(batch.shape[0]):
            scores = None
            for _ in range(MAX_PASSES):
                counts = torch.bincount(labels[b].flatten(), minlength=c)
                small = (counts > 0) & (counts < min_area * pixels)
                small[counts.argmax()] = False
                if not bool(small.any()):
                    break
                scores = (batch[b] if scores is None else scores).masked_fill(small[:, None, None], float("-inf"))
                labels[b] = scores.max(0).indices
    labels = labels.to(torch.uint8)
    return labels[0] if single else labels
