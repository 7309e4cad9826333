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


def test_class_covering_exactly_min_area_is_kept():
    first = np.zeros((4, 4), np.int64)
    first[0] = 5  # class 5 on exactly 4 of 16 px = 0.25 of the image
    first[1, :3] = 6  # class 6 on 3 px: below 0.25
    logits = _logits(first, np.zeros_like(first))
    expected = np.zeros((4, 4), np.uint8)
    expected[0] = 5  # kept: only "< min_area" is dropped
    np.testing.assert_array_equal(to_labels(logits, 0.25).numpy(), expected)


def test_largest_class_survives_when_every_class_is_small():
    first = np.array([1] * 6 + [2] * 5 + [3] * 5).reshape(4, 4)  # 6, 5 and 5 px: all below 8 px
    second = np.where(first == 1, 4, 1)  # 2 and 3 fall back to 1; 1 itself would fall to 4
    labels = to_labels(_logits(first, second), 0.5)
    np.testing.assert_array_equal(labels.numpy(), np.ones((4, 4), np.uint8))


def test_area_is_measured_per_image_of_a_batch():
    first = np.zeros((2, 10, 10), np.int64)
    first[0, 0, :3] = 5  # class 5: 3 % of image 0 ...
    first[1, :6] = 5  # ... but 60 % of image 1 (63 of the batch's 200 px)
    x = torch.stack([_logits(f, np.zeros((10, 10), np.int64)) for f in first])
    labels = to_labels(x, 0.05).numpy()
    expected = first.astype(np.uint8)
    expected[0, 0, :3] = 0  # removed in image 0 only: its pixels take their second choice, road
    np.testing.assert_array_equal(labels, expected)


def test_a_second_pass_removes_the_tiny_class_that_received_pixels():
    first = np.zeros((20, 20), np.int64)  # road everywhere but one pixel of class 11
    first[0, 0] = 11
    second = np.zeros((20, 20), np.int64)
    second[0, 0] = 12  # class 12 is absent, so not removed in pass 1, but receives the pixel
    x = _logits(first, second)
    x[0, 0, 0] = 0.5  # third choice there: road
    labels = to_labels(x, 0.01)  # 1 px < 4 px: class 11, then class 12, are removed
    assert (labels == 0).all()
    assert to_labels(x, 0.0)[0, 0] == 11


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
