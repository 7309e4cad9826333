"""The pinhole camera: sampled like the Cityscapes car camera, written as its camera JSON."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cityseg.synthcity.helpers import _rot
from cityseg.synthcity.scene import SceneOptions


@dataclass
class _Cam:
    H: int
    W: int
    fx: float
    fy: float
    u0: float
    v0: float
    C: np.ndarray  # (3,) camera centre, world
    R: np.ndarray  # (3, 3) camera->world; camera axes x right, y down, z forward
    xn: np.ndarray  # (W,) normalised x of pixel centres
    yn: np.ndarray  # (H,) normalised y of pixel centres
    near: float = 0.3

    def rays(self) -> np.ndarray:
        """(H, W, 3) world directions whose camera z-component is 1 (so t = z-depth)."""
        r = self.R.astype(np.float32)
        xn, yn = self.xn.astype(np.float32), self.yn.astype(np.float32)
        out = np.empty((self.H, self.W, 3), np.float32)
        for k in range(3):
            out[..., k] = r[k, 0] * xn[None, :] + r[k, 1] * yn[:, None] + r[k, 2]
        return out


def _make_camera(rng: np.random.Generator, H: int, W: int, opts: SceneOptions) -> tuple[dict, _Cam]:
    """Sample a Cityscapes-like camera on a car slightly off the street direction; returns (json dict, camera)."""
    s = W / 2048.0
    fx = rng.uniform(2262, 2268) * s
    fy = rng.uniform(2225, 2265) * s
    u0 = rng.uniform(1050, 1097) * s
    v0 = rng.uniform(513, 519) * H / 1024.0
    z = float(np.clip(rng.normal(1.24, 0.1), 1.1, 1.6))
    pitch = float(np.clip(rng.normal(0.045, 0.015), 0.0, 0.08))
    yaw = float(np.clip(rng.normal(0.0, 0.008), -0.02, 0.02))
    roll = float(rng.normal(0.0, 0.004))
    if opts.camera == "wide":
        k = rng.uniform(0.42, 0.55)  # a much shorter lens
        fx, fy = fx * k, fy * k
    elif opts.camera == "tilted":
        roll = float(rng.choice([-1, 1]) * rng.uniform(0.12, 0.3))
        pitch = float(rng.choice([rng.uniform(-0.12, -0.05), rng.uniform(0.13, 0.25)]))
    heading = float(rng.normal(0.0, 0.02))  # car vs street direction (not part of the camera JSON)
    # render with exactly the values written to the JSON
    fx, fy, u0, v0 = round(fx, 4), round(fy, 4), round(u0, 4), round(v0, 4)
    z, pitch, yaw, roll = round(z, 6), round(pitch, 6), round(yaw, 6), round(roll, 6)
    # camera -> world: base axes (x right, y down, z fwd) -> (X, -Z, Y), then roll, pitch (down +), yaw (left +)
    base = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    Rm = _rot("z", yaw + heading) @ _rot("x", -pitch) @ _rot("y", roll) @ base
    cam = _Cam(H, W, fx, fy, u0, v0, np.array([0.0, 0.0, z]), Rm,
               (np.arange(W) - u0) / fx, (np.arange(H) - v0) / fy)
    camera = {
        "extrinsic": {"baseline": round(float(rng.uniform(0.209, 0.222)), 6), "pitch": pitch, "roll": roll,
                      "x": 1.7, "y": 0.1, "yaw": yaw, "z": z},
        "intrinsic": {"fx": fx, "fy": fy, "u0": u0, "v0": v0},
    }
    return camera, cam
