"""Cityscapes-C-style image corruptions at five severities.

Modelled on Hendrycks & Dietterich (ImageNet-C) and Kamann & Rother (Cityscapes-C): each corruption
has a fixed parameter per severity 1..5 in a table below (higher = harsher), built on albumentations
where it has a matching transform. Albumentations transforms get a fixed range (lo == hi) and a seed
drawn from the caller's generator, so ``corrupt(image, name, severity, seed)`` is deterministic.

Own implementations where albumentations differs from ImageNet-C: shot noise, snow, low light.

Resolution: Kamann & Rother apply the ImageNet-C constants to full-resolution Cityscapes frames
(2048 px wide). Parameters measured in pixels of the scene (blur radii, kernel lengths) are therefore
defined at ``REF_WIDTH = 2048`` and scaled by ``width / REF_WIDTH``, so corrupting a downsampled frame
looks like downsampling a corrupted full-resolution frame. Per-pixel effects (noise, JPEG)
are sensor/codec properties and are *not* scaled: corrupt at the resolution you evaluate at.
"""

from __future__ import annotations

import math
from typing import Callable

import albumentations as A
import cv2
import numpy as np

REF_WIDTH = 2048  # width at which the pixel-unit constants below hold (Cityscapes native)
SEVERITIES = (1, 2, 3, 4, 5)

# ---- severity tables (index = severity - 1) ---------------------------------------------------
# ImageNet-C constants unless noted.
GAUSSIAN_NOISE_STD = (0.08, 0.12, 0.18, 0.26, 0.38)  # std as a fraction of 255
SHOT_NOISE_PHOTONS = (60, 25, 12, 5, 3)  # photons per unit display intensity
IMPULSE_NOISE_AMOUNT = (0.03, 0.06, 0.09, 0.17, 0.27)  # fraction of salt-and-pepper pixels
DEFOCUS_RADIUS = (3, 4, 6, 8, 10)  # disk radius in px at REF_WIDTH
DEFOCUS_ALIAS = (0.1, 0.5, 0.5, 0.5, 0.5)
# ImageNet-C motion blur is a Gaussian-weighted line (radius, sigma) = (10,3)..(20,15); its effective
# extent is about min(radius, 2*sigma) per side. albumentations uses a uniform symmetric line of
# odd length, so we tabulate that length at REF_WIDTH.
MOTION_BLUR_LENGTH = (7, 11, 15, 19, 23)
GAUSSIAN_BLUR_SIGMA = (1.0, 2.0, 3.0, 4.0, 6.0)  # px at REF_WIDTH
BRIGHTNESS_SHIFT = (0.1, 0.2, 0.3, 0.4, 0.5)  # added, as a fraction of 255 (ImageNet-C adds to HSV V)
CONTRAST_FACTOR = (0.4, 0.3, 0.2, 0.1, 0.05)  # blend factor towards the mean grey
JPEG_QUALITY = (25, 18, 15, 10, 7)
# Weather constants: ImageNet-C sizes are for 224-px images, where a snow flake or a lens drop spans
# a few pixels; unscaled on a 2048-px frame they would be sub-visible, so pixel sizes below are
# ImageNet-C's x 4 at REF_WIDTH (and scale with width like the blur constants).
# Snow (ImageNet-C algorithm; albumentations' RandomSnow shifts hues and saturates): flake layer
# N(loc, scale) zoomed by `zoom`, cut below `threshold`, motion-blurred (one-sided Gaussian line of
# `radius`, `sigma`), and the image whitened: blend·x + (1 − blend)·max(x, 1.5·grey + 0.5).
SNOW = (  # (loc, scale, zoom, threshold, radius, sigma, blend); radius/sigma/zoom in px at 224 x 4
    (0.10, 0.3, 3.0, 0.50, 10, 4, 0.80),
    (0.20, 0.3, 2.0, 0.50, 12, 4, 0.70),
    (0.55, 0.3, 4.0, 0.90, 12, 8, 0.70),
    (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
    (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
)
WEATHER_PX = 4.0  # ImageNet-C pixel sizes x 4 = pixel sizes at REF_WIDTH
# Spatter (albumentations, rain mode): drops where blurred noise N(0.65, 0.3) exceeds
# 0.65 + k·std_blurred, so coverage ≈ Q(k) whatever the drop size; sigma in px at REF_WIDTH.
SPATTER_SIGMA = (14.0, 12.0, 10.0, 9.0, 8.0)
SPATTER_K = (2.0, 1.5, 1.1, 0.8, 0.5)  # coverage ≈ 2%, 7%, 14%, 21%, 31%
SPATTER_INTENSITY = (0.6, 0.6, 0.65, 0.7, 0.75)
# Low light (own model of a night-time sensor): exposure factor in linear light, photons collected
# at full exposure for a white pixel, Gaussian read noise in linear units.
LOW_LIGHT_EXPOSURE = (0.40, 0.25, 0.15, 0.08, 0.04)
LOW_LIGHT_FULL_WELL = (1000.0, 700.0, 500.0, 350.0, 250.0)
LOW_LIGHT_READ_NOISE = (0.001, 0.0015, 0.002, 0.003, 0.004)

CorruptionFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def check_image(image: np.ndarray, name: str = "image") -> None:
    """Raise ValueError unless ``image`` is an (H, W, 3) uint8 array."""
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB array, got {image.dtype} {image.shape}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"{name} is too small: {image.shape}")


def _check_severity(severity: int) -> int:
    if isinstance(severity, bool) or int(severity) != severity or severity not in SEVERITIES:
        raise ValueError(f"severity must be an integer in 1..5, got {severity!r}")
    return int(severity)


def _scale(image: np.ndarray) -> float:
    """Width relative to the reference Cityscapes width (pixel-unit constants scale with it)."""
    return image.shape[1] / REF_WIDTH


def _albu(transform: A.BasicTransform, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Apply one albumentations transform (p=1) seeded from ``rng``."""
    pipeline = A.Compose([transform], seed=int(rng.integers(0, 2**31 - 1)))
    out = pipeline(image=image)["image"]
    return np.ascontiguousarray(out, dtype=np.uint8)


def _odd(x: float, minimum: int = 3) -> int:
    k = max(minimum, int(math.floor(x + 0.5)))
    return k if k % 2 == 1 else k + 1


# ---- noise --------------------------------------------------------------------------------------
def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Additive per-channel Gaussian noise."""
    s = GAUSSIAN_NOISE_STD[_check_severity(severity) - 1]
    return _albu(A.GaussNoise(std_range=(s, s), mean_range=(0.0, 0.0), per_channel=True, p=1.0), image, rng)


def shot_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise in display space, x ~ Poisson(c·x)/c (ImageNet-C).

    Not albumentations' ShotNoise: that one works in linear light, where the same photon counts
    make dark regions far noisier and darken the image on average (Jensen), so its constants differ.
    """
    c = SHOT_NOISE_PHOTONS[_check_severity(severity) - 1]
    check_image(image)
    x = image.astype(np.float32) / 255.0
    noisy = rng.poisson(x * c).astype(np.float32) / c
    return np.rint(np.clip(noisy, 0.0, 1.0) * 255.0).astype(np.uint8)


def impulse_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt-and-pepper noise, half salt, half pepper."""
    a = IMPULSE_NOISE_AMOUNT[_check_severity(severity) - 1]
    return _albu(A.SaltAndPepper(amount=(a, a), salt_vs_pepper=(0.5, 0.5), p=1.0), image, rng)


# ---- blur ---------------------------------------------------------------------------------------
def defocus_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Disk (out-of-focus) blur; radius scales with image width."""
    i = _check_severity(severity) - 1
    r = max(1, int(math.floor(DEFOCUS_RADIUS[i] * _scale(image) + 0.5)))
    a = DEFOCUS_ALIAS[i]
    return _albu(A.Defocus(radius=(r, r), alias_blur=(a, a), p=1.0), image, rng)


def motion_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Linear motion blur at a random angle in [-45, 45] degrees (as ImageNet-C)."""
    k = _odd(MOTION_BLUR_LENGTH[_check_severity(severity) - 1] * _scale(image))
    angle = float(rng.uniform(-45.0, 45.0)) % 360.0  # the kernel is symmetric, so θ ≡ θ + 180°
    t = A.MotionBlur(blur_limit=(k, k), angle_range=(angle, angle), direction_range=(0.0, 0.0),
                     allow_shifted=False, p=1.0)
    return _albu(t, image, rng)


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Isotropic Gaussian blur; sigma scales with image width (floor 0.5 px so it always acts)."""
    s = max(0.5, GAUSSIAN_BLUR_SIGMA[_check_severity(severity) - 1] * _scale(image))
    k = _odd(2 * int(np.ceil(3 * s)) + 1)  # +-3 sigma support; albumentations' own rule gives 1 px for s < 0.29
    return _albu(A.GaussianBlur(blur_limit=(k, k), sigma_limit=(s, s), p=1.0), image, rng)


# ---- digital ------------------------------------------------------------------------------------
def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Add a constant to all channels (over-exposure)."""
    b = BRIGHTNESS_SHIFT[_check_severity(severity) - 1]
    t = A.RandomBrightnessContrast(brightness_limit=(b, b), contrast_limit=(0.0, 0.0), brightness_by_max=True, p=1.0)
    return _albu(t, image, rng)


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Blend towards the mean grey: (x - mean) * c + mean (torchvision semantics)."""
    c = CONTRAST_FACTOR[_check_severity(severity) - 1]
    t = A.ColorJitter(brightness=(1.0, 1.0), contrast=(c, c), saturation=(1.0, 1.0), hue=(0.0, 0.0), p=1.0)
    return _albu(t, image, rng)


def jpeg(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """JPEG re-encoding at a low quality."""
    q = JPEG_QUALITY[_check_severity(severity) - 1]
    return _albu(A.ImageCompression(compression_type="jpeg", quality_range=(q, q), p=1.0), image, rng)


# ---- weather (image-space; depth-aware fog and rain live in cityseg.weather) ---------------------
def _line_kernel(radius: float, sigma: float, angle_deg: float) -> np.ndarray:
    """One-sided motion-blur kernel: Gaussian weights exp(−t²/2σ²) along a ray of length ``radius``."""
    r = max(1, int(math.ceil(radius)))
    size = 2 * r + 1
    kernel = np.zeros((size, size), np.float32)
    a = math.radians(angle_deg)
    for t in np.linspace(0.0, r, 4 * r + 1):  # 4 samples per pixel, splatted bilinearly
        x, y = r + t * math.cos(a), r - t * math.sin(a)
        x0, y0 = int(math.floor(x)), int(math.floor(y))
        fx, fy = x - x0, y - y0
        w = math.exp(-t * t / (2.0 * sigma * sigma))
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    kernel[y0 + dy, x0 + dx] += w * wy * wx
    return kernel / kernel.sum()


def snow(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Falling snow (ImageNet-C algorithm, own implementation): whitened scene plus blurred flakes."""
    loc, scale, zoom, threshold, radius, sigma, blend = SNOW[_check_severity(severity) - 1]
    check_image(image)
    h, w = image.shape[:2]
    px = WEATHER_PX * _scale(image)  # ImageNet-C pixel -> this image's pixels
    zoom = max(1.0, zoom * px)
    # Flake layer drawn on a coarse grid and zoomed: flakes are `zoom` px wide.
    gh, gw = max(2, int(math.ceil(h / zoom))), max(2, int(math.ceil(w / zoom)))
    flakes = rng.normal(loc, scale, (gh, gw)).astype(np.float32)
    flakes = cv2.resize(flakes, (w, h), interpolation=cv2.INTER_LINEAR)
    flakes[flakes < threshold] = 0.0
    angle = float(rng.uniform(-135.0, -45.0))  # falling, ±45° from straight down
    kernel = _line_kernel(radius * px, max(0.5, sigma * px), angle)
    flakes = cv2.filter2D(flakes, -1, kernel, borderType=cv2.BORDER_REFLECT)[..., None]  # (H, W, 1)
    x = image.astype(np.float32) / 255.0
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None] / 255.0
    x = blend * x + (1.0 - blend) * np.maximum(x, grey * 1.5 + 0.5)
    out = x + flakes + np.rot90(flakes, 2)  # second, mirrored flake layer as in ImageNet-C
    return np.rint(np.clip(out, 0.0, 1.0) * 255.0).astype(np.uint8)


def spatter(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Rain drops on the lens (albumentations Spatter, rain mode); coverage rises with severity."""
    i = _check_severity(severity) - 1
    sigma = max(1.0, SPATTER_SIGMA[i] * _scale(image))
    mean, std = 0.65, 0.3
    # std of white noise after a 2-D Gaussian blur of width sigma: std / (2·sqrt(pi)·sigma)
    threshold = mean + SPATTER_K[i] * std / (2.0 * math.sqrt(math.pi) * sigma)
    t = A.Spatter(mean=(mean, mean), std=(std, std), gauss_sigma=(sigma, sigma),
                  cutout_threshold=(threshold, threshold), intensity=(SPATTER_INTENSITY[i],) * 2,
                  mode="rain", p=1.0)
    return _albu(t, image, rng)


# ---- low light ----------------------------------------------------------------------------------
def low_light(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Night-time sensor: under-exposure in linear light, Poisson shot + Gaussian read noise, gamma.

    No gain is applied after capture, so the image stays dark; noise grows relative to the signal
    as fewer photons are collected.
    """
    i = _check_severity(severity) - 1
    check_image(image)
    full_well = LOW_LIGHT_FULL_WELL[i]
    # expected photon count per uint8 value: linearise (gamma 2.2), under-expose, scale to photons
    photons_lut = (np.arange(256, dtype=np.float64) / 255.0) ** 2.2 * LOW_LIGHT_EXPOSURE[i] * full_well
    photons = rng.poisson(photons_lut[image]).astype(np.float32)
    signal = photons / np.float32(full_well)
    signal += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(LOW_LIGHT_READ_NOISE[i])
    display = cv2.pow(np.clip(signal, 0.0, 1.0), 1.0 / 2.2)
    return np.rint(display * 255.0).astype(np.uint8)


CORRUPTIONS: dict[str, CorruptionFn] = {
    "gaussian_noise": gaussian_noise,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "defocus_blur": defocus_blur,
    "motion_blur": motion_blur,
    "gaussian_blur": gaussian_blur,
    "brightness": brightness,
    "contrast": contrast,
    "jpeg": jpeg,
    "snow": snow,
    "spatter": spatter,
    "low_light": low_light,
}

CORRUPTION_GROUPS: dict[str, list[str]] = {
    "noise": ["gaussian_noise", "shot_noise", "impulse_noise"],
    "blur": ["defocus_blur", "motion_blur", "gaussian_blur"],
    "digital": ["brightness", "contrast", "jpeg"],
    "weather": ["snow", "spatter"],
    "low_light": ["low_light"],
}


def corrupt(image: np.ndarray, name: str, severity: int, seed: int = 0) -> np.ndarray:
    """Apply corruption ``name`` at ``severity`` (1..5); the same seed gives the same output."""
    check_image(image)
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {sorted(CORRUPTIONS)}")
    _check_severity(severity)
    out = CORRUPTIONS[name](image, severity, np.random.default_rng(seed))
    if out.shape != image.shape or out.dtype != np.uint8:  # guard against library behaviour changes
        raise RuntimeError(f"corruption {name} returned {out.dtype} {out.shape} for {image.shape}")
    return out
