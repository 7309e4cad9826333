"""The tunnel and off-road layouts, and the table of every layout by environment."""

from __future__ import annotations

import math

import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.buildings import _tree_line
from cityseg.synthcity.ground import _Ground, _ground_params
from cityseg.synthcity.helpers import GREEN_COLORS, TERRAIN_COLORS, _I3, _jit, _pick
from cityseg.synthcity.objects import _add_fence, _add_pole, _add_sign, _add_tree
from cityseg.synthcity.people import _add_person
from cityseg.synthcity.scene import TUNNEL, VEGETATION, SceneOptions
from cityseg.synthcity.street import _layout_street
from cityseg.synthcity.textures import _t_foliage, _t_tunnel
from cityseg.synthcity.vehicles import _Lane, _drive_lane, _place_vehicle


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
        _drive_lane(b, rng, ln, min(y_end - 15, 150), 20, ["car", "truck", "bus"], [0.8, 0.15, 0.05])
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


# a night scene is the street layout under night light (and with fewer people about)
LAYOUTS = {"street": _layout_street, "night": _layout_street, "tunnel": _layout_tunnel, "offroad": _layout_offroad}
