"""Small helpers shared by the renderer: hashing noise, colour jitter, rotations, 2-D outlines, palettes."""

from __future__ import annotations

import math

import numpy as np


def _h2(i: np.ndarray, j: np.ndarray, s: float = 0.0) -> np.ndarray:
    """Deterministic hash of integer-valued lattice coordinates -> float32 in [0, 1)."""
    a = np.asarray(i).astype(np.int32).view(np.uint32) * np.uint32(73856093)
    a ^= np.asarray(j).astype(np.int32).view(np.uint32) * np.uint32(19349663)
    a ^= np.uint32(int(s * 83492791) & 0xFFFFFFFF)
    a ^= a >> np.uint32(13)
    a *= np.uint32(1274126177)
    a ^= a >> np.uint32(16)
    return (a & np.uint32(0xFFFF)).astype(np.float32) * np.float32(1.0 / 65536)


def _vnoise(x: np.ndarray, y: np.ndarray, s: float = 0.0) -> np.ndarray:
    """Smooth value noise in [0, 1) (bilinear over hashed lattice values)."""
    xi, yi = np.floor(x), np.floor(y)
    fx, fy = x - xi, y - yi
    fx = fx * fx * (3 - 2 * fx)
    fy = fy * fy * (3 - 2 * fy)
    a, b = _h2(xi, yi, s), _h2(xi + 1, yi, s)
    c, d = _h2(xi, yi + 1, s), _h2(xi + 1, yi + 1, s)
    return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy


def _wave(x: np.ndarray, y: np.ndarray, s: float = 0.0) -> np.ndarray:
    """Cheap smooth irregular pattern in [-1, 1] (product of two oblique sines; period a few units)."""
    return np.sin(x * 1.31 + y * 0.42 + s) * np.sin(y * 0.93 - x * 0.27 + 1.7 * s)


def _frac(x: np.ndarray) -> np.ndarray:
    """Fractional part."""
    return x - np.floor(x)


_RGB = np.dtype((np.void, 12))  # one float32 RGB triple as a single item: fast scatter of colours


def _put_rgb(img: np.ndarray, flat: np.ndarray, vals: np.ndarray) -> None:
    """img.reshape(-1, 3)[flat] = vals for a C-contiguous float32 (..., 3) image (3x faster)."""
    vals = np.ascontiguousarray(np.broadcast_to(np.asarray(vals, np.float32), (len(flat), 3)))
    img.reshape(-1, 3).view(_RGB).reshape(-1)[flat] = vals.view(_RGB).reshape(-1)


def _jit(rng: np.random.Generator, c, a: float) -> np.ndarray:
    """Colour ``c`` with uniform jitter of +-a/2 per channel and a shared brightness jitter."""
    r = rng.random(4)
    out = np.asarray(c, np.float64) * (1 + (r[0] - 0.5) * a / 100) + (r[1:] - 0.5) * a
    return np.minimum(np.maximum(out, 0.0), 255.0)


def _pick(rng: np.random.Generator, palette) -> np.ndarray:
    """A random entry of ``palette`` as a float array."""
    return np.asarray(palette[int(rng.integers(len(palette)))], np.float64)


def _rot(axis: str, a: float) -> np.ndarray:
    """Rotation matrix about the x, y or z axis."""
    c, s = math.cos(a), math.sin(a)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def _axes(yaw: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local (right, forward, up) axes of an object heading ``yaw`` (0 = +Y, pi/2 = -X)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array([c, s, 0.0]), np.array([-s, c, 0.0]), np.array([0.0, 0.0, 1.0])


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product of two 3-vectors (np.cross is slow for single vectors)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _unit(v: np.ndarray) -> np.ndarray:
    """Unit vector."""
    return v / (np.linalg.norm(v) + 1e-12)


_UNIT_CIRCLES = {n: np.column_stack([np.cos(np.arange(n) * 2 * np.pi / n), np.sin(np.arange(n) * 2 * np.pi / n)])
                 for n in range(3, 25)}


def _circle(n: int, r: float = 1.0, ry: float | None = None) -> np.ndarray:
    """Regular n-gon (CCW) of radius r (ry: vertical radius)."""
    return _UNIT_CIRCLES[n] * (r, r if ry is None else ry)


def _rect(w: float, h: float, y0: float = 0.0) -> np.ndarray:
    """Rectangle of width w and height h standing on y0 (2-D polygon)."""
    return np.array([[-w / 2, y0], [w / 2, y0], [w / 2, y0 + h], [-w / 2, y0 + h]])


# the world's (right, forward, up) axes: for boxes aligned with the street
_I3 = (np.array([1.0, 0, 0]), np.array([0.0, 1, 0]), np.array([0.0, 0, 1]))


# RGB palettes that objects pick their colours from (then jittered)
BUILDING_COLORS = [(200, 185, 160), (225, 215, 190), (205, 205, 198), (150, 150, 148), (190, 170, 130),
                   (215, 200, 140), (150, 85, 65), (120, 92, 72), (210, 172, 160), (170, 180, 190),
                   (190, 140, 85), (105, 104, 108), (232, 228, 218), (160, 120, 100), (180, 190, 170)]
WALL_COLORS = [(165, 165, 160), (140, 138, 132), (190, 180, 160), (150, 90, 70), (120, 118, 112),
               (210, 205, 195), (175, 160, 135), (100, 100, 98)]
CAR_COLORS = [(200, 200, 205), (30, 30, 35), (150, 152, 158), (235, 235, 235), (20, 40, 90), (150, 20, 25),
              (90, 95, 100), (60, 80, 120), (40, 70, 50), (180, 160, 120), (210, 120, 30), (95, 20, 30),
              (50, 50, 55), (120, 130, 140), (230, 200, 60)]
VEHICLE_COLORS = [(235, 235, 230), (225, 200, 40), (200, 40, 35), (40, 90, 160), (240, 240, 240),
                  (60, 140, 70), (230, 130, 40), (160, 160, 165), (30, 60, 120), (210, 210, 200)]
CLOTH_COLORS = [(30, 30, 35), (60, 60, 70), (40, 50, 90), (120, 30, 35), (200, 200, 195), (90, 80, 60),
                (150, 140, 120), (25, 60, 40), (180, 90, 40), (70, 110, 160), (210, 180, 60), (130, 60, 110),
                (20, 20, 22), (160, 40, 40), (100, 100, 105)]
PANTS_COLORS = [(35, 40, 60), (30, 30, 32), (60, 70, 100), (90, 85, 75), (140, 130, 110), (50, 50, 55)]
SKIN_COLORS = [(230, 190, 160), (200, 150, 120), (150, 100, 70), (100, 70, 50), (240, 205, 180)]
HAIR_COLORS = [(30, 25, 20), (80, 55, 35), (150, 120, 70), (200, 180, 130), (120, 120, 120), (60, 30, 20)]
GREEN_COLORS = [(70, 100, 45), (60, 90, 40), (85, 115, 50), (55, 80, 45), (95, 110, 55), (75, 95, 60),
                (110, 120, 60), (50, 75, 35)]
TERRAIN_COLORS = [(95, 125, 60), (120, 135, 70), (140, 140, 85), (85, 110, 55), (130, 120, 80),
                  (105, 130, 75)]
