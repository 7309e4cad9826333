"""Buildings along the street, what fills the gaps between them, and the backdrops at the far end."""

from __future__ import annotations

import math

import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.helpers import BUILDING_COLORS, GREEN_COLORS, _I3, _jit, _pick
from cityseg.synthcity.objects import _add_fence, _add_hedge, _add_tree, _add_wall
from cityseg.synthcity.scene import BUILDING, VEGETATION
from cityseg.synthcity.textures import _t_brick, _t_concrete, _t_facade, _t_foliage


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
