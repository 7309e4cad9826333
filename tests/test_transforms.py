"""Transforms: image and mask move together, masks stay discrete, seeded determinism, normalisation."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from cityseg.config import TrainConfig
from cityseg.dataset import sample_seed
from cityseg.transforms import (
    build_eval_transform,
    build_train_transform,
    denormalize,
    normalize,
    normalize_batch,
)

H, W = 32, 64


def position_image() -> np.ndarray:
    """RGB whose pixel encodes its position: R = 4x, G = 8y, B = 200 (padding is 0 there)."""
    y, x = np.mgrid[0:H, 0:W]
    return np.stack([4 * x, 8 * y, np.full_like(x, 200)], -1).astype(np.uint8)


def position_masks() -> tuple[np.ndarray, np.ndarray]:
    """Masks holding each pixel's x (0..63) and y (0..31) coordinate."""
    y, x = np.mgrid[0:H, 0:W]
    return x.astype(np.uint8), y.astype(np.uint8)


def rng(i: int) -> np.random.Generator:
    return np.random.default_rng(sample_seed(42, 0, i))


def cfg(**kw) -> TrainConfig:
    return TrainConfig(**{"size": [H, W], **kw})


def test_normalize_range_and_batched_version():
    img = np.zeros((2, 3, 3), np.uint8)
    img[0, 0] = 255
    x = normalize(img)
    assert x.dtype == torch.float32 and x.shape == (3, 2, 3)
    assert torch.all(x[:, 0, 0] == 1.0) and torch.all(x[:, 1, 2] == -1.0)
    imgs = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    batched = normalize_batch(torch.from_numpy(imgs))
    assert torch.equal(batched, torch.stack([normalize(i) for i in imgs]))
    np.testing.assert_array_equal(denormalize(batched[1]), imgs[1])
    with pytest.raises(ValueError, match="uint8"):
        normalize(imgs[0].astype(np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        normalize(imgs[0, :, :, 0])


def test_none_resizes_to_size_ignoring_aspect():
    t = build_train_transform(cfg(augment="none", size=[24, 24]))
    img, mask = t(position_image(), position_masks()[0], rng=rng(0))
    assert img.shape == (24, 24, 3) and mask.shape == (24, 24)
    # Same size in, same size out: the course recipe is then an exact identity.
    t = build_train_transform(cfg(augment="none"))
    img, mask = t(position_image(), position_masks()[0], rng=rng(0))
    np.testing.assert_array_equal(img, position_image())
    np.testing.assert_array_equal(mask, position_masks()[0])


def test_pad_and_flip_move_image_and_mask_together_exactly():
    """Scale 0.5 of a 2x2-block image is exact for bilinear and nearest alike, so every unpadded
    output pixel must carry the mask of its own source block, wherever it was padded and flipped."""
    y, x = np.mgrid[0:H, 0:W] // 2
    img = np.stack([8 * x, 16 * y, np.full_like(x, 200)], -1).astype(np.uint8)
    t = build_train_transform(cfg(augment="standard", scale_range=[0.5, 0.5]))
    flips, offsets = set(), set()
    for i in range(12):
        out, mx = t(img, x.astype(np.uint8), rng=rng(i))
        _, my = t(img, y.astype(np.uint8), rng=rng(i))  # same rng -> same geometry
        inside = mx != 255
        assert inside.sum() == (H // 2) * (W // 2)  # the half-size image, padded to (H, W)
        assert np.array_equal(inside, my != 255) and np.array_equal(inside, out[..., 2] == 200)
        np.testing.assert_array_equal(out[..., 0][inside], 8 * mx[inside].astype(np.int64))
        np.testing.assert_array_equal(out[..., 1][inside], 16 * my[inside].astype(np.int64))
        rows, cols = np.nonzero(inside)
        row = mx[rows[0]]
        flips.add(bool(row[cols[0]] > row[cols[-1]]))
        offsets.add((rows[0], cols[0]))
    assert flips == {True, False}  # both flipped and unflipped samples occurred
    assert len(offsets) > 3  # the padding position is random too


def test_scaling_moves_mask_with_image_and_pads_with_255():
    t = build_train_transform(cfg(augment="standard", scale_range=[0.5, 2.0]))
    saw_pad = saw_zoom = False
    for i in range(16):
        img, mx = t(position_image(), position_masks()[0], rng=rng(i))
        _, my = t(position_image(), position_masks()[1], rng=rng(i))
        assert img.shape == (H, W, 3) and mx.shape == (H, W) and mx.dtype == np.uint8
        pad = mx == 255
        assert np.array_equal(pad, my == 255)
        # Padding is black in the image (B = 200 everywhere else) and 255 in the mask.
        assert np.array_equal(pad, img[..., 2] == 0)
        inside = ~pad
        # The bilinear image and the nearest-neighbour mask sample the same source position:
        # they differ by at most half a source pixel (plus the image's uint8 rounding).
        assert np.abs(img[..., 0][inside] / 4.0 - mx[inside]).max() <= 0.5 + 1 / 8
        assert np.abs(img[..., 1][inside] / 8.0 - my[inside]).max() <= 0.5 + 1 / 16
        saw_pad |= bool(pad.any())
        saw_zoom |= bool(inside.all() and np.ptp(mx) < W - 1)
    assert saw_pad and saw_zoom


@pytest.mark.parametrize("augment", ["none", "standard", "strong"])
def test_masks_are_never_interpolated(augment):
    labels = np.random.default_rng(1).choice(np.array([0, 5, 13], np.uint8), size=(H, W))
    t = build_train_transform(cfg(augment=augment, size=[27, 45], scale_range=[0.4, 2.5]))
    for i in range(10):
        _, mask = t(position_image(), labels, rng=rng(i))
        assert set(np.unique(mask)) <= {0, 5, 13, 255}


def test_same_key_same_output_and_epoch_changes_it():
    t = build_train_transform(cfg(augment="strong"))
    img, mask = position_image(), position_masks()[0]

    def run(seed, epoch, index):
        return t(img, mask, rng=np.random.default_rng(sample_seed(seed, epoch, index)))

    a, b = run(42, 3, 5), run(42, 3, 5)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    c = run(42, 4, 5)
    assert not np.array_equal(a[0], c[0])
    d = run(42, 3, 6)
    assert not np.array_equal(a[0], d[0])


def test_strong_adds_photometric_only():
    """strong = standard + colour: for the same rng the geometry (mask) is identical, the pixels are not."""
    std, strong = build_train_transform(cfg(augment="standard")), build_train_transform(cfg(augment="strong"))
    changed = 0
    for i in range(6):
        a_img, a_mask = std(position_image(), position_masks()[0], rng=rng(i))
        b_img, b_mask = strong(position_image(), position_masks()[0], rng=rng(i))
        assert np.array_equal(a_mask, b_mask)
        changed += not np.array_equal(a_img, b_img)
    assert changed >= 3


def test_eval_transform_resizes_and_can_keep_mask():
    t = build_eval_transform([16, 32])
    img, mask = t(position_image(), position_masks()[0])
    assert img.shape == (16, 32, 3) and mask.shape == (16, 32)
    assert set(np.unique(mask)) <= set(range(W))
    img, mask = build_eval_transform([16, 32], resize_mask=False)(position_image(), position_masks()[0])
    assert img.shape == (16, 32, 3) and np.array_equal(mask, position_masks()[0])
    with pytest.raises(ValueError, match="size"):
        build_eval_transform([0, 32])


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="weather_types"):
        build_train_transform(cfg(augment="robust", weather_types=[]))
    with pytest.raises(ValueError, match="scale_range"):
        build_train_transform(cfg(augment="standard", scale_range=[2.0, 1.0]))
    with pytest.raises(ValueError, match="mask shape"):
        build_eval_transform([8, 8])(position_image(), np.zeros((3, 3), np.uint8))


@pytest.mark.skipif(importlib.util.find_spec("cityseg.weather") is None, reason="cityseg.weather not written yet")
def test_robust_applies_weather_with_depth_and_keeps_geometry():
    strong = build_train_transform(cfg(augment="strong"))
    robust = build_train_transform(cfg(augment="robust", weather_types=["fog"], weather_prob=1.0))
    img = position_image()
    img[..., 2] = 60  # a dark channel well below the fog's atmospheric light
    depth = np.linspace(5.0, 200.0, H * W, dtype=np.float32).reshape(H, W)
    camera = {"extrinsic": {"baseline": 0.2, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.2},
              "intrinsic": {"fx": 70.0, "fy": 70.0, "u0": 32.0, "v0": 16.0}}
    mask = position_masks()[0]
    a_img, a_mask = strong(img, mask, rng=rng(0), depth=depth, camera=camera)
    b_img, b_mask = robust(img, mask, rng=rng(0), depth=depth, camera=camera)
    c_img, _ = robust(img, mask, rng=rng(0), depth=depth, camera=camera)
    assert np.array_equal(a_mask, b_mask)  # weather never moves pixels
    assert not np.array_equal(a_img, b_img)  # fog changed the pixels
    assert np.array_equal(b_img, c_img)  # and is seeded like everything else
    never = build_train_transform(cfg(augment="robust", weather_types=["fog"], weather_prob=0.0))
    assert np.array_equal(never(img, mask, rng=rng(0), depth=depth, camera=camera)[0], a_img)
