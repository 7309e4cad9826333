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

import copy
import math
from dataclasses import dataclass

import cv2
import numpy as np

from cityseg.corruptions import CORRUPTIONS, check_image, corrupt

DEFAULT_MAX_DEPTH = 1000.0  # metres assigned to sky / beyond the horizon: t = exp(-β·1000) ≈ 0 for β ≥ 0.005
REF_WIDTH = 2048  # the Foggy Cityscapes guided-filter window (41) is defined at this width
AUGMENT_BETA_RANGE = (0.002, 0.03)

# Typical Cityscapes camera at 2048x1024 (values inside the ranges of the real camera/*.json files).
CITYSCAPES_CAMERA: dict = {
    "extrinsic": {"baseline": 0.209313, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": -0.02, "z": 1.22},
    "intrinsic": {"fx": 2262.52, "fy": 2265.30, "u0": 1096.98, "v0": 513.14},
}


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


# ---- camera ------------------------------------------------------------------------------------
def check_camera(camera: dict) -> tuple[float, float, float, float]:
    """Validate a Cityscapes camera dict; return (fx, fy, u0, v0)."""
    if not isinstance(camera, dict):
        raise ValueError(f"camera must be a dict with 'extrinsic' and 'intrinsic', got {type(camera).__name__}")
    for section, keys in (("intrinsic", ("fx", "fy", "u0", "v0")), ("extrinsic", ("pitch", "roll", "z"))):
        if not isinstance(camera.get(section), dict):
            raise ValueError(f"camera is missing the {section!r} section")
        for k in keys:
            v = camera[section].get(k)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"camera[{section!r}][{k!r}] must be a finite number, got {v!r}")
    i = camera["intrinsic"]
    if i["fx"] <= 0 or i["fy"] <= 0:
        raise ValueError(f"camera focal lengths must be positive, got fx={i['fx']}, fy={i['fy']}")
    return float(i["fx"]), float(i["fy"]), float(i["u0"]), float(i["v0"])


def scale_camera(camera: dict, sx: float, sy: float) -> dict:
    """Camera for an image resized by (sx, sy) = (new_w / old_w, new_h / old_h).

    Uses the pixel-centre convention: a centre at u maps to (u + 0.5)·sx − 0.5.
    Extrinsics are unchanged.
    """
    check_camera(camera)
    if sx <= 0 or sy <= 0:
        raise ValueError(f"scale factors must be positive, got sx={sx}, sy={sy}")
    out = copy.deepcopy(camera)
    i = out["intrinsic"]
    i["fx"], i["fy"] = i["fx"] * sx, i["fy"] * sy
    i["u0"], i["v0"] = (i["u0"] + 0.5) * sx - 0.5, (i["v0"] + 0.5) * sy - 0.5
    return out


def default_camera(height: int, width: int) -> dict:
    """The typical Cityscapes camera scaled to (height, width), for sources without camera files."""
    return scale_camera(CITYSCAPES_CAMERA, width / 2048.0, height / 1024.0)


def horizon_row(camera: dict) -> float:
    """Image row of the horizon of a flat ground plane (positive pitch = camera looks down)."""
    _, fy, _, v0 = check_camera(camera)
    return v0 - fy * math.tan(float(camera["extrinsic"]["pitch"]))


# ---- depth -------------------------------------------------------------------------------------
def _check_depth(depth: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth must be an (H, W) array, got shape {d.shape}")
    if shape is not None and d.shape != tuple(shape):
        raise ValueError(f"depth shape {d.shape} does not match image shape {tuple(shape)}")
    return d.astype(np.float32, copy=False)


def ray_distance(depth: np.ndarray, camera: dict) -> np.ndarray:
    """Distance along the camera ray (m) from z-depth: ℓ = z·sqrt(1 + ((u−u0)/fx)² + ((v−v0)/fy)²).

    For fx = fy this is the Foggy Cityscapes formula ℓ = z·sqrt(fx² + (u−u0)² + (v−v0)²)/fx; the
    per-axis form stays right for anisotropically resized images (e.g. 1024x2048 → 256x256).
    Unknown depth (0 / NaN) stays 0 / NaN.
    """
    fx, fy, u0, v0 = check_camera(camera)
    d = _check_depth(depth)
    h, w = d.shape
    x = (np.arange(w, dtype=np.float32) - u0) / fx  # (W,)
    y = (np.arange(h, dtype=np.float32) - v0) / fy  # (H,)
    scale = np.sqrt(1.0 + x[None, :] ** 2 + y[:, None] ** 2)  # (H, W)
    return (d * scale).astype(np.float32)


def fallback_depth(height: int, width: int, camera: dict, max_depth: float = DEFAULT_MAX_DEPTH) -> np.ndarray:
    """z-depth (m) of a flat ground plane seen from the camera's height and pitch (and roll).

    For images without disparity: pixels below the horizon hit the ground at z-depth
    ``h / (sin(pitch) + y·cos(pitch))`` (y = (v − v0)/fy, roll rotates (x, y) first); pixels on or
    above the horizon, or farther than ``max_depth``, get ``max_depth``.
    """
    fx, fy, u0, v0 = check_camera(camera)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if max_depth <= 0:
        raise ValueError(f"max_depth must be positive, got {max_depth}")
    cam_h = float(camera["extrinsic"]["z"])
    if cam_h <= 0:
        raise ValueError(f"camera['extrinsic']['z'] (camera height) must be positive, got {cam_h}")
    pitch, roll = float(camera["extrinsic"]["pitch"]), float(camera["extrinsic"]["roll"])
    x = (np.arange(width, dtype=np.float64) - u0) / fx
    y = (np.arange(height, dtype=np.float64) - v0) / fy
    # Downward image component after undoing the roll about the optical axis.
    y_down = y[:, None] * math.cos(roll) + x[None, :] * math.sin(roll)  # (H, W)
    down = math.sin(pitch) + y_down * math.cos(pitch)  # downward slope of the ray per unit z-depth
    with np.errstate(divide="ignore"):
        z = np.where(down > 0, cam_h / np.maximum(down, 1e-12), np.inf)
    return np.minimum(z, max_depth).astype(np.float32)


def _fill_along_rows_far(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid pixels with the farther of the nearest valid pixels left and right in the row.

    Stereo holes are mostly occlusions next to foreground objects, whose true depth is the
    background's: taking the farther neighbour is the usual occlusion fill (as in the KITTI devkit).
    Rows without any valid pixel stay NaN.
    """
    h, w = d.shape
    cols = np.arange(w)
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    dl = np.where(left >= 0, np.take_along_axis(d, np.clip(left, 0, w - 1), axis=1), np.nan)
    dr = np.where(right < w, np.take_along_axis(d, np.clip(right, 0, w - 1), axis=1), np.nan)
    with np.errstate(invalid="ignore"):
        filled = np.fmax(dl, dr)  # NaN only where both sides are missing
    return np.where(valid, d, filled)


# Widest left-border occlusion band filled from the right: Cityscapes' disparity reaches ~6% of
# the width for the nearest objects; sky runs in the top rows are much longer.
LEFT_BAND_FRAC = 0.08


def complete_depth(depth: np.ndarray, camera: dict | None = None, max_depth: float = DEFAULT_MAX_DEPTH) -> np.ndarray:
    """Fill unknown depth (0 / non-finite) so every pixel has a distance; output float32 in (0, max_depth].

    Simple and robust rather than stereo inpainting (Sakaridis et al. use SLIC-based inpainting):
    0. a short unknown run at the left border of a row (stereo occlusion) takes the first valid depth;
    1. unknown regions connected to the top border and above the horizon (image middle without a
       camera) are sky: ``max_depth``;
    2. other holes take the farther of the nearest valid depths left/right in their row (occlusion fill);
    3. anything left (rows with no valid pixel) takes the nearest valid depth in its column, else
       ``max_depth``. With no valid pixel at all, the flat-ground prior (camera given) or ``max_depth``.
    """
    d = _check_depth(depth)
    if max_depth <= 0:
        raise ValueError(f"max_depth must be positive, got {max_depth}")
    h, w = d.shape
    valid = np.isfinite(d) & (d > 0)
    out = np.where(valid, np.minimum(d, max_depth), np.nan).astype(np.float32)
    if valid.all():
        return out
    if not valid.any():
        if camera is not None:
            return fallback_depth(h, w, camera, max_depth)
        return np.full((h, w), max_depth, np.float32)

    # 0. Stereo occlusion band at the left border (the right camera does not see it): a short
    # leading run of unknown pixels continues the first valid surface of its row. Without this,
    # the band joins the sky component through the top rows and near objects get sky depth.
    first = np.argmax(valid, axis=1)  # (H,) first valid column (0 if none)
    rows = np.flatnonzero(valid.any(axis=1) & (first > 0) & (first <= int(np.ceil(LEFT_BAND_FRAC * w))))
    if rows.size:
        band = np.arange(w)[None, :] < first[rows, None]  # (R, W)
        fill = np.broadcast_to(out[rows, first[rows]][:, None], band.shape)
        out[rows] = np.where(band, fill, out[rows])
        valid[rows] |= band

    # 1. Sky: invalid components touching the top row, limited to rows above the horizon.
    invalid = ~valid
    n, labels = cv2.connectedComponents(invalid.astype(np.uint8), connectivity=4)
    touches_top = np.zeros(n, bool)
    touches_top[np.unique(labels[0][invalid[0]])] = True
    touches_top[0] = False  # label 0 = valid pixels
    limit = horizon_row(camera) if camera is not None else h / 2.0
    above = (np.arange(h) < limit)[:, None]
    sky = touches_top[labels] & above
    out[sky] = max_depth
    valid = valid | sky

    # 2. Row-wise occlusion fill, 3. column-wise nearest for rows that had nothing.
    out = _fill_along_rows_far(out, valid)
    still = ~np.isfinite(out)
    if still.any():
        out = _fill_along_rows_far(out.T.copy(), ~still.T).T
        out = np.where(np.isfinite(out), out, max_depth)
    return np.ascontiguousarray(out, dtype=np.float32)


def _blend(image: np.ndarray, light: np.ndarray, w_image: np.ndarray, w_light: np.ndarray) -> np.ndarray:
    """image·w_image + 255·light·w_light in float32 (H, W, 3); weights (H, W). cv2 ops: ~2x numpy."""
    w_i = cv2.merge([w_image.astype(np.float32)] * 3)
    w_l = cv2.merge([w_light.astype(np.float32) * np.float32(255.0 * c) for c in light])
    return cv2.add(cv2.multiply(image.astype(np.float32), w_i), w_l)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round to nearest (float32 (H, W, 3) → uint8)."""
    return np.clip(x, 0.0, 255.0, out=x).round(out=x).astype(np.uint8)


# ---- fog ---------------------------------------------------------------------------------------
def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide) with (2r+1)² box filters; returns float32 (H, W).

    Output q = mean(a)·I + mean(b) with a = cov(I, p)/(var(I) + eps), b = mean(p) − a·mean(I).
    """
    I = np.asarray(guide, np.float32)
    p = np.asarray(src, np.float32)
    if I.ndim != 2 or I.shape != p.shape:
        raise ValueError(f"guide and src must be 2-D arrays of one shape, got {I.shape} and {p.shape}")
    if radius < 0 or eps <= 0:
        raise ValueError(f"radius must be >= 0 and eps > 0, got radius={radius}, eps={eps}")
    k = (2 * int(radius) + 1,) * 2

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, k, normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_i, mean_p = box(I), box(p)
    var_i = box(I * I) - mean_i * mean_i
    cov_ip = box(I * p) - mean_i * mean_p
    a = cov_ip / (np.maximum(var_i, 0.0) + eps)
    b = mean_p - a * mean_i
    return box(a) * I + box(b)


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


def _prepare_depth(image: np.ndarray, depth: np.ndarray | None, camera: dict, max_depth: float) -> np.ndarray:
    """Completed z-depth for the image; the flat-ground prior when depth is None (callers log that)."""
    h, w = image.shape[:2]
    if depth is None:
        return fallback_depth(h, w, camera, max_depth)
    return complete_depth(_check_depth(depth, (h, w)), camera, max_depth)


def default_window(width: int) -> int:
    """Guided-filter window: 41 px at 2048 px width, scaled with width, odd, at least 3."""
    k = max(3, int(round(41 * width / REF_WIDTH)))
    return k if k % 2 == 1 else k + 1


def fog(
    image: np.ndarray,
    depth: np.ndarray | None,
    camera: dict,
    beta: float,
    *,
    refine: bool = True,
    window: int | None = None,
    eps: float = 1e-3,
    atmospheric=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
) -> np.ndarray:
    """Homogeneous fog by Koschmieder's law (Foggy Cityscapes); returns uint8 (H, W, 3).

    ``t = exp(−β·ℓ)`` per pixel from the completed depth; with ``refine`` the transmission is
    smoothed by the guided filter (window 41 at 2048 px, scaled with width; ε = 1e-3) guided by the
    grey clear image, which snaps depth edges to image edges. ``atmospheric`` (scalar or RGB in
    [0, 1]) overrides the dark-channel estimate. β = 0 returns the image unchanged.
    """
    check_image(image)
    check_camera(camera)
    if not math.isfinite(beta) or beta < 0:
        raise ValueError(f"beta must be a finite number >= 0 (m^-1), got {beta}")
    if beta == 0:
        return image.copy()
    ell = ray_distance(_prepare_depth(image, depth, camera, max_depth), camera)
    t = np.exp(-np.float32(beta) * ell)  # (H, W) float32
    if refine:
        k = default_window(image.shape[1]) if window is None else int(window)
        if k < 1:
            raise ValueError(f"window must be >= 1, got {k}")
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        t = np.clip(guided_filter(grey, t, k // 2, eps), 0.0, 1.0)
    light = _resolve_light(image, atmospheric)
    return _to_uint8(_blend(image, light, t, 1.0 - t))  # R·t + L·(1 − t)


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
    atmospheric=None,
    max_depth: float = DEFAULT_MAX_DEPTH,
) -> np.ndarray:
    """Rain Cityscapes-style rain: ``I = T·(1 − R − A) + R + A0·A``; returns uint8 (H, W, 3).

    ``level`` 1..3 picks (α, β) ∈ {(0.01, 0.005), (0.02, 0.01), (0.03, 0.015)} and the streak density
    and length; explicit ``alpha``/``beta`` override it (with ``level=None`` the streaks follow α).
    A = 1 − exp(−β·ℓ) with ℓ the ray distance; A0 the dark-channel atmospheric light unless given.
    Deterministic per ``seed``.
    """
    check_image(image)
    check_camera(camera)
    params = _rain_level(level, alpha, beta)
    rng = np.random.default_rng(seed)
    ell = ray_distance(_prepare_depth(image, depth, camera, max_depth), camera)
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
) -> tuple[np.ndarray, str]:
    """Apply one of ``types`` (uniformly) at a random strength; returns (image, the type applied).

    fog: β ~ U(0.002, 0.03) on the cheap path (no guided-filter refinement); rain: level 1..3;
    a corruption name from cityseg.corruptions: severity 1..5. Depth None → flat-ground prior;
    camera None → the typical Cityscapes camera scaled to the image.
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
    if depth is None:
        depth = fallback_depth(h, w, camera)
    if name == "fog":
        beta = float(rng.uniform(*AUGMENT_BETA_RANGE))
        return fog(image, depth, camera, beta, refine=False), name
    level = int(rng.integers(1, 4))
    return rain(image, depth, camera, level, seed=int(rng.integers(2**31 - 1))), name
