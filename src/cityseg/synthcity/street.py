"""The city street layout: road, sidewalks, buildings, furniture, traffic and people."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.buildings import _add_building, _backdrop, _building_row, _fill_gap
from cityseg.synthcity.ground import _Ground, _ground_params
from cityseg.synthcity.helpers import _I3, _axes, _jit, _pick
from cityseg.synthcity.objects import (_add_dynamic, _add_fence, _add_guard_rail, _add_hedge, _add_sign,
                                       _add_static_object, _add_street_lamp, _add_traffic_light, _add_tree, _add_wall)
from cityseg.synthcity.people import _add_person
from cityseg.synthcity.scene import BRIDGE, SceneOptions
from cityseg.synthcity.textures import _t_concrete
from cityseg.synthcity.vehicles import _Lane, _add_bicycle, _drive_lane, _place_vehicle

QUIET_STREETS = 0.8  # share of street scenes that are quiet residential roads


def _flags(rng) -> dict:
    """Which rare things this street scene gets (keeps every class frequent enough in training)."""
    return {"bus": rng.random() < 0.3, "truck": rng.random() < 0.3, "train": rng.random() < 0.25,
            "moto": rng.random() < 0.35, "cyclist": rng.random() < 0.45, "bikes": rng.random() < 0.4,
            "tlight": rng.random() < 0.4, "persons": rng.random() < 0.8, "trailer": rng.random() < 0.06}


@dataclass
class _Street:
    """The street's cross-section (X positions) and what the later steps of the layout share."""

    quiet: bool
    flags: dict
    lane_w: float
    n_r: int  # lanes in the camera's direction
    n_l: int  # oncoming lanes
    xc: float  # between the two directions
    med: float  # width of the tram bed between them (0: none)
    xr0: float  # inner edges of the two carriageways
    xl0: float
    xr_d: float  # outer edges of the driving lanes
    xl_d: float
    park: dict  # side (-1, 1) -> (width, kind) of a parking strip
    xr: float  # the curbs
    xl: float
    g: _Ground | None = None
    sides: dict = field(default_factory=dict)  # side -> curb, facade, sidewalk, lawn and verge
    zebra: tuple | None = None  # (y0, y1) of a zebra crossing


def _layout_street(b: _Builder, rng, opts: SceneOptions) -> tuple[_Ground, list[_Lane]]:
    """A city street: road, sidewalks, buildings, furniture, traffic and people. Returns (ground, lanes)."""
    st = _carriageway(rng)
    _street_ground(rng, st)
    _cross_street(rng, st)
    for s in (-1, 1):
        _sidewalk_bands(rng, st, s)
    _markings(rng, st)
    for s in (-1, 1):
        _street_side(b, rng, st, s)
    _backdrop(b, rng, st.g.y_end, st.xl - 260, st.xr + 260, city=rng.random() < 0.75)
    _bridge(b, rng, st)
    _lamps_and_trees(b, rng, st)
    _curbside(b, rng, st)
    lanes = _traffic(b, rng, st)
    _people(b, rng, st, opts.environment == "night")
    return st.g, lanes


def _carriageway(rng) -> _Street:
    """Lanes, an optional tram bed and parking strips; which rare things the scene gets."""
    flags = _flags(rng)
    # Most streets are quiet residential roads with fewer kinds of things in view, so that a
    # small network trained for minutes on a laptop learns most classes; the busy fifth carries
    # the rare classes (their probabilities in _flags are set for that).
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
    return _Street(quiet, flags, lane_w, n_r, n_l, xc, med, xr0, xl0, xr_d, xl_d, park, xr, xl)


def _street_ground(rng, st: _Street) -> None:
    """The road-level bands between the curbs (parking, lanes, tram bed) and the ground's materials."""
    bands = []
    if -1 in st.park:
        bands.append((st.xl, st.xl_d, st.park[-1][1]))
    bands.append((st.xl_d, st.xl0, "road"))
    if st.med > 0:
        bands.append((st.xl0, st.xr0, "rail"))
    bands.append((st.xr0, st.xr_d, "road"))
    if 1 in st.park:
        bands.append((st.xr_d, st.xr, st.park[1][1]))
    bands = [bd for bd in bands if bd[1] > bd[0]]
    curb = rng.uniform(0.1, 0.16)
    y_end = rng.uniform(80, 200)
    gp = _ground_params(rng)
    st.g = _Ground(curb, st.xl, st.xr, bands, [], [], y_end=y_end, params=gp)
    st.g.params["rail_x"] = st.xc
    st.g.params["rail_grass"] = rng.random() < 0.4


def _cross_street(rng, st: _Street) -> None:
    """Sometimes (busy streets only) a cross street to one or both sides."""
    if not st.quiet and rng.random() < 0.45:
        ya = rng.uniform(14, 55)
        wc = rng.uniform(10, 18)
        swc = rng.uniform(1.8, 3.5)
        r = rng.random()
        lft, rgt = (True, True) if r < 0.6 else ((False, True) if r < 0.8 else (True, False))
        st.g.crosses.append((ya, ya + wc, swc, lft, rgt))


def _sidewalk_bands(rng, st: _Street, s: int) -> None:
    """Curb-level bands on side ``s``, outwards: a lawn, the sidewalk, a verge, then what is beyond."""
    edge = st.xr if s > 0 else st.xl
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
        st.g.left = merged
    else:
        st.g.right = merged
    st.sides[s] = {"edge": edge, "face": edge + s * off, "sw": swr, "lawn": lawn, "verge": vk}


def _markings(rng, st: _Street) -> None:
    """Lane lines, edge lines, parking bays and a zebra crossing (sets ``st.zebra``)."""
    mk, y_end, park = st.g.markings, st.g.y_end, st.park
    dash = (rng.uniform(2.5, 4), rng.uniform(7, 12))
    if st.n_l > 0 and st.med == 0:
        mk.append({"type": "line", "x": st.xc, "w": rng.uniform(0.1, 0.16), "y0": -5, "y1": y_end,
                   "dash": None if rng.random() < 0.3 else dash})
    for k in range(1, st.n_r):
        mk.append({"type": "line", "x": st.xr0 + k * st.lane_w, "w": 0.12, "y0": -5, "y1": y_end, "dash": dash})
    for k in range(1, st.n_l):
        mk.append({"type": "line", "x": st.xl0 - k * st.lane_w, "w": 0.12, "y0": -5, "y1": y_end, "dash": dash})
    if rng.random() < 0.6:
        mk.append({"type": "line", "x": st.xr_d - 0.15, "w": 0.15, "y0": -5, "y1": y_end})
        if st.n_l > 0:
            mk.append({"type": "line", "x": st.xl_d + 0.15, "w": 0.15, "y0": -5, "y1": y_end})
    for s in (-1, 1):
        if s in park and park[s][1] == "parking" and rng.random() < 0.6:
            x_in = st.xr_d if s > 0 else st.xl_d
            mk.append({"type": "bars", "x0": min(x_in, x_in + s * park[s][0]), "x1": max(x_in, x_in + s * park[s][0]),
                       "y0": rng.uniform(-5, 0), "y1": y_end, "period": rng.uniform(5.0, 6.0), "w": 0.12})
    if st.g.crosses:
        ya = st.g.crosses[0][0]
        st.zebra = (ya - 4.5, ya - 0.8)
    elif rng.random() < 0.15:
        z0 = rng.uniform(12, 40)
        st.zebra = (z0, z0 + rng.uniform(3, 4.5))
    if st.zebra and rng.random() < 0.85:
        mk.append({"type": "zebra", "x0": st.xl_d, "x1": st.xr_d, "y0": st.zebra[0], "y1": st.zebra[1]})
        mk.append({"type": "bar", "x0": st.xr0, "x1": st.xr_d, "y0": st.zebra[0] - 1.6, "y1": st.zebra[0] - 1.3})


def _street_side(b: _Builder, rng, st: _Street, s: int) -> None:
    """Side ``s``: buildings, their gaps and the row behind, corner buildings, the verge's plants and fence."""
    info, y_end, crosses = st.sides[s], st.g.y_end, st.g.crosses
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
    if not st.quiet and info["verge"] in ("terrain", "ground") and rng.random() < 0.4:
        # a low wall or fence between sidewalk and verge
        x = info["edge"] + s * info["sw"][1]
        y0 = rng.uniform(-5, 20)
        (_add_fence if rng.random() < 0.5 else _add_wall)(b, rng, x, y0, y0 + rng.uniform(10, 60),
                                                           rng.uniform(0.8, 1.6))


def _bridge(b: _Builder, rng, st: _Street) -> None:
    """Rarely, a bridge over the street on two piers."""
    if rng.random() < 0.07:
        yb = rng.uniform(40, min(120, st.g.y_end - 10))
        hb = rng.uniform(5.0, 7.0)
        col = _jit(rng, (150, 148, 140), 15)
        b.box(np.array([0.0, yb, hb]), _I3, (600, rng.uniform(8, 14), 1.4), BRIDGE, BRIDGE, col, tex=_t_concrete,
              tp={"panel": 6.0})
        for s in (-1, 1):
            b.box(np.array([st.sides[s]["edge"] + s * 1.0, yb, 0.0]), _I3, (1.0, 6.0, hb), BRIDGE, BRIDGE,
                  col * 0.9, tex=_t_concrete, tp={"panel": 3.0})


def _tree_offset(rng, st: _Street, s: int) -> float:
    """Distance from the curb of a tree on side ``s``: on the lawn when there is one."""
    lawn = st.sides[s]["lawn"]
    return (lawn[0] + lawn[1]) / 2 if lawn else rng.uniform(0.8, 1.3)


def _lamps_and_trees(b: _Builder, rng, st: _Street) -> None:
    """Rows of street lamps along the curbs, then avenue trees or a few single trees."""
    y_end = st.g.y_end
    pole_col = _jit(rng, _pick(rng, [(120, 125, 120), (80, 85, 80), (150, 150, 150), (50, 55, 60)]), 10)
    lamp_sides = [s for s in (-1, 1) if rng.random() < 0.65] or [1]
    for s in lamp_sides:
        x = st.sides[s]["edge"] + s * rng.uniform(0.35, 0.6)
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
                x = st.sides[s]["edge"] + s * _tree_offset(rng, st, s)
                y = rng.uniform(-3, 8)
                step = rng.uniform(7, 14)
                scale = rng.uniform(0.8, 1.5)
                while y < min(y_end, 100):
                    _add_tree(b, rng, x, y, scale * rng.uniform(0.85, 1.15))
                    y += step * rng.uniform(0.8, 1.2)
    elif rng.random() < 0.5:
        for _ in range(int(rng.integers(1, 4))):
            s = int(rng.choice([-1, 1]))
            o = _tree_offset(rng, st, s)
            _add_tree(b, rng, st.sides[s]["edge"] + s * o, rng.uniform(3, 60), rng.uniform(0.8, 1.4))


def _curbside(b: _Builder, rng, st: _Street) -> None:
    """Along the curbs: traffic signs, traffic lights (at a cross street or crossing), static objects, a guard rail."""
    sides, quiet, zebra = st.sides, st.quiet, st.zebra
    for _ in range(int(rng.integers(0, 2 if quiet else 4))):
        s = int(rng.choice([-1, 1]))
        x = sides[s]["edge"] + s * rng.uniform(0.3, 0.6)
        y = rng.uniform(4, 45)
        facing = math.pi + rng.normal(0, 0.15) if rng.random() < 0.75 else rng.choice([0.0, math.pi / 2, -math.pi / 2])
        _add_sign(b, rng, x, y, facing, rng.uniform(2.0, 3.0))
    tl_spots = []
    if st.g.crosses:
        ya, yb, swc, lf, rt = st.g.crosses[0]
        tl_spots += [(1, ya - 0.6), (-1, ya - 0.6), (1, yb + 0.6), (-1, yb + 0.6)]
    elif zebra and (st.flags["tlight"] or (not quiet and rng.random() < 0.4)):
        tl_spots += [(1, zebra[0] - 0.8), (-1, zebra[1] + 0.8)]
    elif st.flags["tlight"]:
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


def _traffic(b: _Builder, rng, st: _Street) -> list[_Lane]:
    """Driving and parking lanes with a tram or train, the rare vehicles, then cars; returns the driving lanes."""
    y_end, flags = st.g.y_end, st.flags
    lanes = [_Lane(st.xr0 + (k + 0.5) * st.lane_w, 0.0, "drive") for k in range(st.n_r)]
    lanes += [_Lane(st.xl0 - (k + 0.5) * st.lane_w, math.pi, "drive") for k in range(st.n_l)]
    park_lanes = [_Lane((st.xr_d + st.xr) / 2 if s > 0 else (st.xl_d + st.xl) / 2,
                        0.0 if rng.random() < 0.8 else math.pi, "park") for s in st.park]
    for ln in lanes:
        if abs(ln.x) < st.lane_w / 2:
            ln.take(-20, rng.uniform(6, 10))  # the ego car's own space
        else:
            ln.take(-20, -3)
    if st.med > 0:  # a tram on its own bed
        tram = _Lane(st.xc, 0.0 if rng.random() < 0.5 else math.pi, "drive")
        _place_vehicle(b, rng, tram, rng.uniform(20, 60), "train")
    elif flags["train"]:  # a tram in a lane, on rails set into the road
        ln = lanes[int(rng.integers(len(lanes)))]
        y = rng.uniform(25, 60)
        if _place_vehicle(b, rng, ln, y, "train"):
            for sgn in (-1, 1):
                st.g.markings.append({"type": "line", "x": ln.x + sgn * 0.7175, "w": 0.07, "y0": -5, "y1": y_end})
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
        _drive_lane(b, rng, ln, min(y_end - 15, 100), 22, ["car", "truck", "bus", "moto"], [0.94, 0.02, 0.01, 0.03])
    for ln in park_lanes:
        y = rng.uniform(-6, 2)
        fill = rng.uniform(0.3, 0.9)
        while y < min(y_end - 10, 80):
            if rng.random() < fill:
                L = _place_vehicle(b, rng, ln, y + 2.5, "car") or 4.5
                y += L + rng.uniform(0.6, 2.5)
            else:
                y += rng.uniform(3, 12)
    return lanes


def _sidewalk_x(rng, st: _Street, s: int) -> float:
    """A random X on the sidewalk of side ``s``, clear of its edges."""
    lo, hi = st.sides[s]["sw"]
    return st.sides[s]["edge"] + s * rng.uniform(lo + 0.4, max(lo + 0.45, hi - 0.3))


def _people(b: _Builder, rng, st: _Street, night: bool) -> None:
    """Pedestrians (some in pairs or with a stroller), people on the crossing, cyclists, parked bicycles."""
    if st.flags["persons"]:
        n = int(rng.integers(1, 3 if st.quiet else 8)) if not night else int(rng.integers(0, 3))
        for _ in range(n):
            s = int(rng.choice([-1, 1]))
            y = 2.5 + 40 * rng.random() ** 1.4
            walking = rng.random() < 0.7
            yaw = rng.choice([0.0, math.pi]) + rng.normal(0, 0.1) if walking else rng.uniform(0, 2 * np.pi)
            x = _sidewalk_x(rng, st, s)
            _add_person(b, rng, x, y, yaw, walking)
            r = rng.random()
            if r < 0.3:
                _add_person(b, rng, x - s * 0.6, y + rng.normal(0, 0.3), yaw, walking)
            elif r < 0.36:  # pushing a stroller or cart
                _, fwd, _ = _axes(yaw)
                _add_dynamic(b, rng, x + fwd[0] * 0.9, y + fwd[1] * 0.9, yaw)
        if st.zebra and rng.random() < 0.6:
            for _ in range(int(rng.integers(1, 4))):
                _add_person(b, rng, rng.uniform(st.xl_d, st.xr_d), rng.uniform(*st.zebra),
                            rng.choice([-math.pi / 2, math.pi / 2]) + rng.normal(0, 0.1))
    if st.flags["cyclist"]:
        for _ in range(int(rng.integers(1, 3))):
            r = rng.random()
            if r < 0.55:
                x, yaw = st.xr_d - rng.uniform(0.6, 1.1), rng.normal(0, 0.05)
            elif r < 0.75 and st.n_l > 0:
                x, yaw = st.xl_d + rng.uniform(0.6, 1.1), math.pi + rng.normal(0, 0.05)
            else:
                s = int(rng.choice([-1, 1]))
                x, yaw = _sidewalk_x(rng, st, s), rng.choice([0.0, math.pi])
            _add_bicycle(b, rng, x, rng.uniform(5, 28), yaw, rider=True)
    if st.flags["bikes"]:
        s = int(rng.choice([-1, 1]))
        lo, hi = st.sides[s]["sw"]
        x = st.sides[s]["edge"] + s * (hi - 0.5)
        y = rng.uniform(4, 28)
        for k in range(int(rng.integers(1, 5))):
            _add_bicycle(b, rng, x, y + k * 0.7, -s * math.pi / 2 + rng.normal(0, 0.15))
