"""Street furniture and other objects (sizes in metres; base = ground point under the object's centre):
poles, trees, hedges, walls, fences, lamps, signs, traffic lights, static and dynamic objects,
and the novel (never seen in training) objects.
"""

from __future__ import annotations

import math

import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.helpers import (CLOTH_COLORS, GREEN_COLORS, WALL_COLORS, _I3, _axes, _circle, _cross, _jit,
                                       _pick, _rect)
from cityseg.synthcity.scene import DYNAMIC, FENCE, GUARD_RAIL, POLE, STATIC, TLIGHT, TSIGN, VEGETATION, WALL
from cityseg.synthcity.textures import (_t_bark, _t_brick, _t_concrete, _t_cyl, _t_fence, _t_foliage, _t_lamp,
                                        _t_novel, _t_plain, _t_poster, _t_sign, _t_tlight)


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
