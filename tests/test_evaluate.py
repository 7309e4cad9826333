"""Evaluation through the checkpoint path the evaluate stage uses, with Dice worked by hand; the one inference path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from cityseg import models
from cityseg.config import ModelConfig
from cityseg.evaluate import evaluate_model
from cityseg.inference import FP32, Precision, Predictor, logits_at, predict_logits
from cityseg.io import write_json, write_png
from cityseg.labels import NUM_CLASSES

CPU = torch.device("cpu")
STEMS = ["tinytown_000000_000019", "tinytown_000001_000019"]
# Image A (dark): road over sidewalk. Image B (bright): building, its last pixel ignored (255).
GT_A = np.array([[0, 0, 0, 0], [1, 1, 1, 1]], np.uint8)
GT_B = np.array([[2, 2, 2, 2], [2, 2, 2, 255]], np.uint8)


class FixedLogits(nn.Module):
    """Returns fixed (19, 2, 4) logits: ``dark`` for a dark input image, ``bright`` for a bright one."""

    def __init__(self):
        super().__init__()
        self.register_buffer("dark", torch.zeros(NUM_CLASSES, 2, 4))
        self.register_buffer("bright", torch.zeros(NUM_CLASSES, 2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=(1, 2, 3)) > 0  # normalised to [-1, 1]: a white image has mean 1
        return torch.where(bright[:, None, None, None], self.bright[None], self.dark[None])


def fixed_logits() -> FixedLogits:
    net = FixedLogits()
    # A: argmax road on the top row; bottom row road, pole, sidewalk, sidewalk. The pole pixel's second
    # choice is sidewalk, so removing the 1-pixel pole (1/8 < min_area 0.2) makes it sidewalk.
    for c, (r, k) in zip([0, 0, 0, 0, 0, 5, 1, 1], np.ndindex(2, 4)):
        net.dark[c, r, k] = 10.0
    net.dark[1, 1, 1] = 5.0
    net.bright[2] = 10.0  # B: building everywhere
    return net


@pytest.fixture
def stub_arch(monkeypatch):
    """Register FixedLogits as arch "stub" so a real checkpoint file rebuilds it."""
    monkeypatch.setitem(models.OUR_MODELS, "stub", lambda cfg: FixedLogits())


def write_prepared(root: Path) -> Path:
    """A prepared dataset: the 2-image test split at full resolution (2x4) and a 1-image train cache."""
    for stem, gt, value in zip(STEMS, (GT_A, GT_B), (0, 255)):
        write_png(root / "leftImg8bit" / "test" / "tinytown" / f"{stem}_leftImg8bit.png", np.full((2, 4, 3), value, np.uint8))
        label = root / "gtFine" / "test" / "tinytown" / f"{stem}_gtFine_labelTrainIds.png"
        label.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(label), gt)
    cache = root / "cache" / "train"
    cache.mkdir(parents=True)
    np.save(cache / "images.npy", np.zeros((1, 2, 4, 3), np.uint8))
    np.save(cache / "labels.npy", np.zeros((1, 2, 4), np.uint8))  # all road: the trivial predictors say road
    write_json(cache / "index.json", {"stems": ["tinytown_000009_000019"], "size": [2, 4], "cameras": [None]})
    info = {"has_labels": True, "has_depth": False, "size": [2, 4]}
    write_json(root / "manifest.json", {"source": "cityscapes", "cache_size": [2, 4], "splits": {
        "train": {**info, "count": 1, "stems": ["tinytown_000009_000019"]}, "test": {**info, "count": 2, "stems": STEMS}}})
    return root


def stub_checkpoint(path: Path, min_class_area: float) -> Path:
    models.save_checkpoint(path, fixed_logits(), ModelConfig(arch="stub"), epoch=1,
                           train={"size": [2, 4], "min_class_area": min_class_area})
    return path


def test_dice_is_the_per_image_mean_with_the_checkpoints_small_class_removal(tmp_path, stub_arch):
    prepared = write_prepared(tmp_path / "prepared")
    predictor = Predictor.from_checkpoint(stub_checkpoint(tmp_path / "best.pt", 0.2), CPU)
    assert (predictor.input_size, predictor.min_area) == ((2, 4), 0.2)
    m, confusion = evaluate_model(predictor, prepared, "test", batch_size=2, progress=False)
    # The pole pixel becomes sidewalk. Image A: road P=5 G=4 TP=4 -> 8/9; sidewalk P=3 G=4 TP=3 -> 6/7;
    # its Dice (8/9 + 6/7) / 2 = 110/126. Image B: building 7 of 7 labelled pixels -> 1.
    # Competition Dice = mean over images = (110/126 + 1) / 2 = 0.936508.
    # (Pooled over the dataset instead: (8/9 + 6/7 + 1) / 3 = 0.915344.)
    assert m["images"] == 2 and m["dice"] == 0.936508
    assert m["class_dice"]["road"] == 0.888889 and m["class_dice"]["sidewalk"] == 0.857143
    assert m["class_dice"]["building"] == 1.0 and m["class_dice"]["pole"] is None
    # IoU: road 4/5, sidewalk 3/4, building 1 -> mIoU 0.85; pixel accuracy (4 + 3 + 7) / 15.
    assert m["miou"] == 0.85 and m["pixel_acc"] == round(14 / 15, 6)
    assert confusion[1, 1] == 3 and confusion[1, 0] == 1 and confusion[1, 5] == 0
    # The trivial "road everywhere" prior: A (8/12 + 0) / 2 = 1/3, B (0 + 0) / 2 = 0 -> 1/6.
    assert m["trivial"] == {"dice_majority": 0.166667, "dice_prior": 0.166667}


def test_dice_without_small_class_removal(tmp_path, stub_arch):
    prepared = write_prepared(tmp_path / "prepared")
    predictor = Predictor.from_checkpoint(stub_checkpoint(tmp_path / "best.pt", 0.0), CPU)
    m, _ = evaluate_model(predictor, prepared, "test", batch_size=1, progress=False)
    # The pole pixel stays. Image A: road 8/9, sidewalk P=2 G=4 TP=2 -> 4/6, pole P=1 G=0 -> 0:
    # (8/9 + 6/9 + 0) / 3 = 14/27. Mean over images (14/27 + 1) / 2 = 41/54 = 0.759259.
    assert m["dice"] == 0.759259 and m["class_dice"]["pole"] == 0.0
    # IoU: road 4/5, sidewalk 2/4, building 1, pole 0 -> 0.575.
    assert m["miou"] == 0.575


class FirstChannel(nn.Module):
    """Logits = the input's first channel on every class; records its input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        return x[:, :1].repeat(1, NUM_CLASSES, 1, 1)


def test_predict_logits_resizes_normalises_and_upsamples():
    image = np.zeros((1, 4, 3), np.uint8)
    image[:, 2:] = 255  # 0 0 255 255
    net = FirstChannel()
    logits = predict_logits(net, [image], (1, 2), CPU)
    # Bilinear halving samples at x = 0.5 and 2.5: [0, 255] -> normalised [-1, 1] at the 1x2 input size.
    assert net.seen.shape == (1, 3, 1, 2) and net.seen[0, 0].tolist() == [[-1.0, 1.0]]
    # Bilinear (half-pixel centres) back to 1x4: samples at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    assert logits.shape == (1, NUM_CLASSES, 1, 4) and logits.dtype == torch.float32
    assert logits[0, 7, 0].tolist() == [-1.0, -0.5, 0.5, 1.0]
    same = torch.randn(1, 3, 2, 2)
    assert logits_at(same, (2, 2)) is same


def test_precision_rule():
    assert Precision.evaluation(torch.device("cpu")) == Precision(None, False) == FP32
    assert Precision.evaluation(torch.device("cuda")) == Precision(torch.bfloat16, True)


def write_prepared_of(root: Path, n_test: int, n_train: int) -> Path:
    """A prepared dataset with ``n_test`` random 16x32 test frames and an ``n_train``-image 64x128 train cache."""
    rng = np.random.default_rng(0)
    stems = [f"tinytown_{i:06d}_000019" for i in range(n_test)]
    for stem in stems:
        write_png(root / "leftImg8bit" / "test" / "tinytown" / f"{stem}_leftImg8bit.png",
                  rng.integers(0, 256, (16, 32, 3), dtype=np.uint8))
        label = root / "gtFine" / "test" / "tinytown" / f"{stem}_gtFine_labelTrainIds.png"
        label.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(label), rng.integers(0, NUM_CLASSES, (16, 32), dtype=np.uint8))
    cache, train_stems = root / "cache" / "train", [f"tinytown_{i:06d}_000020" for i in range(n_train)]
    cache.mkdir(parents=True)
    np.save(cache / "images.npy", np.zeros((n_train, 64, 128, 3), np.uint8))
    np.save(cache / "labels.npy", rng.integers(0, NUM_CLASSES, (n_train, 64, 128), dtype=np.uint8))
    write_json(cache / "index.json", {"stems": train_stems, "size": [64, 128], "cameras": [None] * n_train})
    info = {"has_labels": True, "has_depth": False}
    write_json(root / "manifest.json", {"source": "cityscapes", "cache_size": [64, 128], "splits": {
        "train": {**info, "size": [64, 128], "count": n_train, "stems": train_stems},
        "test": {**info, "size": [16, 32], "count": n_test, "stems": stems}}})
    return root


def test_evaluation_memory_does_not_grow_with_the_number_of_images(tmp_path, stub_arch):
    # Real Cityscapes: 2975 training frames feed the trivial predictors, 500 validation frames are scored. What
    # evaluation holds must not grow with either (tracemalloc sees every numpy allocation).
    import tracemalloc

    predictor = Predictor.from_checkpoint(stub_checkpoint(tmp_path / "best.pt", 0.0), CPU)

    def peak(n_test: int, n_train: int) -> int:
        prepared = write_prepared_of(tmp_path / f"p{n_test}_{n_train}", n_test, n_train)
        tracemalloc.start()
        try:
            metrics, _ = evaluate_model(predictor, prepared, "test", batch_size=2, progress=False)
            assert metrics["images"] == n_test
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(4, 32), peak(32, 256)  # 8x the images of each split
    # Holding either split whole would add >= 1.75 MB (224 more 64x128 label maps) to the large run.
    assert large < small + 512 * 1024, (small, large)


def test_only_uint8_labels_leave_the_device(tmp_path, stub_arch, monkeypatch):
    # Full-resolution logits are 19 float32 maps per frame: evaluation post-processes them where they are and
    # moves only the uint8 labels to the CPU (a no-op here, but the calls are what a GPU would do).
    moved = []
    real_cpu = torch.Tensor.cpu

    def spy(self, *args, **kwargs):
        moved.append(self.dtype)
        return real_cpu(self, *args, **kwargs)

    prepared = write_prepared(tmp_path / "prepared")
    predictor = Predictor.from_checkpoint(stub_checkpoint(tmp_path / "best.pt", 0.2), CPU)
    monkeypatch.setattr(torch.Tensor, "cpu", spy)
    evaluate_model(predictor, prepared, "test", batch_size=2, progress=False)
    assert moved and set(moved) == {torch.uint8}, moved
