"""Competition Dice, confusion-matrix IoU and group IoU against hand-worked cases."""

import math

import numpy as np
import pytest
import torch

from cityseg.labels import CLASS_NAMES, IGNORE_INDEX
from cityseg.metrics import ConfusionMatrix, DiceMeter, competition_dice, dice_per_class, image_dice

I = IGNORE_INDEX

# Hand case (3x3). Valid pixels: 7 (two are ignored).
#   class 0: |P| = 2, |G| = 3, |P∩G| = 2 -> Dice 4/5,  IoU 2/3
#   class 1: |P| = 4, |G| = 3, |P∩G| = 3 -> Dice 6/7,  IoU 3/4
#   class 2: |P| = 0, |G| = 1            -> Dice 0,    IoU 0
#   class 3: |P| = 1, |G| = 0            -> Dice 0,    IoU 0
#   others : absent from both            -> NaN (skipped)
# The predictions 3 and 0 at the ignored pixels must not count (else class 0 Dice = 4/6).
GT = np.array([[0, 0, 1], [0, 1, 1], [2, I, I]], dtype=np.uint8)
PRED = np.array([[0, 1, 1], [0, 1, 1], [3, 3, 0]], dtype=np.uint8)
HAND_DICE = (4 / 5 + 6 / 7 + 0 + 0) / 4


def test_dice_per_class_hand_case():
    d = dice_per_class(PRED, GT)
    assert d.shape == (19,)
    np.testing.assert_allclose(d[:4], [4 / 5, 6 / 7, 0.0, 0.0])
    assert np.isnan(d[4:]).all()
    assert image_dice(d) == pytest.approx(HAND_DICE)


def test_ignored_pixels_do_not_count():
    other = PRED.copy()
    other[GT == I] = 1  # a different prediction only where gt is ignored
    np.testing.assert_array_equal(dice_per_class(other, GT), dice_per_class(PRED, GT))


def test_perfect_and_disjoint():
    gt = np.array([[0, 0, 5], [5, 5, I]], dtype=np.uint8)
    assert competition_dice([gt], [gt]) == 1.0
    disjoint = np.where(gt == 0, 5, 0).astype(np.uint8)
    assert competition_dice([disjoint], [gt]) == 0.0


def test_out_of_range_prediction_is_wrong_but_no_class():
    gt = np.array([[0, 0]], dtype=np.uint8)
    pred = np.array([[0, 255]], dtype=np.uint8)  # 255 predicted at a labelled pixel
    d = dice_per_class(pred, gt)
    assert d[0] == pytest.approx(2 * 1 / (1 + 2))
    assert np.isnan(d[1:]).all()


def test_mean_over_images_skips_unscorable_images():
    perfect = np.array([[3, 4], [4, 4]], dtype=np.uint8)
    all_ignored = np.full((2, 2), I, dtype=np.uint8)
    score = competition_dice([PRED, perfect, perfect], [GT, perfect, all_ignored])
    assert score == pytest.approx((HAND_DICE + 1.0) / 2)
    assert math.isnan(competition_dice([perfect], [all_ignored]))


def test_torch_and_numpy_batches_agree():
    rng = np.random.default_rng(0)
    gts = rng.integers(0, 19, size=(3, 16, 24)).astype(np.uint8)
    gts[:, :2] = I
    preds = rng.integers(0, 19, size=(3, 16, 24)).astype(np.uint8)
    ref = competition_dice(list(preds), list(gts))
    assert competition_dice(torch.from_numpy(preds).long(), torch.from_numpy(gts)) == pytest.approx(ref)
    meter = DiceMeter()
    batch = meter.update(torch.from_numpy(preds), torch.from_numpy(gts))  # (B, H, W) batch
    assert batch.shape == (3, 19)
    for i in range(3):
        np.testing.assert_allclose(batch[i], dice_per_class(preds[i], gts[i]), equal_nan=True)
    assert meter.mean() == pytest.approx(ref)


def test_dice_meter_views():
    meter = DiceMeter()
    meter.update(PRED, GT)  # 2D = one image
    meter.update(GT, GT)
    meter.update(np.full((2, 2), I, np.uint8), np.full((2, 2), I, np.uint8))
    assert len(meter) == 3
    per_image = meter.per_image()
    assert per_image[:2] == pytest.approx([HAND_DICE, 1.0])
    assert np.isnan(per_image[2])
    assert meter.mean() == pytest.approx((HAND_DICE + 1.0) / 2)
    per_class = meter.per_class()
    # class 0 is scored in images 1 and 2 (4/5 and 1); class 3 only in image 1 (0); class 5 never.
    assert per_class[0] == pytest.approx((0.8 + 1.0) / 2)
    assert per_class[3] == 0.0
    assert np.isnan(per_class[5])
    other = DiceMeter()
    other.update(GT, GT)
    assert len(meter.merge(other)) == 4


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="same shape"):
        dice_per_class(PRED[:2], GT)
    bad = GT.copy()
    bad[0, 0] = 30
    with pytest.raises(ValueError, match=r"gt holds values \[30\]"):
        dice_per_class(PRED, bad)


def test_confusion_matrix_hand_case():
    cm = ConfusionMatrix()
    cm.update(torch.from_numpy(PRED), torch.from_numpy(GT))
    assert cm.counts.sum() == 7  # ignored pixels are not counted
    res = cm.compute()
    np.testing.assert_allclose(res["iou_per_class"][:4], [2 / 3, 3 / 4, 0.0, 0.0])
    assert np.isnan(res["iou_per_class"][4:]).all()
    assert res["miou"] == pytest.approx((2 / 3 + 3 / 4) / 4)
    assert res["pixel_accuracy"] == pytest.approx(5 / 7)
    # Dataset-level Dice of one image equals that image's competition Dice per class.
    np.testing.assert_allclose(res["dice_per_class"], dice_per_class(PRED, GT), equal_nan=True)


def test_group_iou_merges_the_group_classes():
    person, rider, car, road = (CLASS_NAMES.index(n) for n in ("person", "rider", "car", "road"))
    gt = np.array([person, person, rider, car, road], dtype=np.uint8)
    pred = np.array([rider, person, rider, person, road], dtype=np.uint8)
    cm = ConfusionMatrix()
    cm.update(pred, gt)
    res = cm.compute()
    # human: gt in group {0,1,2}, pred in group {0,1,2,3}; TP = 3, union = 4.
    assert res["group_iou"]["human"] == pytest.approx(3 / 4)
    # per class: person TP 1 / union 3, rider TP 1 / union 2 -> the group is not their mean.
    assert res["iou_per_class"][person] == pytest.approx(1 / 3)
    assert res["iou_per_class"][rider] == pytest.approx(1 / 2)
    # vehicle: one car pixel predicted as person -> TP 0, union 1.
    assert res["group_iou"]["vehicle"] == 0.0
    assert res["category_iou"]["human"] == pytest.approx(3 / 4)
    assert res["category_iou"]["flat"] == 1.0
    flat = cm.summary()
    assert flat["group_iou_human"] == pytest.approx(3 / 4)
    assert flat["iou_road"] == 1.0
    assert flat["iou_sky"] is None  # NaN -> None for JSON


def test_merge_equals_single_pass():
    rng = np.random.default_rng(1)
    preds = rng.integers(0, 19, size=(4, 20, 30))
    gts = rng.integers(0, 19, size=(4, 20, 30)).astype(np.uint8)
    gts[:, ::5] = I
    single = ConfusionMatrix()
    for p, g in zip(preds, gts):
        single.update(p, g)
    a, b = ConfusionMatrix(), ConfusionMatrix()
    a.update(preds[:1], gts[:1])
    b.update(torch.from_numpy(preds[1:]), torch.from_numpy(gts[1:]))
    merged = a.merge(b)
    np.testing.assert_array_equal(merged.counts, single.counts)
    assert merged.compute()["miou"] == pytest.approx(single.compute()["miou"])
    # Cross-check IoU against a direct per-class computation.
    valid = gts != I
    for c in (0, 7, 18):
        tp = ((preds == c) & (gts == c) & valid).sum()
        union = (((preds == c) | (gts == c)) & valid).sum()
        assert single.compute()["iou_per_class"][c] == pytest.approx(tp / union)
    with pytest.raises(ValueError):
        single.merge(ConfusionMatrix(num_classes=5))


def test_device_counting_path_matches_numpy():
    # GPU tensors are counted with torch on their device; run that code on CPU tensors here.
    from cityseg.metrics import _batched_confusion, _confusion_torch

    rng = np.random.default_rng(2)
    gts = rng.integers(0, 19, size=(2, 12, 16)).astype(np.uint8)
    gts[:, 0] = I
    preds = rng.integers(0, 19, size=(2, 12, 16))
    preds[:, 1] = 255  # out-of-range predictions
    ref = _batched_confusion(preds, gts, 19, I, batched=True)
    got = _confusion_torch(torch.from_numpy(preds).reshape(2, -1), torch.from_numpy(gts).reshape(2, -1), 19, I)
    np.testing.assert_array_equal(got, ref)
    bad = torch.from_numpy(gts).reshape(2, -1).clone()
    bad[0, 5] = 40
    with pytest.raises(ValueError, match=r"\[40\]"):
        _confusion_torch(torch.from_numpy(preds).reshape(2, -1), bad, 19, I)
