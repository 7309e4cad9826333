"""Rasterisation: polygons into the canvas (exact plane depth, z-buffer, textures), cast shadows,
and the ego vehicle's bonnet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from cityseg.synthcity.builder import _Poly
from cityseg.synthcity.camera import _Cam
from cityseg.synthcity.helpers import _put_rgb
from cityseg.synthcity.scene import EGO, TLIGHT, TSIGN


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


def _clamp_depth(t: np.ndarray, lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """Plane depths ``t`` clamped to the polygon's depth range [lo, hi], and which pixels to keep.

    A pixel whose ray meets the plane outside the polygon's depth range is rasterisation
    over-coverage of an (almost) edge-on polygon: drop it; tiny numeric excursions are clamped.
    """
    tol = 0.02 * (hi - lo) + 1e-3
    keep = (t > lo - tol) & (t < hi + tol)
    return np.minimum(np.maximum(t, lo), hi), keep


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
    t, keep = _clamp_depth(t, zmin, zmax)
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


class _Projected(NamedTuple):
    """All polygons' vertices in camera space and on screen, and the order they are drawn in."""

    counts: np.ndarray  # vertices per polygon
    starts: np.ndarray  # first vertex of each polygon
    Pc: np.ndarray  # (V, 3) camera-space vertices
    u: np.ndarray  # (V,) pixel coordinates (vertices behind the near plane pushed onto it)
    v: np.ndarray
    zmin: np.ndarray  # depth range per polygon
    zmax: np.ndarray
    clipped: np.ndarray  # per polygon: cut by the near plane
    big: list  # polygons for the exact per-polygon z-test, front to back
    small: np.ndarray  # the others, far to near


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
    pr = _project_polys(cam, polys)
    normals = np.array([p.normal for p in polys])
    pid = np.zeros((cam.H, cam.W), np.int32)  # polygon index + 1 of the nearest surface so far
    for k in pr.big:
        pc = pr.Pc[pr.starts[k]:pr.starts[k] + pr.counts[k]]
        if pr.clipped[k]:
            pc = _clip_near(pc, cam.near)
            if pc is None:
                continue
        _zpass_poly(cv.z, pid, cam, k, normals[k], pc)
    if pr.small.size:
        _zpass_small(cv, cam, pid, pr, normals)
    _shade_visible(cv, cam, polys, pid)


def _project_polys(cam: _Cam, polys: list[_Poly]) -> _Projected:
    """Project every polygon at once and split the ones in view into big and small."""
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
    order = np.nonzero(inview & big)[0]
    small = np.nonzero(inview & ~big)[0]
    if small.size:
        zc = np.add.reduceat(z, starts) / counts
        small = small[np.argsort(-zc[small], kind="stable")]
    return _Projected(counts, starts, Pc, u, v, zmin, zmax, clipped,
                      order[np.argsort(zmin[order], kind="stable")].tolist(), small)


def _zpass_small(cv: _Canvas, cam: _Cam, pid: np.ndarray, pr: _Projected, normals: np.ndarray) -> None:
    """Small polygons: painter's order into an id buffer, then exact depth per pixel against the z-buffer."""
    sid = np.zeros((cam.H, cam.W), np.int32)
    UV = np.round(np.column_stack((pr.u, pr.v)) * 16).astype(np.int32)
    for k in pr.small.tolist():
        a = pr.starts[k]
        cv2.fillPoly(sid, [UV[a:a + pr.counts[k]]], k + 1, cv2.LINE_8, 4)
    fl = np.flatnonzero(sid)
    if fl.size == 0:
        return
    iy, ix = fl // cam.W, fl % cam.W
    idx = sid.reshape(-1)[fl] - 1
    nc = normals @ cam.R
    dc = np.einsum("ij,ij->i", nc, pr.Pc[pr.starts])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = dc[idx] / (nc[idx, 0] * cam.xn[ix] + nc[idx, 1] * cam.yn[iy] + nc[idx, 2])
    t, keep = _clamp_depth(t, pr.zmin[idx], pr.zmax[idx])
    zf = cv.z.reshape(-1)
    keep &= t < zf[fl]
    fl = fl[keep]
    zf[fl] = t[keep]
    pid.reshape(-1)[fl] = idx[keep] + 1


def _shade_visible(cv: _Canvas, cam: _Cam, polys: list[_Poly], pid: np.ndarray) -> None:
    """Label, instance, light and colour (textured where it shows) of every pixel a polygon won."""
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
