"""People: pedestrians and the riders of bicycles and motorcycles."""

from __future__ import annotations

import math

import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.helpers import (CAR_COLORS, CLOTH_COLORS, HAIR_COLORS, PANTS_COLORS, SKIN_COLORS, _axes,
                                       _circle, _cross, _jit, _pick)
from cityseg.synthcity.scene import PERSON, RIDER
from cityseg.synthcity.textures import _t_head, _t_plain, _t_split


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
