"""SynthCity: procedurally rendered street scenes written in the exact Cityscapes layout.

The project's embedded default dataset: a fresh clone runs end to end without real Cityscapes.
Every scene is ray-cast/rasterised in perspective from a pinhole camera with height, pitch, yaw
and roll (the Cityscapes camera model), so labelIds, instanceIds, depth, disparity and the camera
JSON are exactly consistent with the pixels of the photo:

* the ground (road, sidewalk, parking, rail track, terrain, ...) is a per-pixel ray/plane
  intersection with two planes (road level and curb level) and lateral bands;
* everything else is a list of planar polygons (faces of boxes, prisms and billboards) rasterised
  with ``cv2.fillPoly`` into a mask, with the exact per-pixel depth of the polygon's plane and a
  z-buffer; label, instance and colour are written from the same mask, so they never disagree;
* lighting (sun, ambient, cast shadows on the ground, street lamps at night), haze, exposure,
  noise and blur are applied to the photo only.

World frame: X right, Y forward (along the street), Z up, metres; the camera is at (0, 0, z).
"""

from __future__ import annotations

import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from tqdm import tqdm

from cityseg import labels
from cityseg.config import SynthCityConfig
from cityseg.io import atomic_dir

# --------------------------------------------------------------------------------------------
# Label ids (from the official table, never typed as numbers)
# --------------------------------------------------------------------------------------------
_ID = labels.NAME_TO_ID
EGO, STATIC, DYNAMIC, GROUND = _ID["ego vehicle"], _ID["static"], _ID["dynamic"], _ID["ground"]
ROAD, SIDEWALK, PARKING, RAIL = _ID["road"], _ID["sidewalk"], _ID["parking"], _ID["rail track"]
BUILDING, WALL, FENCE, GUARD_RAIL = _ID["building"], _ID["wall"], _ID["fence"], _ID["guard rail"]
BRIDGE, TUNNEL, POLE = _ID["bridge"], _ID["tunnel"], _ID["pole"]
TLIGHT, TSIGN, VEGETATION, TERRAIN, SKY = (_ID["traffic light"], _ID["traffic sign"], _ID["vegetation"],
                                           _ID["terrain"], _ID["sky"])
PERSON, RIDER, CAR, TRUCK, BUS = _ID["person"], _ID["rider"], _ID["car"], _ID["truck"], _ID["bus"]
CARAVAN, TRAILER, TRAIN, MOTORCYCLE, BICYCLE = (_ID["caravan"], _ID["trailer"], _ID["train"],
                                                _ID["motorcycle"], _ID["bicycle"])

SPLITS = ("train", "val", "test")
# Frames are spread over the cities in blocks; names are sorted, so sorted file names follow the
# generation order (frame i of a split is scene i).
CITIES: dict[str, tuple[str, ...]] = {
    "train": ("synthbergen", "synthdorf", "synthhaven"),
    "val": ("valby", "valstad"),
    "test": ("testburg", "testdal"),
}
ENVIRONMENTS = ("street", "night", "tunnel", "offroad")
CAMERAS = ("default", "wide", "tilted")


@dataclass
class SceneOptions:
    """Knobs for near-out-of-distribution scenes; the defaults give a normal daytime street."""

    environment: str = "street"  # street | night | tunnel | offroad
    novel_objects: bool = False  # objects never seen in training on the road (label static/dynamic)
    camera: str = "default"  # default | wide (much shorter focal length) | tilted (large roll/pitch)

    def __post_init__(self):
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"environment: expected one of {ENVIRONMENTS}, got {self.environment!r}")
        if self.camera not in CAMERAS:
            raise ValueError(f"camera: expected one of {CAMERAS}, got {self.camera!r}")
        if not isinstance(self.novel_objects, (bool, np.bool_)):
            raise ValueError(f"novel_objects: expected a bool, got {self.novel_objects!r}")


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes label ids
    instance_ids: np.ndarray  # (H, W) int32: id*1000+k for instance classes, plain id otherwise
    depth: np.ndarray  # (H, W) float32 z-depth (m) along the optical axis; inf for sky
    camera: dict  # Cityscapes camera JSON for this image size


# --------------------------------------------------------------------------------------------
# Small helpers: hashing noise, colours, rotations
# --------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------
# Camera
# --------------------------------------------------------------------------------------------
@dataclass
class _Cam:
    H: int
    W: int
    fx: float
    fy: float
    u0: float
    v0: float
    C: np.ndarray  # (3,) camera centre, world
    R: np.ndarray  # (3, 3) camera->world; camera axes x right, y down, z forward
    xn: np.ndarray  # (W,) normalised x of pixel centres
    yn: np.ndarray  # (H,) normalised y of pixel centres
    near: float = 0.3

    def rays(self) -> np.ndarray:
        """(H, W, 3) world directions whose camera z-component is 1 (so t = z-depth)."""
        r = self.R.astype(np.float32)
        xn, yn = self.xn.astype(np.float32), self.yn.astype(np.float32)
        out = np.empty((self.H, self.W, 3), np.float32)
        for k in range(3):
            out[..., k] = r[k, 0] * xn[None, :] + r[k, 1] * yn[:, None] + r[k, 2]
        return out


def _make_camera(rng: np.random.Generator, H: int, W: int, opts: SceneOptions) -> tuple[dict, _Cam, float]:
    """Sample a Cityscapes-like camera; returns (json dict, camera, heading of the car on the road)."""
    s = W / 2048.0
    fx = rng.uniform(2262, 2268) * s
    fy = rng.uniform(2225, 2265) * s
    u0 = rng.uniform(1050, 1097) * s
    v0 = rng.uniform(513, 519) * H / 1024.0
    z = float(np.clip(rng.normal(1.24, 0.1), 1.1, 1.6))
    pitch = float(np.clip(rng.normal(0.045, 0.015), 0.0, 0.08))
    yaw = float(np.clip(rng.normal(0.0, 0.008), -0.02, 0.02))
    roll = float(rng.normal(0.0, 0.004))
    if opts.camera == "wide":
        k = rng.uniform(0.42, 0.55)  # a much shorter lens
        fx, fy = fx * k, fy * k
    elif opts.camera == "tilted":
        roll = float(rng.choice([-1, 1]) * rng.uniform(0.12, 0.3))
        pitch = float(rng.choice([rng.uniform(-0.12, -0.05), rng.uniform(0.13, 0.25)]))
    heading = float(rng.normal(0.0, 0.02))  # car vs street direction (not part of the camera JSON)
    # render with exactly the values written to the JSON
    fx, fy, u0, v0 = round(fx, 4), round(fy, 4), round(u0, 4), round(v0, 4)
    z, pitch, yaw, roll = round(z, 6), round(pitch, 6), round(yaw, 6), round(roll, 6)
    # camera -> world: base axes (x right, y down, z fwd) -> (X, -Z, Y), then roll, pitch (down +), yaw (left +)
    base = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    Rm = _rot("z", yaw + heading) @ _rot("x", -pitch) @ _rot("y", roll) @ base
    cam = _Cam(H, W, fx, fy, u0, v0, np.array([0.0, 0.0, z]), Rm,
               (np.arange(W) - u0) / fx, (np.arange(H) - v0) / fy)
    camera = {
        "extrinsic": {"baseline": round(float(rng.uniform(0.209, 0.222)), 6), "pitch": pitch, "roll": roll,
                      "x": 1.7, "y": 0.1, "yaw": yaw, "z": z},
        "intrinsic": {"fx": fx, "fy": fy, "u0": u0, "v0": v0},
    }
    return camera, cam, heading


# --------------------------------------------------------------------------------------------
# Polygons, textures and the scene builder
# --------------------------------------------------------------------------------------------
Tex = Callable[..., tuple[np.ndarray, np.ndarray | None]]


class _Poly:
    """A planar polygon to rasterise: world vertices (N, 3), plane normal, label and shading."""

    __slots__ = ("pts", "normal", "label", "inst", "color", "tex", "tp", "origin", "eu", "ev", "fw", "fh",
                 "ndotl", "ground")


@dataclass
class _Light:
    sun: np.ndarray  # unit vector towards the sun
    amb: float  # ambient light
    kd: float  # direct (sun) light
    shadow: float  # fraction of the direct light removed in cast shadows
    night: bool
    tunnel: bool
    sky_top: np.ndarray
    sky_hor: np.ndarray
    haze: float  # visibility distance (m) of the aerial-perspective haze
    clouds: float


class _Builder:
    """Collects polygons, cast-shadow outlines and lamps for one scene."""

    def __init__(self, cam: _Cam, light: _Light, rng: np.random.Generator):
        self.cam, self.light, self.rng = cam, light, rng
        self.polys: list[_Poly] = []
        self.shadows: list[np.ndarray] = []
        self.lamps: list[tuple[np.ndarray, np.ndarray, float, float]] = []
        self._k: dict[int, int] = {}
        self.night = light.night
        self.tunnel_end: float | None = None  # set by the tunnel layout: beyond it is daylight
        self._hex: list[tuple] = []  # boxes recorded by hexa(), expanded by finish()

    # -- bookkeeping ---------------------------------------------------------------------
    def instance(self, label: int) -> int:
        """Next instance id of ``label``: id*1000+k for classes with instances, else the plain id."""
        if label not in labels.HAS_INSTANCES:
            return label
        k = self._k.get(label, 0)
        self._k[label] = k + 1
        return label * 1000 + k

    def visible(self, center, radius: float, min_px: float = 0.7) -> bool:
        """Cheap object-level culling: in front of the camera, inside the view, not sub-pixel."""
        cam = self.cam
        pc = (np.asarray(center, np.float64) - cam.C) @ cam.R
        z = pc[2]
        if z < -radius:
            return False
        if z - radius <= cam.near:
            return True
        f = max(cam.fx, cam.fy)
        rp = f * radius / (z - radius)
        if f * radius / z < min_px:
            return False
        u, v = cam.fx * pc[0] / z + cam.u0, cam.fy * pc[1] / z + cam.v0
        return not (u + rp < 0 or u - rp > cam.W or v + rp < 0 or v - rp > cam.H)

    def facing(self, pos) -> tuple[np.ndarray, np.ndarray]:
        """Horizontal (right, normal) axes of a billboard at ``pos`` turned towards the camera."""
        d = self.cam.C - np.asarray(pos, np.float64)
        d[2] = 0
        n = _unit(d) if np.linalg.norm(d) > 1e-6 else np.array([0.0, -1.0, 0.0])
        return np.array([-n[1], n[0], 0.0]), n

    # -- primitives ----------------------------------------------------------------------
    def face(self, pts, label: int, inst: int, color, tex: Tex | None = None, tp: dict | None = None,
             frame=None, two_sided: bool = False, ground: bool = False, hint=None, ndotl: float | None = None,
             normal: np.ndarray | None = None):
        """Add a planar polygon (world vertices) unless it faces away from the camera.

        ``frame`` = (origin, e_u, e_v, width, height) of the texture coordinates; ``hint`` orients
        the normal (outwards); ``ground`` marks surfaces that receive cast shadows.
        """
        pts = np.asarray(pts, np.float64)
        m = len(pts)
        if normal is not None:
            a, c = normal, None
        elif m == 4:  # cross product of the diagonals: the plane normal of any planar quad
            a, c = pts[2] - pts[0], pts[3] - pts[1]
        else:  # Newell's method
            nxt = np.concatenate((pts[1:], pts[:1]))
            d, sm = pts - nxt, pts + nxt
            a = np.array([(d[:, 1] * sm[:, 2]).sum(), (d[:, 2] * sm[:, 0]).sum(), (d[:, 0] * sm[:, 1]).sum()])
            c = None
        n = a if c is None else np.array([a[1] * c[2] - a[2] * c[1], a[2] * c[0] - a[0] * c[2],
                                          a[0] * c[1] - a[1] * c[0]])
        ln = math.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
        if ln < 1e-12:
            return
        n /= ln
        if hint is not None and n @ hint < 0:
            pts, n = pts[::-1].copy(), -n
        facing = n @ (self.cam.C - pts[0])
        if facing <= 0 and not two_sided:
            return
        p = _Poly()
        p.pts, p.normal, p.label, p.inst = pts, n, label, inst
        p.color = np.asarray(color, np.float32)
        p.tex, p.tp = tex, tp
        if tex is not None:
            if frame is None:
                eu = _unit(pts[1] - pts[0])
                ev = np.array([n[1] * eu[2] - n[2] * eu[1], n[2] * eu[0] - n[0] * eu[2], n[0] * eu[1] - n[1] * eu[0]])
                rel = pts - pts[0]
                frame = (pts[0], eu, ev, float(np.ptp(rel @ eu)), float(np.ptp(rel @ ev)))
            p.origin, p.eu, p.ev, p.fw, p.fh = frame
        else:
            p.origin = p.eu = p.ev = None
            p.fw = p.fh = 0.0
        if ndotl is None:
            nn = n if facing > 0 else -n
            ndotl = max(0.0, float(nn @ self.light.sun))
        p.ndotl, p.ground = ndotl, ground
        self.polys.append(p)

    def ppm(self, point) -> float:
        """Pixels per metre at ``point`` (large when it is at or behind the camera)."""
        z = float((np.asarray(point, np.float64) - self.cam.C) @ self.cam.R[:, 2])
        return max(self.cam.fx, self.cam.fy) / z if z > self.cam.near else 1e6

    # corner order: bottom (-,-) (+,-) (+,+) (-,+), then the same on top
    _HEX_NAMES = ("front", "back", "right", "left", "top", "bottom")
    _HEX_IDX = np.array([(2, 3, 7, 6), (0, 1, 5, 4), (1, 2, 6, 5), (3, 0, 4, 7), (4, 5, 6, 7), (3, 2, 1, 0)])
    _HEX_EU_AXIS = np.array([0, 0, 1, 1, 0, 0])  # texture u axis of each face: 0 = right, 1 = forward
    _HEX_EU_SIGN = np.array([-1.0, 1, 1, -1, 1, 1])

    def hexa(self, base, axes, bot, top, z1: float, label: int, inst: int, color, tex: Tex | None = None,
             tp: dict | None = None, faces: dict | None = None, shadow: bool = True, skip=()):
        """Box or frustum: bottom rectangle ``bot`` (sx, sy) at ``base``, top (sx, sy, dy) at height z1.

        ``faces`` maps front/back/right/left/top/bottom to (tex, tp, color) overrides (None = default).
        Boxes are only recorded here; ``finish`` turns them into the faces that face the camera,
        all at once (much cheaper than one box at a time).
        """
        self._hex.append((base, axes, (bot[0] / 2, bot[1] / 2, top[0] / 2, top[1] / 2, top[2], z1),
                          label, inst, color, tex, tp, faces, shadow, skip))

    def finish(self) -> None:
        """Expand the recorded boxes into polygons (visible faces only) and shadow outlines."""
        hx, self._hex = self._hex, []
        if not hx:
            return
        n = len(hx)
        base = np.array([h[0] for h in hx], np.float64)  # (n, 3)
        A = np.array([h[1] for h in hx], np.float64)  # (n, 3, 3): rows right, forward, up
        bx, by, tx, ty, dy, z1 = np.array([h[2] for h in hx], np.float64).T
        cx = np.stack([-bx, bx, bx, -bx, -tx, tx, tx, -tx], 1)
        cy = np.stack([-by, -by, by, by, dy - ty, dy - ty, dy + ty, dy + ty], 1)
        cz = np.zeros((n, 8))
        cz[:, 4:] = z1[:, None]
        P = (base[:, None, :] + cx[..., None] * A[:, None, 0, :] + cy[..., None] * A[:, None, 1, :]
             + cz[..., None] * A[:, None, 2, :])  # (n, 8, 3)
        Q = P[:, self._HEX_IDX]  # (n, 6, 4, 3)
        nrm = np.cross(Q[:, :, 2] - Q[:, :, 0], Q[:, :, 3] - Q[:, :, 1])
        ln = np.sqrt((nrm * nrm).sum(-1))
        ok = ln > 1e-12
        nrm = nrm / np.where(ok, ln, 1.0)[..., None]
        vis = ok & ((nrm * (self.cam.C - Q[:, :, 0])).sum(-1) > 1e-9)
        ndotl = np.maximum((nrm * self.light.sun).sum(-1), 0.0)
        EU = A[:, self._HEX_EU_AXIS, :] * self._HEX_EU_SIGN[None, :, None]  # (n, 6, 3)
        EV = np.cross(nrm, EU)
        rel = Q - Q[:, :, :1]
        ru, rv = (rel * EU[:, :, None]).sum(-1), (rel * EV[:, :, None]).sum(-1)
        fw, fh = ru.max(-1) - ru.min(-1), rv.max(-1) - rv.min(-1)
        for i, h in enumerate(hx):
            if h[9]:
                self.shadows.append(P[i])
        names = self._HEX_NAMES
        for i, f in zip(*np.nonzero(vis)):
            (_, _, _, label, inst, color, tex, tp, faces, _, skip) = hx[i]
            name = names[f]
            if name in skip:
                continue
            ftex, ftp, fcol = faces.get(name, (tex, tp, color)) if faces else (tex, tp, color)
            p = _Poly()
            p.pts, p.normal, p.label, p.inst = Q[i, f], nrm[i, f], label, inst
            p.color = np.asarray(color if fcol is None else fcol, np.float32)
            p.tex, p.tp = ftex, ftp
            if ftex is not None:
                p.origin, p.eu, p.ev, p.fw, p.fh = Q[i, f, 0], EU[i, f], EV[i, f], float(fw[i, f]), float(fh[i, f])
            else:
                p.origin = p.eu = p.ev = None
                p.fw = p.fh = 0.0
            p.ndotl, p.ground = float(ndotl[i, f]), False
            self.polys.append(p)

    def box(self, base, axes, size, label: int, inst: int, color, **kw):
        """Axis-aligned (in ``axes``) box of ``size`` (sx, sy, sz) standing on ``base``."""
        self.hexa(base, axes, size[:2], (size[0], size[1], 0.0), size[2], label, inst, color, **kw)

    def rod(self, p0, p1, thick: float, side, label: int, inst: int, color, shadow: bool = False):
        """Thin square bar from p0 to p1; ``side`` is any vector not parallel to the bar."""
        p0, p1 = np.asarray(p0, np.float64), np.asarray(p1, np.float64)
        az = p1 - p0
        length = np.linalg.norm(az)
        if length < 1e-6:
            return
        az = az / length
        side = np.asarray(side, np.float64)
        ax = _unit(side - az * (az @ side))
        ay = _cross(az, ax)
        self.box(p0, (ax, ay, az), (thick, thick, length), label, inst, color, shadow=shadow, skip=("bottom",))

    def prism(self, center, axis, e1, e2, poly2d, thick: float, label: int, inst: int, color,
              cap_tex: Tex | None = None, cap_tp: dict | None = None, side_color=None, shadow: bool = True):
        """Extrude a convex 2-D polygon (coords along e1, e2; CCW about ``axis``) by ``thick``."""
        center = np.asarray(center, np.float64)
        flat = center + poly2d[:, :1] * e1 + poly2d[:, 1:2] * e2
        front, back = flat + axis * thick / 2, flat - axis * thick / 2
        self.face(front, label, inst, color, cap_tex, cap_tp, (center + axis * thick / 2, e1, e2, 0.0, 0.0),
                  hint=axis)
        self.face(back[::-1], label, inst, color, hint=-axis)  # plain back (e.g. the back of a sign)
        sc = color if side_color is None else side_color
        m = len(poly2d)
        for k in range(m):
            q = [back[k], back[(k + 1) % m], front[(k + 1) % m], front[k]]
            mid = (flat[k] + flat[(k + 1) % m]) / 2 - center
            self.face(q, label, inst, sc, hint=mid)
        if shadow:
            self.shadows.append(np.vstack([front, back]))

    def billboard(self, center, poly2d, label: int, inst: int, color, tex: Tex | None = None,
                  tp: dict | None = None, shadow: bool = True, ndotl: float | None = None):
        """Camera-facing vertical polygon (coords: right, up) around ``center``."""
        center = np.asarray(center, np.float64)
        e1, n = self.facing(center)
        e2 = np.array([0.0, 0.0, 1.0])
        pts = center + poly2d[:, :1] * e1 + poly2d[:, 1:2] * e2
        if ndotl is None:
            ndotl = 0.35 + 0.4 * max(0.0, float(n @ self.light.sun))
        self.face(pts, label, inst, color, tex, tp, (center, e1, e2, 0.0, 0.0), two_sided=True, ndotl=ndotl,
                  normal=n)
        if shadow:
            # a billboard is thin: its shadow is cast by a disc of the same size
            e1b = np.array([-e1[1], e1[0], 0.0])
            self.shadows.append(np.vstack([pts, center + poly2d[:, :1] * e1b + poly2d[:, 1:2] * e2]))


_UNIT_CIRCLES = {n: np.column_stack([np.cos(np.arange(n) * 2 * np.pi / n), np.sin(np.arange(n) * 2 * np.pi / n)])
                 for n in range(3, 25)}


def _circle(n: int, r: float = 1.0, ry: float | None = None) -> np.ndarray:
    """Regular n-gon (CCW) of radius r (ry: vertical radius)."""
    return _UNIT_CIRCLES[n] * (r, r if ry is None else ry)


def _rect(w: float, h: float, y0: float = 0.0) -> np.ndarray:
    """Rectangle of width w and height h standing on y0 (2-D polygon)."""
    return np.array([[-w / 2, y0], [w / 2, y0], [w / 2, y0 + h], [-w / 2, y0 + h]])


# --------------------------------------------------------------------------------------------
# Textures: f(u, v, colour, params, face width, face height) -> (colours (N, 3), emission (N,) | None)
# u, v are metres in the face's own frame, so patterns are perspective-correct.
# --------------------------------------------------------------------------------------------
def _t_plain(u, v, c, p, fw, fh):
    s, a = p.get("s", 0.4), p.get("a", 0.14)
    sd = p.get("seed", 0.0)
    n = 0.6 * _h2(np.floor(u / s), np.floor(v / s), sd) + 0.4 * _h2(np.floor(u / 2.5), np.floor(v / 2.5), sd + 3)
    return c[None, :] * (1 - a / 2 + a * n)[:, None], None


def _t_facade(u, v, c, p, fw, fh):
    seed = p["seed"]
    k = 0.9 + 0.14 * _h2(np.floor(u / 2.7), np.floor(v / 2.3), seed)  # weathered panels
    if p["brick"]:
        row = np.floor(v / 0.08)
        bu = u / 0.25 + 0.5 * (row % 2)
        mort = (v / 0.08 - row < 0.17) | (_frac(bu) < 0.07)
        k = np.where(mort, 1.18, k * (0.82 + 0.3 * _h2(np.floor(bu), row, seed)))
    col = c[None, :] * k[:, None]
    g, flh, bw, ww, wh, sill = p["g"], p["fh"], p["bw"], p["ww"], p["wh"], p["sill"]
    top = fh - p["cornice"]
    nb = max(1, int((fw - 2 * p["margin"]) // bw))
    m0 = (fw - nb * bw) / 2
    bay = np.floor((u - m0) / bw)
    bu = u - m0 - bay * bw - (bw - ww) / 2
    inbay = (bay >= 0) & (bay < nb)
    fl = np.floor((v - g) / flh)
    fv = v - g - fl * flh
    upper = (v >= g) & (g + (fl + 1) * flh <= top + 0.2)
    fr = 0.09
    frame = inbay & upper & (bu >= -fr) & (bu < ww + fr) & (fv >= sill - fr) & (fv < sill + wh + fr)
    glass = inbay & upper & (bu >= 0) & (bu < ww) & (fv >= sill) & (fv < sill + wh)
    if p["shop"]:
        gframe = inbay & (v >= 0.35) & (v < g - 0.45) & (bu >= -0.35 - fr) & (bu < ww + 0.35 + fr)
        gglass = inbay & (v >= 0.35 + fr) & (v < g - 0.45 - fr) & (bu >= -0.35) & (bu < ww + 0.35)
    else:
        door = _h2(bay, bay * 0 + 7.0, seed) < 0.18
        gframe = inbay & (((v >= 0.9 - fr) & (v < 0.9 + wh + fr)) | door & (v < 2.3)) & (bu >= -fr) & (bu < ww + fr)
        gglass = inbay & (((v >= 0.9) & (v < 0.9 + wh)) | door & (v < 2.2)) & (bu >= 0) & (bu < ww)
    frame |= gframe
    glass |= gglass
    col[frame] = p["frame"]
    if glass.any():
        fl_g = np.where(v < g, -1.0, fl)[glass]
        hv = _h2(bay[glass], fl_g, seed + 1.0)
        vv = np.where(v < g, v / max(g, 1e-3), fv / wh)[glass]
        gl = p["glass"][None, :] * (0.55 + 0.55 * hv[:, None] + 0.35 * vv[:, None])
        mull = np.abs(bu[glass] - ww / 2) < 0.035
        gl[mull] = p["frame"]
        col[glass] = gl
    band = upper & (fv < 0.14) & ~frame
    col[band] *= 0.9
    col[v >= top] *= 0.72
    emis = None
    if p.get("lit", 0) > 0 and glass.any():
        emis = np.zeros(len(u), np.float32)
        on = glass & (_h2(bay, np.where(v < g, -1.0, fl), seed + 9.0) < p["lit"])
        col[on] = np.array([255, 215, 140]) * (0.5 + 0.5 * _h2(bay[on], fl[on], seed + 3.0))[:, None]
        emis[on] = 1.0
    return col, emis


def _t_brick(u, v, c, p, fw, fh):
    row = np.floor(v / 0.075)
    bu = u / 0.24 + 0.5 * (row % 2)
    mort = (v / 0.075 - row < 0.15) | (_frac(bu) < 0.06)
    k = np.where(mort, 1.2, 0.8 + 0.35 * _h2(np.floor(bu), row, p.get("seed", 0.0)))
    col = c[None, :] * k[:, None]
    col[v > fh - 0.08] *= 0.8  # coping
    return col, None


def _t_concrete(u, v, c, p, fw, fh):
    sd = p.get("seed", 0.0)
    k = 0.85 + 0.14 * _h2(np.floor(u / 1.3), np.floor(v / 1.1), sd)
    k += 0.08 * _h2(np.floor(u / 0.05), np.floor(v / 0.05), sd)
    seam = _frac(u / p.get("panel", 2.5)) < 0.012
    k = np.where(seam, 0.7, k)
    k = k * np.where(v < 0.3, 0.85, 1.0)  # dirt at the bottom
    return c[None, :] * k[:, None], None


def _t_foliage(u, v, c, p, fw, fh):
    s = p.get("seed", 0.0)
    r = p.get("r", 1.0)
    n = 0.5 * _h2(np.floor(u / 0.45), np.floor(v / 0.4), s) + 0.5 * _h2(np.floor(u / 0.09), np.floor(v / 0.09), s + 1)
    if p.get("blob"):  # a crown blob: lit from above
        shade = 0.78 + 0.3 * np.clip(v / (2 * r), -0.5, 0.5)
    else:
        shade = 0.8 + 0.25 * np.clip(v / max(fh, 0.1), 0, 1)
    k = (0.5 + 0.95 * n) * shade
    return c[None, :] * k[:, None], None


def _t_bark(u, v, c, p, fw, fh):
    k = 0.75 + 0.4 * _h2(np.floor(u / 0.04), np.floor(v / 0.25), p.get("seed", 0.0))
    return c[None, :] * k[:, None], None


def _t_fence(u, v, c, p, fw, fh):
    kind, bg = p["kind"], p["bg"]
    n = _h2(np.floor(u / 0.3), np.floor(v / 0.3), p.get("seed", 0.0))
    rails = (v > fh - 0.07) | (v < 0.1) | (np.abs(v - fh * 0.5) < 0.03)
    post = _frac(u / 2.5) < 0.03
    if kind == 0:  # vertical bars
        on = (_frac(u / 0.13) < 0.32) | rails | post
    elif kind == 1:  # wire mesh
        on = (_frac((u + v) / 0.1) < 0.16) | (_frac((u - v) / 0.1) < 0.16) | rails | post
    else:  # wooden planks
        on = (_frac(u / 0.15) < 0.84) | rails
    gn = 0.6 + 0.6 * _h2(np.floor(u / 0.35), np.floor(v / 0.35), 5.0)
    col = np.where(on[:, None], c[None, :] * (0.85 + 0.3 * n)[:, None], bg[None, :] * gn[:, None])
    return col, None


def _t_glass(u, v, c, p, fw, fh):
    b = p.get("pillar", 0.09)
    edge = (u < b) | (u > fw - b) | (v < 0.05) | (v > fh - 0.05)
    g = p["glass"][None, :] * (0.45 + 0.7 * np.clip(v / max(fh, 1e-3), 0, 1))[:, None]
    g = g + (9 + 9 * np.sin(u * 2.3 + v * 4.1))[:, None]  # reflection streaks
    col = np.where(edge[:, None], c[None, :], g)
    emis = None
    if p.get("lit"):
        emis = np.where(edge, 0.0, 0.6).astype(np.float32)
        col = np.where(edge[:, None], col, np.array([220.0, 200, 150])[None, :] * 0.6)
    return col, emis


def _t_vend(u, v, c, p, fw, fh):
    """Front/back of a vehicle body: lights, plate, bumper, grille."""
    front = p["front"]
    lw = min(0.32, fw * 0.17)
    lv0, lv1 = fh - p.get("lh", 0.26), fh - 0.06
    light = (((u > 0.05) & (u < 0.05 + lw)) | ((u < fw - 0.05) & (u > fw - 0.05 - lw))) & (v >= lv0) & (v < lv1)
    plate = (np.abs(u - fw / 2) < 0.26) & (v >= 0.12) & (v < 0.24)
    bumper = v < 0.14
    col = np.repeat(c[None, :], len(u), 0)
    col[bumper] = np.array([40.0, 40, 42])
    if front:
        grille = (np.abs(u - fw / 2) < fw * 0.24) & (v >= lv0) & (v < lv1)
        col[grille] = np.array([30.0, 30, 32])
        col[light] = np.array([235.0, 235, 225])
    else:
        col[light] = np.array([190.0, 20, 20])
    col[plate] = np.array([235.0, 235, 235])
    emis = None
    if p.get("night"):
        emis = np.zeros(len(u), np.float32)
        emis[light] = 2.5 if front else 1.5
        if not front:
            col[light] = np.array([255.0, 30, 20])
    return col, emis


def _t_vside(u, v, c, p, fw, fh):
    col = np.repeat(c[None, :], len(u), 0) * (0.92 + 0.12 * (v / max(fh, 1e-3)))[:, None]
    trim = v < 0.1
    seam = (np.abs(u - fw * 0.42) < 0.012) | (np.abs(u - fw * 0.66) < 0.012)
    col[trim] = np.array([35.0, 35, 38])
    col[seam & ~trim] *= 0.6
    return col, None


def _t_wheel(u, v, c, p, fw, fh):
    r = np.sqrt(u * u + v * v) / p["r"]
    ang = np.arctan2(v, u)
    tyre = r > 0.64
    col = np.empty((len(u), 3))
    col[:] = p["rim"]
    spoke = _frac(ang * p.get("spokes", 5) / (2 * np.pi)) < 0.5
    col[~tyre & ~spoke & (r > 0.25)] *= 0.45
    col[tyre] = np.array([26.0, 26, 28])
    if p.get("bike"):
        hole = (r < 0.86) & (r > 0.12)
        col[hole] = p["bg"]
    return col, None


def _t_sign(u, v, c, p, fw, fh):
    shape, r = p["shape"], p["r"]
    if shape == "circle":
        d = r - np.sqrt(u * u + v * v)
    elif shape == "tri":
        d = r / 2 - np.max(np.stack([u * math.cos(a) + v * math.sin(a) for a in
                                     (-np.pi / 2, np.pi / 6, 5 * np.pi / 6)]), axis=0)
    elif shape == "diamond":
        d = (r - np.abs(u) - np.abs(v)) * 0.7071
    else:
        d = np.minimum(p["w"] / 2 - np.abs(u), p["h"] / 2 - np.abs(v))
    border = d < p["b"] * r
    col = np.empty((len(u), 3))
    col[:] = p["inner"]
    col[border] = p["border"]
    sym = p.get("symbol", 0)
    if sym == 1:  # bar
        col[(np.abs(v) < 0.12 * r) & (np.abs(u) < 0.55 * r)] = p["sym"]
    elif sym == 2:  # vertical arrow-ish
        shaft = (np.abs(u) < 0.1 * r) & (np.abs(v) < 0.5 * r)
        head = (np.abs(u) < 0.3 * r - (v - 0.15 * r)) & (v > 0.15 * r) & (v < 0.45 * r)
        col[shaft | head] = p["sym"]
    elif sym == 3:  # digits-like blocks
        col[(np.abs(v) < 0.3 * r) & (np.abs(u) < 0.45 * r) & (_frac(u / (0.22 * r)) < 0.6)] = p["sym"]
    return col, None


def _t_tlight(u, v, c, p, fw, fh):
    n = p["n"]
    rad = 0.3 * fw
    col = np.repeat(c[None, :], len(u), 0)
    emis = np.zeros(len(u), np.float32)
    lamp_cols = [(40, 235, 90), (255, 190, 20), (255, 40, 25)] if n == 3 else [(40, 235, 90), (255, 40, 25)]
    for k in range(n):
        cv_ = fh * (k + 0.5) / n
        disc = (u - fw / 2) ** 2 + (v - cv_) ** 2 < rad * rad
        if k == p["on"]:
            col[disc] = np.array(lamp_cols[k], np.float64)
            emis[disc] = 1.6
        else:
            col[disc] = np.array(lamp_cols[k], np.float64) * 0.18 + 15
    return col, emis


def _t_coach(u, v, c, p, fw, fh):
    """Side of a bus/tram/train: window band with pillars, doors, a stripe."""
    w0, w1, pp = p["w0"], fh - p["w1"], p["pp"]
    win = (v >= w0) & (v < w1) & (_frac(u / pp) * pp > 0.14) & (u > 0.3) & (u < fw - 0.3)
    door = np.zeros(len(u), bool)
    for dc in p["doors"]:
        door |= (np.abs(u - dc * fw) < 0.6) & (v < w1) & (v > 0.15)
    col = np.repeat(c[None, :], len(u), 0)
    stripe = (v > w0 - 0.38) & (v < w0 - 0.14)
    col[stripe] = p["stripe"]
    glass = win | door
    ug, vg = u[glass], v[glass]
    g = p["glass"][None, :] * (0.5 + 0.5 * (vg / fh))[:, None] + (8 + 8 * np.sin(ug * 2.9 + vg * 3.7))[:, None]
    col[glass] = g
    col[v < 0.12] *= 0.5
    emis = None
    if p.get("night"):
        emis = np.where(glass, 0.8, 0.0).astype(np.float32)
        col[glass] = np.array([230.0, 220, 180]) * 0.7
    return col, emis


def _t_coach_front(u, v, c, p, fw, fh):
    col = np.repeat(c[None, :], len(u), 0)
    ws = (v > p["w0"]) & (v < fh - 0.5) & (u > 0.12) & (u < fw - 0.12)
    disp = (v >= fh - 0.45) & (v < fh - 0.12) & (u > 0.3) & (u < fw - 0.3)
    col[ws] = p["glass"][None, :] * (0.5 + 0.5 * (v[ws] / fh))[:, None]
    col[disp] = np.array([25.0, 25, 25])
    txt = disp & (_h2(np.floor(u / 0.07), np.floor(v / 0.07), 3.0) < 0.4)
    col[txt] = np.array([255.0, 160, 30])
    light = (v > 0.3) & (v < 0.55) & ((u < 0.45) | (u > fw - 0.45))
    col[light] = np.array([240.0, 240, 230]) if p["front"] else np.array([200.0, 30, 25])
    emis = np.zeros(len(u), np.float32)
    emis[txt] = 1.2
    if p.get("night"):
        emis[light] = 2.0
    return col, emis


def _t_head(u, v, c, p, fw, fh):
    col = np.repeat(c[None, :], len(u), 0)
    hair = v > fh * p.get("hair", 0.7)
    col[hair] = p["hc"]
    return col, None


def _t_split(u, v, c, p, fw, fh):
    """Two colours split at height v (trousers / shirt of a distant person)."""
    return np.where((v < p["v"])[:, None], p["lo"][None, :], c[None, :]), None


def _t_poster(u, v, c, p, fw, fh):
    cell = _h2(np.floor(u / 0.7), np.floor(v / 0.9), p.get("seed", 0.0))
    pal = np.array([(220, 60, 40), (40, 90, 180), (240, 220, 60), (240, 240, 240), (30, 30, 30), (60, 160, 80)],
                   np.float64)
    col = pal[(cell * len(pal)).astype(int) % len(pal)]
    top = v > fh - 0.3
    col[top] = c
    return col, None


def _t_tunnel(u, v, c, p, fw, fh):
    tiles = v < p.get("tile_h", 0.0)
    k = 0.85 + 0.15 * _h2(np.floor(u / 1.5), np.floor(v / 1.5), 2.0)
    col = c[None, :] * k[:, None]
    if tiles.any():
        grid = (_frac(u[tiles] / 0.3) < 0.06) | (_frac(v[tiles] / 0.3) < 0.06)
        t = np.array([200.0, 205, 200]) * np.where(grid, 0.75, 1.0)[:, None]
        col[tiles] = t
    emis = None
    if p.get("lamps"):
        lamp = (np.abs(v - p["lamp_v"]) < 0.12) & (_frac(u / p["lamp_pp"]) < p["lamp_on"])
        col[lamp] = p["lamp_col"]
        emis = np.where(lamp, 2.0, 0.0).astype(np.float32)
    return col, emis


def _t_lamp(u, v, c, p, fw, fh):
    col = np.repeat(c[None, :], len(u), 0)
    emis = None
    if p.get("night"):
        glow = v < fh * 0.45
        col[glow] = p["lc"]
        emis = np.where(glow, 2.2, 0.0).astype(np.float32)
    return col, emis


def _t_novel(u, v, c, p, fw, fh):
    """Bold patterns for never-seen objects: spots, stripes or checkers."""
    kind = p["kind"]
    if kind == 0:
        on = _h2(np.floor(u / 0.25), np.floor(v / 0.25), p["seed"]) < 0.35
    elif kind == 1:
        on = _frac((u + v) / 0.3) < 0.5
    else:
        on = (np.floor(u / 0.2) + np.floor(v / 0.2)) % 2 == 0
    return np.where(on[:, None], p["c2"][None, :], c[None, :]), None


# --------------------------------------------------------------------------------------------
# Rasterisation
# --------------------------------------------------------------------------------------------
@dataclass
class _Canvas:
    z: np.ndarray
    label: np.ndarray
    inst: np.ndarray
    alb: np.ndarray
    ndl: np.ndarray
    emis: np.ndarray
    gnd: np.ndarray

    @staticmethod
    def empty(H: int, W: int) -> "_Canvas":
        return _Canvas(np.full((H, W), np.inf, np.float32), np.zeros((H, W), np.uint8),
                       np.zeros((H, W), np.int32), np.zeros((H, W, 3), np.float32),
                       np.zeros((H, W), np.float32), np.zeros((H, W), np.float32), np.zeros((H, W), bool))


def _clip_near(P: np.ndarray, near: float) -> np.ndarray | None:
    """Sutherland-Hodgman clip of a camera-space polygon against z > near."""
    inside = P[:, 2] > near
    if inside.all():
        return P
    if not inside.any():
        return None
    out = []
    n = len(P)
    for i in range(n):
        a, b = P[i], P[(i + 1) % n]
        ia, ib = inside[i], inside[(i + 1) % n]
        if ia:
            out.append(a)
        if ia != ib:
            out.append(a + (near - a[2]) / (b[2] - a[2]) * (b - a))
    return np.array(out) if len(out) >= 3 else None


def _project(cam: _Cam, Pc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (u, v) of camera-space points."""
    return cam.fx * Pc[:, 0] / Pc[:, 2] + cam.u0, cam.fy * Pc[:, 1] / Pc[:, 2] + cam.v0


def _zpass_poly(z: np.ndarray, pid: np.ndarray, cam: _Cam, k: int, normal: np.ndarray, Pc: np.ndarray) -> None:
    """Depth pass of one polygon: exact plane depth per covered pixel, z-test, write depth and id k+1."""
    u, v = _project(cam, Pc)
    x0, x1 = max(int(math.floor(u.min())), 0), min(int(math.ceil(u.max())), cam.W - 1)
    y0, y1 = max(int(math.floor(v.min())), 0), min(int(math.ceil(v.max())), cam.H - 1)
    if x0 > x1 or y0 > y1:
        return
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), np.uint8)
    pts = np.column_stack([np.round((u - x0) * 16), np.round((v - y0) * 16)]).astype(np.int32)
    cv2.fillPoly(mask, [pts], 1, cv2.LINE_8, 4)
    zs = z[y0:y1 + 1, x0:x1 + 1]
    zmin, zmax = Pc[:, 2].min(), Pc[:, 2].max()
    iy, ix = np.nonzero(mask.view(bool) & (zs > zmin))  # pixels this polygon could still win
    if iy.size == 0:
        return
    nc = normal @ cam.R
    dc = float(nc @ Pc[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = dc / (nc[0] * cam.xn[x0 + ix] + nc[1] * cam.yn[y0 + iy] + nc[2])
    # a pixel whose ray meets the plane outside the polygon's depth range is rasterisation
    # over-coverage of an (almost) edge-on polygon: drop it; tiny numeric excursions are clamped
    tol = 0.02 * (zmax - zmin) + 1e-3
    keep = (t > zmin - tol) & (t < zmax + tol)
    np.maximum(t, zmin, out=t)
    np.minimum(t, zmax, out=t)
    keep &= t < zs[iy, ix]
    iy, ix = iy[keep], ix[keep]
    if iy.size:
        zs[iy, ix] = t[keep]
        pid[y0:y1 + 1, x0:x1 + 1][iy, ix] = k + 1


def _shade_textures(cv: _Canvas, cam: _Cam, polys: list[_Poly], flat, idx, alb, emis) -> None:
    """Evaluate the textures of the visible pixels ``flat`` (of polygons ``idx``) into alb/emis."""
    textured = np.array([p.tex is not None for p in polys])
    tsel = np.nonzero(textured[idx])[0]
    if tsel.size == 0:
        return
    # texture coordinates of all textured pixels at once: u = (t * ray - origin) . e_u (camera frame)
    tp_ids = np.nonzero(textured)[0]
    tpolys = [polys[k] for k in tp_ids.tolist()]
    remap = np.zeros(len(polys), np.int64)
    remap[tp_ids] = np.arange(len(tp_ids))
    EU = np.array([p.eu for p in tpolys]) @ cam.R
    EV = np.array([p.ev for p in tpolys]) @ cam.R
    O = (np.array([p.origin for p in tpolys]) - cam.C) @ cam.R
    ou, ov = (O * EU).sum(1), (O * EV).sum(1)
    k_t = remap[idx[tsel]]
    ft = flat[tsel]
    t = cv.z.reshape(-1)[ft]
    xv, yv = cam.xn[ft % cam.W], cam.yn[ft // cam.W]
    uu = (t * (EU[k_t, 0] * xv + EU[k_t, 1] * yv + EU[k_t, 2]) - ou[k_t]).astype(np.float32)
    vv = (t * (EV[k_t, 0] * xv + EV[k_t, 1] * yv + EV[k_t, 2]) - ov[k_t]).astype(np.float32)
    # group by polygon: sort once, then every polygon is a contiguous slice
    srt = np.argsort(k_t, kind="stable")
    ks = k_t[srt]
    cuts = np.flatnonzero(np.diff(ks)) + 1
    first = np.concatenate([[0], cuts])
    last = np.concatenate([cuts, [len(ks)]])
    uu, vv = uu[srt], vv[srt]
    dst = tsel[srt]
    out = alb.take(dst, axis=0)
    em_out = np.zeros(len(srt), np.float32)
    for f0, f1 in zip(first.tolist(), last.tolist()):
        p = tpolys[ks[f0]]
        if f1 - f0 < 6 and p.label not in (TLIGHT, TSIGN):  # a few pixels: the flat colour is as good
            continue
        c, em = p.tex(uu[f0:f1], vv[f0:f1], p.color, p.tp or {}, p.fw, p.fh)
        out[f0:f1] = c
        if em is not None:
            em_out[f0:f1] = em
    _put_rgb(alb, dst, out)
    emis[dst] = em_out


def _draw_polys(cv: _Canvas, cam: _Cam, polys: list[_Poly]) -> None:
    """Rasterise all polygons with exact per-pixel plane depth and a z-buffer, then shade them.

    Depth pass: big polygons (facades, long vehicles, anything cut by the near plane) go one by
    one through ``_zpass_poly`` front to back. The many small ones (people, poles, wheels, far
    cars) are projected in one batch and painted far-to-near into an id buffer by
    ``cv2.fillPoly``; their exact depth is then computed per pixel from each polygon's plane and
    merged with the z-buffer, so the two groups still meet by a per-pixel depth test.
    Shading pass: label, instance and texture are computed once per finally visible pixel.
    """
    if not polys:
        return
    H, W = cam.H, cam.W
    counts = np.array([len(p.pts) for p in polys])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    V = np.concatenate([p.pts for p in polys])
    Pc = (V - cam.C) @ cam.R
    z = Pc[:, 2]
    zmin, zmax = np.minimum.reduceat(z, starts), np.maximum.reduceat(z, starts)
    ext = np.maximum.reduceat(V, starts) - np.minimum.reduceat(V, starts)
    diam = np.sqrt((ext ** 2).sum(1))
    front = zmax > cam.near
    clipped = zmin <= cam.near * 1.05
    with np.errstate(divide="ignore", invalid="ignore"):
        zs = np.maximum(z, cam.near)
        u = cam.fx * Pc[:, 0] / zs + cam.u0
        v = cam.fy * Pc[:, 1] / zs + cam.v0
    umin, umax = np.minimum.reduceat(u, starts), np.maximum.reduceat(u, starts)
    vmin, vmax = np.minimum.reduceat(v, starts), np.maximum.reduceat(v, starts)
    inview = front & (umax >= -0.5) & (umin <= W - 0.5) & (vmax >= -0.5) & (vmin <= H - 0.5)
    area = (np.clip(umax, 0, W) - np.clip(umin, 0, W)) * (np.clip(vmax, 0, H) - np.clip(vmin, 0, H))
    # big = exact per-polygon z-test; far polygons are small on screen, their painter's order is safe
    big = clipped | ((diam > 6.0) & (zmin < 50.0)) | (area > H * W / 24)
    normals = np.array([p.normal for p in polys])
    pid = np.zeros((H, W), np.int32)  # polygon index + 1 of the nearest surface so far
    # 1) big polygons, exact z-buffer, front to back
    order = np.nonzero(inview & big)[0]
    for k in order[np.argsort(zmin[order], kind="stable")].tolist():
        pc = Pc[starts[k]:starts[k] + counts[k]]
        if clipped[k]:
            pc = _clip_near(pc, cam.near)
            if pc is None:
                continue
        _zpass_poly(cv.z, pid, cam, k, normals[k], pc)
    # 2) small polygons: painter's order into an id buffer, then exact depth per pixel
    small = np.nonzero(inview & ~big)[0]
    if small.size:
        zc = np.add.reduceat(z, starts) / counts
        small = small[np.argsort(-zc[small], kind="stable")]
        sid = np.zeros((H, W), np.int32)
        UV = np.round(np.column_stack((u, v)) * 16).astype(np.int32)
        for k in small.tolist():
            a = starts[k]
            cv2.fillPoly(sid, [UV[a:a + counts[k]]], k + 1, cv2.LINE_8, 4)
        fl = np.flatnonzero(sid)
        if fl.size:
            iy, ix = fl // W, fl % W
            idx = sid.reshape(-1)[fl] - 1
            nc = normals @ cam.R
            dc = np.einsum("ij,ij->i", nc, Pc[starts])
            with np.errstate(divide="ignore", invalid="ignore"):
                t = dc[idx] / (nc[idx, 0] * cam.xn[ix] + nc[idx, 1] * cam.yn[iy] + nc[idx, 2])
            lo, hi = zmin[idx], zmax[idx]
            tol = 0.02 * (hi - lo) + 1e-3
            keep = (t > lo - tol) & (t < hi + tol)  # see _zpass_poly
            t = np.minimum(np.maximum(t, lo), hi)
            zf = cv.z.reshape(-1)
            keep &= t < zf[fl]
            fl = fl[keep]
            zf[fl] = t[keep]
            pid.reshape(-1)[fl] = idx[keep] + 1
    # 3) shading of the visible pixels
    flat = np.flatnonzero(pid)
    if flat.size == 0:
        return
    idx = pid.reshape(-1)[flat] - 1
    lab = np.array([p.label for p in polys], np.uint8)
    ins = np.array([p.inst for p in polys], np.int32)
    ndl = np.array([p.ndotl for p in polys], np.float32)
    gnd = np.array([p.ground for p in polys], bool)
    col = np.array([p.color for p in polys], np.float32)
    cv.label.reshape(-1)[flat] = lab[idx]
    cv.inst.reshape(-1)[flat] = ins[idx]
    cv.ndl.reshape(-1)[flat] = ndl[idx]
    cv.gnd.reshape(-1)[flat] = gnd[idx]
    alb = col.take(idx, axis=0)
    emis = np.zeros(len(idx), np.float32)
    _shade_textures(cv, cam, polys, flat, idx, alb, emis)
    _put_rgb(cv.alb, flat, alb)
    cv.emis.reshape(-1)[flat] = emis


def _shadow_mask(cam: _Cam, shadows: list[np.ndarray], sun: np.ndarray) -> np.ndarray:
    """(H, W) float32: 1 where the ground point seen is in a cast shadow (hulls projected along the sun)."""
    m = np.zeros((cam.H, cam.W), np.uint8)
    if not shadows:
        return m.astype(np.float32)
    counts = np.array([len(p) for p in shadows])
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    V = np.concatenate(shadows)
    Q = V[:, :2] - (V[:, 2:3] / sun[2]) * sun[None, :2]
    zc = (V - cam.C) @ cam.R[:, 2]
    far = np.minimum.reduceat(zc, starts) > 55.0  # shadows of far objects are barely visible
    for k in np.nonzero(~far)[0]:
        q = Q[starts[k]:starts[k] + counts[k]].astype(np.float32)
        hull = cv2.convexHull(q).reshape(-1, 2).astype(np.float64)
        if len(hull) < 3:
            continue
        Pc = (np.column_stack([hull, np.zeros(len(hull))]) - cam.C) @ cam.R
        Pc = _clip_near(Pc, cam.near)
        if Pc is None:
            continue
        u, v = _project(cam, Pc)
        if u.max() < 0 or u.min() > cam.W or v.max() < 0 or v.min() > cam.H:
            continue
        pts_i = np.clip(np.column_stack([np.round(u * 16), np.round(v * 16)]), -(2 ** 30), 2 ** 30).astype(np.int32)
        cv2.fillPoly(m, [pts_i], 1, cv2.LINE_8, 4)
    return m.astype(np.float32)


def _draw_hood(cv: _Canvas, cam: _Cam, hood: dict) -> None:
    """The ego vehicle's bonnet, fixed in camera coordinates (same car in every frame)."""
    rows = np.nonzero(cam.yn > hood["hd"] / hood["zf"] * 0.98)[0]  # the bonnet never reaches higher rows
    if rows.size == 0:
        return
    yn = cam.yn[rows][:, None]
    t = hood["hd"] / yn  # depth where the ray meets the bonnet plane
    lat = cam.xn[None, :] * t
    front = hood["zf"] - hood["k"] * lat ** 2
    m = (t <= front) & (np.abs(lat) < hood["hw"])
    if not m.any():
        return
    iy, ix = np.nonzero(m)
    tt = t[iy, 0] * np.ones(len(ix))
    fy = front[iy, ix]
    g = np.clip((tt - 0.6) / np.maximum(fy - 0.6, 1e-3), 0, 1)  # 0 near, 1 at the front edge
    col = hood["color"][None, :] * (0.5 + 0.5 * g[:, None]) + hood["refl"] * (g ** 3)[:, None]
    Y, X = rows[iy], ix
    cv.z[Y, X] = tt
    cv.label[Y, X] = EGO
    cv.inst[Y, X] = EGO
    cv.alb[Y, X] = col
    cv.ndl[Y, X] = 0.6
    cv.emis[Y, X] = 0.0


# --------------------------------------------------------------------------------------------
# The ground: two planes (road level, curb level) split into lateral bands
# --------------------------------------------------------------------------------------------
@dataclass
class _Ground:
    curb: float  # height of sidewalks etc. above the road
    xl: float  # road-level area spans X in [xl, xr]
    xr: float
    road_bands: list  # (x0, x1, kind) inside [xl, xr]
    left: list  # (off0, off1, kind): curb-level bands outward from xl
    right: list
    crosses: list = field(default_factory=list)  # (ya, yb, swc, left, right) cross streets
    y_end: float = 200.0
    x_far: float = 250.0
    markings: list = field(default_factory=list)
    params: dict = field(default_factory=dict)  # per-kind colours


_KINDS = ("road", "sidewalk", "parking", "rail", "terrain", "ground", "dirt", "field", "curb")
_KIND_LABEL = {"road": ROAD, "sidewalk": SIDEWALK, "parking": PARKING, "rail": RAIL, "terrain": TERRAIN,
               "ground": GROUND, "dirt": ROAD, "field": TERRAIN, "curb": SIDEWALK}


def _ground_params(rng: np.random.Generator) -> dict:
    """Per-scene colours and pattern sizes of the ground surfaces."""
    a = rng.uniform(70, 125)
    return {
        "road": np.array([a, a, a * rng.uniform(1.0, 1.08)]) + rng.uniform(-4, 4, 3),
        "road_patch": rng.uniform(0.0, 0.35),
        "sidewalk": _pick(rng, [(160, 160, 158), (175, 170, 160), (150, 120, 110), (185, 180, 170),
                                (130, 130, 132), (170, 150, 130)]) + rng.uniform(-8, 8, 3),
        "tile": rng.uniform(0.25, 0.6),
        "curb": np.array([175.0, 175, 172]) + rng.uniform(-15, 15),
        "parking": _pick(rng, [(120, 118, 115), (140, 130, 120), (105, 100, 98), (150, 140, 135)]),
        "cobble": rng.random() < 0.6,
        "terrain": _pick(rng, TERRAIN_COLORS) + rng.uniform(-10, 10, 3),
        "ground": _pick(rng, [(135, 125, 110), (120, 115, 105), (150, 140, 120), (110, 100, 85)]),
        "dirt": _pick(rng, [(125, 105, 80), (140, 120, 90), (110, 95, 75)]),
        "mark": rng.uniform(200, 240),
        "wear": rng.uniform(0.0, 0.5),
        "seed": float(rng.integers(1000)),
    }


def _ground_colour(kind: str, X: np.ndarray, Y: np.ndarray, off: np.ndarray, gp: dict, g: _Ground) -> np.ndarray:
    """Albedo of ground pixels of one kind at world positions (X, Y); ``off`` = distance from the curb."""
    s = gp["seed"]
    if kind in ("road", "dirt"):
        base = gp["road"] if kind == "road" else gp["dirt"]
        k = 0.88 + 0.16 * _h2(np.floor(X / 0.05), np.floor(Y / 0.05), s) + 0.07 * _wave(X, Y, s)
        patch = _h2(np.floor(X / 2.3), np.floor(Y / 6.0), s + 2) < gp["road_patch"] * 0.3  # repaired patches
        k = np.where(patch, k * 0.85, k)
        if kind == "dirt":
            ruts = (np.abs(np.abs(X - g.params["track_x"]) - 0.8) < 0.3)
            k = np.where(ruts, k * 0.8, k * (1 + 0.1 * _wave(X * 4, Y * 4, s + 4)))
        col = base[None, :] * k[:, None]
        if kind == "dirt":
            mid = np.abs(X - g.params["track_x"]) < 0.35
            grass = mid & (_vnoise(X / 0.3, Y / 0.3, s + 6) > 0.45)
            col[grass] = gp["terrain"] * 0.8
        return col
    if kind == "sidewalk":
        t = gp["tile"]
        joint = (_frac(X / t) < 0.06) | (_frac(Y / t) < 0.06)
        k = (0.9 + 0.12 * _h2(np.floor(X / t), np.floor(Y / t), s + 1)) * np.where(joint, 0.8, 1.0)
        k *= 1 + 0.06 * _wave(X * 0.8, Y * 0.8, s + 3)
        col = gp["sidewalk"][None, :] * k[:, None]
        curb = off < 0.22
        col[curb] = gp["curb"] * (0.9 + 0.1 * _h2(np.floor(Y[curb] / 0.8), Y[curb] * 0, s))[:, None]
        return col
    if kind == "curb":  # the vertical face of a curb stone
        return gp["curb"][None, :] * (0.72 + 0.1 * _h2(np.floor(Y / 0.8), np.floor(X / 0.8), s))[:, None]
    if kind == "parking":
        if gp["cobble"]:
            row = np.floor(Y / 0.16)
            bu = X / 0.16 + 0.5 * (row % 2)
            joint = (_frac(Y / 0.16) < 0.12) | (_frac(bu) < 0.12)
            k = (0.85 + 0.25 * _h2(np.floor(bu), row, s)) * np.where(joint, 0.7, 1.0)
        else:
            k = 0.9 + 0.15 * _h2(np.floor(X / 0.05), np.floor(Y / 0.05), s)
        return gp["parking"][None, :] * k[:, None]
    if kind == "rail":
        rel = X - g.params.get("rail_x", 0.0)
        k = 0.8 + 0.35 * _h2(np.floor(X / 0.04), np.floor(Y / 0.04), s)
        col = np.array([125.0, 118, 108])[None, :] * k[:, None]
        if g.params.get("rail_grass"):
            gr = _vnoise(X / 0.4, Y / 0.4, s) > 0.4
            col[gr] = gp["terrain"] * (0.7 + 0.4 * _h2(np.floor(X[gr] / 0.06), np.floor(Y[gr] / 0.06), s))[:, None]
        sleeper = (_frac(Y / 0.65) < 0.35) & (np.abs(rel) < 1.25)
        col[sleeper] = np.array([95.0, 85, 75])
        rail = np.abs(np.abs(rel) - 0.7175) < 0.04
        col[rail] = np.array([170.0, 168, 165])
        return col
    if kind in ("terrain", "field"):
        n = 0.3 + 0.3 * _wave(X * 1.5, Y * 1.5, s + 7) + 0.4 * _h2(np.floor(X / 0.07), np.floor(Y / 0.07), s + 8)
        col = gp["terrain"][None, :] * (0.62 + 0.6 * n)[:, None]
        if kind == "field":
            rows = _frac(X / 0.7) < 0.45
            col[rows] *= 0.75
        dirt = _wave(X * 0.25, Y * 0.25, s + 9) > 0.75
        col[dirt] = col[dirt] * 0.4 + gp["dirt"] * 0.6
        return col
    # ground: gravel / dirt
    n = 0.5 * _h2(np.floor(X / 0.04), np.floor(Y / 0.04), s + 10) + 0.25 + 0.25 * _wave(X, Y, s + 11)
    return gp["ground"][None, :] * (0.7 + 0.55 * n)[:, None]


def _lookup(bands: list, off: np.ndarray) -> np.ndarray:
    """Index of the band containing each offset (bands sorted, contiguous)."""
    starts = np.array([b[0] for b in bands])
    return np.clip(np.searchsorted(starts, off, side="right") - 1, 0, len(bands) - 1)


def _draw_ground(cv: _Canvas, cam: _Cam, D: np.ndarray, g: _Ground, light: _Light) -> None:
    """Ray-cast the ground (road level and curb level planes, plus the curb steps) into the canvas."""
    h = cam.C[2]
    # only rays that go down and are not already covered by something nearer than the highest plane
    with np.errstate(divide="ignore", invalid="ignore"):
        t_hi = (g.curb - h) / D[..., 2]
    pf = np.flatnonzero((D[..., 2] < -1e-7) & (cv.z > t_hi))
    if pf.size == 0:
        return
    d = D.reshape(-1, 3).take(pf, axis=0)
    Dx, Dy, Dz = d[:, 0], d[:, 1], d[:, 2]
    t0 = np.float32(-h) / Dz
    t1 = np.float32(g.curb - h) / Dz if g.curb > 0 else t0
    X0, Y0 = np.float32(cam.C[0]) + t0 * Dx, np.float32(cam.C[1]) + t0 * Dy
    X1, Y1 = (np.float32(cam.C[0]) + t1 * Dx, np.float32(cam.C[1]) + t1 * Dy) if g.curb > 0 else (X0, Y0)

    def core(X, Y):
        m = np.zeros(X.shape, bool)
        for ya, yb, swc, lft, rgt in g.crosses:
            iny = (Y > ya + swc) & (Y < yb - swc)
            m |= iny & ((lft & (X < g.xl) & (X > g.xl - g.x_far)) | (rgt & (X > g.xr) & (X < g.xr + g.x_far)))
        return m

    v0 = (((X0 >= g.xl) & (X0 <= g.xr)) | core(X0, Y0)) & (Y0 < g.y_end)
    side1 = ((X1 < g.xl) & (X1 > g.xl - g.x_far)) | ((X1 > g.xr) & (X1 < g.xr + g.x_far))
    v1 = side1 & ~core(X1, Y1) & (Y1 < g.y_end)
    use1 = v1 & (~v0 | (t1 < t0))
    t = np.where(use1, t1, t0)
    valid = v0 | v1
    # rays that miss both planes' areas but pass between them hit the vertical step of a curb
    step = np.zeros_like(valid)
    if g.curb > 0:
        step = ~valid & (Y0 < g.y_end) & (X0 > g.xl - g.x_far) & (X0 < g.xr + g.x_far)
        si = np.nonzero(step)[0]
        if si.size:
            dx, dy = Dx[si], Dy[si]
            x0s, y0s, y1s = X0[si], Y0[si], Y1[si]
            with np.errstate(divide="ignore", invalid="ignore"):
                ts = np.where(x0s > g.xr, (g.xr - cam.C[0]) / dx, np.where(x0s < g.xl, (g.xl - cam.C[0]) / dx, np.nan))
                for ya, yb, swc, lft, rgt in g.crosses:  # the cross street's far curb faces the camera
                    yc = yb - swc
                    ts = np.where((y1s < yc) & (y0s >= yc), (yc - cam.C[1]) / dy, ts)
            t1s, t0s = t1[si], t0[si]
            t[si] = np.where(np.isfinite(ts) & (ts >= t1s - 1e-3) & (ts <= t0s + 1e-3), ts, t1s)
            valid[si] = True
    sel = np.flatnonzero(valid & (t < cv.z.reshape(-1)[pf]))
    if sel.size == 0:
        return
    fl = pf[sel]
    e = use1[sel]
    X = np.where(e, X1[sel], X0[sel])
    Y = np.where(e, Y1[sel], Y0[sel])
    t = t[sel]
    kind = np.zeros(len(X), np.int8)
    off = np.zeros(len(X), np.float32)
    st = step[sel]
    # road level
    rl = ~e
    rb = g.road_bands
    idx = _lookup(rb, X[rl])
    kr = np.array([_KINDS.index(b[2]) for b in rb], np.int8)[idx]
    kr[(X[rl] < g.xl) | (X[rl] > g.xr)] = _KINDS.index("road")  # cross-street carriageway
    kind[rl] = kr
    # curb level
    for bands, sel, o in (
        (g.left, e & (X < g.xl), g.xl - X),
        (g.right, e & (X >= g.xl), X - g.xr),
    ):
        if sel.any():
            ks = np.array([_KINDS.index(b[2]) for b in bands], np.int8)[_lookup(bands, o[sel])]
            kind[sel] = ks
            off[sel] = o[sel]
    for ya, yb, swc, lft, rgt in g.crosses:  # the cross streets' own sidewalks
        m = e & (Y >= ya) & (Y <= yb) & ((lft & (X < g.xl)) | (rgt & (X > g.xr)))
        kind[m] = _KINDS.index("sidewalk")
        off[m] = 1.0
    kind[st] = _KINDS.index("curb")
    col = np.empty((len(X), 3), np.float32)
    lab = np.array([_KIND_LABEL[k] for k in _KINDS], np.uint8)[kind]
    srt = np.argsort(kind, kind="stable")
    ks, first, cnt = np.unique(kind[srt], return_index=True, return_counts=True)
    for k, f0, n in zip(ks.tolist(), first.tolist(), cnt.tolist()):
        m = srt[f0:f0 + n]
        col[m] = _ground_colour(_KINDS[k], X[m], Y[m], off[m], g.params, g)
    # road markings (paint; still the road's label)
    ri = np.nonzero(lab == ROAD)[0]
    if ri.size and g.markings:
        Xr, Yr = X[ri], Y[ri]
        paint = np.zeros(len(ri), bool)
        for mk in g.markings:
            if mk["type"] == "line":
                cand = np.nonzero(np.abs(Xr - mk["x"]) < mk["w"] / 2)[0]
                if cand.size == 0:
                    continue
                yc = Yr[cand]
                m = (yc > mk["y0"]) & (yc < mk["y1"])
                if mk.get("dash"):
                    on, period = mk["dash"]
                    m &= _frac((yc + mk.get("phase", 0.0)) / period) < on / period
                paint[cand[m]] = True
                continue
            cand = np.nonzero((Yr > mk["y0"]) & (Yr < mk["y1"]))[0]
            if cand.size == 0:
                continue
            xc = Xr[cand]
            m = (xc > mk["x0"]) & (xc < mk["x1"])
            if mk["type"] == "zebra":
                m &= _frac(xc / 1.0) < 0.5
            elif mk["type"] == "bars":  # periodic bars across a band (parking bays)
                m &= _frac((Yr[cand] - mk["y0"]) / mk["period"]) < mk["w"] / mk["period"]
            paint[cand[m]] = True
        pi = np.nonzero(paint)[0]
        if pi.size:
            Xp, Yp = Xr[pi], Yr[pi]
            keep = _vnoise(Xp / 0.3, Yp / 0.3, 17.0) > g.params["wear"] * 0.6
            pi = pi[keep]
            grain = _h2(np.floor(Xp[keep] / 0.05), np.floor(Yp[keep] / 0.05))
            col[ri[pi]] = g.params["mark"] * (0.92 + 0.08 * grain)[:, None]
    cv.z.reshape(-1)[fl] = t
    cv.label.reshape(-1)[fl] = lab
    cv.inst.reshape(-1)[fl] = lab
    _put_rgb(cv.alb, fl, col)
    cv.ndl.reshape(-1)[fl] = max(0.0, float(light.sun[2]))
    cv.emis.reshape(-1)[fl] = 0.0
    cv.gnd.reshape(-1)[fl] = True


# --------------------------------------------------------------------------------------------
# Object models (all sizes in metres; base = ground point under the object's centre)
# --------------------------------------------------------------------------------------------
_I3 = (np.array([1.0, 0, 0]), np.array([0.0, 1, 0]), np.array([0.0, 0, 1]))


def _t_cyl(u, v, c, p, fw, fh):
    """Billboard pole shaded like a cylinder (u measured from the axis)."""
    r = max(p.get("r", 0.1), 1e-3)
    k = 0.55 + 0.55 * np.cos(np.clip(u / r, -1, 1) * 1.3)
    return c[None, :] * k[:, None], None


def _add_pole(b: _Builder, x: float, y: float, h: float, r: float, color, label: int = POLE, z0: float = 0.0):
    """A vertical pole (camera-facing billboard shaded like a cylinder)."""
    c = np.array([x, y, z0])
    if not b.visible(c + [0, 0, h / 2], h / 2):
        return
    wide = b.ppm(c + [0, 0, min(h / 2, 2.0)]) * 2 * r > 4  # cylinder shading only when it is visible
    b.billboard(c, _rect(2 * r, h), label, label, color, _t_cyl if wide else None, {"r": r}, shadow=False)
    b.shadows.append(np.array([[x - r, y - r, z0], [x + r, y + r, z0], [x - r, y - r, z0 + h], [x + r, y + r, z0 + h]]))


def _add_tree(b: _Builder, rng: np.random.Generator, x: float, y: float, scale: float = 1.0):
    """A tree: trunk and a crown of camera-facing foliage blobs (all 'vegetation')."""
    ht = rng.uniform(1.8, 3.6) * scale
    cr = rng.uniform(1.5, 3.8) * scale
    top = ht + 1.8 * cr
    if not b.visible((x, y, top / 2), top / 2 + cr):
        return
    bark = _jit(rng, (95, 80, 65), 25)
    tw = rng.uniform(0.18, 0.4) * scale
    near = b.ppm((x, y, 1.0)) * tw > 4
    b.billboard(np.array([x, y, 0.0]), _rect(tw, ht + cr * 0.6), VEGETATION, VEGETATION, bark,
                _t_bark if near else None, {"seed": float(rng.integers(99))}, shadow=False)
    green = _pick(rng, GREEN_COLORS)
    if rng.random() < 0.08:  # autumn
        green = np.array([150.0, 120, 50])
    green = _jit(rng, green, 20)
    cc = np.array([x, y, ht + cr * 0.9])
    poly = _circle(14, cr * 0.8) * rng.uniform(0.88, 1.12, (14, 1))
    b.billboard(cc, poly, VEGETATION, VEGETATION, green * 0.85, _t_foliage,
                {"seed": float(rng.integers(999)), "r": cr * 0.8, "blob": True}, shadow=False)
    n_blobs = int(rng.integers(1, 4)) if b.ppm(cc) * cr > 14 else 0
    for _ in range(n_blobs):
        o = rng.normal(0, 0.42 * cr, 3) * np.array([1, 1, 0.7])
        r = cr * rng.uniform(0.42, 0.7)
        poly = _circle(12, r) * rng.uniform(0.85, 1.15, (12, 1))
        b.billboard(cc + o, poly, VEGETATION, VEGETATION, green * rng.uniform(0.85, 1.15), _t_foliage,
                    {"seed": float(rng.integers(999)), "r": r, "blob": True}, shadow=False)
    ring = cc + np.column_stack([_circle(8, cr), np.zeros(8)])
    b.shadows.append(np.vstack([ring + [0, 0, 0.6 * cr], ring - [0, 0, 0.6 * cr]]))
    b.shadows.append(np.array([[x - tw / 2, y, 0], [x + tw / 2, y, 0], [x, y, ht]]))


def _add_hedge(b: _Builder, rng, x0: float, x1: float, y0: float, y1: float, h: float):
    """A hedge: a box with a foliage texture."""
    c = np.array([(x0 + x1) / 2, (y0 + y1) / 2, 0.0])
    if not b.visible(c + [0, 0, h / 2], max(abs(x1 - x0), y1 - y0) / 2 + h):
        return
    col = _jit(rng, _pick(rng, GREEN_COLORS), 15)
    tp = {"seed": float(rng.integers(999))}
    b.box(c, _I3, (abs(x1 - x0), y1 - y0, h), VEGETATION, VEGETATION, col, tex=_t_foliage, tp=tp)


def _add_wall(b: _Builder, rng, x: float, y0: float, y1: float, h: float, thick: float = 0.3, color=None):
    """A free-standing wall along Y (brick, concrete panels or plaster)."""
    c = np.array([x, (y0 + y1) / 2, 0.0])
    if not b.visible(c + [0, 0, h / 2], (y1 - y0) / 2 + h):
        return
    col = _jit(rng, _pick(rng, WALL_COLORS), 20) if color is None else color
    style = rng.random()
    tex, tp = ((_t_brick, {"seed": float(rng.integers(99))}) if style < 0.3 else
               (_t_concrete, {"seed": float(rng.integers(99)), "panel": rng.uniform(1.5, 4)}) if style < 0.75 else
               (_t_plain, {"a": 0.2, "s": 0.6}))
    b.box(c, _I3, (thick, y1 - y0, h), WALL, WALL, col, tex=tex, tp=tp)


def _add_fence(b: _Builder, rng, x: float, y0: float, y1: float, h: float, along_x: bool = False):
    """A fence (bars, wire mesh or wooden planks) along Y, or along X when ``along_x``."""
    c = np.array([x, (y0 + y1) / 2, 0.0]) if not along_x else np.array([(y0 + y1) / 2, x, 0.0])
    if not b.visible(c + [0, 0, h / 2], (y1 - y0) / 2 + h):
        return
    kind = int(rng.integers(3))
    col = (_jit(rng, _pick(rng, [(110, 110, 112), (60, 90, 60), (40, 40, 42), (150, 150, 150)]), 15) if kind < 2
           else _jit(rng, (130, 95, 60), 25))
    bg = _jit(rng, _pick(rng, [(70, 90, 55), (90, 90, 90), (120, 115, 100), (60, 70, 50)]), 15)
    tp = {"kind": kind, "bg": bg, "seed": float(rng.integers(99))}
    axes = _I3 if not along_x else _axes(math.pi / 2)
    b.box(c, axes, (0.05, y1 - y0, h), FENCE, FENCE, col, tex=_t_fence, tp=tp,
          faces={"top": (None, None, col), "front": (None, None, col), "back": (None, None, col)})


def _add_guard_rail(b: _Builder, x: float, y0: float, y1: float):
    """A metal guard rail with posts along Y."""
    c = np.array([x, (y0 + y1) / 2, 0.0])
    if not b.visible(c + [0, 0, 0.4], (y1 - y0) / 2):
        return
    col = np.array([175.0, 178, 180])
    b.box(c + [0, 0, 0.45], _I3, (0.06, y1 - y0, 0.32), GUARD_RAIL, GUARD_RAIL, col, tex=_t_plain,
          tp={"a": 0.25, "s": 0.3})
    for y in np.arange(max(y0, 1.0), min(y1, 45.0), 4.0):
        b.box(np.array([x + 0.08 * np.sign(x), y, 0.0]), _I3, (0.1, 0.1, 0.75), GUARD_RAIL, GUARD_RAIL, col * 0.8,
              shadow=False)


def _add_street_lamp(b: _Builder, rng, x: float, y: float, side: int, h: float, color, arm: float):
    """A street lamp: pole, optional arm over the road and lamp head (all 'pole'); a light at night."""
    if not b.visible((x, y, h / 2), h / 2 + arm):
        return
    _add_pole(b, x, y, h, rng.uniform(0.06, 0.1), color)
    end = np.array([x - side * arm, y, h + 0.15])
    if arm > 0.2:
        b.rod([x, y, h - 0.3], end, 0.07, [0, 1, 0], POLE, POLE, color)
    lc = np.array([255.0, 205, 140]) if rng.random() < 0.6 else np.array([230.0, 235, 255])
    b.box(end - [0, 0, 0.25], _I3, (0.55, 0.3, 0.22), POLE, POLE, color * 0.8, faces={
        "bottom": (_t_lamp, {"night": b.night, "lc": lc}, None)}, shadow=False)
    if b.night:
        b.lamps.append((end - [0, 0, 0.3], lc / 255.0, 0.9, 2.0))


def _sign_spec(rng) -> tuple[np.ndarray, dict, float]:
    """(2-D outline, texture params, size) of a random traffic sign."""
    kind = rng.choice(["prohib", "noentry", "mandatory", "warn", "priority", "info", "stop", "street"],
                      p=[0.2, 0.1, 0.15, 0.2, 0.1, 0.13, 0.04, 0.08])
    r = rng.uniform(0.3, 0.45)
    red, white, blue = np.array([200.0, 30, 35]), np.array([235.0, 235, 230]), np.array([30.0, 75, 165])
    black, yellow = np.array([25.0, 25, 25]), np.array([240.0, 200, 40])
    if kind in ("prohib", "noentry", "mandatory"):
        poly = _circle(16, r)
        if kind == "prohib":
            tp = dict(shape="circle", inner=white, border=red, b=0.2, symbol=int(rng.choice([0, 3, 1])), sym=black)
        elif kind == "noentry":
            tp = dict(shape="circle", inner=red, border=red, b=0.05, symbol=1, sym=white)
        else:
            tp = dict(shape="circle", inner=blue, border=white, b=0.05, symbol=2, sym=white)
    elif kind == "warn":
        r *= 1.3
        poly = np.array([[r * math.cos(a), r * math.sin(a)] for a in (-np.pi / 6, np.pi / 2, 7 * np.pi / 6)])
        tp = dict(shape="tri", inner=white if rng.random() < 0.8 else yellow, border=red, b=0.28, symbol=2, sym=black)
    elif kind == "priority":
        poly = np.array([[r, 0], [0, r], [-r, 0], [0, -r]])
        tp = dict(shape="diamond", inner=yellow, border=white, b=0.25, symbol=0, sym=black)
    elif kind == "stop":
        poly = _circle(8, r) @ np.array([[math.cos(np.pi / 8), math.sin(np.pi / 8)],
                                         [-math.sin(np.pi / 8), math.cos(np.pi / 8)]])
        tp = dict(shape="circle", inner=red, border=white, b=0.06, symbol=3, sym=white)
    else:
        w, hh = (rng.uniform(0.6, 1.2), rng.uniform(0.5, 0.9)) if kind == "info" else (rng.uniform(0.7, 1.1), 0.22)
        poly = _rect(w, hh, -hh / 2)
        inner = blue if kind == "info" else (white if rng.random() < 0.5 else yellow)
        tp = dict(shape="rect", w=w, h=hh, inner=inner, border=white if kind == "info" else black, b=0.08,
                  symbol=3, sym=white if kind == "info" else black)
        r = max(w, hh) / 2
    tp["r"] = r
    return poly, tp, r


def _add_sign(b: _Builder, rng, x: float, y: float, facing: float, plate_z: float, pole: bool = True):
    """A sign plate (prism) at height plate_z facing direction ``facing`` (yaw of its normal)."""
    if not b.visible((x, y, plate_z / 2), plate_z / 2 + 0.6):
        return
    if pole:
        _add_pole(b, x, y, plate_z + 0.35, 0.04, _jit(rng, (150, 150, 152), 20))
    n_plates = 1 if rng.random() < 0.7 else 2
    z = plate_z
    _, normal, _ = _axes(facing)
    e2 = np.array([0.0, 0, 1])
    e1 = _cross(e2, normal)
    for _ in range(n_plates):
        poly, tp, r = _sign_spec(rng)
        center = np.array([x, y, z]) + normal * 0.05
        b.prism(center, normal, e1, e2, poly, 0.03, TSIGN, TSIGN, np.array([150.0, 150, 152]), _t_sign, tp,
                side_color=np.array([120.0, 120, 122]))
        z -= r + 0.3


def _add_traffic_light(b: _Builder, rng, x: float, y: float, facing: float, pole_h: float, arm: float = 0.0,
                       side: int = 1):
    """A traffic light on a pole (or hanging from an arm), sometimes with a pedestrian light and a sign."""
    if not b.visible((x, y, pole_h / 2), pole_h / 2 + arm + 1):
        return
    pc = _jit(rng, _pick(rng, [(60, 62, 60), (150, 150, 150), (90, 95, 90), (40, 40, 40)]), 10)
    _add_pole(b, x, y, pole_h, 0.08, pc)
    hc = _jit(rng, _pick(rng, [(30, 30, 30), (45, 45, 40), (200, 170, 40), (60, 70, 60)]), 8)
    on = int(rng.integers(3))
    ax, ay, az = _axes(facing)
    faces = {"front": (_t_tlight, {"n": 3, "on": on}, None)}
    if arm > 0:
        end = np.array([x - side * arm, y, pole_h - 0.2])
        b.rod([x, y, pole_h - 0.2], end, 0.1, [0, 1, 0], POLE, POLE, pc)
        b.box(end - [0, 0, 1.0], (ax, ay, az), (0.34, 0.25, 0.92), TLIGHT, TLIGHT, hc, faces=faces)
    else:
        b.box(np.array([x, y, pole_h]) + ay * 0.14, (ax, ay, az), (0.32, 0.25, 0.88), TLIGHT, TLIGHT, hc,
              faces=faces)
    if rng.random() < 0.6:  # pedestrian light lower on the pole
        b.box(np.array([x, y, 2.1]) + ay * 0.13, (ax, ay, az), (0.26, 0.2, 0.6), TLIGHT, TLIGHT, hc,
              faces={"front": (_t_tlight, {"n": 2, "on": int(rng.integers(2))}, None)})
    if rng.random() < 0.4:
        _add_sign(b, rng, x, y, facing, pole_h - 1.4, pole=False)


def _add_wheel(b: _Builder, center, ax, ay, az, r: float, thick: float, label: int, inst: int, rim, spokes=5,
               caps: bool = True):
    """A wheel: a dark tread block plus the round cap on the camera's side."""
    center = np.asarray(center, np.float64)
    b.box(center - az * 0.8 * r, (ax, ay, az), (thick, 1.6 * r, 1.6 * r), label, inst, np.array([28.0, 28, 30]),
          shadow=False, skip=("top", "bottom"))
    if caps:
        side = 1.0 if ax @ (b.cam.C - center) > 0 else -1.0
        c = center + ax * side * (thick / 2 + 0.005)
        pts = c + _circle(8, r)[:, :1] * ay + _circle(8, r)[:, 1:] * az
        b.face(pts, label, inst, np.array([28.0, 28, 30]), _t_wheel, {"r": r, "rim": rim, "spokes": spokes},
               (c, ay, az, 0.0, 0.0), hint=ax * side)


def _add_axle(b: _Builder, center, ax, ay, az, r: float, width: float, thick: float, label: int, inst: int, rim,
              caps: bool):
    """Both wheels of an axle as one dark block (cheap) with round caps on the outside."""
    center = np.asarray(center, np.float64)
    b.box(center - az * 0.8 * r, (ax, ay, az), (width, 1.6 * r, 1.6 * r), label, inst, np.array([28.0, 28, 30]),
          shadow=False, skip=("top", "bottom"))
    if caps:
        side = 1.0 if ax @ (b.cam.C - center) > 0 else -1.0
        c = center + ax * side * (width / 2 + 0.005)
        circ = _circle(8, r)
        b.face(c + circ[:, :1] * ay + circ[:, 1:] * az, label, inst, np.array([28.0, 28, 30]), _t_wheel,
               {"r": r, "rim": rim, "spokes": 5}, (c, ay, az, 0.0, 0.0), hint=ax * side)


def _add_car(b: _Builder, rng, x: float, y: float, yaw: float, kind: str | None = None) -> float:
    """A car (sedan, hatchback, SUV, van or wagon) heading ``yaw``; returns its length."""
    kind = kind or rng.choice(["sedan", "hatch", "suv", "van", "wagon"], p=[0.35, 0.25, 0.17, 0.1, 0.13])
    L, W, H = {"sedan": (4.6, 1.8, 1.45), "hatch": (4.0, 1.75, 1.5), "suv": (4.6, 1.9, 1.72),
               "van": (5.1, 2.0, 2.0), "wagon": (4.7, 1.8, 1.5)}[kind]
    L *= rng.uniform(0.93, 1.07)
    W *= rng.uniform(0.97, 1.03)
    H *= rng.uniform(0.96, 1.05)
    if not b.visible((x, y, H / 2), L / 2 + 0.3):
        return L
    inst = b.instance(CAR)
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    col = _jit(rng, _pick(rng, CAR_COLORS), 14)
    glass = _jit(rng, (45, 55, 65), 12)
    px = b.ppm(base) * L  # projected length: level of detail
    if px < 7:
        b.box(base + az * 0.2, axes, (W, L, H * 0.8), CAR, inst, col * 0.8)
        return L
    zb = 0.24
    hb = 0.62 if kind != "van" else H - zb - 0.05
    vend = {"front": (_t_vend, {"front": 1, "night": b.night}, None),
            "back": (_t_vend, {"front": 0, "night": b.night}, None),
            "left": (_t_vside, {}, None), "right": (_t_vside, {}, None)}
    if kind == "van":
        vend.update({"left": (_t_glass, {"glass": glass, "pillar": 0.5}, None),
                     "right": (_t_glass, {"glass": glass, "pillar": 0.5}, None)})
        b.box(base + az * zb, axes, (W, L, hb), CAR, inst, col, faces=vend)
        b.hexa(base + az * (zb + hb) + ay * (L / 2 - 0.5), axes, (W * 0.98, 0.9), (W * 0.9, 0.3, -0.3), 0.0,
               CAR, inst, col, shadow=False)
        b.face([base + az * (zb + 0.9) + ay * (L / 2) + ax * W / 2 * 0.96,
                base + az * (zb + 0.9) + ay * (L / 2) - ax * W / 2 * 0.96,
                base + az * (zb + hb - 0.1) + ay * (L / 2 - 0.6) - ax * W / 2 * 0.96,
                base + az * (zb + hb - 0.1) + ay * (L / 2 - 0.6) + ax * W / 2 * 0.96], CAR, inst, glass * 0.8,
               hint=ay)
    else:
        b.box(base + az * zb, axes, (W, L, hb), CAR, inst, col, faces=vend)
        cab_l = L * (0.5 if kind != "wagon" else 0.62)
        top_l = cab_l * (0.62 if kind != "hatch" else 0.7)
        dy = -0.06 * L if kind in ("sedan", "suv") else (-0.1 * L if kind == "wagon" else -0.03 * L)
        off = -0.05 * L if kind != "hatch" else -0.12 * L
        if px > 45:  # window pillars
            cab = dict(tex=_t_glass, tp={"glass": glass}, faces={"top": (None, None, col)})
        else:
            cab = dict(faces={k: (None, None, glass) for k in ("front", "back", "left", "right")})
        b.hexa(base + az * (zb + hb) + ay * off, axes, (W * 0.94, cab_l), (W * 0.8, top_l, dy), H - zb - hb,
               CAR, inst, col, **cab)
    if px > 30:
        rim = _pick(rng, [(170, 170, 175), (60, 60, 62), (120, 120, 125)])
        for j in (-1, 1):
            _add_axle(b, base + ay * j * (L / 2 - 0.8) + az * 0.31, ax, ay, az, 0.31, W - 0.2, 0.2, CAR, inst, rim,
                      caps=px > 40)
    return L


def _add_truck(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A truck (box, semi-trailer, tipper or pickup) heading ``yaw``; returns its length."""
    kind = rng.choice(["box", "semi", "tipper", "pickup"], p=[0.45, 0.2, 0.2, 0.15])
    W = 2.45 if kind != "pickup" else 1.95
    Lc, Hc = (2.2, 3.0) if kind != "pickup" else (2.9, 1.85)
    Lb = {"box": rng.uniform(4.5, 7.5), "semi": rng.uniform(11, 13.5), "tipper": rng.uniform(4, 5.5),
          "pickup": 2.2}[kind]
    Hb = {"box": rng.uniform(3.2, 3.9), "semi": rng.uniform(3.6, 4.0), "tipper": rng.uniform(2.4, 2.9),
          "pickup": 1.1}[kind]
    L = Lc + Lb + 0.3
    if not b.visible((x, y, 2), L / 2 + 1):
        return L
    inst = b.instance(TRUCK)
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    cab_col = _jit(rng, _pick(rng, VEHICLE_COLORS + CAR_COLORS[:6]), 15)
    box_col = _jit(rng, _pick(rng, [(235, 235, 232), (200, 200, 200), (150, 30, 30), (40, 70, 140),
                                    (230, 200, 50), (90, 90, 95), (60, 110, 60)]), 12)
    glass = _jit(rng, (45, 55, 65), 10)
    front = base + ay * (L / 2 - Lc / 2)
    zc = 0.55 if kind != "pickup" else 0.3
    b.box(front + az * zc, axes, (W, Lc, Hc - zc), TRUCK, inst, cab_col, faces={
        "front": (_t_coach_front, {"w0": (Hc - zc) * 0.45, "glass": glass, "front": 1, "night": b.night}, None),
        "left": (_t_glass, {"glass": glass, "pillar": 0.45}, None) if kind == "pickup" else (_t_vside, {}, None),
        "right": (_t_glass, {"glass": glass, "pillar": 0.45}, None) if kind == "pickup" else (_t_vside, {}, None)})
    rear = base - ay * (L / 2 - Lb / 2)
    zb = 0.95 if kind != "pickup" else 0.35
    stripe = _jit(rng, _pick(rng, VEHICLE_COLORS), 20)
    if kind in ("box", "semi"):
        side = (_t_coach, {"w0": Hb * 0.5, "w1": Hb, "pp": 99.0, "doors": [], "stripe": stripe,
                           "glass": box_col, "night": False}, None)
        b.box(rear + az * zb, axes, (W + 0.05, Lb, Hb - zb + 0.6), TRUCK, inst, box_col,
              faces={"left": side, "right": side, "back": (_t_concrete, {"panel": 0.6}, None)})
    elif kind == "tipper":
        b.hexa(rear + az * zb, axes, (W * 0.95, Lb), (W, Lb * 1.05, 0.0), Hb - zb, TRUCK, inst, box_col,
               tex=_t_concrete, tp={"panel": 0.8})
    else:
        b.box(rear + az * zb, axes, (W, Lb, Hb - zb), TRUCK, inst, cab_col, faces={
            "back": (_t_vend, {"front": 0, "night": b.night}, None)})
    b.box(base + az * 0.5, axes, (W * 0.8, L * 0.95, 0.45), TRUCK, inst, np.array([35.0, 35, 38]), shadow=False)
    r = 0.5 if kind != "pickup" else 0.38
    ys = [L / 2 - 1.1, -L / 2 + 1.3] + ([-L / 2 + 2.6] if kind == "semi" or Lb > 6 else [])
    for yy in ys:
        _add_axle(b, base + ay * yy + az * r, ax, ay, az, r, W - 0.3, 0.3, TRUCK, inst, np.array([150.0, 150, 150]),
                  caps=b.ppm(base) * r > 4)
    return L


def _add_bus(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A city bus (sometimes articulated) heading ``yaw``; returns its length."""
    art = rng.random() < 0.25
    L = rng.uniform(11.5, 12.5) if not art else rng.uniform(17.5, 18.5)
    W, H = 2.55, rng.uniform(3.0, 3.25)
    if not b.visible((x, y, H / 2), L / 2 + 1):
        return L
    inst = b.instance(BUS)
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    col = _jit(rng, _pick(rng, VEHICLE_COLORS), 12)
    glass = _jit(rng, (40, 50, 60), 10)
    stripe = _jit(rng, _pick(rng, VEHICLE_COLORS), 20)
    zb = 0.32
    parts = [(L, 0.0)] if not art else [(L * 0.55, L * 0.225), (L * 0.43, -L * 0.285)]
    for k, (pl, off) in enumerate(parts):
        side = (_t_coach, {"w0": 1.05, "w1": 0.32, "pp": rng.uniform(1.3, 2.0), "doors": [0.12, 0.55],
                           "stripe": stripe, "glass": glass, "night": b.night}, None)
        faces = {"left": side, "right": side}
        if k == 0:
            faces["front"] = (_t_coach_front, {"w0": 0.85, "glass": glass, "front": 1, "night": b.night}, None)
        if k == len(parts) - 1:
            faces["back"] = (_t_coach_front, {"w0": 1.4, "glass": glass * 0.7, "front": 0, "night": b.night}, None)
        b.box(base + ay * off + az * zb, axes, (W, pl, H - zb), BUS, inst, col, faces=faces)
    if art:
        b.box(base + ay * (L * 0.225 - L * 0.275 - 0.02) + az * 0.5, axes, (W * 0.9, 0.5, H - 0.7), BUS, inst,
              np.array([40.0, 40, 40]), shadow=False)
    for yy in ([L / 2 - 2.6, -L / 2 + 3.2] if not art else [L / 2 - 2.6, L * 0.225 - L * 0.275 + 1.5,
                                                            -L / 2 + 2.5]):
        _add_axle(b, base + ay * yy + az * 0.5, ax, ay, az, 0.5, W - 0.3, 0.3, BUS, inst,
                  np.array([160.0, 160, 160]), caps=b.ppm(base) * 0.5 > 4)
    return L


def _add_train(b: _Builder, rng, x: float, y: float, yaw: float, n_seg: int | None = None,
               long_distance: bool = False) -> float:
    """A tram or train of several coaches heading ``yaw``; returns its length."""
    n_seg = n_seg or int(rng.integers(2, 5))
    seg = rng.uniform(7.5, 11) if not long_distance else rng.uniform(20, 26)
    L = n_seg * seg + (n_seg - 1) * 0.5
    W, H = rng.uniform(2.35, 2.65), rng.uniform(3.3, 3.7) + (0.6 if long_distance else 0)
    if not b.visible((x, y, H / 2), L / 2 + 1):
        return L
    inst = b.instance(TRAIN)
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    col = _jit(rng, _pick(rng, [(235, 235, 230), (220, 200, 40), (200, 40, 35), (240, 240, 240), (60, 110, 60),
                                (150, 160, 170), (40, 80, 150)]), 10)
    stripe = _jit(rng, _pick(rng, VEHICLE_COLORS), 20)
    glass = _jit(rng, (40, 48, 58), 10)
    zb = 0.38
    for k in range(n_seg):
        off = L / 2 - seg / 2 - k * (seg + 0.5)
        side = (_t_coach, {"w0": 1.1, "w1": 0.45, "pp": rng.uniform(1.6, 2.6), "doors": [0.25, 0.75],
                           "stripe": stripe, "glass": glass, "night": b.night}, None)
        faces = {"left": side, "right": side}
        if k == 0:
            faces["front"] = (_t_coach_front, {"w0": 1.1, "glass": glass, "front": 1, "night": b.night}, None)
        if k == n_seg - 1:
            faces["back"] = (_t_coach_front, {"w0": 1.1, "glass": glass, "front": 1, "night": b.night}, None)
        b.box(base + ay * off + az * zb, axes, (W, seg, H - zb), TRAIN, inst, col, faces=faces)
        if k < n_seg - 1:
            b.box(base + ay * (off - seg / 2 - 0.25) + az * 0.6, axes, (W * 0.85, 0.5, H - 0.9), TRAIN, inst,
                  np.array([35.0, 35, 35]), shadow=False)
    mid = base + ay * (L / 2 - seg / 2 - (n_seg // 2) * (seg + 0.5)) + az * H
    b.rod(mid, mid + az * 0.9 + ay * 0.6, 0.05, ax, TRAIN, inst, np.array([70.0, 70, 70]))
    b.rod(mid + az * 0.9 + ay * 0.6 - ax * 0.7, mid + az * 0.9 + ay * 0.6 + ax * 0.7, 0.05, ay, TRAIN, inst,
          np.array([70.0, 70, 70]))
    return L


def _add_body(b: _Builder, rng, hip, axes, label: int, inst: int, s: float, lean: float, legs: list,
              hands: list, helmet: bool, colors: dict):
    """Torso, head, arms and legs from the hip; legs/hands are (from-offset, to-point) pairs."""
    ax, ay, az = axes
    tz = math.cos(lean) * az + math.sin(lean) * ay
    ty = _cross(tz, ax)
    b.box(hip - tz * 0.04 * s, (ax, ty, tz), (0.38 * s, 0.22 * s, 0.58 * s), label, inst, colors["shirt"],
          tex=_t_plain, tp={"a": 0.15, "s": 0.1}, shadow=False)
    head_base = hip + tz * 0.6 * s
    if helmet:
        b.box(head_base, (ax, ty, tz), (0.27 * s, 0.3 * s, 0.29 * s), label, inst, colors["helmet"],
              tex=_t_head, tp={"hc": colors["helmet"] * 0.7, "hair": 0.8}, shadow=False)
    else:
        b.box(head_base, (ax, ty, tz), (0.18 * s, 0.21 * s, 0.25 * s), label, inst, colors["skin"],
              tex=_t_head, tp={"hc": colors["hair"], "hair": 0.7}, faces={"top": (None, None, colors["hair"]),
                                                                            "back": (None, None, colors["hair"])},
              shadow=False)
    shoulder = hip + tz * 0.5 * s
    if b.ppm(hip) * s < 35:  # small on screen: arms are sub-pixel
        hands = []
    for (side, p1) in hands:
        b.rod(shoulder + ax * side * 0.23 * s, p1, 0.095 * s, ay, label, inst, colors["sleeve"])
    for (p0, p1, p2) in legs:
        b.rod(p0, p1, 0.15 * s, ay, label, inst, colors["pants"])
        if p2 is not None:
            b.rod(p1, p2, 0.13 * s, ay, label, inst, colors["pants"])


def _person_colors(rng) -> dict:
    """Clothes, skin, hair and helmet colours of one person."""
    shirt = _jit(rng, _pick(rng, CLOTH_COLORS), 18)
    return {"shirt": shirt, "sleeve": shirt if rng.random() < 0.7 else _jit(rng, _pick(rng, SKIN_COLORS), 10),
            "pants": _jit(rng, _pick(rng, PANTS_COLORS + CLOTH_COLORS[:4]), 12),
            "skin": _jit(rng, _pick(rng, SKIN_COLORS), 10), "hair": _pick(rng, HAIR_COLORS),
            "shoes": _jit(rng, (40, 38, 36), 15), "helmet": _jit(rng, _pick(rng, CLOTH_COLORS + CAR_COLORS), 15)}


def _add_person(b: _Builder, rng, x: float, y: float, yaw: float, walking: bool = True, height: float | None = None):
    """A pedestrian, walking or standing; far away a flat silhouette."""
    height = height or float(np.clip(rng.normal(1.74, 0.1), 1.5, 1.98)) * (0.7 if rng.random() < 0.08 else 1.0)
    s = height / 1.75
    if not b.visible((x, y, height / 2), height / 2 + 0.4):
        return
    inst = b.instance(PERSON)
    ax, ay, az = _axes(yaw)
    base = np.array([x, y, 0.0])
    colors = _person_colors(rng)
    if b.ppm(base) * height < 24:  # far away: a flat silhouette is indistinguishable
        w = 0.46 * s
        body = np.array([[-0.16, 0], [-0.04, 0], [0, 0.85], [0.04, 0], [0.16, 0], [0.2, 0.9], [0.23, 1.45],
                         [-0.23, 1.45], [-0.2, 0.9]]) * [w / 0.46, s]
        b.billboard(base, body, PERSON, inst, colors["shirt"], _t_split, {"lo": colors["pants"], "v": 0.9 * s},
                    shadow=False)
        b.billboard(base + az * 1.57 * s, _circle(6, 0.11 * s, 0.13 * s), PERSON, inst, colors["skin"], shadow=False)
        b.shadows.append(np.array([base + ax * 0.25 * s, base - ax * 0.25 * s, base + az * height]))
        return
    ph = rng.uniform(0, 2 * np.pi)
    stride = (0.3 * math.sin(ph) if walking else rng.uniform(-0.05, 0.05)) * s
    hip = base + az * 0.9 * s
    legs = []
    for side in (-1, 1):
        foot = base + ax * side * 0.11 * s + ay * stride * side + az * 0.03
        legs.append((hip + ax * side * 0.1 * s, foot, None))
    hands = [(side, base + az * 0.82 * s + ax * side * 0.28 * s - ay * stride * side * 0.8) for side in (-1, 1)]
    _add_body(b, rng, hip, (ax, ay, az), PERSON, inst, s, rng.uniform(-0.05, 0.08), legs, hands, False, colors)
    if rng.random() < 0.3:  # bag or backpack
        bc = _jit(rng, _pick(rng, CLOTH_COLORS), 15)
        if rng.random() < 0.5:
            b.box(hip - ay * 0.2 * s + az * 0.1 * s, (ax, ay, az), (0.3 * s, 0.14 * s, 0.42 * s), PERSON, inst, bc,
                  shadow=False)
        else:
            b.box(base + ax * 0.33 * s + az * 0.45 * s, (ax, ay, az), (0.1 * s, 0.35 * s, 0.3 * s), PERSON, inst, bc,
                  shadow=False)
    b.shadows.append(np.array([base + ax * 0.25 * s, base - ax * 0.25 * s, base + az * height + ax * 0.2 * s,
                               base + az * height - ax * 0.2 * s, base + ay * 0.2 * s, base - ay * 0.2 * s]))


def _add_bicycle(b: _Builder, rng, x: float, y: float, yaw: float, rider: bool = False) -> None:
    """A bicycle (label 'bicycle'), with a rider (label 'rider') when ``rider``."""
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    if not b.visible(base + az * 0.9, 1.4):
        return
    inst = b.instance(BICYCLE)
    col = _jit(rng, _pick(rng, CAR_COLORS + VEHICLE_COLORS), 20)
    circ = _circle(10, 0.35)
    for j in (-1, 1):
        c = base + ay * j * 0.53 + az * 0.35
        b.face(c + circ[:, :1] * ay + circ[:, 1:] * az, BICYCLE, inst, np.array([28.0, 28, 30]), _t_wheel,
               {"r": 0.35, "rim": np.array([150.0, 150, 150]), "spokes": 14}, (c, ay, az, 0.0, 0.0),
               two_sided=True, ndotl=0.3)
    bb, seat = base + az * 0.32, base - ay * 0.14 + az * 0.86
    head = base + ay * 0.38 + az * 0.84
    rh, fh = base - ay * 0.53 + az * 0.35, base + ay * 0.53 + az * 0.35
    for p0, p1 in ((bb, seat), (seat, head), (bb, head), (bb, rh), (seat, rh), (head, fh)):
        b.rod(p0, p1, 0.045, ax, BICYCLE, inst, col)
    bar = head + az * 0.16
    b.rod(bar - ax * 0.28, bar + ax * 0.28, 0.035, ay, BICYCLE, inst, np.array([40.0, 40, 40]))
    b.box(seat, axes, (0.12, 0.26, 0.06), BICYCLE, inst, np.array([30.0, 30, 30]), shadow=False)
    b.shadows.append(np.array([rh - az * 0.35, fh - az * 0.35, bar, seat, rh + az * 0.3, fh + az * 0.3]))
    if rider:
        _add_rider(b, rng, base, axes, seat_h=0.9, seat_y=-0.16, lean=rng.uniform(0.25, 0.45),
                   hand=bar, foot_y=0.05, foot_z=0.25, helmet=rng.random() < 0.4)


def _add_rider(b: _Builder, rng, base, axes, seat_h: float, seat_y: float, lean: float, hand, foot_y: float,
               foot_z: float, helmet: bool):
    """A seated rider on a bicycle or motorcycle, hands on the handlebar ``hand``."""
    ax, ay, az = axes
    s = rng.uniform(0.92, 1.08)
    inst = b.instance(RIDER)
    colors = _person_colors(rng)
    hip = base + ay * seat_y + az * seat_h
    legs = []
    for side in (-1, 1):
        knee = hip + ay * 0.42 * s + az * (0.05 - 0.12 * side) * s + ax * side * 0.15 * s
        foot = base + ay * (foot_y + 0.1 * side) + az * (foot_z + 0.08 * side) + ax * side * 0.16 * s
        legs.append((hip + ax * side * 0.1 * s, knee, foot))
    hands = [(side, hand + ax * side * 0.25) for side in (-1, 1)]
    _add_body(b, rng, hip, axes, RIDER, inst, s, lean, legs, hands, helmet, colors)
    b.shadows.append(np.array([hip, hip + az * 0.9 * s + ay * 0.3, hand, base + ay * foot_y]))


def _add_motorcycle(b: _Builder, rng, x: float, y: float, yaw: float, rider: bool = True) -> None:
    """A motorcycle (label 'motorcycle'), with a helmeted rider (label 'rider') when ``rider``."""
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    if not b.visible(base + az * 0.9, 1.6):
        return
    inst = b.instance(MOTORCYCLE)
    col = _jit(rng, _pick(rng, [(200, 30, 30), (30, 30, 35), (230, 230, 230), (40, 80, 160), (240, 140, 30),
                                (60, 130, 60), (160, 160, 165)]), 15)
    dark = np.array([45.0, 45, 48])
    for j in (-1, 1):
        _add_wheel(b, base + ay * j * 0.7 + az * 0.32, ax, ay, az, 0.32, 0.14, MOTORCYCLE, inst,
                   np.array([120.0, 120, 125]))
    b.box(base + ay * 0.02 + az * 0.28, axes, (0.36, 0.62, 0.4), MOTORCYCLE, inst, dark)
    b.box(base - ay * 0.12 + az * 0.66, axes, (0.32, 0.95, 0.2), MOTORCYCLE, inst, col)
    b.hexa(base + ay * 0.52 + az * 0.6, axes, (0.46, 0.36), (0.3, 0.2, 0.06), 0.5, MOTORCYCLE, inst, col)
    b.rod(base + ay * 0.7 + az * 0.32, base + ay * 0.48 + az * 1.02, 0.06, ax, MOTORCYCLE, inst, dark)
    bar = base + ay * 0.45 + az * 1.04
    b.rod(bar - ax * 0.36, bar + ax * 0.36, 0.04, ay, MOTORCYCLE, inst, dark)
    b.rod(base - ay * 0.2 + az * 0.3 + ax * 0.2, base - ay * 0.85 + az * 0.42 + ax * 0.2, 0.09, az, MOTORCYCLE,
          inst, np.array([170.0, 170, 175]))
    b.shadows.append(np.array([base - ay * 1.0, base + ay * 1.0, bar, base - ay * 0.6 + az * 0.9]))
    if rider:
        _add_rider(b, rng, base, axes, seat_h=0.84, seat_y=-0.25, lean=rng.uniform(0.3, 0.6), hand=bar,
                   foot_y=0.0, foot_z=0.3, helmet=True)


def _add_static_object(b: _Builder, rng, x: float, y: float) -> None:
    """Street furniture with label 'static': bin, bench, bollards, advertising column, box, planter."""
    kind = rng.choice(["bin", "bench", "bollard", "column", "box", "planter"], p=[0.3, 0.15, 0.2, 0.1, 0.15, 0.1])
    yaw = rng.uniform(-0.2, 0.2) + (np.pi / 2 if rng.random() < 0.5 else 0)
    axes = _axes(yaw)
    base = np.array([x, y, 0.12])
    if not b.visible(base + [0, 0, 1], 2.0):
        return
    if kind == "bin":
        col = _jit(rng, _pick(rng, [(40, 90, 50), (80, 80, 85), (200, 110, 30), (30, 60, 130), (60, 60, 60)]), 15)
        b.box(base, axes, (0.6, 0.7, rng.uniform(0.9, 1.2)), STATIC, STATIC, col, tex=_t_plain, tp={"a": 0.2})
    elif kind == "bench":
        col = _jit(rng, (120, 90, 60), 25)
        b.box(base + [0, 0, 0.4], axes, (1.6, 0.45, 0.08), STATIC, STATIC, col)
        b.box(base + [0, 0, 0.5] - axes[1] * 0.2, axes, (1.6, 0.06, 0.4), STATIC, STATIC, col)
        for i in (-1, 1):
            b.box(base + axes[0] * i * 0.7, axes, (0.06, 0.4, 0.42), STATIC, STATIC, np.array([50.0, 50, 50]))
    elif kind == "bollard":
        col = _jit(rng, _pick(rng, [(60, 60, 62), (200, 200, 200), (140, 60, 40)]), 10)
        for k in range(int(rng.integers(1, 4))):
            b.box(base + np.array([0, k * 1.5, 0]), axes, (0.16, 0.16, rng.uniform(0.7, 1.0)), STATIC, STATIC, col)
    elif kind == "column":
        b.prism(base + [0, 0, 1.5], np.array([0, 0, 1.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]),
                _circle(8, 0.6), 3.0, STATIC, STATIC, np.array([40.0, 80, 50]))
        e1, n = b.facing(base)
        for k in range(2):
            # posters on the side that faces the camera
            a, c = base + n * 0.61 + e1 * 0.58 * (1 - 2 * k), base + n * 0.61 + e1 * 0.58 * (2 * k - 1)
            b.face([a, c, c + [0, 0, 2.6], a + [0, 0, 2.6]], STATIC, STATIC, np.array([200.0, 200, 200]), _t_poster,
                   {"seed": float(rng.integers(99))}, hint=n)
    elif kind == "box":
        col = _jit(rng, _pick(rng, [(120, 125, 120), (150, 150, 145), (90, 100, 90)]), 10)
        b.box(base, axes, (rng.uniform(0.5, 1.2), rng.uniform(0.3, 0.6), rng.uniform(1.0, 1.6)), STATIC, STATIC,
              col, tex=_t_plain, tp={"a": 0.25})
    else:
        col = _jit(rng, (110, 100, 90), 20)
        b.box(base, axes, (1.0, 1.0, 0.6), STATIC, STATIC, col, tex=_t_concrete, tp={"panel": 9.0})
        b.billboard(base + [0, 0, 0.6], _circle(10, 0.55) * [1, 0.8] + [0, 0.4], VEGETATION, VEGETATION,
                    _jit(rng, _pick(rng, GREEN_COLORS), 15), _t_foliage, {"r": 0.5, "blob": True}, shadow=False)


def _add_dynamic(b: _Builder, rng, x: float, y: float, yaw: float) -> None:
    """A stroller or hand cart (label 'dynamic', as Cityscapes annotates them)."""
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.12])
    if not b.visible(base + az * 0.5, 1.0):
        return
    col = _jit(rng, _pick(rng, CLOTH_COLORS), 20)
    if rng.random() < 0.6:  # stroller: body on a frame, with a hood
        b.box(base + az * 0.45, axes, (0.5, 0.8, 0.45), DYNAMIC, DYNAMIC, col)
        b.hexa(base + az * 0.9 - ay * 0.2, axes, (0.5, 0.4), (0.45, 0.2, -0.1), 0.3, DYNAMIC, DYNAMIC, col * 0.8)
        b.rod(base - ay * 0.4 + az * 0.8, base - ay * 0.7 + az * 1.05, 0.04, ax, DYNAMIC, DYNAMIC, np.array([40.0] * 3))
    else:  # hand cart / trolley
        b.box(base + az * 0.3, axes, (0.6, 0.9, 0.55), DYNAMIC, DYNAMIC, _jit(rng, (120, 120, 125), 30),
              tex=_t_fence, tp={"kind": 1, "bg": np.array([70.0, 70, 70])})
    for j in (-1, 1):
        b.box(base + ay * j * 0.3, axes, (0.55, 0.2, 0.22), DYNAMIC, DYNAMIC, np.array([30.0, 30, 30]), shadow=False)


def _add_novel(b: _Builder, rng, x: float, y: float) -> None:
    """An object never seen in training on the road: animals (dynamic) or boxes, furniture, drums (static)."""
    kind = rng.choice(["animal", "boxes", "sofa", "drums", "ball"])
    yaw = rng.uniform(0, 2 * np.pi)
    ax, ay, az = axes = _axes(yaw)
    base = np.array([x, y, 0.0])
    if not b.visible(base + az, 3.0):
        return
    bold = [(220, 40, 200), (40, 220, 220), (250, 120, 0), (120, 60, 20), (240, 240, 240), (20, 20, 20),
            (250, 230, 0), (100, 0, 180)]
    c1, c2 = _jit(rng, _pick(rng, bold), 10), _jit(rng, _pick(rng, bold), 10)
    tp = {"kind": int(rng.integers(3)), "c2": c2, "seed": float(rng.integers(99))}
    if kind == "animal":
        s = rng.uniform(0.5, 1.3)
        body_z = 0.75 * s
        b.box(base + az * body_z, axes, (0.5 * s, 1.5 * s, 0.6 * s), DYNAMIC, DYNAMIC, c1, tex=_t_novel, tp=tp)
        for i in (-1, 1):
            for j in (-1, 1):
                b.rod(base + ax * i * 0.17 * s + ay * j * 0.55 * s + az * body_z,
                      base + ax * i * 0.17 * s + ay * j * 0.6 * s, 0.11 * s, ay, DYNAMIC, DYNAMIC, c1 * 0.7)
        neck0 = base + ay * 0.7 * s + az * (body_z + 0.45 * s)
        neck1 = neck0 + ay * 0.35 * s + az * 0.45 * s
        b.rod(neck0, neck1, 0.2 * s, ax, DYNAMIC, DYNAMIC, c1)
        b.box(neck1, axes, (0.25 * s, 0.5 * s, 0.28 * s), DYNAMIC, DYNAMIC, c1, tex=_t_novel, tp=tp)
        if rng.random() < 0.5:  # antlers / horns
            for i in (-1, 1):
                b.rod(neck1 + az * 0.25 * s, neck1 + az * 0.65 * s + ax * i * 0.35 * s, 0.05 * s, ay, DYNAMIC,
                      DYNAMIC, c2)
    elif kind == "boxes":
        z = 0.0
        for k in range(int(rng.integers(1, 4))):
            sz = rng.uniform(0.4, 0.9, 3)
            b.box(base + az * z + ax * rng.uniform(-0.3, 0.3), _axes(yaw + rng.uniform(-0.4, 0.4)), sz, STATIC,
                  STATIC, _jit(rng, (160, 120, 70) if k % 2 else c1, 20), tex=_t_novel, tp=tp)
            z += sz[2]
    elif kind == "sofa":
        w = rng.uniform(1.0, 2.2)
        b.box(base, axes, (w, 0.9, 0.45), STATIC, STATIC, c1, tex=_t_novel, tp=tp)
        b.box(base - ay * 0.35, axes, (w, 0.2, 0.95), STATIC, STATIC, c1, tex=_t_novel, tp=tp)
        for i in (-1, 1):
            b.box(base + ax * i * (w / 2), axes, (0.2, 0.9, 0.65), STATIC, STATIC, c2)
    elif kind == "drums":
        for k in range(int(rng.integers(1, 4))):
            c = base + ax * (k * 0.7) + az * 0.45
            b.prism(c, az, ax, ay, _circle(8, 0.3), 0.9, STATIC, STATIC, c1, side_color=c1 if k % 2 else c2)
    else:
        r = rng.uniform(0.4, 1.0)
        b.billboard(base + az * r, _circle(16, r), STATIC, STATIC, c1, _t_novel, tp)


# --------------------------------------------------------------------------------------------
# Buildings
# --------------------------------------------------------------------------------------------
def _facade_params(rng, night: bool) -> dict:
    """Random window grid, materials and colours of one facade."""
    fh = rng.uniform(2.8, 3.6)
    bw = rng.uniform(2.1, 3.8)
    ww = min(bw - 0.5, rng.uniform(0.9, 1.7))
    wh = min(fh - 1.1, rng.uniform(1.2, 1.9))
    return {"seed": float(rng.integers(1000)), "brick": rng.random() < 0.2, "g": rng.uniform(3.0, 4.6),
            "fh": fh, "bw": bw, "ww": ww, "wh": wh, "sill": rng.uniform(0.7, min(1.0, fh - wh - 0.15)),
            "shop": rng.random() < 0.45,
            "glass": _jit(rng, _pick(rng, [(60, 70, 80), (80, 90, 100), (45, 55, 60), (90, 100, 95),
                                           (110, 120, 130)]), 10),
            "frame": _jit(rng, _pick(rng, [(235, 235, 230), (60, 55, 50), (200, 200, 195), (120, 90, 60)]), 10),
            "cornice": rng.uniform(0.3, 1.2), "margin": rng.uniform(0.3, 1.4),
            "lit": rng.uniform(0.1, 0.5) if night else 0.0}


def _add_building(b: _Builder, rng, side: int, x_face: float, y0: float, y1: float, height: float, depth: float,
                  color=None, fp=None) -> None:
    """A building block with its facade at X = x_face (side +1: right of the street, facing -X)."""
    xc = x_face + side * depth / 2
    if not b.visible((xc, (y0 + y1) / 2, height / 2), math.hypot(depth, y1 - y0, height) / 2):
        return
    color = _jit(rng, _pick(rng, BUILDING_COLORS), 18) if color is None else color
    fp = fp or _facade_params(rng, b.night)
    facade = "left" if side > 0 else "right"
    if rng.random() < 0.4:
        end = (_t_concrete, {"seed": fp["seed"], "panel": 30.0}, color * rng.uniform(0.8, 1.0))
    else:
        end = (_t_facade, fp, None)
    faces = {facade: (_t_facade, fp, None), "back": end, "front": end}
    b.box(np.array([xc, (y0 + y1) / 2, 0.0]), _I3, (depth, y1 - y0, height), BUILDING, BUILDING, color,
          faces=faces, skip=("bottom", "top"))
    if rng.random() < 0.35:  # pitched roof, visible from the street when steep
        rd, rh = rng.uniform(2.5, 5), rng.uniform(2.8, 6)
        rc = _jit(rng, _pick(rng, [(120, 55, 45), (70, 70, 75), (95, 60, 50), (50, 50, 55)]), 12)
        xb = x_face
        xr = xb + side * rd
        b.face([[xb, y1, height], [xb, y0, height], [xr, y0, height + rh], [xr, y1, height + rh]], BUILDING,
               BUILDING, rc, _t_brick, {"seed": fp["seed"]}, hint=np.array([-side, 0, 0.5]))


def _building_row(b: _Builder, rng, side: int, x_face: float, y0: float, y1: float, skips: list,
                  gap_p: float = 0.28, hmin: float = 5.0, hmax: float = 24.0, front=True) -> list:
    """Buildings along one side; returns the gaps (y0, y1) left open."""
    gaps = []
    y = y0
    style = _jit(rng, _pick(rng, BUILDING_COLORS), 18)
    while y < y1:
        nxt = min([a for a, _ in skips if a > y] + [y1])
        inside = [s for s in skips if s[0] <= y < s[1]]
        if inside:
            y = inside[0][1]
            continue
        L = min(rng.uniform(7, 26) * (1 + max(y, 0) / 50), nxt - y)  # far buildings: fewer, longer
        if L < 2.5:
            y = nxt
            continue
        if front and rng.random() < gap_p:
            gl = min(rng.uniform(3, 14), nxt - y)
            gaps.append((y, y + gl))
            y += gl
            continue
        set_back = 0.0 if rng.random() < 0.55 else rng.uniform(0.3, 4.0)
        floors = int(rng.integers(1, 5)) if rng.random() < 0.8 else int(rng.integers(5, 11))
        h = float(np.clip(4.0 + floors * 3.2 + 0.7, hmin, hmax * (1.6 if floors > 7 else 1)))
        depth = rng.uniform(10, 18)
        col = style if rng.random() < 0.25 else None
        xf = x_face + side * set_back
        if b.visible((xf + side * depth / 2, y + L / 2, h / 2), math.hypot(depth, L, h) / 2):
            fp = _facade_params(rng, b.night)
            h = float(np.clip(fp["g"] + floors * fp["fh"] + fp["cornice"], hmin, hmax * (1.6 if floors > 7 else 1)))
            _add_building(b, rng, side, xf, y, y + L, h, depth, col, fp)
        else:  # hidden behind the camera or out of view: it still casts its shadow
            xb = xf + side * depth
            b.shadows.append(np.array([[x, yy, zz] for x in (xf, xb) for yy in (y, y + L) for zz in (0.0, h)]))
        if front and set_back > 1.0 and rng.random() < 0.75:
            _front_boundary(b, rng, x_face + side * 0.15, y, y + L)
        y += L
    return gaps


def _front_boundary(b: _Builder, rng, x: float, y0: float, y1: float) -> None:
    """A low wall, fence or hedge along the front of a plot."""
    r = rng.random()
    if r < 0.35:
        _add_wall(b, rng, x, y0, y1, rng.uniform(0.6, 1.8), rng.uniform(0.2, 0.4))
    elif r < 0.7:
        _add_fence(b, rng, x, y0, y1, rng.uniform(0.9, 2.0))
    else:
        _add_hedge(b, rng, x - 0.4, x + 0.4, y0, y1, rng.uniform(0.8, 1.9))


def _fill_gap(b: _Builder, rng, side: int, x_face: float, y0: float, y1: float) -> None:
    """What stands in a gap between buildings: trees, a wall, a fence or a hedge."""
    r = rng.random()
    if r < 0.4:
        for _ in range(int(rng.integers(1, 4))):
            _add_tree(b, rng, x_face + side * rng.uniform(1.5, 6), rng.uniform(y0, y1), rng.uniform(0.9, 1.4))
        if rng.random() < 0.7:
            _front_boundary(b, rng, x_face, y0, y1)
    elif r < 0.65:
        _add_wall(b, rng, x_face, y0, y1, rng.uniform(1.5, 3.8), rng.uniform(0.25, 0.5))
        if rng.random() < 0.5:
            _add_tree(b, rng, x_face + side * rng.uniform(2, 5), (y0 + y1) / 2, rng.uniform(0.9, 1.3))
    elif r < 0.85:
        _add_fence(b, rng, x_face, y0, y1, rng.uniform(1.2, 2.4))
        if rng.random() < 0.5:
            _add_hedge(b, rng, x_face + side * 0.5, x_face + side * 1.3, y0, y1, rng.uniform(1.0, 2.2))
    else:
        _add_hedge(b, rng, x_face, x_face + side * 1.0, y0, y1, rng.uniform(1.0, 2.5))


def _backdrop(b: _Builder, rng, y: float, x0: float, x1: float, city: bool = True) -> None:
    """Something tall across the end of the street so the ground never reaches the horizon."""
    if city:
        x = x0
        while x < x1:
            w = rng.uniform(10, 40)
            h = rng.uniform(10, 35)
            fp = _facade_params(rng, b.night)
            col = _jit(rng, _pick(rng, BUILDING_COLORS), 18)
            b.box(np.array([x + w / 2, y + 8, 0.0]), _I3, (w, 16, h), BUILDING, BUILDING, col,
                  faces={"back": (_t_facade, fp, None)}, skip=("top", "bottom", "front"), shadow=False)
            x += w
    else:
        _tree_line(b, rng, y, x0, x1, rng.uniform(12, 25))


def _tree_line(b: _Builder, rng, y: float, x0: float, x1: float, h: float, along_y: bool = False) -> None:
    """A forest edge: one big vegetation polygon with a bumpy top."""
    n = 40
    xs = np.linspace(x0, x1, n)
    tops = h * (0.75 + 0.5 * rng.random(n))
    pts2 = np.column_stack([np.concatenate([xs, xs[::-1]]), np.concatenate([tops, np.zeros(n)])])
    if along_y:
        P = np.column_stack([np.full(2 * n, y), pts2[:, 0], pts2[:, 1]])
        hint = np.array([-np.sign(y), 0, 0])
    else:
        P = np.column_stack([pts2[:, 0], np.full(2 * n, y), pts2[:, 1]])
        hint = np.array([0, -1.0, 0])
    col = _jit(rng, _pick(rng, GREEN_COLORS), 12) * 0.8
    b.face(P, VEGETATION, VEGETATION, col, _t_foliage, {"seed": float(rng.integers(99))}, hint=hint, two_sided=True,
           ndotl=0.3)


# --------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------
@dataclass
class _Lane:
    x: float
    yaw: float
    kind: str  # drive | park
    occ: list = field(default_factory=list)

    def free(self, y0: float, y1: float) -> bool:
        return all(y1 < a or y0 > b for a, b in self.occ)

    def take(self, y0: float, y1: float) -> None:
        self.occ.append((y0, y1))


def _place_vehicle(b: _Builder, rng, lane: _Lane, y: float, kind: str) -> float | None:
    """Place a vehicle of ``kind`` centred near y in ``lane`` if there is room; returns its length."""
    est = {"car": 5.0, "truck": 10.0, "bus": 13.0, "train": 30.0, "moto": 2.2, "trailer": 5.0}[kind]
    if not lane.free(y - est / 2 - 0.8, y + est / 2 + 0.8):
        return None
    yaw = lane.yaw + rng.normal(0, 0.03 if lane.kind == "drive" else 0.05)
    x = lane.x + rng.normal(0, 0.15)
    if kind == "car":
        L = _add_car(b, rng, x, y, yaw)
    elif kind == "truck":
        L = _add_truck(b, rng, x, y, yaw)
    elif kind == "bus":
        L = _add_bus(b, rng, x, y, yaw)
    elif kind == "train":
        L = _add_train(b, rng, lane.x, y, lane.yaw)
    elif kind == "moto":
        _add_motorcycle(b, rng, x, y, yaw, rider=lane.kind == "drive")
        L = 2.0
    else:
        L = _add_trailer(b, rng, x, y, yaw)
    lane.take(y - L / 2, y + L / 2)
    return L


def _add_trailer(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A parked caravan or trailer (ignored labels 'caravan' / 'trailer'); returns its length."""
    caravan = rng.random() < 0.5
    label = CARAVAN if caravan else TRAILER
    L, W, H = (rng.uniform(5, 7), 2.3, 2.6) if caravan else (rng.uniform(2.5, 4), 1.8, 1.2)
    if not b.visible((x, y, H / 2), L / 2 + 0.5):
        return L
    inst = b.instance(label)
    ax, ay, az = axes = _axes(yaw)
    col = _jit(rng, (230, 228, 220) if caravan else (150, 150, 155), 15)
    side = (_t_coach, {"w0": 1.3, "w1": 0.6, "pp": 2.5, "doors": [0.5], "stripe": _jit(rng, (120, 60, 40), 30),
                       "glass": np.array([50.0, 55, 60]), "night": False}, None) if caravan else None
    b.box(np.array([x, y, 0.35]), axes, (W, L, H - 0.35), label, inst, col,
          faces={"left": side, "right": side} if caravan else None)
    _add_axle(b, np.array([x, y, 0.33]), ax, ay, az, 0.33, W, 0.2, label, inst, np.array([140.0, 140, 140]),
              caps=True)
    return L


QUIET_STREETS = 0.8  # share of street scenes that are quiet residential roads


def _flags(rng) -> dict:
    """Which rare things this street scene gets (keeps every class frequent enough in training)."""
    return {"bus": rng.random() < 0.3, "truck": rng.random() < 0.3, "train": rng.random() < 0.25,
            "moto": rng.random() < 0.35, "cyclist": rng.random() < 0.45, "bikes": rng.random() < 0.4,
            "tlight": rng.random() < 0.4, "persons": rng.random() < 0.8, "trailer": rng.random() < 0.06}


def _layout_street(b: _Builder, rng, opts: SceneOptions) -> tuple[_Ground, list[_Lane]]:
    """A city street: road, sidewalks, buildings, furniture, traffic and people. Returns (ground, lanes)."""
    night = opts.environment == "night"
    flags = _flags(rng)
    # Most streets are quiet residential roads with fewer kinds of things in view, so that a
    # small network trained for minutes on a laptop learns most classes; the busy half carries the
    # rare classes (their probabilities in _flags are set for that).
    quiet = rng.random() < QUIET_STREETS
    if quiet:
        flags = {k: False for k in flags} | {"persons": flags["persons"]}
    lane_w = rng.uniform(2.9, 3.6)
    n_r = int(rng.choice([1, 1, 1, 2, 2]))
    n_l = int(rng.choice([0, 1, 1, 1, 1, 2]))
    ego = int(rng.integers(n_r))
    xc = -(ego + 0.5) * lane_w + rng.normal(0, 0.2)
    tram_bed = flags["train"] and n_l > 0 and rng.random() < 0.5
    med = rng.uniform(3.1, 3.6) if tram_bed else 0.0
    xr0, xl0 = xc + med / 2, xc - med / 2
    xr_d, xl_d = xr0 + n_r * lane_w, xl0 - n_l * lane_w
    park = {s: (rng.uniform(2.0, 2.5), "parking" if rng.random() < 0.4 else "road")
            for s in (-1, 1) if rng.random() < 0.5}
    xr = xr_d + (park[1][0] if 1 in park else 0.0)
    xl = xl_d - (park[-1][0] if -1 in park else 0.0)
    bands = []
    if -1 in park:
        bands.append((xl, xl_d, park[-1][1]))
    bands.append((xl_d, xl0, "road"))
    if med > 0:
        bands.append((xl0, xr0, "rail"))
    bands.append((xr0, xr_d, "road"))
    if 1 in park:
        bands.append((xr_d, xr, park[1][1]))
    bands = [bd for bd in bands if bd[1] > bd[0]]

    curb = rng.uniform(0.1, 0.16)
    y_end = rng.uniform(80, 200)
    gp = _ground_params(rng)
    g = _Ground(curb, xl, xr, bands, [], [], y_end=y_end, params=gp)
    g.params["rail_x"] = xc
    g.params["rail_grass"] = rng.random() < 0.4

    # cross street
    crosses = []
    if not quiet and rng.random() < 0.45:
        ya = rng.uniform(14, 55)
        wc = rng.uniform(10, 18)
        swc = rng.uniform(1.8, 3.5)
        r = rng.random()
        lft, rgt = (True, True) if r < 0.6 else ((False, True) if r < 0.8 else (True, False))
        crosses.append((ya, ya + wc, swc, lft, rgt))
    g.crosses = crosses

    sides = {}
    for s in (-1, 1):
        edge = xr if s > 0 else xl
        sb, off = [], 0.0
        lawn = None
        if rng.random() < 0.22:
            w = rng.uniform(1.0, 2.5)
            sb.append((off, off + w, "terrain"))
            lawn = (off, off + w)
            off += w
        sw = rng.uniform(1.8, 4.8)
        sb.append((off, off + sw, "sidewalk"))
        swr = (off, off + sw)
        off += sw
        vk = rng.choice(["none", "none", "none", "terrain", "terrain", "ground", "parking", "sidewalk"])
        if vk != "none":
            vw = rng.uniform(1.0, 5.0)
            sb.append((off, off + vw, str(vk)))
            off += vw
        sb.append((off, 1e4, str(rng.choice(["terrain", "ground", "sidewalk"]))))
        merged = []
        for bd in sb:  # merge equal neighbours so lookups stay simple
            if merged and merged[-1][2] == bd[2]:
                merged[-1] = (merged[-1][0], bd[1], bd[2])
            else:
                merged.append(bd)
        if s < 0:
            g.left = merged
        else:
            g.right = merged
        sides[s] = {"edge": edge, "face": edge + s * off, "sw": swr, "lawn": lawn, "verge": vk}

    # markings
    mk = []
    dash = (rng.uniform(2.5, 4), rng.uniform(7, 12))
    if n_l > 0 and med == 0:
        mk.append({"type": "line", "x": xc, "w": rng.uniform(0.1, 0.16), "y0": -5, "y1": y_end,
                   "dash": None if rng.random() < 0.3 else dash})
    for k in range(1, n_r):
        mk.append({"type": "line", "x": xr0 + k * lane_w, "w": 0.12, "y0": -5, "y1": y_end, "dash": dash})
    for k in range(1, n_l):
        mk.append({"type": "line", "x": xl0 - k * lane_w, "w": 0.12, "y0": -5, "y1": y_end, "dash": dash})
    if rng.random() < 0.6:
        mk.append({"type": "line", "x": xr_d - 0.15, "w": 0.15, "y0": -5, "y1": y_end})
        if n_l > 0:
            mk.append({"type": "line", "x": xl_d + 0.15, "w": 0.15, "y0": -5, "y1": y_end})
    for s in (-1, 1):
        if s in park and park[s][1] == "parking" and rng.random() < 0.6:
            x_in = xr_d if s > 0 else xl_d
            mk.append({"type": "bars", "x0": min(x_in, x_in + s * park[s][0]), "x1": max(x_in, x_in + s * park[s][0]),
                       "y0": rng.uniform(-5, 0), "y1": y_end, "period": rng.uniform(5.0, 6.0), "w": 0.12})
    zebra = None
    if crosses:
        ya = crosses[0][0]
        zebra = (ya - 4.5, ya - 0.8)
    elif rng.random() < 0.15:
        z0 = rng.uniform(12, 40)
        zebra = (z0, z0 + rng.uniform(3, 4.5))
    if zebra and rng.random() < 0.85:
        mk.append({"type": "zebra", "x0": xl_d, "x1": xr_d, "y0": zebra[0], "y1": zebra[1]})
        mk.append({"type": "bar", "x0": xr0, "x1": xr_d, "y0": zebra[0] - 1.6, "y1": zebra[0] - 1.3})
    g.markings = mk

    # buildings, gaps and what is behind them
    for s in (-1, 1):
        info = sides[s]
        skips = [(ya - 0.5, yb + 0.5) for ya, yb, swc, lf, rt in crosses if (rt if s > 0 else lf)]
        hmax = rng.uniform(10, 24)
        gaps = _building_row(b, rng, s, info["face"], -15, y_end, skips, hmax=hmax)
        for a, c in gaps:
            _fill_gap(b, rng, s, info["face"], a, c)
        back = info["face"] + s * rng.uniform(22, 45)
        _building_row(b, rng, s, back, -15, y_end, skips, gap_p=0.0, hmin=6, hmax=hmax, front=False)
        for ya, yb, swc, lf, rt in crosses:
            if rt if s > 0 else lf:
                xf = info["edge"] + s * rng.uniform(35, 90)
                _add_building(b, rng, s, xf, ya - 20, yb + 20, rng.uniform(12, 30), 15)
                # corner buildings along the cross street
                _add_building(b, rng, s, info["face"], yb + 0.3, yb + rng.uniform(10, 25), rng.uniform(8, 22), 12)
        if info["verge"] == "terrain" and rng.random() < 0.6:  # trees and bushes on the grass verge
            x0 = info["edge"] + s * info["sw"][1]
            for _ in range(int(rng.integers(1, 6))):
                x = x0 + s * rng.uniform(0.8, max(1.0, abs(info["face"] - x0) - 0.5))
                if rng.random() < 0.6:
                    _add_tree(b, rng, x, rng.uniform(0, 70), rng.uniform(0.8, 1.4))
                else:
                    y = rng.uniform(0, 60)
                    _add_hedge(b, rng, x - 0.6, x + 0.6, y, y + rng.uniform(2, 12), rng.uniform(0.8, 2.0))
        if not quiet and info["verge"] in ("terrain", "ground") and rng.random() < 0.4:
            # a low wall or fence between sidewalk and verge
            x = info["edge"] + s * info["sw"][1]
            y0 = rng.uniform(-5, 20)
            (_add_fence if rng.random() < 0.5 else _add_wall)(b, rng, x, y0, y0 + rng.uniform(10, 60),
                                                               rng.uniform(0.8, 1.6))
    _backdrop(b, rng, y_end, xl - 260, xr + 260, city=rng.random() < 0.75)
    if rng.random() < 0.07:  # a bridge over the street
        yb = rng.uniform(40, min(120, y_end - 10))
        hb = rng.uniform(5.0, 7.0)
        col = _jit(rng, (150, 148, 140), 15)
        b.box(np.array([0.0, yb, hb]), _I3, (600, rng.uniform(8, 14), 1.4), BRIDGE, BRIDGE, col, tex=_t_concrete,
              tp={"panel": 6.0})
        for s in (-1, 1):
            b.box(np.array([sides[s]["edge"] + s * 1.0, yb, 0.0]), _I3, (1.0, 6.0, hb), BRIDGE, BRIDGE, col * 0.9,
                  tex=_t_concrete, tp={"panel": 3.0})

    # street furniture along the curbs
    pole_col = _jit(rng, _pick(rng, [(120, 125, 120), (80, 85, 80), (150, 150, 150), (50, 55, 60)]), 10)
    lamp_sides = [s for s in (-1, 1) if rng.random() < 0.65] or [1]
    for s in lamp_sides:
        x = sides[s]["edge"] + s * rng.uniform(0.35, 0.6)
        y = rng.uniform(-5, 12)
        step = rng.uniform(18, 32)
        h = rng.uniform(6, 9.5)
        arm = rng.uniform(0.0, 2.2)
        while y < min(y_end, 110):
            _add_street_lamp(b, rng, x, y, s, h, pole_col, arm)
            y += step
    if rng.random() < 0.6:  # avenue trees
        for s in (-1, 1):
            if rng.random() < 0.7:
                lawn = sides[s]["lawn"]
                o = (lawn[0] + lawn[1]) / 2 if lawn else rng.uniform(0.8, 1.3)
                x = sides[s]["edge"] + s * o
                y = rng.uniform(-3, 8)
                step = rng.uniform(7, 14)
                scale = rng.uniform(0.8, 1.5)
                while y < min(y_end, 100):
                    _add_tree(b, rng, x, y, scale * rng.uniform(0.85, 1.15))
                    y += step * rng.uniform(0.8, 1.2)
    elif rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.choice([-1, 1]))
            lawn = sides[s]["lawn"]
            o = (lawn[0] + lawn[1]) / 2 if lawn else rng.uniform(0.8, 1.3)
            _add_tree(b, rng, sides[s]["edge"] + s * o, rng.uniform(3, 60), rng.uniform(0.8, 1.4))
    for _ in range(int(rng.integers(0, 2 if quiet else 4))):
        s = int(rng.choice([-1, 1]))
        x = sides[s]["edge"] + s * rng.uniform(0.3, 0.6)
        y = rng.uniform(4, 45)
        facing = math.pi + rng.normal(0, 0.15) if rng.random() < 0.75 else rng.choice([0.0, math.pi / 2, -math.pi / 2])
        _add_sign(b, rng, x, y, facing, rng.uniform(2.0, 3.0))
    tl_spots = []
    if crosses:
        ya, yb, swc, lf, rt = crosses[0]
        tl_spots += [(1, ya - 0.6), (-1, ya - 0.6), (1, yb + 0.6), (-1, yb + 0.6)]
    elif zebra and (flags["tlight"] or (not quiet and rng.random() < 0.4)):
        tl_spots += [(1, zebra[0] - 0.8), (-1, zebra[1] + 0.8)]
    elif flags["tlight"]:
        y = rng.uniform(12, 45)
        tl_spots += [(1, y), (-1, y)]
    for s, y in tl_spots:
        if rng.random() < 0.85:
            arm = rng.uniform(2.5, 5.5) if (s > 0 and rng.random() < 0.4) else 0.0
            _add_traffic_light(b, rng, sides[s]["edge"] + s * rng.uniform(0.4, 0.8), y,
                               math.pi + rng.normal(0, 0.08), rng.uniform(2.8, 4.2), arm, s)
    for _ in range(0 if quiet else int(rng.poisson(1.0))):
        s = int(rng.choice([-1, 1]))
        lo, hi = sides[s]["sw"]
        _add_static_object(b, rng, sides[s]["edge"] + s * rng.uniform(lo + 0.4, max(lo + 0.5, hi - 0.3)),
                           rng.uniform(3, 50))
    if rng.random() < 0.08:  # guard rail along a lawn / verge
        s = int(rng.choice([-1, 1]))
        _add_guard_rail(b, sides[s]["edge"] + s * 0.25, -5, rng.uniform(30, 80))

    # traffic
    lanes = [_Lane(xr0 + (k + 0.5) * lane_w, 0.0, "drive") for k in range(n_r)]
    lanes += [_Lane(xl0 - (k + 0.5) * lane_w, math.pi, "drive") for k in range(n_l)]
    park_lanes = [_Lane((xr_d + xr) / 2 if s > 0 else (xl_d + xl) / 2, 0.0 if rng.random() < 0.8 else math.pi,
                        "park") for s in park]
    for ln in lanes:
        if abs(ln.x) < lane_w / 2:
            ln.take(-20, rng.uniform(6, 10))  # the ego car's own space
        else:
            ln.take(-20, -3)
    if tram_bed:
        tram = _Lane(xc, 0.0 if rng.random() < 0.5 else math.pi, "drive")
        _place_vehicle(b, rng, tram, rng.uniform(20, 60), "train")
    elif flags["train"]:
        ln = lanes[int(rng.integers(len(lanes)))]
        y = rng.uniform(25, 60)
        if _place_vehicle(b, rng, ln, y, "train"):
            for sgn in (-1, 1):
                mk.append({"type": "line", "x": ln.x + sgn * 0.7175, "w": 0.07, "y0": -5, "y1": y_end})
    for kind in ("bus", "truck", "moto", "trailer"):
        if flags[kind]:
            pool = lanes + (park_lanes if kind in ("truck", "trailer", "moto") else [])
            if kind == "trailer" and not park_lanes:
                continue
            ln = pool[int(rng.integers(len(pool)))] if kind != "trailer" else park_lanes[0]
            for _ in range(5):
                if _place_vehicle(b, rng, ln, rng.uniform(6, 28) if kind == "moto" else rng.uniform(12, 45), kind):
                    break
    for ln in lanes:
        y = rng.uniform(0, 15)
        while y < min(y_end - 15, 100):
            y += rng.exponential(22) + 5
            kind = rng.choice(["car", "truck", "bus", "moto"], p=[0.94, 0.02, 0.01, 0.03])
            L = _place_vehicle(b, rng, ln, y, str(kind))
            y += (L or 0) / 2
    for ln in park_lanes:
        y = rng.uniform(-6, 2)
        fill = rng.uniform(0.3, 0.9)
        while y < min(y_end - 10, 80):
            if rng.random() < fill:
                L = _place_vehicle(b, rng, ln, y + 2.5, "car") or 4.5
                y += L + rng.uniform(0.6, 2.5)
            else:
                y += rng.uniform(3, 12)

    # people, cyclists, parked bicycles
    def sidewalk_x(s):
        lo, hi = sides[s]["sw"]
        return sides[s]["edge"] + s * rng.uniform(lo + 0.4, max(lo + 0.45, hi - 0.3))

    if flags["persons"]:
        n = int(rng.integers(1, 3 if quiet else 8)) if not night else int(rng.integers(0, 3))
        for _ in range(n):
            s = int(rng.choice([-1, 1]))
            y = 2.5 + 40 * rng.random() ** 1.4
            walking = rng.random() < 0.7
            yaw = rng.choice([0.0, math.pi]) + rng.normal(0, 0.1) if walking else rng.uniform(0, 2 * np.pi)
            x = sidewalk_x(s)
            _add_person(b, rng, x, y, yaw, walking)
            r = rng.random()
            if r < 0.3:
                _add_person(b, rng, x - s * 0.6, y + rng.normal(0, 0.3), yaw, walking)
            elif r < 0.36:  # pushing a stroller or cart
                _, fwd, _ = _axes(yaw)
                _add_dynamic(b, rng, x + fwd[0] * 0.9, y + fwd[1] * 0.9, yaw)
        if zebra and rng.random() < 0.6:
            for _ in range(int(rng.integers(1, 4))):
                _add_person(b, rng, rng.uniform(xl_d, xr_d), rng.uniform(*zebra),
                            rng.choice([-math.pi / 2, math.pi / 2]) + rng.normal(0, 0.1))
    if flags["cyclist"]:
        for _ in range(int(rng.integers(1, 3))):
            r = rng.random()
            if r < 0.55:
                x, yaw = xr_d - rng.uniform(0.6, 1.1), rng.normal(0, 0.05)
            elif r < 0.75 and n_l > 0:
                x, yaw = xl_d + rng.uniform(0.6, 1.1), math.pi + rng.normal(0, 0.05)
            else:
                s = int(rng.choice([-1, 1]))
                x, yaw = sidewalk_x(s), rng.choice([0.0, math.pi])
            _add_bicycle(b, rng, x, rng.uniform(5, 28), yaw, rider=True)
    if flags["bikes"]:
        s = int(rng.choice([-1, 1]))
        lo, hi = sides[s]["sw"]
        x = sides[s]["edge"] + s * (hi - 0.5)
        y = rng.uniform(4, 28)
        for k in range(int(rng.integers(1, 5))):
            _add_bicycle(b, rng, x, y + k * 0.7, -s * math.pi / 2 + rng.normal(0, 0.15))
    return g, lanes


def _layout_tunnel(b: _Builder, rng, opts: SceneOptions) -> tuple[_Ground, list[_Lane]]:
    """A road tunnel (walls and ceiling labelled 'tunnel') with artificial light and a bright exit."""
    lane_w = rng.uniform(3.2, 3.7)
    n_r, n_l = int(rng.integers(1, 3)), int(rng.integers(0, 2))
    ego = int(rng.integers(n_r))
    xc = -(ego + 0.5) * lane_w
    xr, xl = xc + n_r * lane_w, xc - n_l * lane_w
    walk = rng.uniform(0.8, 1.3)
    t_end = rng.uniform(60, 220)
    y_end = t_end + rng.uniform(120, 250)
    gp = _ground_params(rng)
    g = _Ground(0.25, xl, xr, [(xl, xr, "road")], [(0.0, walk, "sidewalk"), (walk, 1e4, "terrain")],
                [(0.0, walk, "sidewalk"), (walk, 1e4, "terrain")], y_end=y_end, params=gp)
    g.markings = [{"type": "line", "x": xr - 0.15, "w": 0.15, "y0": -5, "y1": y_end},
                  {"type": "line", "x": xl + 0.15, "w": 0.15, "y0": -5, "y1": y_end}]
    if n_l:
        g.markings.append({"type": "line", "x": xc, "w": 0.15, "y0": -5, "y1": y_end})
    wl, wr = xl - walk, xr + walk
    hw, hc = rng.uniform(4.2, 5.0), rng.uniform(6.0, 7.5)
    mid = (wl + wr) / 2
    col = _jit(rng, _pick(rng, [(150, 150, 145), (120, 120, 118), (170, 165, 150)]), 10)
    lamp_col = np.array([255.0, 170, 80]) if rng.random() < 0.5 else np.array([230.0, 240, 255])
    pp = rng.uniform(6, 12)
    wall_tp = {"tile_h": rng.uniform(2.0, 3.5)}
    ceil_tp = {"lamps": True, "lamp_v": 0.6, "lamp_pp": pp, "lamp_on": rng.uniform(0.2, 1.0), "lamp_col": lamp_col}
    y0 = -10.0
    for s, xw in ((-1, wl), (1, wr)):
        b.face([[xw, t_end, 0], [xw, y0, 0], [xw, y0, hw], [xw, t_end, hw]], TUNNEL, TUNNEL, col, _t_tunnel,
               wall_tp, hint=np.array([-s, 0, 0]))
        xm = mid + s * (wr - wl) * 0.25
        b.face([[xw, y0, hw], [xw, t_end, hw], [xm, t_end, hc], [xm, y0, hc]], TUNNEL, TUNNEL, col * 0.6, _t_tunnel,
               ceil_tp if s > 0 else {}, hint=np.array([-s, 0, -1.0]))
        b.box(np.array([xw + s * 0.1, (y0 + t_end) / 2, 0.25]), _I3, (0.2, t_end - y0, 1.0), TUNNEL, TUNNEL,
              col * 0.8, skip=("bottom",), shadow=False)
    b.face([[mid - (wr - wl) * 0.25, y0, hc], [mid + (wr - wl) * 0.25, y0, hc], [mid + (wr - wl) * 0.25, t_end, hc],
            [mid - (wr - wl) * 0.25, t_end, hc]], TUNNEL, TUNNEL, col * 0.5, hint=np.array([0, 0, -1.0]))
    # portal face around the exit and the hill above it
    hill = _jit(rng, _pick(rng, GREEN_COLORS), 10)
    for q in ([[wl - 300, t_end, 0], [wl, t_end, 0], [wl, t_end, 60], [wl - 300, t_end, 60]],
              [[wr, t_end, 0], [wr + 300, t_end, 0], [wr + 300, t_end, 60], [wr, t_end, 60]],
              [[wl, t_end, hc], [wr, t_end, hc], [wr, t_end, 60], [wl, t_end, 60]]):
        b.face(q, VEGETATION, VEGETATION, hill, _t_foliage, {"seed": 3.0}, hint=np.array([0, -1.0, 0]))
    for yy in np.arange(y0 + pp / 2, t_end, pp):
        b.lamps.append((np.array([mid + (wr - wl) * 0.25, yy, hc - 0.3]), lamp_col / 255.0, 0.6, 3.0))
    _tree_line(b, rng, y_end, xl - 400, xr + 400, rng.uniform(15, 30))
    for s in (-1, 1):
        _tree_line(b, rng, (xl if s < 0 else xr) + s * rng.uniform(5, 20), t_end, y_end + 5, rng.uniform(8, 20),
                   along_y=True)
    lanes = [_Lane(xc + (k + 0.5) * lane_w, 0.0, "drive") for k in range(n_r)]
    lanes += [_Lane(xc - (k + 0.5) * lane_w, math.pi, "drive") for k in range(n_l)]
    for ln in lanes:
        ln.take(-20, 8 if abs(ln.x) < lane_w / 2 else -3)
        y = rng.uniform(0, 15)
        while y < min(y_end - 15, 150):
            y += rng.exponential(20) + 5
            L = _place_vehicle(b, rng, ln, y, str(rng.choice(["car", "truck", "bus"], p=[0.8, 0.15, 0.05])))
            y += (L or 0) / 2
    for _ in range(int(rng.integers(0, 3))):
        s = int(rng.choice([-1, 1]))
        _add_sign(b, rng, (wl if s < 0 else wr) - s * 0.05, rng.uniform(10, t_end), math.pi, rng.uniform(2.5, 3.5),
                  pole=False)
    b.tunnel_end = t_end
    return g, lanes


def _layout_offroad(b: _Builder, rng, opts: SceneOptions) -> tuple[_Ground, list[_Lane]]:
    """A dirt track through fields and forest: no buildings, few objects."""
    tw = rng.uniform(2.8, 4.5)
    xc = rng.normal(0, 0.3)
    xl, xr = xc - tw / 2, xc + tw / 2
    y_end = rng.uniform(250, 600)
    gp = _ground_params(rng)
    gp["terrain"] = _pick(rng, TERRAIN_COLORS) + rng.uniform(-10, 10, 3)
    bands = {}
    for s in (-1, 1):
        v = rng.uniform(0.8, 3.0)
        bands[s] = [(0.0, v, "terrain"), (v, 1e4, str(rng.choice(["field", "terrain", "ground"])))]
    g = _Ground(0.0, xl, xr, [(xl, xr, "dirt")], bands[-1], bands[1], y_end=y_end, x_far=1500.0, params=gp)
    g.params["track_x"] = xc
    _tree_line(b, rng, y_end, -3000, 3000, rng.uniform(20, 60))
    for s in (-1, 1):
        for _ in range(int(rng.integers(1, 4))):
            x = (xr if s > 0 else xl) + s * rng.uniform(8, 80)
            ya = rng.uniform(-20, y_end * 0.6)
            _tree_line(b, rng, x, ya, ya + rng.uniform(40, 300), rng.uniform(8, 25), along_y=True)
        _tree_line(b, rng, s * 1400.0, -50, y_end, rng.uniform(30, 80), along_y=True)
        for _ in range(int(rng.integers(2, 9))):
            _add_tree(b, rng, (xr if s > 0 else xl) + s * rng.uniform(1.5, 25), rng.uniform(2, 120),
                      rng.uniform(0.9, 1.6))
    if rng.random() < 0.5:
        s = int(rng.choice([-1, 1]))
        x = (xr if s > 0 else xl) + s * rng.uniform(2, 6)
        y = rng.uniform(-5, 10)
        while y < 200:
            _add_pole(b, x, y, rng.uniform(7, 9), 0.12, np.array([100.0, 80, 60]))
            y += rng.uniform(35, 50)
    if rng.random() < 0.4:
        s = int(rng.choice([-1, 1]))
        _add_fence(b, rng, (xr if s > 0 else xl) + s * rng.uniform(0.8, 3), rng.uniform(-5, 10),
                   rng.uniform(30, 120), rng.uniform(1.0, 1.5))
    lane = _Lane(xc, 0.0, "drive")
    lane.take(-20, 8)
    if rng.random() < 0.3:
        _place_vehicle(b, rng, lane, rng.uniform(15, 60), str(rng.choice(["car", "truck"])))
    for _ in range(int(rng.integers(0, 3))):
        _add_person(b, rng, xc + rng.uniform(-1.5, 1.5), rng.uniform(6, 50), rng.choice([0.0, math.pi]))
    return g, [lane]


# --------------------------------------------------------------------------------------------
# Lighting, sky and the photo
# --------------------------------------------------------------------------------------------
def _make_light(rng, opts: SceneOptions) -> _Light:
    """Sun, ambient light, shadow strength, sky colours and haze for the scene's environment."""
    el = rng.uniform(0.25, 1.1)
    az = rng.uniform(-np.pi, np.pi)
    sun = np.array([math.cos(el) * math.sin(az), math.cos(el) * math.cos(az), math.sin(el)])
    if opts.environment == "night":
        return _Light(sun, rng.uniform(0.04, 0.08), 0.0, 0.0, True, False, np.array([4.0, 6, 16]),
                      _jit(rng, (45, 38, 40), 10), rng.uniform(200, 600), 0.0)
    if opts.environment == "tunnel":
        return _Light(sun, rng.uniform(0.25, 0.4), 0.0, 0.0, False, True, np.array([150.0, 180, 220]),
                      np.array([220.0, 225, 230]), 2000.0, 0.2)
    overcast = rng.random() < 0.4
    if overcast:
        amb, kd, sh = rng.uniform(0.75, 0.9), rng.uniform(0.05, 0.2), rng.uniform(0.3, 0.6)
        top = _jit(rng, (175, 182, 192), 15)
        hor = _jit(rng, (215, 218, 222), 12)
        clouds = rng.uniform(0.3, 0.8)
    else:
        amb, kd, sh = rng.uniform(0.42, 0.6), rng.uniform(0.5, 0.7), rng.uniform(0.75, 0.9)
        top = _jit(rng, (85, 135, 205), 20)
        hor = _jit(rng, (200, 215, 232), 12)
        clouds = rng.uniform(0.0, 0.6)
    return _Light(sun, amb, kd, sh, False, False, top, hor, rng.uniform(350, 2500), clouds)


def _sky(cam: _Cam, D: np.ndarray, light: _Light, rng, sel: np.ndarray) -> np.ndarray:
    """Sky colour for the pixels ``sel`` (gradient by elevation, soft clouds)."""
    d = D[sel]
    el = d[:, 2] / np.sqrt((d * d).sum(1))
    t = np.clip(el / 0.55, 0, 1) ** 0.6
    hor, top = light.sky_hor.astype(np.float32), light.sky_top.astype(np.float32)
    col = hor[None, :] * (1 - t[:, None]) + top[None, :] * t[:, None]
    small = rng.random((4, 8)).astype(np.float32)
    fine = rng.random((10, 20)).astype(np.float32)
    if light.clouds > 0:
        nz = (cv2.resize(small, (cam.W, cam.H), interpolation=cv2.INTER_CUBIC) * 0.7 +
              cv2.resize(fine, (cam.W, cam.H), interpolation=cv2.INTER_CUBIC) * 0.3)[sel]
        c = np.clip((nz - (1 - light.clouds * 0.8)) / 0.25, 0, 1) * light.clouds
        cc = np.array([240.0, 240, 242], np.float32) * (0.85 + 0.15 * nz[:, None])
        col = col * (1 - c[:, None]) + cc * c[:, None]
    if light.night:
        col[rng.random(len(col)) < 0.001] = 120.0
    return col


def _compose(cv: _Canvas, cam: _Cam, D: np.ndarray, light: _Light, shadow: np.ndarray,
             lamps: list, rng, opts: SceneOptions, tunnel_end: float | None) -> np.ndarray:
    """Light the albedo, add haze, sky and glow, then the camera's exposure, noise, blur and gamma.

    Per-pixel scalar factors (light, haze, vignetting) are folded into one multiply of the
    albedo; no BLAS for per-pixel colour maths (it multi-threads badly inside worker processes).
    """
    H, W = cam.H, cam.W
    f32 = np.float32
    sky = ~np.isfinite(cv.z)
    fin = ~sky
    exposure = rng.uniform(0.75, 1.25) if not light.night else rng.uniform(0.6, 1.0)
    wb = (exposure * rng.uniform(0.94, 1.06, 3)).astype(f32)
    yy = ((np.arange(H, dtype=f32) - H / 2) / H)[:, None]
    xx = ((np.arange(W, dtype=f32) - W / 2) / W)[None, :]
    vign = f32(1) - f32(rng.uniform(0.0, 0.7)) * (xx * xx + yy * yy)
    # aerial perspective: fraction f of the haze colour (0 on the sky, which is replaced below)
    f = f32(1) - np.exp(np.where(fin, cv.z, f32(0)) * f32(-1.0 / light.haze))
    if light.night:
        f *= f32(0.3)
    keep = (f32(1) - f) * vign
    fv = f * vign
    hz = light.sky_hor.astype(f32)
    direct = f32(light.amb) + f32(light.kd) * cv.ndl * (f32(1) - f32(light.shadow) * (shadow * cv.gnd))
    img = cv.alb * (direct * keep)[..., None]
    img += fv[..., None] * hz
    if lamps or opts.environment == "night" or tunnel_end is not None:
        iy, ix = np.nonzero(fin)
        P = cam.C[None, :].astype(f32) + cv.z[iy, ix][:, None] * D[iy, ix]
        add = np.zeros((len(iy), 3), f32)
        if opts.environment == "night":  # the ego car's headlights
            lamps = lamps + [(np.array([0.0, 8.0, 0.8]), np.array([1.0, 0.97, 0.9]), 0.7, 3.0),
                             (np.array([0.0, 20.0, 0.8]), np.array([1.0, 0.97, 0.9]), 0.5, 5.0)]
        near = sorted(lamps, key=lambda L: float(np.linalg.norm(L[0] - cam.C)))[:16]
        for pos, rgb, inten, rad in near:
            d2 = ((P - pos[None, :].astype(f32)) ** 2).sum(1)
            add += (f32(inten * rad * rad) / (f32(rad * rad) + d2))[:, None] * rgb[None, :].astype(f32)
        if tunnel_end is not None:  # daylight outside the tunnel: strongly over-exposed
            add[P[:, 1] > tunnel_end] += f32(2.5)
        img[iy, ix] += cv.alb[iy, ix] * add * keep[iy, ix][:, None]
    em = cv.emis > 0
    if em.any():
        img[em] = cv.alb[em] * (cv.emis[em] * keep[em])[:, None] + fv[em][:, None] * hz
    if sky.any():
        sc = _sky(cam, D, light, rng, sky).astype(f32) * vign[sky][:, None]
        img[sky] = sc * f32(3.0) if tunnel_end is not None else sc
    if em.any() and (light.night or light.tunnel):  # glow around light sources in the dark
        glow = np.where(em[..., None], np.maximum(img - f32(180), f32(0)), f32(0))
        img += cv2.GaussianBlur(glow, (0, 0), max(1.0, W / 120)) * f32(2.0 if light.night else 0.8)
    img *= wb
    sat = f32(rng.uniform(0.7, 1.1))
    if abs(sat - 1) > 0.02:
        gray = (img[..., 0] + img[..., 1] + img[..., 2]) * f32((1 - sat) / 3)
        img *= sat
        img += gray[..., None]
    # sensor noise (uniform noise with the variance of sigma: cheaper than Gaussian)
    sigma = rng.uniform(1.0, 4.5) if not light.night else rng.uniform(6, 12)
    noise = rng.random((H, W, 3), dtype=f32)
    noise -= f32(0.5)
    noise *= f32(sigma * math.sqrt(12.0))
    img += noise
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.3, 0.9) * max(W / 1024, 0.5))
    np.maximum(img, 0, out=img)
    out = cv2.convertScaleAbs(img)  # rounds and saturates to uint8
    gamma = rng.uniform(0.85, 1.15)
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(out, lut)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def render_scene(rng: np.random.Generator, height: int, width: int, options: SceneOptions | None = None) -> Scene:
    """Render one street scene of size (height, width) with its exact labels, depth and camera."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator, got {type(rng).__name__}")
    for name, val in (("height", height), ("width", width)):
        if not isinstance(val, (int, np.integer)) or val < 8:
            raise ValueError(f"{name}: expected an integer >= 8, got {val!r}")
    opts = options or SceneOptions()
    if not isinstance(opts, SceneOptions):
        raise ValueError(f"options: expected SceneOptions, got {type(opts).__name__}")
    H, W = int(height), int(width)
    camera, cam, _ = _make_camera(rng, H, W, opts)
    light = _make_light(rng, opts)
    b = _Builder(cam, light, rng)
    layout = {"street": _layout_street, "night": _layout_street, "tunnel": _layout_tunnel,
              "offroad": _layout_offroad}[opts.environment]
    ground, lanes = layout(b, rng, opts)
    if opts.novel_objects:
        for _ in range(int(rng.integers(1, 4))):
            ln = lanes[int(rng.integers(len(lanes)))]
            _add_novel(b, rng, ln.x + rng.uniform(-1.0, 1.0), rng.uniform(6, 20))
    b.finish()
    cv = _Canvas.empty(H, W)
    hood = {"hd": 0.34 + rng.uniform(-0.01, 0.01), "zf": 1.95 + rng.uniform(-0.05, 0.05), "k": 0.8, "hw": 0.95,
            "color": np.array([38.0, 40, 44]), "refl": np.array([90.0, 95, 105])}
    _draw_hood(cv, cam, hood)
    _draw_polys(cv, cam, b.polys)
    D = cam.rays()
    _draw_ground(cv, cam, D, ground, light)
    if light.kd * light.shadow > 0.05:
        shadow = _shadow_mask(cam, b.shadows, light.sun)
    else:  # night, tunnel or a heavy overcast: no visible cast shadows
        shadow = np.zeros((H, W), np.float32)
    image = _compose(cv, cam, D, light, shadow, b.lamps, rng, opts, b.tunnel_end)
    sky = ~np.isfinite(cv.z)
    cv.label[sky] = SKY
    cv.inst[sky] = SKY
    return Scene(image, cv.label, cv.inst, cv.z, camera)


def disparity_png(depth: np.ndarray, camera: dict, rng: np.random.Generator) -> np.ndarray:
    """Cityscapes 16-bit disparity: round(d*256)+1 where d = baseline*fx/depth, 0 = invalid.

    Invalid like a real stereo matcher: sky/infinite depth, pixels not visible in the right
    camera (left image border, occlusion shadows left of foreground objects), speckle blobs
    and scattered dropouts. Every valid pixel decodes to the rendered depth up to quantisation.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected a (H, W) array, got shape {depth.shape}")
    try:
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"camera: missing extrinsic.baseline or intrinsic.fx ({exc})") from None
    if baseline <= 0 or fx <= 0:
        raise ValueError(f"camera: baseline and fx must be > 0, got {baseline}, {fx}")
    H, W = depth.shape
    finite = np.isfinite(depth) & (depth > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(finite, baseline * fx / np.where(finite, depth, 1.0), 0.0)
    q = np.round(d * 256.0)
    valid = finite & (q >= 1) & (q <= 65534)
    # right-image visibility: x_r = x - d must not be covered by a pixel further right (closer object)
    xr = np.arange(W, dtype=np.float64)[None, :] - d
    run_min = np.minimum.accumulate(xr[:, ::-1], axis=1)[:, ::-1]
    covered = np.zeros_like(valid)
    covered[:, :-1] = run_min[:, 1:] < xr[:, :-1] - 0.5
    valid &= ~covered & (xr >= 0)
    blobs = cv2.resize(rng.random((max(2, H // 24), max(2, W // 24))).astype(np.float32), (W, H),
                       interpolation=cv2.INTER_LINEAR)
    valid &= blobs < rng.uniform(0.9, 0.95)
    valid &= rng.random((H, W)) > 0.01
    return np.where(valid, q + 1, 0).astype(np.uint16)


def _stem(split: str, i: int, n: int) -> tuple[str, str]:
    """City and Cityscapes file stem of frame i of n in ``split`` (frames spread over the cities in blocks)."""
    cities = CITIES[split]
    k = min(i * len(cities) // max(n, 1), len(cities) - 1)
    first = -(-k * n // len(cities))  # first index assigned to city k
    return cities[k], f"{cities[k]}_{i - first:06d}_000019"


def _make_one(task: tuple) -> tuple[int, np.ndarray, int]:
    """Render, encode and write one frame; returns (split index, label-id histogram, invalid disparity px)."""
    seed, si, i, n, H, W, out = task
    split = SPLITS[si]
    rng = np.random.default_rng([seed, si, i])
    scene = render_scene(rng, H, W)
    depth = np.where(scene.label_ids == EGO, np.inf, scene.depth)  # the bonnet has no stereo match
    disp = disparity_png(depth, scene.camera, rng)
    city, stem = _stem(split, i, n)
    out = Path(out)
    files = {
        out / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png": cv2.cvtColor(scene.image, cv2.COLOR_RGB2BGR),
        out / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png": scene.label_ids,
        out / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png": scene.instance_ids.astype(np.uint16),
        out / "gtFine" / split / city / f"{stem}_gtFine_color.png":
            cv2.cvtColor(labels.LABEL_ID_PALETTE[scene.label_ids], cv2.COLOR_RGB2BGR),
        out / "disparity" / split / city / f"{stem}_disparity.png": disp,
    }
    for path, arr in files.items():
        if not cv2.imwrite(str(path), arr):
            raise OSError(f"{path}: could not write PNG")
    cam_path = out / "camera" / split / city / f"{stem}_camera.json"
    cam_path.write_text(json.dumps(scene.camera, indent=2, sort_keys=True) + "\n")
    hist = np.bincount(scene.label_ids.ravel(), minlength=256)[:34].astype(np.int64)
    return si, hist, int((disp == 0).sum())


def generate(root: Path, cfg: SynthCityConfig, workers: int = 0, progress: bool = True) -> dict:
    """Write the SynthCity dataset under ``root`` in the exact Cityscapes layout; returns a summary.

    Frame i of split s (train, val, test = 0, 1, 2) is rendered from
    ``np.random.default_rng([cfg.seed, s, i])``, so the bytes on disk do not depend on ``workers``
    (0 = all cores, 1 = serial). The tree is built in a temporary sibling directory that replaces
    ``root`` only when complete. The summary holds the image counts, cities, per-split label-id
    pixel counts, the trainId class frequencies of the train split and the fraction of invalid
    disparity pixels (plus timing, which is not deterministic).
    """
    if not isinstance(cfg, SynthCityConfig):
        raise ValueError(f"cfg: expected SynthCityConfig, got {type(cfg).__name__}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0 (0 = all cores), got {workers!r}")
    workers = workers or os.cpu_count() or 1
    root = Path(root)
    counts = {"train": cfg.train, "val": cfg.val, "test": cfg.test}
    start = time.perf_counter()
    hists = {s: np.zeros(34, np.int64) for s in SPLITS}
    invalid = 0
    with atomic_dir(root) as tmp:
        tasks = []
        for si, split in enumerate(SPLITS):
            n = counts[split]
            for i in range(n):
                city, _ = _stem(split, i, n)
                for top in ("leftImg8bit", "gtFine", "disparity", "camera"):
                    (tmp / top / split / city).mkdir(parents=True, exist_ok=True)
                tasks.append((cfg.seed, si, i, n, cfg.height, cfg.width, str(tmp)))
        bar = tqdm(total=len(tasks), desc="synthcity", unit="img", disable=not progress)
        if workers == 1 or len(tasks) <= 1:
            results = map(_make_one, tasks)
            pool = None
        else:
            pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)))
            results = pool.map(_make_one, tasks, chunksize=max(1, min(8, len(tasks) // (4 * workers))))
        try:
            for si, hist, inv in results:
                hists[SPLITS[si]] += hist
                invalid += inv
                bar.update(1)
        finally:
            bar.close()
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    total_px = sum(counts.values()) * cfg.height * cfg.width
    train_ids = labels.ID_TO_TRAIN_ID[:34]
    tr = np.zeros(labels.NUM_CLASSES, np.int64)
    for lid in range(34):
        if train_ids[lid] < labels.NUM_CLASSES:
            tr[train_ids[lid]] += hists["train"][lid]
    return {
        "root": str(root), "seed": cfg.seed, "height": cfg.height, "width": cfg.width,
        "images": counts, "cities": {s: list(CITIES[s]) for s in SPLITS},
        "label_id_pixels": {s: hists[s].tolist() for s in SPLITS},
        "train_class_frequency": {name: round(float(tr[k] / max(tr.sum(), 1)), 5)
                                  for k, name in enumerate(labels.CLASS_NAMES)},
        "invalid_disparity_fraction": round(invalid / max(total_px, 1), 4),
        "workers": workers, "seconds": round(time.perf_counter() - start, 2),
    }
