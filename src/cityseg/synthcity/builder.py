"""Scene building: planar polygons, the light they are shaded by, and the builder that collects them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from cityseg import labels
from cityseg.synthcity.camera import _Cam
from cityseg.synthcity.helpers import _cross, _unit


# a texture function (see cityseg.synthcity.textures)
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

    def __init__(self, cam: _Cam, light: _Light):
        self.cam, self.light = cam, light
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
