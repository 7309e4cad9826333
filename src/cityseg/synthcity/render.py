"""Rendering one scene (photo, labels, instances, depth, camera) and its stereo disparity."""

from __future__ import annotations

import cv2
import numpy as np

from cityseg.synthcity.builder import _Builder
from cityseg.synthcity.camera import _make_camera
from cityseg.synthcity.ground import _draw_ground
from cityseg.synthcity.layouts import LAYOUTS
from cityseg.synthcity.objects import _add_novel
from cityseg.synthcity.photo import _compose, _make_light
from cityseg.synthcity.raster import _Canvas, _draw_hood, _draw_polys, _shadow_mask
from cityseg.synthcity.scene import SKY, Scene, SceneOptions


def render_scene(rng: np.random.Generator, height: int, width: int, options: SceneOptions | None = None) -> Scene:
    """Render one street scene of size (height, width) with its exact labels, depth and camera."""
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng: expected a numpy Generator, got {type(rng).__name__}")
    for name, val in (("height", height), ("width", width)):
        if not isinstance(val, (int, np.integer)) or val < 8:
            raise ValueError(f"{name}: expected an integer >= 8, got {val!r}")
    opts = options or SceneOptions()
    if not isinstance(opts, SceneOptions):
        raise ValueError(f"options: expected SceneOptions, got {type(opts).__name__}")
    H, W = int(height), int(width)
    camera, cam = _make_camera(rng, H, W, opts)
    light = _make_light(rng, opts)
    b = _Builder(cam, light)
    ground, lanes = LAYOUTS[opts.environment](b, rng, opts)
    if opts.novel_objects:
        for _ in range(int(rng.integers(1, 4))):
            ln = lanes[int(rng.integers(len(lanes)))]
            _add_novel(b, rng, ln.x + rng.uniform(-1.0, 1.0), rng.uniform(6, 20))
    b.finish()
    cv = _Canvas.empty(H, W)
    hood = {"hd": 0.34 + rng.uniform(-0.01, 0.01), "zf": 1.95 + rng.uniform(-0.05, 0.05), "k": 0.8, "hw": 0.95,
            "color": np.array([38.0, 40, 44]), "refl": np.array([90.0, 95, 105])}
    _draw_hood(cv, cam, hood)
    _draw_polys(cv, cam, b.polys)
    D = cam.rays()
    _draw_ground(cv, cam, D, ground, light)
    if light.kd * light.shadow > 0.05:
        shadow = _shadow_mask(cam, b.shadows, light.sun)
    else:  # night, tunnel or a heavy overcast: no visible cast shadows
        shadow = np.zeros((H, W), np.float32)
    image = _compose(cv, cam, D, light, shadow, b.lamps, rng, opts, b.tunnel_end)
    sky = ~np.isfinite(cv.z)
    cv.label[sky] = SKY
    cv.inst[sky] = SKY
    return Scene(image, cv.label, cv.inst, cv.z, camera)


def disparity_png(depth: np.ndarray, camera: dict, rng: np.random.Generator) -> np.ndarray:
    """Cityscapes 16-bit disparity: round(d*256)+1 where d = baseline*fx/depth, 0 = invalid.

    Invalid like a real stereo matcher: sky/infinite depth, pixels not visible in the right
    camera (left image border, occlusion shadows left of foreground objects), speckle blobs
    and scattered dropouts. Every valid pixel decodes to the rendered depth up to quantisation.
    """
    depth = np.asarray(depth)
    if depth.ndim != 2:
        raise ValueError(f"depth: expected a (H, W) array, got shape {depth.shape}")
    try:
        baseline = float(camera["extrinsic"]["baseline"])
        fx = float(camera["intrinsic"]["fx"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"camera: missing extrinsic.baseline or intrinsic.fx ({exc})") from None
    if baseline <= 0 or fx <= 0:
        raise ValueError(f"camera: baseline and fx must be > 0, got {baseline}, {fx}")
    H, W = depth.shape
    q, valid = stereo_match(depth, baseline * fx)
    blobs = cv2.resize(rng.random((max(2, H // 24), max(2, W // 24))).astype(np.float32), (W, H),
                       interpolation=cv2.INTER_LINEAR)
    valid &= blobs < rng.uniform(0.9, 0.95)
    valid &= rng.random((H, W)) > 0.01
    return np.where(valid, q + 1, 0).astype(np.uint16)


def stereo_match(depth: np.ndarray, baseline_fx: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantised disparity ``round(256·baseline·fx/depth)`` (float64) and where a perfect matcher has it:
    finite depth in range, seen by the right camera (x − d inside the image, not covered by a nearer
    pixel further right)."""
    W = depth.shape[1]
    finite = np.isfinite(depth) & (depth > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(finite, baseline_fx / np.where(finite, depth, 1.0), 0.0)
    q = np.round(d * 256.0)
    valid = finite & (q >= 1) & (q <= 65534)
    # right-image visibility: x_r = x - d must not be covered by a pixel further right (closer object)
    xr = np.arange(W, dtype=np.float64)[None, :] - d
    run_min = np.minimum.accumulate(xr[:, ::-1], axis=1)[:, ::-1]
    covered = np.zeros_like(valid)
    covered[:, :-1] = run_min[:, 1:] < xr[:, :-1] - 0.5
    valid &= ~covered & (xr >= 0)
    return q, valid
