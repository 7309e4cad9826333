"""Vehicles (cars, trucks, buses, trains, trailers, bicycles, motorcycles) and the lanes they are
placed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.helpers import CAR_COLORS, VEHICLE_COLORS, _axes, _circle, _jit, _pick
from cityseg.synthcity.people import _add_rider
from cityseg.synthcity.scene import BICYCLE, BUS, CAR, CARAVAN, MOTORCYCLE, TRAILER, TRAIN, TRUCK
from cityseg.synthcity.textures import _t_coach, _t_coach_front, _t_concrete, _t_glass, _t_vend, _t_vside, _t_wheel


def _add_wheels(b: _Builder, center, axes, r: float, width: float, label: int, inst: int, rim, caps: bool = True,
                spokes: int = 5) -> None:
    """One wheel, or both wheels of an axle as one block (cheap): dark tread, a round cap on the camera's side."""
    ax, ay, az = axes
    center = np.asarray(center, np.float64)
    b.box(center - az * 0.8 * r, axes, (width, 1.6 * r, 1.6 * r), label, inst, np.array([28.0, 28, 30]),
          shadow=False, skip=("top", "bottom"))
    if caps:
        side = 1.0 if ax @ (b.cam.C - center) > 0 else -1.0
        c = center + ax * side * (width / 2 + 0.005)
        circ = _circle(8, r)
        b.face(c + circ[:, :1] * ay + circ[:, 1:] * az, label, inst, np.array([28.0, 28, 30]), _t_wheel,
               {"r": r, "rim": rim, "spokes": spokes}, (c, ay, az, 0.0, 0.0), hint=ax * side)


def _vehicle_frame(b: _Builder, label: int, x: float, y: float, yaw: float, z: float, radius: float):
    """None when a vehicle around (x, y, z) cannot be seen, else its (instance id, axes, base on the ground)."""
    if not b.visible((x, y, z), radius):
        return None
    return b.instance(label), _axes(yaw), np.array([x, y, 0.0])


def _coach(b: _Builder, at, axes, size, label: int, inst: int, color, side: dict, front: dict | None,
           back: dict | None) -> None:
    """One coach of a bus or train: window band, doors and stripe on both sides, a cab at the ends given."""
    faces = {"left": (_t_coach, side, None), "right": (_t_coach, side, None)}
    for name, tp in (("front", front), ("back", back)):
        if tp is not None:
            faces[name] = (_t_coach_front, tp, None)
    b.box(at, axes, size, label, inst, color, faces=faces)


def _add_car(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A car (sedan, hatchback, SUV, van or wagon) heading ``yaw``; returns its length."""
    kind = rng.choice(["sedan", "hatch", "suv", "van", "wagon"], p=[0.35, 0.25, 0.17, 0.1, 0.13])
    L, W, H = {"sedan": (4.6, 1.8, 1.45), "hatch": (4.0, 1.75, 1.5), "suv": (4.6, 1.9, 1.72),
               "van": (5.1, 2.0, 2.0), "wagon": (4.7, 1.8, 1.5)}[kind]
    L *= rng.uniform(0.93, 1.07)
    W *= rng.uniform(0.97, 1.03)
    H *= rng.uniform(0.96, 1.05)
    if (fr := _vehicle_frame(b, CAR, x, y, yaw, H / 2, L / 2 + 0.3)) is None:
        return L
    inst, axes, base = fr
    col = _jit(rng, _pick(rng, CAR_COLORS), 14)
    glass = _jit(rng, (45, 55, 65), 12)
    ax, ay, az = axes
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
            _add_wheels(b, base + ay * j * (L / 2 - 0.8) + az * 0.31, axes, 0.31, W - 0.2, CAR, inst, rim,
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
    if (fr := _vehicle_frame(b, TRUCK, x, y, yaw, 2, L / 2 + 1)) is None:
        return L
    inst, axes, base = fr
    cab_col = _jit(rng, _pick(rng, VEHICLE_COLORS + CAR_COLORS[:6]), 15)
    box_col = _jit(rng, _pick(rng, [(235, 235, 232), (200, 200, 200), (150, 30, 30), (40, 70, 140),
                                    (230, 200, 50), (90, 90, 95), (60, 110, 60)]), 12)
    glass = _jit(rng, (45, 55, 65), 10)
    _, ay, az = axes
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
        _add_wheels(b, base + ay * yy + az * r, axes, r, W - 0.3, TRUCK, inst, np.array([150.0, 150, 150]),
                    caps=b.ppm(base) * r > 4)
    return L


def _add_bus(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A city bus (sometimes articulated) heading ``yaw``; returns its length."""
    art = rng.random() < 0.25
    L = rng.uniform(11.5, 12.5) if not art else rng.uniform(17.5, 18.5)
    W, H = 2.55, rng.uniform(3.0, 3.25)
    if (fr := _vehicle_frame(b, BUS, x, y, yaw, H / 2, L / 2 + 1)) is None:
        return L
    inst, axes, base = fr
    col = _jit(rng, _pick(rng, VEHICLE_COLORS), 12)
    glass = _jit(rng, (40, 50, 60), 10)
    stripe = _jit(rng, _pick(rng, VEHICLE_COLORS), 20)
    _, ay, az = axes
    zb = 0.32
    parts = [(L, 0.0)] if not art else [(L * 0.55, L * 0.225), (L * 0.43, -L * 0.285)]
    for k, (pl, off) in enumerate(parts):
        side = {"w0": 1.05, "w1": 0.32, "pp": rng.uniform(1.3, 2.0), "doors": [0.12, 0.55], "stripe": stripe,
                "glass": glass, "night": b.night}
        front = {"w0": 0.85, "glass": glass, "front": 1, "night": b.night} if k == 0 else None
        back = {"w0": 1.4, "glass": glass * 0.7, "front": 0, "night": b.night} if k == len(parts) - 1 else None
        _coach(b, base + ay * off + az * zb, axes, (W, pl, H - zb), BUS, inst, col, side, front, back)
    if art:
        b.box(base + ay * (L * 0.225 - L * 0.275 - 0.02) + az * 0.5, axes, (W * 0.9, 0.5, H - 0.7), BUS, inst,
              np.array([40.0, 40, 40]), shadow=False)
    for yy in ([L / 2 - 2.6, -L / 2 + 3.2] if not art else [L / 2 - 2.6, L * 0.225 - L * 0.275 + 1.5,
                                                            -L / 2 + 2.5]):
        _add_wheels(b, base + ay * yy + az * 0.5, axes, 0.5, W - 0.3, BUS, inst, np.array([160.0, 160, 160]),
                    caps=b.ppm(base) * 0.5 > 4)
    return L


def _add_train(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A tram of several coaches heading ``yaw``; returns its length."""
    n_seg = int(rng.integers(2, 5))
    seg = rng.uniform(7.5, 11)
    L = n_seg * seg + (n_seg - 1) * 0.5
    W, H = rng.uniform(2.35, 2.65), rng.uniform(3.3, 3.7)
    if (fr := _vehicle_frame(b, TRAIN, x, y, yaw, H / 2, L / 2 + 1)) is None:
        return L
    inst, axes, base = fr
    col = _jit(rng, _pick(rng, [(235, 235, 230), (220, 200, 40), (200, 40, 35), (240, 240, 240), (60, 110, 60),
                                (150, 160, 170), (40, 80, 150)]), 10)
    stripe = _jit(rng, _pick(rng, VEHICLE_COLORS), 20)
    glass = _jit(rng, (40, 48, 58), 10)
    ax, ay, az = axes
    zb = 0.38
    for k in range(n_seg):
        off = L / 2 - seg / 2 - k * (seg + 0.5)
        side = {"w0": 1.1, "w1": 0.45, "pp": rng.uniform(1.6, 2.6), "doors": [0.25, 0.75], "stripe": stripe,
                "glass": glass, "night": b.night}
        cab = {"w0": 1.1, "glass": glass, "front": 1, "night": b.night}  # a driver's cab at both ends
        _coach(b, base + ay * off + az * zb, axes, (W, seg, H - zb), TRAIN, inst, col, side,
               cab if k == 0 else None, cab if k == n_seg - 1 else None)
        if k < n_seg - 1:
            b.box(base + ay * (off - seg / 2 - 0.25) + az * 0.6, axes, (W * 0.85, 0.5, H - 0.9), TRAIN, inst,
                  np.array([35.0, 35, 35]), shadow=False)
    mid = base + ay * (L / 2 - seg / 2 - (n_seg // 2) * (seg + 0.5)) + az * H
    b.rod(mid, mid + az * 0.9 + ay * 0.6, 0.05, ax, TRAIN, inst, np.array([70.0, 70, 70]))
    b.rod(mid + az * 0.9 + ay * 0.6 - ax * 0.7, mid + az * 0.9 + ay * 0.6 + ax * 0.7, 0.05, ay, TRAIN, inst,
          np.array([70.0, 70, 70]))
    return L


def _add_trailer(b: _Builder, rng, x: float, y: float, yaw: float) -> float:
    """A parked caravan or trailer (ignored labels 'caravan' / 'trailer'); returns its length."""
    caravan = rng.random() < 0.5
    label = CARAVAN if caravan else TRAILER
    L, W, H = (rng.uniform(5, 7), 2.3, 2.6) if caravan else (rng.uniform(2.5, 4), 1.8, 1.2)
    if (fr := _vehicle_frame(b, label, x, y, yaw, H / 2, L / 2 + 0.5)) is None:
        return L
    inst, axes, _ = fr
    col = _jit(rng, (230, 228, 220) if caravan else (150, 150, 155), 15)
    side = (_t_coach, {"w0": 1.3, "w1": 0.6, "pp": 2.5, "doors": [0.5], "stripe": _jit(rng, (120, 60, 40), 30),
                       "glass": np.array([50.0, 55, 60]), "night": False}, None) if caravan else None
    b.box(np.array([x, y, 0.35]), axes, (W, L, H - 0.35), label, inst, col,
          faces={"left": side, "right": side} if caravan else None)
    _add_wheels(b, np.array([x, y, 0.33]), axes, 0.33, W, label, inst, np.array([140.0, 140, 140]))
    return L


def _add_bicycle(b: _Builder, rng, x: float, y: float, yaw: float, rider: bool = False) -> None:
    """A bicycle (label 'bicycle'), with a rider (label 'rider') when ``rider``."""
    if (fr := _vehicle_frame(b, BICYCLE, x, y, yaw, 0.9, 1.4)) is None:
        return
    inst, axes, base = fr
    ax, ay, az = axes
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


def _add_motorcycle(b: _Builder, rng, x: float, y: float, yaw: float, rider: bool = True) -> None:
    """A motorcycle (label 'motorcycle'), with a helmeted rider (label 'rider') when ``rider``."""
    if (fr := _vehicle_frame(b, MOTORCYCLE, x, y, yaw, 0.9, 1.6)) is None:
        return
    inst, axes, base = fr
    ax, ay, az = axes
    col = _jit(rng, _pick(rng, [(200, 30, 30), (30, 30, 35), (230, 230, 230), (40, 80, 160), (240, 140, 30),
                                (60, 130, 60), (160, 160, 165)]), 15)
    dark = np.array([45.0, 45, 48])
    for j in (-1, 1):
        _add_wheels(b, base + ay * j * 0.7 + az * 0.32, axes, 0.32, 0.14, MOTORCYCLE, inst,
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


@dataclass
class _Lane:
    """A lane of traffic or parking along Y at ``x``; ``occ`` holds the Y intervals already taken."""

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


def _drive_lane(b: _Builder, rng, lane: _Lane, y_max: float, gap: float, kinds: list, p: list) -> None:
    """Fill a driving lane up to ``y_max`` with ``kinds`` of vehicles (probabilities ``p``), about ``gap`` m apart."""
    y = rng.uniform(0, 15)
    while y < y_max:
        y += rng.exponential(gap) + 5
        L = _place_vehicle(b, rng, lane, y, str(rng.choice(kinds, p=p)))
        y += (L or 0) / 2
