"""Segmentation metrics: the competition Dice, dataset-level IoU/Dice, category and group IoUs.

Definitions (as in ``docs/competition.md``):

* **Competition Dice** (what the course servers rank by). For ONE image and each trainId class
  c, over the pixels whose ground truth is not 255:
  ``Dice_c = 2 |P_c ∩ G_c| / (|P_c| + |G_c|)``, NaN when class c is absent from both the
  prediction and the ground truth. The image's score is the nanmean over classes; the final
  score is the mean over images (an image whose classes are all NaN, i.e. with no labelled
  pixel, is skipped). Predictions at ignored pixels never count.
* **Dataset-level IoU / mIoU** (what papers report): one confusion matrix over all pixels of
  all images; ``IoU_c = TP / (TP + FP + FN)``; mIoU is the nanmean over classes present in the
  ground truth or the prediction (NaN for a class absent from both).
* **Category IoU** (Cityscapes style) and **group IoU** (the servers' "human" and "vehicle"):
  the classes of a category / group are merged into one class (a pixel is TP when both its
  ground truth and its prediction fall anywhere in the group), then the IoU of that merged
  class is taken. So a person predicted as rider counts as correct for the human group.

Predicted values outside 0..num_classes-1 (e.g. 255 written by a pipeline) belong to no class:
they are wrong for the pixel's ground-truth class and add to no class's |P|.
"""

from __future__ import annotations

import warnings
from typing import Iterable, Sequence

import numpy as np
import torch

from cityseg.labels import CATEGORIES, CLASS_NAMES, GROUPS, IGNORE_INDEX, NUM_CLASSES

ArrayLike = np.ndarray | torch.Tensor


def _bad_gt_error(gt_values: ArrayLike, num_classes: int, ignore_index: int) -> ValueError:
    values = gt_values[(gt_values != ignore_index) & ((gt_values < 0) | (gt_values >= num_classes))]
    shown = sorted({int(v) for v in values.reshape(-1)[:10000].tolist()})[:10]
    return ValueError(f"gt holds values {shown} outside 0..{num_classes - 1} and the ignore index {ignore_index}")


def _confusion_numpy(pred: np.ndarray, gt: np.ndarray, c: int, ignore_index: int) -> np.ndarray:
    """(C, C+1) counts of one image. One bincount over ``gt * (C+1) + pred`` in int32.

    Ignored pixels (gt = ignore_index >= C) land in bins past C*(C+1), which are dropped;
    any other gt value there is a data error.
    """
    c1 = c + 1
    p = np.minimum(pred.astype(np.int32, copy=False), c)
    g = gt.astype(np.int32, copy=False)
    if pred.dtype.kind == "i":
        p = np.where(p < 0, c, p)
    if gt.dtype.kind == "i" and g.size and g.min() < 0:
        raise _bad_gt_error(gt, c, ignore_index)
    counts = np.bincount((g * c1 + p).reshape(-1), minlength=c * c1)
    ignore_bins = slice(ignore_index * c1, (ignore_index + 1) * c1)
    stray = counts[c * c1 :].sum() - counts[ignore_bins].sum()
    if stray:
        raise _bad_gt_error(gt, c, ignore_index)
    return counts[: c * c1].reshape(c, c1)


def _confusion_torch(pred: torch.Tensor, gt: torch.Tensor, c: int, ignore_index: int) -> np.ndarray:
    """(B, C, C+1) counts of a (B, N) batch, counted on the tensors' device."""
    c1 = c + 1
    b = pred.shape[0]
    pred, gt = pred.long(), gt.long()
    ignored = gt == ignore_index
    if bool((~ignored & ((gt < 0) | (gt >= c))).any()):
        raise _bad_gt_error(gt.cpu(), c, ignore_index)
    pred = torch.where((pred < 0) | (pred >= c), torch.full_like(pred, c), pred)
    image = torch.arange(b, device=pred.device)[:, None]
    idx = image * (c * c1) + gt.clamp(0, c - 1) * c1 + pred
    # Ignored pixels go to one extra dump bin at the end, then are dropped.
    idx = torch.where(ignored, torch.full_like(idx, b * c * c1), idx)
    counts = torch.bincount(idx.reshape(-1), minlength=b * c * c1 + 1)[:-1]
    return counts.cpu().numpy().reshape(b, c, c1)


def _batched_confusion(pred: ArrayLike, gt: ArrayLike, num_classes: int, ignore_index: int, batched: bool) -> np.ndarray:
    """Per-image confusion counts, shape (B, C, C+1): rows = ground truth, cols = prediction.

    Column C collects predictions outside 0..C-1. ``batched`` says whether the first axis is
    the image axis; otherwise the whole array is one image. Accepts numpy arrays or torch
    tensors of any integer dtype.
    """
    if tuple(pred.shape) != tuple(gt.shape):
        raise ValueError(f"pred and gt must have the same shape, got {tuple(pred.shape)} and {tuple(gt.shape)}")
    if 0 <= ignore_index < num_classes:
        raise ValueError(f"ignore_index {ignore_index} must not be a class id (0..{num_classes - 1})")
    # CPU tensors go through numpy (faster there); GPU tensors are counted on the GPU so
    # full-resolution masks never cross to the host.
    pred, gt = (t.detach().numpy() if isinstance(t, torch.Tensor) and t.device.type == "cpu" else t for t in (pred, gt))
    if isinstance(pred, torch.Tensor) or isinstance(gt, torch.Tensor):
        device = pred.device if isinstance(pred, torch.Tensor) else gt.device
        pred, gt = torch.as_tensor(pred, device=device), torch.as_tensor(gt, device=device)
        if not batched:
            pred, gt = pred[None], gt[None]
        b = pred.shape[0]
        return _confusion_torch(pred.reshape(b, -1), gt.reshape(b, -1), num_classes, ignore_index)
    pred, gt = np.asarray(pred), np.asarray(gt)
    if not batched:
        pred, gt = pred[None], gt[None]
    if ignore_index < 0:  # e.g. -1: move it past the classes so the numpy path can bin it
        ignored = gt == ignore_index
        gt = np.where(ignored, num_classes, gt)
        ignore_index = num_classes
    return np.stack([_confusion_numpy(p, g, num_classes, ignore_index) for p, g in zip(pred, gt)]).astype(np.int64)


def _dice_from_confusion(conf: np.ndarray) -> np.ndarray:
    """(..., C, C+1) confusion -> (..., C) Dice, NaN where the class is in neither mask."""
    c = conf.shape[-2]
    inter = np.diagonal(conf[..., :c], axis1=-2, axis2=-1).astype(np.float64)
    size_gt = conf.sum(axis=-1)
    size_pred = conf[..., :c].sum(axis=-2)
    denom = (size_gt + size_pred).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2.0 * inter / denom, np.nan)


def _nanmean(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """nanmean without the 'Mean of empty slice' warning (all-NaN -> NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(x, axis=axis)


def dice_per_class(pred: ArrayLike, gt: ArrayLike, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX) -> np.ndarray:
    """Competition Dice of ONE image per class, shape (C,); NaN for classes absent from both masks."""
    return _dice_from_confusion(_batched_confusion(pred, gt, num_classes, ignore_index, batched=False)[0])


def image_dice(per_class: np.ndarray) -> float:
    """One image's competition Dice from its per-class vector (NaN when every class is NaN)."""
    return float(_nanmean(np.asarray(per_class, dtype=np.float64)))


def competition_dice(
    preds: Iterable[ArrayLike] | ArrayLike,
    gts: Iterable[ArrayLike] | ArrayLike,
    num_classes: int = NUM_CLASSES,
    ignore_index: int = IGNORE_INDEX,
) -> float:
    """Mean over images of the per-image nanmean class Dice (the course servers' score).

    ``preds``/``gts``: sequences of (H, W) masks, or (N, H, W) arrays/tensors. Images with no
    scorable class are skipped; NaN when no image is scorable.
    """
    meter = DiceMeter(num_classes, ignore_index)
    preds, gts = list(preds), list(gts)
    if len(preds) != len(gts):
        raise ValueError(f"preds and gts must hold the same number of images, got {len(preds)} and {len(gts)}")
    for pred, gt in zip(preds, gts):
        meter.update(pred, gt, batched=False)
    return meter.mean()


class DiceMeter:
    """Accumulates per-image per-class competition Dice vectors.

    ``mean()`` is the competition Dice, ``per_class()`` the nanmean over images per class,
    ``per_image()`` one Dice per image in update order (NaN for an image with no scorable class).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self._vectors: list[np.ndarray] = []

    def update(self, pred: ArrayLike, gt: ArrayLike, batched: bool | None = None) -> np.ndarray:
        """Add images. (B, H, W) is a batch, (H, W) one image (or say so with ``batched``).

        Returns the (B, C) Dice vectors just added.
        """
        if batched is None:
            batched = pred.ndim >= 3
        conf = _batched_confusion(pred, gt, self.num_classes, self.ignore_index, batched=batched)
        dice = _dice_from_confusion(conf)
        self._vectors.extend(dice)
        return dice

    def __len__(self) -> int:
        return len(self._vectors)

    @property
    def vectors(self) -> np.ndarray:
        """(N, C) per-image per-class Dice."""
        return np.array(self._vectors, dtype=np.float64).reshape(-1, self.num_classes)

    def per_image(self) -> np.ndarray:
        """(N,) per-image Dice (nanmean over that image's classes)."""
        return np.asarray(_nanmean(self.vectors, axis=1), dtype=np.float64).reshape(-1)

    def mean(self) -> float:
        """Competition Dice: mean over scorable images of the per-image Dice (NaN if none)."""
        scores = self.per_image()
        scores = scores[~np.isnan(scores)]
        return float(scores.mean()) if scores.size else float("nan")

    def per_class(self) -> np.ndarray:
        """(C,) mean Dice per class over the images where that class is scorable."""
        return np.asarray(_nanmean(self.vectors, axis=0), dtype=np.float64).reshape(-1)

    def merge(self, other: "DiceMeter") -> "DiceMeter":
        """Append another meter's images (e.g. from a parallel worker); returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError("DiceMeter.merge: meters differ in num_classes or ignore_index")
        self._vectors.extend(other._vectors)
        return self


def _merged_iou(conf: np.ndarray, classes: Sequence[int]) -> float:
    """IoU of the union of ``classes`` treated as one class, from a (C, C+1) confusion."""
    classes = list(classes)
    tp = conf[np.ix_(classes, classes)].sum()
    gt_total = conf[classes, :].sum()
    pred_total = conf[:, classes].sum()
    union = gt_total + pred_total - tp
    return float(tp / union) if union > 0 else float("nan")


class ConfusionMatrix:
    """Dataset-level confusion matrix with ``update``/``merge``/``compute``.

    ``counts`` has shape (C, C+1): rows = ground-truth class, columns = predicted class, the
    last column = predictions outside 0..C-1. Pixels with ground truth ``ignore_index`` are
    not counted.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, ignore_index: int = IGNORE_INDEX):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.counts = np.zeros((num_classes, num_classes + 1), dtype=np.int64)

    def update(self, pred: ArrayLike, gt: ArrayLike) -> None:
        """Count pixels of masks of any (equal) shape, numpy or torch."""
        self.counts += _batched_confusion(pred, gt, self.num_classes, self.ignore_index, batched=False)[0]

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix's counts (parallel accumulation); returns self."""
        if (other.num_classes, other.ignore_index) != (self.num_classes, self.ignore_index):
            raise ValueError("ConfusionMatrix.merge: matrices differ in num_classes or ignore_index")
        self.counts += other.counts
        return self

    def reset(self) -> None:
        self.counts[:] = 0

    @property
    def matrix(self) -> np.ndarray:
        """(C, C) counts over in-range predictions."""
        return self.counts[:, : self.num_classes]

    def compute(self) -> dict:
        """All metrics of the counts so far.

        Keys: ``iou_per_class`` and ``dice_per_class`` (np.ndarray (C,), NaN for classes absent
        from both gt and prediction), ``miou``, ``mean_dice`` (dataset-level, NOT the
        competition Dice), ``pixel_accuracy``, ``category_iou`` and ``group_iou`` (dicts name ->
        IoU of the merged classes), ``mean_category_iou``. Categories and groups are taken from
        ``labels`` when num_classes == 19.
        """
        conf = self.counts
        c = self.num_classes
        tp = np.diag(conf[:, :c]).astype(np.float64)
        gt_total = conf.sum(axis=1)
        pred_total = conf[:, :c].sum(axis=0)
        union = (gt_total + pred_total - tp).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(union > 0, tp / union, np.nan)
        dice = _dice_from_confusion(conf)
        total = conf.sum()
        if c == NUM_CLASSES:
            category_iou = {name: _merged_iou(conf, ids) for name, ids in CATEGORIES.items()}
            group_iou = {name: _merged_iou(conf, ids) for name, ids in GROUPS.items()}
        else:
            category_iou, group_iou = {}, {}
        cat_values = np.array(list(category_iou.values()), dtype=np.float64)
        return {
            "iou_per_class": iou,
            "dice_per_class": dice,
            "miou": float(_nanmean(iou)),
            "mean_dice": float(_nanmean(dice)),
            "pixel_accuracy": float(tp.sum() / total) if total else float("nan"),
            "category_iou": category_iou,
            "mean_category_iou": float(_nanmean(cat_values)) if cat_values.size else float("nan"),
            "group_iou": group_iou,
        }

    def summary(self, class_names: Sequence[str] | None = None) -> dict[str, float | None]:
        """``compute()`` flattened to JSON-ready scalars (NaN -> None), e.g. ``iou_road``."""
        res = self.compute()
        if class_names is None:
            class_names = CLASS_NAMES if self.num_classes == NUM_CLASSES else [str(i) for i in range(self.num_classes)]
        out: dict[str, float | None] = {
            key: res[key] for key in ("miou", "mean_dice", "pixel_accuracy", "mean_category_iou")
        }
        for name, value in zip(class_names, res["iou_per_class"]):
            out[f"iou_{_key(name)}"] = float(value)
        for name, value in zip(class_names, res["dice_per_class"]):
            out[f"dice_{_key(name)}"] = float(value)
        for name, value in res["category_iou"].items():
            out[f"category_iou_{_key(name)}"] = value
        for name, value in res["group_iou"].items():
            out[f"group_iou_{_key(name)}"] = value
        return {k: (None if v is None or np.isnan(v) else float(v)) for k, v in out.items()}


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_")
