"""Image/mask transforms and the one input normalisation.

Image and mask travel together through albumentations (``image=``, ``mask=``); masks are
resized nearest-neighbour and padded with 255 (ignore), so they only ever hold values from
the input plus 255. Each call of a :class:`PairTransform` is a pure function of its inputs
and the ``rng`` it is given (the dataset seeds that from ``(seed, epoch, index)``).
"""

from __future__ import annotations

import os
import random
from typing import Optional, Sequence

# albumentations asks PyPI for a newer version at import time; this project runs offline.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from cityseg.config import TrainConfig  # noqa: E402
from cityseg.labels import IGNORE_INDEX  # noqa: E402

# The course normalisation: x/255, then mean 0.5, std 0.5 per channel -> [-1, 1].
MEAN = 0.5
STD = 0.5


# --------------------------------------------------------------------------- normalisation


def normalize_batch(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """(B, H, W, 3) uint8 (any device) -> (B, 3, H, W) float32 in [-1, 1], contiguous or channels_last.

    Copy uint8 to the GPU and normalise there: a quarter of the bytes of float32. A float input is refused:
    it would be an already normalised batch, divided by 255 a second time.
    """
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"normalize_batch: images must be (B, H, W, 3), got {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        raise ValueError(f"normalize_batch: images must be uint8, got {images.dtype}")
    # The permuted HWC view already has channels_last strides, and `.to` keeps them: asking for channels_last
    # saves the copy to NCHW and back. The values are the same in either layout.
    x = images.permute(0, 3, 1, 2).to(torch.float32)
    x = x.div_(255.0).sub_(MEAN).div_(STD)
    return x.contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def normalize(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [-1, 1]: `normalize_batch` of one image."""
    if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
        raise ValueError(f"normalize: image must be an (H, W, 3) array, got {getattr(image, 'shape', type(image))}")
    if image.dtype != np.uint8:
        raise ValueError(f"normalize: image must be uint8, got {image.dtype}")
    # torch.from_numpy wants a writable array (memmapped cache rows are read-only): copy those.
    image = np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"])
    return normalize_batch(torch.from_numpy(image)[None])[0]


def denormalize(x: torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize`: (3, H, W) float -> (H, W, 3) uint8 (for overlays)."""
    img = (x.detach().float().cpu() * STD + MEAN).clamp_(0, 1).mul_(255).round_()
    return img.to(torch.uint8).permute(1, 2, 0).numpy()


# --------------------------------------------------------------------------- transforms


class PairTransform:
    """An albumentations pipeline over (image, mask), optionally preceded by weather.

    ``__call__(image, mask, rng=None, depth=None, camera=None) -> (image, mask)``. With
    probability ``weather_prob`` one of ``weather_types`` is applied first, at the cache
    resolution where ``depth`` (metres) and ``camera`` match the image. ``mask`` may be None.
    """

    def __init__(self, compose: A.Compose, weather_types: Sequence[str] = (), weather_prob: float = 0.0,
                 resize_mask: bool = True):
        self.compose = compose
        self.resize_mask = resize_mask  # False: the mask is returned untouched (image-only pipeline)
        self.weather_types = tuple(weather_types)
        self.weather_prob = float(weather_prob)

    def __call__(
        self,
        image: np.ndarray,
        mask: Optional[np.ndarray] = None,
        rng: Optional[np.random.Generator] = None,
        depth: Optional[np.ndarray] = None,
        camera: Optional[dict] = None,
    ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        rng = rng if rng is not None else np.random.default_rng()
        # Three independent streams, always drawn, so the geometric/photometric draws of a
        # sample are the same whether or not weather is on (strong vs robust differ only by weather).
        s_np, s_py, s_weather = (int(v) for v in rng.integers(0, 2**63, size=3))
        # set_random_state shares one generator pair across the whole pipeline (O(1));
        # set_random_seed would build one generator per transform, all with the same seed.
        self.compose.set_random_state(np.random.default_rng(s_np), random.Random(s_py))
        if self.weather_types and self.weather_prob > 0:
            w_rng = np.random.default_rng(s_weather)
            if w_rng.random() < self.weather_prob:
                from cityseg.depth import is_train_ids  # lazy: optional dependencies of augment=robust
                from cityseg.weather import weather_augment

                # a trainId mask of the image's size places things for the label-guided depth
                labels = mask if mask is not None and mask.shape == image.shape[:2] and is_train_ids(mask) else None
                image, _ = weather_augment(image, depth, camera, w_rng, list(self.weather_types), labels)
        if mask is None or not self.resize_mask:
            return self.compose(image=image)["image"], mask
        if mask.shape != image.shape[:2]:
            raise ValueError(f"mask shape {mask.shape} does not match image shape {image.shape[:2]}")
        out = self.compose(image=image, mask=mask)
        return out["image"], out["mask"]

    def __repr__(self) -> str:
        return f"PairTransform({self.compose!r}, weather_types={self.weather_types}, weather_prob={self.weather_prob})"


def _compose(transforms: list) -> A.Compose:
    # mask_interpolation on Compose forces nearest-neighbour masks in every resizing transform.
    # NEAREST_EXACT samples at pixel centres like bilinear does; plain INTER_NEAREST is biased
    # up to one source pixel towards the top-left, so masks would drift off their image.
    return A.Compose(transforms, mask_interpolation=cv2.INTER_NEAREST_EXACT, seed=0)


def _resize(size: Sequence[int]) -> A.Resize:
    return A.Resize(int(size[0]), int(size[1]), interpolation=cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST_EXACT)


def geometric_transforms(size: Sequence[int], scale_range: Sequence[float]) -> list:
    """Resize to ``size`` (scale 1 = the evaluation geometry), random scale, pad (255) / crop, flip."""
    h, w = int(size[0]), int(size[1])
    lo, hi = float(scale_range[0]), float(scale_range[1])
    if not 0 < lo <= hi:
        raise ValueError(f"train.scale_range must be [low, high] with 0 < low <= high, got {list(scale_range)}")
    return [
        _resize(size),
        A.RandomScale(scale_limit=(lo - 1.0, hi - 1.0), interpolation=cv2.INTER_LINEAR,
                      mask_interpolation=cv2.INTER_NEAREST_EXACT, p=1.0),
        A.PadIfNeeded(min_height=h, min_width=w, position="random", border_mode=cv2.BORDER_CONSTANT,
                      fill=0, fill_mask=IGNORE_INDEX),
        A.RandomCrop(h, w),
        A.HorizontalFlip(p=0.5),
    ]


def photometric_transforms() -> list:
    """Colour jitter, occasional blur or sensor noise, gamma: the main robustness lever in the course."""
    return [
        A.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, hue=0.05, p=0.8),
        A.OneOf(
            [
                A.GaussianBlur(blur_limit=(3, 5), sigma_limit=(0.3, 1.5)),
                A.GaussNoise(std_range=(0.02, 0.08)),
            ],
            p=0.25,
        ),
        A.RandomGamma(gamma_limit=(80, 120), p=0.3),
    ]


def build_train_transform(cfg: TrainConfig) -> PairTransform:
    """The training transform selected by ``cfg.augment`` (none | standard | strong | robust)."""
    if cfg.augment == "none":
        # The course recipe: resize to the training size, ignoring the aspect ratio.
        return PairTransform(_compose([_resize(cfg.size)]))
    transforms = geometric_transforms(cfg.size, cfg.scale_range)
    if cfg.augment in ("strong", "robust"):
        transforms += photometric_transforms()
    if cfg.augment == "robust":
        # Under-exposure (dusk, tunnels, a short shutter): the colour jitter above stays near daylight,
        # and the sensor-noise half of a dark frame comes from the noise types in weather_types.
        transforms.append(A.RandomBrightnessContrast(brightness_limit=(-0.45, 0.0), contrast_limit=(-0.4, 0.0), p=0.3))
        if not cfg.weather_types:
            raise ValueError("train.augment=robust needs a non-empty train.weather_types")
        if not 0.0 <= cfg.weather_prob <= 1.0:
            raise ValueError(f"train.weather_prob must be in [0, 1], got {cfg.weather_prob}")
        return PairTransform(_compose(transforms), cfg.weather_types, cfg.weather_prob)
    if cfg.augment not in ("standard", "strong"):
        raise ValueError(f"train.augment: unknown value {cfg.augment!r}")
    return PairTransform(_compose(transforms))


def build_eval_transform(size: Sequence[int], resize_mask: bool = True) -> PairTransform:
    """Resize to ``size`` [H, W] (bilinear image, nearest mask); no randomness.

    ``resize_mask=False`` leaves the mask at its own size (score logits resized to the labels).
    """
    if len(size) != 2 or min(int(v) for v in size) <= 0:
        raise ValueError(f"size must be [height, width] > 0, got {list(size)}")
    return PairTransform(_compose([_resize(size)]), resize_mask=resize_mask)
