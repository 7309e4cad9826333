"""Logits to labels, and small-class removal (cityseg.postprocess)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cityseg.metrics import DiceMeter
from cityseg.postprocess import to_labels


def test_matches_argmax_and_breaks_ties_low():
    logits = torch.randn(2, 19, 33, 65, generator=torch.Generator().manual_seed(0))
    labels = to_labels(logits)
    assert labels.dtype == torch.uint8 and labels.shape == (2, 33, 65)
    assert torch.equal(labels.long(), logits.argmax(1))
    assert torch.equal(to_labels(logits[1]), labels[1])  # (C, H, W) gives one map
    tie = torch.zeros(19, 4, 4)
    tie[[5, 9]] = 1.0  # two classes share the maximum everywhere: the lower id wins, as with argmax
    assert (to_labels(tie) == 5).all()


def _logits(first: np.ndarray, second: np.ndarray, c: int = 19) -> torch.Tensor:
    """Logits whose best class is ``first`` and second best ``second`` at every pixel."""
    x = torch.zeros(c, *first.shape)
    x.scatter_(0, torch.from_numpy(second)[None].long(), 1.0)
    x.scatter_(0, torch.from_numpy(first)[None].long(), 2.0)
    return x


def test_small_classes_take_their_next_class():
    first = np.zeros((10, 10), np.int64)  # road everywhere ...
    first[0, :3] = 5  # ... but 3 px (3%) of pole
    first[5:, :] = 2  # and half building
    second = np.full((10, 10), 2, np.int64)
    second[5:, :] = 0
    logits = _logits(first, second)
    assert set(to_labels(logits, 0.02).unique().tolist()) == {0, 2, 5}  # 3% >= 2%: kept
    cleaned = to_labels(logits, 0.05)
    assert set(cleaned.unique().tolist()) == {0, 2}
    assert (cleaned[0, :3] == 2).all()  # pole pixels fell to their second choice
    assert torch.equal(cleaned[5:], torch.full((5, 10), 2, dtype=torch.uint8))  # others untouched


def test_largest_class_survives_and_passes_settle():
    first = np.full((10, 10), 7, np.int64)  # one class everywhere, below any area threshold is impossible
    assert (to_labels(_logits(first, first * 0 + 3), 0.5) == 7).all()
    # a tiny class whose pixels fall to another tiny class: the second pass removes that one too
    first = np.zeros((20, 20), np.int64)
    first[0, 0] = 11
    second = np.zeros((20, 20), np.int64)
    second[0, 0] = 12
    x = _logits(first, second)
    x[12, 1, 1] = 3.0  # class 12 also wins one other pixel
    assert set(to_labels(x, 0.01).unique().tolist()) == {0}


def test_removal_raises_competition_dice_on_a_stray_class():
    gt = np.zeros((10, 10), np.uint8)
    first = np.zeros((10, 10), np.int64)
    first[0, 0] = 13  # one stray car pixel: the image's Dice is the mean of road and car (0)
    logits = _logits(first, np.zeros_like(first))
    raw, cleaned = DiceMeter(), DiceMeter()
    raw.update(to_labels(logits).numpy(), gt)
    cleaned.update(to_labels(logits, 0.02).numpy(), gt)
    assert raw.mean() == pytest.approx((2 * 99 / 199 + 0.0) / 2)
    assert cleaned.mean() == 1.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_area"):
        to_labels(torch.zeros(19, 2, 2), 1.5)
    with pytest.raises(ValueError, match="logits must be"):
        to_labels(torch.zeros(19, 2))
