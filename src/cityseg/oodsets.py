"""Out-of-distribution image sets (images only, no labels) for calibrating and testing OOD detection.

* Far-OOD: images that are not driving scenes at all: crops of scikit-learn's bundled sample photos,
  procedural textures (value noise, Perlin noise, stripes, checkerboards, marble), pure noise,
  document-like pages (text lines, tables) and flat-colour geometric drawings.
* Near-OOD: street-like SynthCity scenes that break the training distribution (night, tunnel,
  off-road, unseen objects, a different camera), from `cityseg.synthcity.render_scene`.

Every image comes from its own generator ``np.random.default_rng([seed, split, group, i])``, so
a set is identical whatever the worker count, and val and test never share a stream.
Users with real OOD data (WildDash, ACDC, COCO...) list it with `collect_user_ood`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from cityseg.io import DataError, atomic_dir, link_or_copy, read_image, write_json, write_png
from cityseg.oodlayout import GROUPS, IMAGE_EXTENSIONS, SPLITS, images_under, list_ood_images
from cityseg.parallel import pmap
from cityseg.progress import progress as progress_bar

FAR_KINDS = (
    "photo",
    "value_noise",
    "perlin",
    "stripes",
    "checkerboard",
    "marble",
    "pure_noise",
    "document",
    "shapes",
)
NEAR_SHIFTS = ("night", "tunnel", "offroad", "novel_objects", "wide", "tilted")
_ENVIRONMENTS = ("night", "tunnel", "offroad")
_CAMERAS = ("wide", "tilted")
_SAMPLE_PHOTOS = ("china.jpg", "flower.jpg")
_FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_PLAIN,
)


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _check_size(height: int, width: int) -> None:
    if int(height) < 8 or int(width) < 8:
        raise ValueError(f"height/width: must be >= 8 pixels, got {height}x{width}")


def _random_color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def _colorize(field: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Map a scalar field in [0, 1] (H, W) to RGB through a random 2-4 colour gradient."""
    n = int(rng.integers(2, 5))
    stops = np.linspace(0.0, 1.0, n)
    colors = rng.integers(0, 256, size=(n, 3)).astype(np.float64)
    flat = field.reshape(-1)
    rgb = np.stack([np.interp(flat, stops, colors[:, c]) for c in range(3)], axis=1)
    return rgb.reshape(*field.shape, 3).round().clip(0, 255).astype(np.uint8)


def _normalize(field: np.ndarray) -> np.ndarray:
    lo, hi = float(field.min()), float(field.max())
    return (field - lo) / (hi - lo) if hi > lo else np.zeros_like(field)


def value_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 5) -> np.ndarray:
    """Fractal value noise in [0, 1] (H, W): bicubic-upsampled random grids, halving amplitude per octave."""
    base = int(rng.integers(2, 9))
    out = np.zeros((height, width), np.float64)
    amp = 1.0
    for o in range(octaves):
        cells = base * 2**o
        gh, gw = max(2, cells * height // max(height, width)), max(2, cells * width // max(height, width))
        grid = rng.random((gh, gw)).astype(np.float32)
        out += amp * cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
        amp *= 0.5
    return _normalize(out)


def perlin_noise(rng: np.random.Generator, height: int, width: int, cells: tuple[int, int]) -> np.ndarray:
    """One octave of 2-D Perlin gradient noise (H, W), roughly in [-0.7, 0.7]; ``cells`` = (rows, cols)."""
    gy, gx = cells
    angles = rng.uniform(0.0, 2.0 * np.pi, size=(gy + 1, gx + 1))
    gvec = np.stack([np.cos(angles), np.sin(angles)], axis=-1)  # (gy+1, gx+1, 2) unit gradients
    ys = np.linspace(0.0, gy, height, endpoint=False)[:, None]
    xs = np.linspace(0.0, gx, width, endpoint=False)[None, :]
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = ys - y0, xs - x0

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gvec[y0 + dy, x0 + dx]  # (H, W, 2) by broadcasting the index arrays
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    fade = lambda t: t * t * t * (t * (t * 6 - 15) + 10)  # noqa: E731  (Perlin's quintic smoothstep)
    u, v = fade(fx), fade(fy)
    top = corner(0, 0) + u * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + u * (corner(1, 1) - corner(1, 0))
    return top + v * (bottom - top)


def fbm(rng: np.random.Generator, height: int, width: int, octaves: int = 5, base: int = 3) -> np.ndarray:
    """Fractal Brownian motion of Perlin noise, normalised to [0, 1] (H, W).

    Computed at most 512 px on the long side and upsampled: the field is smooth at that scale,
    and full-resolution Perlin costs seconds per 1024x2048 image.
    """
    scale = min(1.0, 512 / max(height, width))
    ph, pw = max(2, round(height * scale)), max(2, round(width * scale))
    out = np.zeros((ph, pw), np.float64)
    aspect = width / height
    for o in range(octaves):
        rows = base * 2**o
        cols = max(1, int(round(rows * aspect)))
        out += 0.5**o * perlin_noise(rng, ph, pw, (rows, cols))
    if (ph, pw) != (height, width):
        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_CUBIC)
    return _normalize(out)


def _coords(height: int, width: int, angle: float) -> np.ndarray:
    """Pixel coordinate along direction ``angle`` (H, W), in units of the image diagonal."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return (xs * np.cos(angle) + ys * np.sin(angle)) / np.hypot(height, width)


# --------------------------------------------------------------------------------------------
# Far-OOD generators, one per kind
# --------------------------------------------------------------------------------------------
def _photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    from sklearn.datasets import load_sample_image  # bundled with scikit-learn, no download

    src = load_sample_image(_SAMPLE_PHOTOS[int(rng.integers(len(_SAMPLE_PHOTOS)))])
    sh, sw = src.shape[:2]
    # Crop with the target aspect ratio (no distortion), covering 15-100% of the largest such crop.
    aspect = w / h
    ch_max = min(sh, int(sw / aspect))
    ch = max(8, int(ch_max * np.sqrt(rng.uniform(0.15, 1.0))))
    cw = max(8, min(sw, int(round(ch * aspect))))
    y = int(rng.integers(0, sh - ch + 1))
    x = int(rng.integers(0, sw - cw + 1))
    img = src[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.25:
        img = img[::-1]
    img = cv2.resize(np.ascontiguousarray(img), (w, h), interpolation=cv2.INTER_LINEAR)
    # Colour shift in HSV: hue rotation, saturation and brightness scaling.
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float64)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(0, 180)) % 180
    hsv[..., 1] *= rng.uniform(0.5, 1.5)
    hsv[..., 2] *= rng.uniform(0.6, 1.3)
    img = cv2.cvtColor(hsv.clip(0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.3:
        img = img[..., rng.permutation(3)]
    if rng.random() < 0.1:
        img = 255 - img
    return np.ascontiguousarray(img)


def _value_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return _colorize(value_noise(rng, h, w, octaves=int(rng.integers(3, 7))), rng)


def _perlin(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    return _colorize(fbm(rng, h, w, octaves=int(rng.integers(3, 6)), base=int(rng.integers(2, 6))), rng)


def _stripes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    t = _coords(h, w, rng.uniform(0, np.pi)) * rng.uniform(4, 60)
    wave = np.sin(2 * np.pi * t)
    if rng.random() < 0.5:  # hard-edged bands instead of a sine
        wave = np.sign(wave)
    return _colorize((wave + 1) / 2, rng)


def _checkerboard(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    angle = rng.uniform(0, np.pi / 2) if rng.random() < 0.5 else 0.0
    n = rng.uniform(4, 40)  # squares along the diagonal
    u = np.floor(_coords(h, w, angle) * n)
    v = np.floor(_coords(h, w, angle + np.pi / 2) * n)
    board = ((u + v) % 2).astype(np.float64)
    a, b = np.array(_random_color(rng)), np.array(_random_color(rng))
    return (a + board[..., None] * (b - a)).astype(np.uint8)


def _marble(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    t = _coords(h, w, rng.uniform(0, np.pi)) * rng.uniform(3, 12)
    turb = fbm(rng, h, w, octaves=5, base=int(rng.integers(2, 5)))
    veins = np.abs(np.sin(2 * np.pi * (t + rng.uniform(2, 6) * turb)))
    field = veins ** rng.uniform(0.3, 1.0)  # sharpen the dark veins
    light = np.array(_random_color(rng, 170, 256), np.float64)
    dark = np.array(_random_color(rng, 0, 120), np.float64)
    return (dark + field[..., None] * (light - dark)).round().clip(0, 255).astype(np.uint8)


def _pure_noise(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    mode = int(rng.integers(4))
    if mode == 0:  # uniform RGB
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    if mode == 1:  # Gaussian around a random grey level
        img = rng.normal(rng.uniform(60, 200), rng.uniform(10, 70), size=(h, w, 3))
        return img.round().clip(0, 255).astype(np.uint8)
    if mode == 2:  # salt and pepper on a flat colour
        img = np.empty((h, w, 3), np.uint8)
        img[:] = _random_color(rng)
        u = rng.random((h, w))
        p = rng.uniform(0.05, 0.4)
        img[u < p / 2] = 0
        img[u > 1 - p / 2] = 255
        return img
    # Blocky noise: a coarse random grid upsampled without interpolation.
    block = int(rng.integers(4, 64))  # block side in pixels; at least 2x2 blocks on small images
    bh, bw = max(2, h // block), max(2, w // block)
    small = rng.integers(0, 256, size=(bh, bw, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def _words(rng: np.random.Generator, n: int) -> str:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return " ".join("".join(rng.choice(letters, size=int(rng.integers(1, 10)))) for _ in range(n))


def _put_text(img: np.ndarray, text: str, org: tuple[int, int], font: int, px: float, color, thick: int) -> int:
    """Draw ``text`` with a cap height of about ``px`` pixels; return its width in pixels."""
    (_, base_h), _ = cv2.getTextSize("A", font, 1.0, 1)
    scale = max(0.2, px / max(base_h, 1))
    cv2.putText(img, text, org, font, scale, color, thick, cv2.LINE_AA)
    (tw, _), _ = cv2.getTextSize(text, font, scale, thick)
    return tw


def _document(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    paper = np.array(_random_color(rng, 225, 256))
    img = np.empty((h, w, 3), np.uint8)
    img[:] = paper
    ink = _random_color(rng, 0, 60) if rng.random() < 0.7 else (20, 40, int(rng.integers(120, 200)))
    font = int(_FONTS[int(rng.integers(len(_FONTS)))])
    margin_x, margin_y = int(w * rng.uniform(0.04, 0.12)), int(h * rng.uniform(0.04, 0.1))
    line_h = max(6, int(h * rng.uniform(0.025, 0.07)))
    px = line_h * 0.55
    thick = max(1, int(round(px / 12)))
    y = margin_y + line_h
    # Title line, larger.
    _put_text(img, _words(rng, int(rng.integers(1, 5))).title(), (margin_x, y), font, px * 1.6, ink, thick + 1)
    y += int(line_h * 1.8)
    table_at = int(rng.integers(2, 8)) if rng.random() < 0.5 else -1
    para_line = 0
    while y < h - margin_y:
        if para_line == table_at:
            rows, cols = int(rng.integers(2, 7)), int(rng.integers(2, 6))
            row_h = int(line_h * 1.3)
            x1 = w - margin_x
            bottom = min(h - margin_y, y + rows * row_h)
            for r in range(rows + 1):
                yy = min(y + r * row_h, bottom)
                cv2.line(img, (margin_x, yy), (x1, yy), ink, thick)
            col_w = (x1 - margin_x) / cols
            for c in range(cols + 1):
                xx = int(margin_x + c * col_w)
                cv2.line(img, (xx, y), (xx, bottom), ink, thick)
            for r in range(rows):
                ty = y + r * row_h + int(row_h * 0.75)
                if ty > bottom:
                    break
                for c in range(cols):
                    cell = str(int(rng.integers(0, 10000))) if rng.random() < 0.6 else _words(rng, 1)
                    _put_text(img, cell, (int(margin_x + c * col_w + 4), ty), font, px * 0.8, ink, thick)
            y = bottom + line_h * 2
        else:
            text = _words(rng, int(rng.integers(3, 14)))
            # Wrap: trim words until the line fits inside the margins.
            while text and _text_width(text, font, px, thick) > w - 2 * margin_x:
                text = text.rsplit(" ", 1)[0] if " " in text else text[:-1]
            if rng.random() < 0.15:  # paragraph break
                y += line_h
            else:
                _put_text(img, text, (margin_x, y), font, px, ink, thick)
                y += line_h
        para_line += 1
    if rng.random() < 0.5:  # scanner look: slight blur and sensor noise
        img = cv2.GaussianBlur(img, (3, 3), 0)
        img = (img + rng.normal(0, 4, img.shape)).round().clip(0, 255).astype(np.uint8)
    return img


def _text_width(text: str, font: int, px: float, thick: int) -> int:
    (_, base_h), _ = cv2.getTextSize("A", font, 1.0, 1)
    (tw, _), _ = cv2.getTextSize(text, font, max(0.2, px / max(base_h, 1)), thick)
    return tw


def _shapes(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = np.empty((h, w, 3), np.uint8)
    img[:] = _random_color(rng)
    s = min(h, w)
    for _ in range(int(rng.integers(3, 25))):
        color = _random_color(rng)
        kind = int(rng.integers(5))
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        size = int(s * rng.uniform(0.04, 0.4))
        if kind == 0:
            cv2.circle(img, (cx, cy), size, color, -1, cv2.LINE_AA)
        elif kind == 1:
            cv2.rectangle(img, (cx - size, cy - size // 2), (cx + size, cy + size // 2), color, -1)
        elif kind == 2:
            n = int(rng.integers(3, 8))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = size * rng.uniform(0.5, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1).astype(np.int32)
            cv2.fillPoly(img, [pts], color, cv2.LINE_AA)
        elif kind == 3:
            axes = (size, max(1, int(size * rng.uniform(0.2, 1.0))))
            cv2.ellipse(img, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, color, -1, cv2.LINE_AA)
        else:
            x2, y2 = int(rng.integers(0, w)), int(rng.integers(0, h))
            cv2.line(img, (cx, cy), (x2, y2), color, max(1, int(s * rng.uniform(0.005, 0.05))), cv2.LINE_AA)
    return img


_FAR_GENERATORS = {
    "photo": _photo,
    "value_noise": _value_noise,
    "perlin": _perlin,
    "stripes": _stripes,
    "checkerboard": _checkerboard,
    "marble": _marble,
    "pure_noise": _pure_noise,
    "document": _document,
    "shapes": _shapes,
}


def far_ood_image(rng: np.random.Generator, height: int, width: int, kind: str | None = None) -> np.ndarray:
    """A far-OOD RGB image (H, W, 3) uint8 of ``kind`` (one of FAR_KINDS; random when None)."""
    _check_size(height, width)
    if kind is None:
        kind = FAR_KINDS[int(rng.integers(len(FAR_KINDS)))]
    if kind not in _FAR_GENERATORS:
        raise ValueError(f"kind: unknown far-OOD kind {kind!r}; choose one of {FAR_KINDS}")
    img = _FAR_GENERATORS[kind](rng, int(height), int(width))
    assert img.shape == (height, width, 3) and img.dtype == np.uint8, (kind, img.shape, img.dtype)
    return img


# --------------------------------------------------------------------------------------------
# Near-OOD from SynthCity
# --------------------------------------------------------------------------------------------
def near_ood_options(rng: np.random.Generator) -> Any:
    """Random non-default `cityseg.synthcity.SceneOptions`: one primary shift from NEAR_SHIFTS,
    sometimes combined with a second one (each other factor with probability 0.25)."""
    from cityseg.synthcity import SceneOptions  # lazy: synthcity is an optional, heavier module

    primary = NEAR_SHIFTS[int(rng.integers(len(NEAR_SHIFTS)))]
    extra_env, extra_novel, extra_cam = rng.random(3) < 0.25
    env_pick = _ENVIRONMENTS[int(rng.integers(len(_ENVIRONMENTS)))]
    cam_pick = _CAMERAS[int(rng.integers(len(_CAMERAS)))]
    environment = primary if primary in _ENVIRONMENTS else (env_pick if extra_env else "street")
    camera = primary if primary in _CAMERAS else (cam_pick if extra_cam else "default")
    novel = primary == "novel_objects" or bool(extra_novel)
    return SceneOptions(environment=environment, novel_objects=novel, camera=camera)


def near_ood_kind(options: Any) -> str:
    """File-name tag for SceneOptions, e.g. "night", "tunnel-novel-wide"."""
    parts = []
    if options.environment != "street":
        parts.append(options.environment)
    if options.novel_objects:
        parts.append("novel")
    if options.camera != "default":
        parts.append(options.camera)
    return "-".join(parts) or "street"


def near_ood_image(rng: np.random.Generator, height: int, width: int, options: Any = None) -> np.ndarray:
    """A near-OOD street scene (H, W, 3) uint8 rendered by SynthCity with non-default options
    (random from `near_ood_options` when ``options`` is None)."""
    from cityseg.synthcity import render_scene

    _check_size(height, width)
    if options is None:
        options = near_ood_options(rng)
    img = np.asarray(render_scene(rng, int(height), int(width), options).image)
    if img.shape != (height, width, 3) or img.dtype != np.uint8:
        raise ValueError(f"render_scene returned {img.shape} {img.dtype}, expected ({height}, {width}, 3) uint8")
    return img


# --------------------------------------------------------------------------------------------
# Writing sets to disk
# --------------------------------------------------------------------------------------------
def _make_one(task: tuple[int, int, int, int, tuple[tuple[int, int], ...], str]) -> dict[str, Any]:
    """Generate and write one image; everything random comes from its own seed sequence."""
    seed, split_idx, group_idx, i, sizes, out_dir = task
    rng = np.random.default_rng([seed, split_idx, group_idx, i])
    h, w = sizes[int(rng.integers(len(sizes)))]
    if GROUPS[group_idx] == "near":
        options = near_ood_options(rng)
        kind = near_ood_kind(options)
        img = near_ood_image(rng, h, w, options)
    else:
        kind = FAR_KINDS[int(rng.integers(len(FAR_KINDS)))]
        img = far_ood_image(rng, h, w, kind)
    rel = f"{SPLITS[split_idx]}/{GROUPS[group_idx]}/{kind}_{i:04d}.png"
    write_png(Path(out_dir) / rel, img)
    return {"file": rel, "split": SPLITS[split_idx], "group": GROUPS[group_idx], "kind": kind, "height": h, "width": w}


def _check_sizes(sizes: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    try:
        out = tuple((int(h), int(w)) for h, w in sizes)
    except (TypeError, ValueError):
        raise ValueError(f"sizes: expected a list of [height, width] pairs, got {sizes!r}") from None
    if not out:
        raise ValueError("sizes: empty; give at least one [height, width]")
    for h, w in out:
        _check_size(h, w)
    return out


def write_oodsets(
    root: str | os.PathLike,
    seed: int,
    n_val: int,
    n_test: int,
    sizes: Sequence[Sequence[int]],
    workers: int = 0,
    groups: Sequence[str] = GROUPS,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``root/{val,test}/{near,far}/<kind>_<i:04d>.png`` plus ``root/manifest.json``.

    ``n_val`` / ``n_test`` images per group and split, each at a size drawn from ``sizes``
    ([height, width] pairs). The whole folder is replaced atomically. Returns flat counts
    {"val_near", "val_far", "test_near", "test_far", "total"} (0 for groups not requested).
    """

    sizes_t = _check_sizes(sizes)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    for name, n in (("n_val", n_val), ("n_test", n_test)):
        if int(n) < 0:
            raise ValueError(f"{name}: must be >= 0, got {n}")
    unknown = set(groups) - set(GROUPS)
    if unknown or not groups:
        raise ValueError(f"groups: must be a non-empty subset of {GROUPS}, got {list(groups)}")

    root = Path(root)
    counts = {f"{s}_{g}": 0 for s in SPLITS for g in GROUPS}
    with atomic_dir(root) as tmp:
        for s in SPLITS:
            for g in GROUPS:
                (tmp / s / g).mkdir(parents=True, exist_ok=True)
        # Group index is fixed by name, so a far-only run draws the same far images as a full run.
        tasks = [
            (int(seed), si, GROUPS.index(g), i, sizes_t, str(tmp))
            for si, n in enumerate((int(n_val), int(n_test)))
            for g in groups
            for i in range(n)
        ]
        records = list(pmap(_make_one, tasks, workers, "oodsets", progress=progress))
        for rec in records:
            counts[f"{rec['split']}_{rec['group']}"] += 1
        counts["total"] = len(records)
        write_json(tmp / "manifest.json", {"seed": int(seed), "counts": counts, "images": records})
    return counts


def collect_user_ood(folder: str | os.PathLike) -> list[Path]:
    """Every .png/.jpg/.jpeg image under ``folder`` (recursive, sorted), e.g. a WildDash or COCO copy."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"{folder}: OOD image folder does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder}: expected a folder of OOD images, got a file")
    files = images_under(folder)
    if not files:
        raise DataError(f"{folder}: no {'/'.join(IMAGE_EXTENSIONS)} images found (searched recursively)")
    return files


def import_user_ood(user_root: str | os.PathLike, out: str | os.PathLike, progress: bool = True) -> dict[str, int]:
    """Link (or copy) the user's ``<user_root>/{val,test}/{near,far}/`` images into ``out`` (same layout).

    Every image is decoded once, so a corrupt file fails here, naming it. Sub-folders are kept (no
    name clashes). ``out`` is replaced atomically and gets a ``manifest.json`` like `write_oodsets`.
    Returns {"val_near", "val_far", "test_near", "test_far", "total"}.
    """
    user_root = Path(user_root)
    if not user_root.is_dir():
        raise DataError(f"{user_root}: ood.user_root is not a folder; expected {user_root}/{{val,test}}/{{near,far}}/ with images")
    listed: dict[tuple[str, str], tuple[Path, list[Path]]] = {}
    for split in SPLITS:
        for group in GROUPS:
            folder = user_root / split / group
            if not folder.is_dir():
                raise DataError(f"{folder}: folder missing; ood.user_root needs {{val,test}}/{{near,far}}/ sub-folders of images")
            listed[(split, group)] = (folder, collect_user_ood(folder))
    counts = {f"{s}_{g}": len(files) for (s, g), (_, files) in listed.items()}
    counts["total"] = sum(counts.values())
    records = []
    with atomic_dir(out) as tmp, progress_bar(total=counts["total"], desc="oodsets (user)", unit="img", enabled=progress) as bar:
        for (split, group), (folder, files) in listed.items():
            (tmp / split / group).mkdir(parents=True, exist_ok=True)
            for src in files:
                h, w = read_image(src).shape[:2]
                rel = Path(split) / group / src.relative_to(folder)
                link_or_copy(src, tmp / rel)
                records.append({"file": rel.as_posix(), "split": split, "group": group, "kind": "user", "height": h, "width": w})
                bar.update()
        write_json(tmp / "manifest.json", {"source": "user", "user_root": str(user_root), "counts": counts, "images": records})
    return counts

def ood_sample_grid(root: str | os.PathLike, path: str | os.PathLike, n: int = 4) -> None:
    """A grid of the first ``n`` images of each OOD folder (rows: val/test x near/far)."""
    from cityseg.plots import plt, save_figure

    listed = list_ood_images(root)
    keys = [f"{g}_{s}" for s in SPLITS for g in GROUPS]
    fig, axes = plt.subplots(len(keys), n, figsize=(2.6 * n, 1.6 * len(keys)), squeeze=False)
    for row, key in zip(axes, keys):
        # Generated names are "<kind>_<i>.png", sorted by kind: show the first image of each kind first.
        kinds: dict[str, list[Path]] = {}
        for p in listed[key]:
            kinds.setdefault(p.stem.rsplit("_", 1)[0], []).append(p)
        picked = [ps[0] for ps in kinds.values()][:n]
        picked += [p for p in listed[key] if p not in picked][: n - len(picked)]
        for j, ax in enumerate(row):
            ax.set_axis_off()
            if j < len(picked):
                p = picked[j]
                ax.imshow(read_image(p))
                ax.set_title(p.stem[:28], fontsize=7)
        row[0].text(-0.05, 0.5, key.replace("_", " "), transform=row[0].transAxes, rotation=90,
                    ha="right", va="center", fontsize=9)
    save_figure(fig, path)
