"""Physically based fog and rain for Cityscapes-style frames.

Fog follows Foggy Cityscapes (Sakaridis, Dai, Van Gool, IJCV 2018): Koschmieder's law
``I = R·t + L·(1 − t)`` with ``t = exp(−β·ℓ)``, ℓ the distance along the camera ray, the transmission
refined by a guided filter with the clear image as guide, L from the dark channel prior.
Rain follows Rain Cityscapes (Hu et al., CVPR 2019): ``I = T·(1 − R − A) + R + A0·A`` with a
rain-streak layer R and a fog layer ``A = 1 − exp(−β·d)``.

Inputs everywhere: ``image`` (H, W, 3) uint8 RGB; ``depth`` (H, W) float z-depth in metres (0 or
non-finite = unknown); ``camera`` the Cityscapes camera dict
``{"extrinsic": {"baseline", "pitch", "roll", "x", "y", "yaw", "z"}, "intrinsic": {"fx", "fy", "u0", "v0"}}``
valid for the image's resolution (see ``scale_camera``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from cityseg.corruptions import CORRUPTIONS, check_image, corrupt
from cityseg.depth import (CITYSCAPES_CAMERA, DEFAULT_MAX_DEPTH, check_camera, complete_depth,  # noqa: F401
                           default_camera, fallback_depth, horizon_row, ray_distance, scale_camera, scene_depth)

REF_WIDTH = 2048  # the Foggy Cityscapes guided-filter window (41) is defined at this width
AUGMENT_BETA_RANGE = (0.002, 0.03)


@dataclass(frozen=True)
class RainLevel:
    """One Rain Cityscapes setting plus the streak statistics we render for it."""

    alpha: float  # streak attenuation with distance (Hu et al.'s rain α)
    beta: float  # fog density of the veiling layer A (m^-1)
    drops_per_mpx: float  # streak count per megapixel, summed over all depth layers
    fall_m: float  # distance a drop falls during the exposure (m): sets streak length = fy·fall/z


RAIN_LEVELS: dict[int, RainLevel] = {
    1: RainLevel(alpha=0.01, beta=0.005, drops_per_mpx=1500.0, fall_m=0.05),
    2: RainLevel(alpha=0.02, beta=0.01, drops_per_mpx=3000.0, fall_m=0.06),
    3: RainLevel(alpha=0.03, beta=0.015, drops_per_mpx=6000.0, fall_m=0.07),
}
# Streaks are rendered on fronto-parallel layers at these distances (m). A layer is visible only in
# front of surfaces farther than it; the share of drops per layer grows with distance (more volume).
RAIN_LAYER_DEPTHS = (1.5, 3.0, 6.0, 12.0, 24.0)
RAIN_LAYER_SHARE = (0.04, 0.08, 0.16, 0.30, 0.42)
DROP_DIAMETER_M = 0.003
STREAK_PEAK = 0.6  # brightness of a near, in-focus streak (semi-transparent, as in Rain Cityscapes)


def _blend(image: np.ndarray, light: np.ndarray, w_image: np.ndarray, w_light: np.ndarray) -> np.ndarray:
    """image·w_image + 255·light·w_light in float32 (H, W, 3); weights (H, W). cv2 ops: ~2x numpy."""
    w_i = cv2.merge([w_image.astype(np.float32)] * 3)
    w_l = cv2.merge([w_light.astype(np.float32) * np.float32(255.0 * c) for c in light])
    return cv2.add(cv2.multiply(image.astype(np.float32), w_i), w_l)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round to nearest (float32 (H, W, 3) → uint8)."""
    return np.clip(x, 0.0, 255.0, out=x).round(out=x).astype(np.uint8)


# ---- fog ---------------------------------------------------------------------------------------
def _box(x: np.ndarray, k: int) -> np.ndarray:
    return cv2.boxFilter(x, cv2.CV_32F, (k, k), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float, subsample: int = 1) -> np.ndarray:
    """He et al.'s guided filter (grey guide) with (2r+1)² box filters; returns float32 (H, W).

    Output q = mean(a)·I + mean(b) with a = cov(I, p)/(var(I) + eps), b = mean(p) − a·mean(I).
    ``subsample`` s > 1 is He & Sun's fast guided filter: a and b are computed on the guide and source
    shrunk by s (radius r/s) and upsampled bilinearly; q keeps the full-resolution guide's edges.
    """
    I = np.asarray(guide, np.float32)
    p = np.asarray(src, np.float32)
    if I.ndim != 2 or I.shape != p.shape:
        raise ValueError(f"guide and src must be 2-D arrays of one shape, got {I.shape} and {p.shape}")
    if radius < 0 or eps <= 0 or subsample < 1:
        raise ValueError(f"radius must be >= 0, eps > 0 and subsample >= 1, got radius={radius}, eps={eps}, "
                         f"subsample={subsample}")
    h, w = I.shape
    s = int(subsample)
    I_s, p_s = I, p
    if s > 1:
        size = (max(1, w // s), max(1, h // s))
        I_s, p_s = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (I, p))
        radius = max(1, int(round(radius / s)))
    k = 2 * int(radius) + 1
    mean_i, mean_p = _box(I_s, k), _box(p_s, k)
    var_i = _box(I_s * I_s, k) - mean_i * mean_i
    cov_ip = _box(I_s * p_s, k) - mean_i * mean_p
    a = cov_ip / (np.maximum(var_i, 0.0) + eps)
    b = mean_p - a * mean_i
    mean_a, mean_b = _box(a, k), _box(b, k)
    if s > 1:
        mean_a, mean_b = (cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (mean_a, mean_b))
    return mean_a * I + mean_b


def atmospheric_light(image: np.ndarray, patch: int = 15, top: float = 0.001) -> np.ndarray:
    """Atmospheric light in [0, 1] (3,): mean colour of the brightest ``top`` share of the dark channel.

    Dark channel = per-pixel minimum over RGB, then a ``patch`` x ``patch`` minimum filter (He et al.).
    """
    check_image(image)
    if patch < 1 or not 0 < top <= 1:
        raise ValueError(f"patch must be >= 1 and top in (0, 1], got patch={patch}, top={top}")
    # np.minimum over channel views: ~20x faster than image.min(axis=2) on (H, W, 3) uint8
    dark = np.minimum(np.minimum(image[..., 0], image[..., 1]), image[..., 2])
    dark = cv2.erode(dark, np.ones((patch, patch), np.uint8), borderType=cv2.BORDER_REFLECT)
    n = max(1, int(round(top * dark.size)))
    idx = np.argpartition(dark.ravel(), dark.size - n)[dark.size - n:]
    return (image.reshape(-1, 3)[idx].astype(np.float32).mean(axis=0) / 255.0).astype(np.float32)


def _resolve_light(image: np.ndarray, atmospheric) -> np.ndarray:
    if atmospheric is None:
        return atmospheric_light(image)
    light = np.broadcast_to(np.asarray(atmospheric, np.float32), (3,)).copy()
    if not np.all((light >= 0) & (light <= 1)):
        raise ValueError(f"atmospheric light must be in [0, 1] (scalar or RGB), got {atmospheric!r}")
    return light


def default_window(width: int) -> int:
    """Guided-filter window: 41 px at 2048 px width, scaled with width, odd, at least 3."""
    k = max(3, int(round(41 * width / REF_WIDTH)))
    return k if k % 2 == 1 else k + 1


GUIDE_WIDTH = 512  # the guided filter's coefficients are computed at about this width (fast guided filter)


def transmission(image: np.ndarray, depth: np.ndarray, camera: dict, beta: float, *, refine: bool = True,
                 window: int | None = None, eps: float = 1e-3) -> np.ndarray:
    """Fog transmission ``t = exp(−β·ℓ)`` (H, W) float32 in [0, 1] from complete z-depth (no holes).

    ``refine``: the guided filter (window 41 at 2048 px, scaled with width; ε = 1e-3) with the grey
    clear image as guide snaps depth edges to image edges; it runs at ``GUIDE_WIDTH`` (fast guided
    filter) and its output stays within the local range of the raw t over the window, so it never
    makes a patch foggier (or clearer) than all of its surroundings.
    """
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0 (m^-1), got {beta}")
    t = np.exp(-np.float32(beta) * ray_distance(depth, camera))  # (H, W) float32
    if not refine:
        return t
    k = default_window(image.shape[1]) if window is None else int(window)
    if k < 1:
        raise ValueError(f"window must be >= 1, got {k}")
    h, w = t.shape
    s = max(1, w // GUIDE_WIDTH)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) * np.float32(1.0 / 255.0)
    q = guided_filter(grey, t, k // 2, eps, subsample=s)
    # local range of t over the window, on the shrunk grid like the filter's coefficients
    t_s = cv2.resize(t, (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA) if s > 1 else t
    kernel = np.ones((max(1, k // s),) * 2, np.uint8)
    lo, hi = cv2.erode(t_s, kernel), cv2.dilate(t_s, kernel)
    if s > 1:
        lo, hi = (cv2.resize(x, (w, h), interpolation=cv2.INTER_LINEAR) for x in (lo, hi))
    return np.clip(np.minimum(np.maximum(q, lo), hi), 0.0, 1.0, out=q)


def _koschmieder(image: np.ndarray, t: np.ndarray, light: np.ndarray) -> np.ndarray:
    """R·t + L·(1 − t) = (R − L)·t + L, uint8 (H, W, 3); cv2 scalar ops: ~5x the numpy blend."""
    scalar = tuple(float(255.0 * c) for c in light) + (0.0,)
    out = image.astype(np.float32)
    cv2.subtract(out, scalar, dst=out)
    cv2.multiply(out, cv2.merge([t, t, t]), dst=out)
    cv2.add(out, scalar, dst=out)
    return cv2.convertScaleAbs(out)  # rounds and saturates; the sum is >= 0 (t in [0, 1])


def fog(
    image: np.ndarray,
    depth: np.ndarray | None,
    camera: dict,
    beta: float,
    *,
    labels: np.ndarray | None = None,
    refine: bool = True,
    window: int | None = None,
    eps: float = 1e-3,
    atmospheric=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
) -> np.ndarray:
    """Homogeneous fog by Koschmieder's law (Foggy Cityscapes); returns uint8 (H, W, 3).

    ``t = exp(−β·ℓ)`` per pixel from the frame's depth (``cityseg.depth.scene_depth``: measured depth
    completed with the help of ``labels`` (trainIds), or the label-guided prior without depth, or the
    flat-ground prior with neither), refined as in ``transmission``. ``atmospheric`` (scalar or RGB
    in [0, 1]) overrides the dark-channel estimate. β = 0 returns the image unchanged.
    """
    check_image(image)
    check_camera(camera)
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0 (m^-1), got {beta}")
    if beta == 0:
        return image.copy()
    z, _ = scene_depth(image.shape[:2], depth, labels, camera, max_depth)
    t = transmission(image, z, camera, beta, refine=refine, window=window, eps=eps)
    return _koschmieder(image, t, _resolve_light(image, atmospheric))


# ---- rain --------------------------------------------------------------------------------------
def _rain_level(level: int | None, alpha: float | None, beta: float | None) -> RainLevel:
    """The RainLevel for ``level``, with ``alpha``/``beta`` overriding it if given.

    Without a level, streak density and length follow alpha (interpolated over the three settings).
    """
    if level is not None:
        if isinstance(level, bool) or level not in RAIN_LEVELS:
            raise ValueError(f"rain level must be 1, 2 or 3, got {level!r}")
        base = RAIN_LEVELS[level]
    elif alpha is None or beta is None:
        raise ValueError("rain needs a level (1..3) or both alpha and beta")
    else:
        alphas = [RAIN_LEVELS[k].alpha for k in (1, 2, 3)]
        base = RainLevel(
            alpha=alpha, beta=beta,
            drops_per_mpx=float(np.interp(alpha, alphas, [RAIN_LEVELS[k].drops_per_mpx for k in (1, 2, 3)])),
            fall_m=float(np.interp(alpha, alphas, [RAIN_LEVELS[k].fall_m for k in (1, 2, 3)])),
        )
    a = base.alpha if alpha is None else float(alpha)
    b = base.beta if beta is None else float(beta)
    if not (math.isfinite(a) and a >= 0 and math.isfinite(b) and b >= 0):
        raise ValueError(f"rain alpha and beta must be finite and >= 0, got alpha={a}, beta={b}")
    return RainLevel(alpha=a, beta=b, drops_per_mpx=base.drops_per_mpx, fall_m=base.fall_m)


def rain_streaks(
    ell: np.ndarray, camera: dict, params: RainLevel, rng: np.random.Generator, angle_deg: float | None = None
) -> np.ndarray:
    """Rain-streak layer R in [0, 1], (H, W) float32, for ray distances ``ell``.

    Drops sit on fronto-parallel layers at RAIN_LAYER_DEPTHS z. On layer z a streak is a
    motion-blurred line of length fy·fall/z and width fx·D/z (anti-aliased, sub-pixel drops dimmed
    by their pixel coverage), brightness × exp(−α·z) (Hu et al.'s attenuation with distance); it is
    hidden where the scene is nearer than z. All streaks share a global wind angle (± a few degrees).
    Layers combine like light through a screen: R = 1 − Π(1 − R_z).
    """
    fx, fy, _, _ = check_camera(camera)
    if ell.ndim != 2:
        raise ValueError(f"ell (ray distances) must be an (H, W) array, got shape {ell.shape}")
    h, w = ell.shape
    if angle_deg is None:
        angle_deg = float(np.clip(rng.normal(0.0, 10.0), -25.0, 25.0))  # from vertical
    n_total = params.drops_per_mpx * h * w / 1e6
    keep = np.ones((h, w), np.float32)  # Π(1 − R_z)
    for z, share in zip(RAIN_LAYER_DEPTHS, RAIN_LAYER_SHARE):
        n = int(rng.poisson(n_total * share))
        length = fy * params.fall_m / z
        width_px = fx * DROP_DIAMETER_M / z
        gain = math.exp(-params.alpha * z) * min(1.0, width_px) * STREAK_PEAK
        if n == 0 or gain * 255 < 1:
            continue
        thickness = max(1, int(round(width_px * 0.5)))
        xs, ys = rng.uniform(0, w, n), rng.uniform(-0.5 * length, h + 0.5 * length, n)
        theta = np.deg2rad(angle_deg + rng.normal(0.0, 3.0, n))
        half = 0.5 * length * rng.uniform(0.7, 1.3, n)
        dx, dy = np.sin(theta) * half, np.cos(theta) * half
        value = rng.uniform(0.4, 1.0, n) * 255.0
        canvas = np.zeros((h, w), np.uint8)
        s = 16.0  # cv2 fixed-point shift 4 → sub-pixel end points
        p1 = np.stack([(xs - dx) * s, (ys - dy) * s], 1).astype(np.int64)
        p2 = np.stack([(xs + dx) * s, (ys + dy) * s], 1).astype(np.int64)
        for a, b, v in zip(p1.tolist(), p2.tolist(), value.tolist()):
            cv2.line(canvas, tuple(a), tuple(b), float(v), thickness, cv2.LINE_AA, 4)
        layer = canvas.astype(np.float32) * (gain / 255.0)
        if thickness > 1 or length > 4:
            layer = cv2.GaussianBlur(layer, (0, 0), 0.5)  # soften: drops are out of focus
        keep *= 1.0 - layer * (ell > z)
    return 1.0 - keep


def rain(
    image: np.ndarray,
    depth: np.ndarray | None,
    camera: dict,
    level: int | None = 2,
    *,
    alpha: float | None = None,
    beta: float | None = None,
    seed: int = 0,
    labels: np.ndarray | None = None,
    atmospheric=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
) -> np.ndarray:
    """Rain Cityscapes-style rain: ``I = T·(1 − R − A) + R + A0·A``; returns uint8 (H, W, 3).

    ``level`` 1..3 picks (α, β) ∈ {(0.01, 0.005), (0.02, 0.01), (0.03, 0.015)} and the streak density
    and length; explicit ``alpha``/``beta`` override it (with ``level=None`` the streaks follow α).
    A = 1 − exp(−β·ℓ) with ℓ the ray distance of the frame's depth (as for ``fog``, with ``labels``);
    A0 the dark-channel atmospheric light unless given.
    Deterministic per ``seed``.
    """
    check_image(image)
    check_camera(camera)
    params = _rain_level(level, alpha, beta)
    rng = np.random.default_rng(seed)
    ell = ray_distance(scene_depth(image.shape[:2], depth, labels, camera, max_depth)[0], camera)
    veil = 1.0 - np.exp(-np.float32(params.beta) * ell)  # A, (H, W)
    # R ≤ 1 − A keeps the weight of T non-negative; where fog dominates (far, sky) streaks fade,
    # as Hu et al.'s depth attenuation of R also makes them.
    streaks = np.minimum(rain_streaks(ell, camera, params, rng), 1.0 - veil)  # R, (H, W)
    light = _resolve_light(image, atmospheric)
    out = _blend(image, light, 1.0 - streaks - veil, veil)  # T·(1 − R − A) + A0·A
    out += cv2.merge([streaks * np.float32(255.0)] * 3)  # + R (white streaks)
    return _to_uint8(out)


# ---- augmentation ------------------------------------------------------------------------------
WEATHER_TYPES = ("fog", "rain")


def weather_augment(
    image: np.ndarray,
    depth: np.ndarray | None,
    camera: dict | None,
    rng: np.random.Generator,
    types: list[str],
    labels: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """Apply one of ``types`` (uniformly) at a random strength; returns (image, the type applied).

    fog: β ~ U(0.002, 0.03) on the cheap path (no guided-filter refinement); rain: level 1..3;
    a corruption name from cityseg.corruptions: severity 1..5. The depth is the frame's best
    (``cityseg.depth.scene_depth``): measured depth with its holes filled by label, the label-guided
    prior from ``labels`` (trainIds of the image's size) without depth, the flat-ground prior with
    neither; camera None → the typical Cityscapes camera scaled to the image.
    """
    check_image(image)
    if not types:
        raise ValueError("types must name at least one of 'fog', 'rain' or a corruption")
    unknown = [t for t in types if t not in WEATHER_TYPES and t not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown augmentation types {unknown}; choose from {list(WEATHER_TYPES) + sorted(CORRUPTIONS)}")
    h, w = image.shape[:2]
    name = types[int(rng.integers(len(types)))]
    if name in CORRUPTIONS:
        return corrupt(image, name, int(rng.integers(1, 6)), int(rng.integers(2**31 - 1))), name
    if camera is None:
        camera = default_camera(h, w)
    if name == "fog":
        beta = float(rng.uniform(*AUGMENT_BETA_RANGE))
        return fog(image, depth, camera, beta, labels=labels, refine=False), name
    level = int(rng.integers(1, 4))
    return rain(image, depth, camera, level, seed=int(rng.integers(2**31 - 1)), labels=labels), name
