"""The ground: two planes (road level, curb level) split into lateral bands, ray-cast per pixel,
with its materials and the road markings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cityseg.synthcity.builder import _Light
from cityseg.synthcity.camera import _Cam
from cityseg.synthcity.helpers import TERRAIN_COLORS, _frac, _h2, _pick, _put_rgb, _vnoise, _wave
from cityseg.synthcity.raster import _Canvas
from cityseg.synthcity.scene import GROUND, PARKING, RAIL, ROAD, SIDEWALK, TERRAIN


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
    hits = _plane_hits(cam, D.reshape(-1, 3).take(pf, axis=0), g, cv.z.reshape(-1)[pf])
    if hits is None:
        return
    sel, e, X, Y, t, step = hits
    fl = pf[sel]
    kind, off = _ground_kinds(g, e, X, Y, step)
    col = np.empty((len(X), 3), np.float32)
    lab = np.array([_KIND_LABEL[k] for k in _KINDS], np.uint8)[kind]
    srt = np.argsort(kind, kind="stable")
    ks, first, cnt = np.unique(kind[srt], return_index=True, return_counts=True)
    for k, f0, n in zip(ks.tolist(), first.tolist(), cnt.tolist()):
        m = srt[f0:f0 + n]
        col[m] = _ground_colour(_KINDS[k], X[m], Y[m], off[m], g.params, g)
    _paint_markings(col, lab, X, Y, g)
    cv.z.reshape(-1)[fl] = t
    cv.label.reshape(-1)[fl] = lab
    cv.inst.reshape(-1)[fl] = lab
    _put_rgb(cv.alb, fl, col)
    cv.ndl.reshape(-1)[fl] = max(0.0, float(light.sun[2]))
    cv.emis.reshape(-1)[fl] = 0.0
    cv.gnd.reshape(-1)[fl] = True


def _in_cross_street(g: _Ground, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Points (X, Y) on a cross street's carriageway (road level beyond the main street's curbs)."""
    m = np.zeros(X.shape, bool)
    for ya, yb, swc, lft, rgt in g.crosses:
        iny = (Y > ya + swc) & (Y < yb - swc)
        m |= iny & ((lft & (X < g.xl) & (X > g.xl - g.x_far)) | (rgt & (X > g.xr) & (X < g.xr + g.x_far)))
    return m


def _plane_hits(cam: _Cam, d: np.ndarray, g: _Ground, zbuf: np.ndarray):
    """Where rays ``d`` meet the ground nearer than ``zbuf``: None, or (index into d, on the curb level,
    X, Y, depth, on a curb step) of those rays."""
    h = cam.C[2]
    Dx, Dy, Dz = d[:, 0], d[:, 1], d[:, 2]
    t0 = np.float32(-h) / Dz
    t1 = np.float32(g.curb - h) / Dz if g.curb > 0 else t0
    X0, Y0 = np.float32(cam.C[0]) + t0 * Dx, np.float32(cam.C[1]) + t0 * Dy
    X1, Y1 = (np.float32(cam.C[0]) + t1 * Dx, np.float32(cam.C[1]) + t1 * Dy) if g.curb > 0 else (X0, Y0)
    v0 = (((X0 >= g.xl) & (X0 <= g.xr)) | _in_cross_street(g, X0, Y0)) & (Y0 < g.y_end)
    side1 = ((X1 < g.xl) & (X1 > g.xl - g.x_far)) | ((X1 > g.xr) & (X1 < g.xr + g.x_far))
    v1 = side1 & ~_in_cross_street(g, X1, Y1) & (Y1 < g.y_end)
    use1 = v1 & (~v0 | (t1 < t0))
    t = np.where(use1, t1, t0)
    valid = v0 | v1
    # rays that miss both planes' areas but pass between them hit the vertical step of a curb
    step = np.zeros_like(valid)
    if g.curb > 0:
        step = ~valid & (Y0 < g.y_end) & (X0 > g.xl - g.x_far) & (X0 < g.xr + g.x_far)
        si = np.nonzero(step)[0]
        if si.size:
            t[si] = _curb_step_depth(cam, g, Dx[si], Dy[si], X0[si], Y0[si], Y1[si], t0[si], t1[si])
            valid[si] = True
    sel = np.flatnonzero(valid & (t < zbuf))
    if sel.size == 0:
        return None
    e = use1[sel]
    return sel, e, np.where(e, X1[sel], X0[sel]), np.where(e, Y1[sel], Y0[sel]), t[sel], step[sel]


def _curb_step_depth(cam: _Cam, g: _Ground, dx, dy, x0s, y0s, y1s, t0s, t1s) -> np.ndarray:
    """Depth where rays between the two planes meet a curb's vertical face (main or cross street)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ts = np.where(x0s > g.xr, (g.xr - cam.C[0]) / dx, np.where(x0s < g.xl, (g.xl - cam.C[0]) / dx, np.nan))
        for ya, yb, swc, lft, rgt in g.crosses:  # the cross street's far curb faces the camera
            yc = yb - swc
            ts = np.where((y1s < yc) & (y0s >= yc), (yc - cam.C[1]) / dy, ts)
    return np.where(np.isfinite(ts) & (ts >= t1s - 1e-3) & (ts <= t0s + 1e-3), ts, t1s)


def _ground_kinds(g: _Ground, e: np.ndarray, X: np.ndarray, Y: np.ndarray, step: np.ndarray):
    """(index into _KINDS, distance from the curb) of ground hits; ``e``: on the curb level."""
    kind = np.zeros(len(X), np.int8)
    off = np.zeros(len(X), np.float32)
    rl = ~e
    rb = g.road_bands
    idx = _lookup(rb, X[rl])
    kr = np.array([_KINDS.index(b[2]) for b in rb], np.int8)[idx]
    kr[(X[rl] < g.xl) | (X[rl] > g.xr)] = _KINDS.index("road")  # cross-street carriageway
    kind[rl] = kr
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
    kind[step] = _KINDS.index("curb")
    return kind, off


def _paint_markings(col: np.ndarray, lab: np.ndarray, X: np.ndarray, Y: np.ndarray, g: _Ground) -> None:
    """Road markings: worn paint on road pixels (which keep the road's label)."""
    ri = np.nonzero(lab == ROAD)[0]
    if ri.size == 0 or not g.markings:
        return
    Xr, Yr = X[ri], Y[ri]
    paint = np.zeros(len(ri), bool)
    for mk in g.markings:
        _mark(paint, mk, Xr, Yr)
    pi = np.nonzero(paint)[0]
    if pi.size:
        Xp, Yp = Xr[pi], Yr[pi]
        keep = _vnoise(Xp / 0.3, Yp / 0.3, 17.0) > g.params["wear"] * 0.6
        pi = pi[keep]
        grain = _h2(np.floor(Xp[keep] / 0.05), np.floor(Yp[keep] / 0.05))
        col[ri[pi]] = g.params["mark"] * (0.92 + 0.08 * grain)[:, None]


def _mark(paint: np.ndarray, mk: dict, Xr: np.ndarray, Yr: np.ndarray) -> None:
    """Set ``paint`` where road points (Xr, Yr) are under marking ``mk``: a (dashed) line along the street,
    or a zebra crossing, parking bay bars or a stop bar across it."""
    if mk["type"] == "line":
        cand = np.nonzero(np.abs(Xr - mk["x"]) < mk["w"] / 2)[0]
        if cand.size == 0:
            return
        yc = Yr[cand]
        m = (yc > mk["y0"]) & (yc < mk["y1"])
        if mk.get("dash"):
            on, period = mk["dash"]
            m &= _frac(yc / period) < on / period
        paint[cand[m]] = True
        return
    cand = np.nonzero((Yr > mk["y0"]) & (Yr < mk["y1"]))[0]
    if cand.size == 0:
        return
    xc = Xr[cand]
    m = (xc > mk["x0"]) & (xc < mk["x1"])
    if mk["type"] == "zebra":
        m &= _frac(xc / 1.0) < 0.5
    elif mk["type"] == "bars":  # periodic bars across a band (parking bays)
        m &= _frac((Yr[cand] - mk["y0"]) / mk["period"]) < mk["w"] / mk["period"]
    paint[cand[m]] = True
