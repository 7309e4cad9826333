"""Procedural textures of the polygons.

Each is f(u, v, colour, params, face width, face height) -> (colours (N, 3), emission (N,) | None);
u, v are metres in the face's own frame, so patterns are perspective-correct.
"""

from __future__ import annotations

import math

import numpy as np

from cityseg.synthcity.helpers import _frac, _h2


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
    return np.where(edge[:, None], c[None, :], g), None


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


def _t_cyl(u, v, c, p, fw, fh):
    """Billboard pole shaded like a cylinder (u measured from the axis)."""
    r = max(p.get("r", 0.1), 1e-3)
    k = 0.55 + 0.55 * np.cos(np.clip(u / r, -1, 1) * 1.3)
    return c[None, :] * k[:, None], None
