"""Depth for fog and rain: the camera model, depth priors and completion of measured depth.

Every frame gets a z-depth (m) from the best source it has (``scene_depth``), recorded as
``DEPTH_SOURCES``:

* ``disparity``: stereo depth from the Cityscapes disparity package; its holes (≈13% of a real
  frame: sky, the ego vehicle's bonnet, the left stereo band, specular and textureless patches)
  are filled from the valid depth of the same label in the same row, then column, then from the
  label-guided prior; sky is far, the ego vehicle near (``complete_depth`` with labels).
* ``disparity_no_labels``: the same without labels: occlusion fill, sky = far, filled pixels no
  farther than the ground plane below the horizon.
* ``label_prior``: no disparity, fine labels (trainIds): ground classes lie on the flat ground of
  the camera model, every other thing stands on the ground where its column meets it (the contact
  depth is propagated up the thing), sky is far, the ego vehicle 1.7 m away (``label_prior``).
* ``flat_ground_prior``: neither: the flat ground below the horizon, sky distance above it
  (``fallback_depth``); buildings and cars above the horizon then get far too much fog.

Cameras are Cityscapes camera dicts ``{"extrinsic": {"baseline", "pitch", "roll", "x", "y", "yaw",
"z"}, "intrinsic": {"fx", "fy", "u0", "v0"}}`` valid for the image's resolution (``scale_camera``).
"""

from __future__ import annotations

import copy
import math

import cv2
import numpy as np

from cityseg.labels import CLASS_NAMES, IGNORE_INDEX

DEFAULT_MAX_DEPTH = 1000.0  # metres assigned to sky / beyond the horizon: t = exp(-β·1000) ≈ 0 for β ≥ 0.005
EGO_DEPTH = 1.7  # m: the bonnet seen from the camera (SynthCity's is 1.5-2.0 m away, as on the Cityscapes car)
# Things standing on the ground are no farther than this: the flat-ground depth explodes near the horizon,
# where a small pitch error (a default camera) moves the contact row by many metres.
THING_MAX_DEPTH = 300.0
# Hole filling and the label prior run on a grid of about this width (a 4x subsampling at 2048 px):
# the filled depth is smooth within a label, and the fog's guided filter works at this width too.
WORK_WIDTH = 512
# Widest left-border occlusion band filled from the right (no labels): Cityscapes' disparity reaches
# ~6% of the width for the nearest objects; sky runs in the top rows are much longer.
LEFT_BAND_FRAC = 0.08

DEPTH_SOURCES = ("disparity", "disparity_no_labels", "label_prior", "flat_ground_prior")

# Typical Cityscapes camera at 2048x1024 (values inside the ranges of the real camera/*.json files).
CITYSCAPES_CAMERA: dict = {
    "extrinsic": {"baseline": 0.209313, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": -0.02, "z": 1.22},
    "intrinsic": {"fx": 2262.52, "fy": 2265.30, "u0": 1096.98, "v0": 513.14},
}

# trainId -> what the label says about depth. 255 (ignore) mixes the ego vehicle, out of roi and the
# rectification border with static/dynamic things and the ignored ground classes (parking, rail track):
# its part joined to the bottom border below the horizon is the ego vehicle, the rest a thing.
GROUND, SKY, THING = 0, 1, 2
GROUND_CLASSES = ("road", "sidewalk", "terrain")
_GROUP = np.full(256, -1, np.int8)
for _k, _name in enumerate(CLASS_NAMES):
    _GROUP[_k] = GROUND if _name in GROUND_CLASSES else SKY if _name == "sky" else THING
_GROUP[IGNORE_INDEX] = THING
# Things that stand behind whatever hides their foot (they never overhang it).
_BEHIND = np.zeros(256, bool)
_BEHIND[[CLASS_NAMES.index(n) for n in ("building", "wall", "fence")]] = True


# ---- camera ------------------------------------------------------------------------------------
def check_camera(camera: dict) -> tuple[float, float, float, float]:
    """Validate a Cityscapes camera dict; return (fx, fy, u0, v0)."""
    if not isinstance(camera, dict):
        raise ValueError(f"camera must be a dict with 'extrinsic' and 'intrinsic', got {type(camera).__name__}")
    for section, keys in (("intrinsic", ("fx", "fy", "u0", "v0")), ("extrinsic", ("pitch", "roll", "z"))):
        if not isinstance(camera.get(section), dict):
            raise ValueError(f"camera is missing the {section!r} section")
        for k in keys:
            v = camera[section].get(k)
            if not isinstance(v, (int, float)) or not math.isfinite(v):
                raise ValueError(f"camera[{section!r}][{k!r}] must be a finite number, got {v!r}")
    i = camera["intrinsic"]
    if i["fx"] <= 0 or i["fy"] <= 0:
        raise ValueError(f"camera focal lengths must be positive, got fx={i['fx']}, fy={i['fy']}")
    return float(i["fx"]), float(i["fy"]), float(i["u0"]), float(i["v0"])


def scale_camera(camera: dict, sx: float, sy: float) -> dict:
    """Camera for an image resized by (sx, sy) = (new_w / old_w, new_h / old_h).

    Uses the pixel-centre convention: a centre at u maps to (u + 0.5)·sx − 0.5.
    Extrinsics are unchanged.
    """
    check_camera(camera)
    if sx <= 0 or sy <= 0:
        raise ValueError(f"scale factors must be positive, got sx={sx}, sy={sy}")
    out = copy.deepcopy(camera)
    i = out["intrinsic"]
    i["fx"], i["fy"] = i["fx"] * sx, i["fy"] * sy
    i["u0"], i["v0"] = (i["u0"] + 0.5) * sx - 0.5, (i["v0"] + 0.5) * sy - 0.5
    return out


def default_camera(height: int, width: int) -> dict:
    """The typical Cityscapes camera scaled to (height, width), for sources without camera files."""
    return scale_camera(CITYSCAPES_CAMERA, width / 2048.0, height / 1024.0)


def horizon_row(camera: dict) -> float:
    """Image row of the horizon of a flat ground plane (positive pitch = camera looks down)."""
    _, fy, _, v0 = check_camera(camera)
    return v0 - fy * math.tan(float(camera["extrinsic"]["pitch"]))


# ---- depth -------------------------------------------------------------------------------------
def _check_depth(depth: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValueError(f"depth must be an (H, W) array, got shape {d.shape}")
    if shape is not None and d.shape != tuple(shape):
        raise ValueError(f"depth shape {d.shape} does not match image shape {tuple(shape)}")
    return d.astype(np.float32, copy=False)


def check_labels(labels: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Validate an (H, W) trainId map (0..18, 255 = ignore); returns it as uint8."""
    lab = np.asarray(labels)
    if lab.ndim != 2 or (shape is not None and lab.shape != tuple(shape)):
        raise ValueError(f"labels must be an (H, W) trainId array of shape {tuple(shape) if shape else '(H, W)'}, "
                         f"got shape {lab.shape}")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integer trainIds, got dtype {lab.dtype}")
    if lab.size and (lab.min() < 0 or lab.max() > 255):
        raise ValueError(f"labels must be trainIds 0..{len(CLASS_NAMES) - 1} or {IGNORE_INDEX}, got values "
                         f"{int(lab.min())}..{int(lab.max())}")
    lab = lab.astype(np.uint8, copy=False)
    if (_GROUP[lab] < 0).any():
        bad = sorted(int(v) for v in np.unique(lab[_GROUP[lab] < 0]))[:8]
        raise ValueError(f"labels hold {bad}, which are not trainIds (0..{len(CLASS_NAMES) - 1}, {IGNORE_INDEX}); "
                         "pass *_gtFine_labelTrainIds, not labelIds")
    return lab


def is_train_ids(labels: np.ndarray) -> bool:
    """Whether ``labels`` is an integer (H, W) map of trainIds (0..18, 255) that ``check_labels`` accepts."""
    lab = np.asarray(labels)
    if lab.ndim != 2 or not np.issubdtype(lab.dtype, np.integer) or (lab.size and (lab.min() < 0 or lab.max() > 255)):
        return False
    return bool((_GROUP[lab.astype(np.uint8, copy=False)] >= 0).all())


def ray_distance(depth: np.ndarray, camera: dict) -> np.ndarray:
    """Distance along the camera ray (m) from z-depth: ℓ = z·sqrt(1 + ((u−u0)/fx)² + ((v−v0)/fy)²).

    For fx = fy this is the Foggy Cityscapes formula ℓ = z·sqrt(fx² + (u−u0)² + (v−v0)²)/fx; the
    per-axis form stays right for anisotropically resized images (e.g. 1024x2048 → 256x256).
    Unknown depth (0 / NaN) stays 0 / NaN.
    """
    fx, fy, u0, v0 = check_camera(camera)
    d = _check_depth(depth)
    h, w = d.shape
    x = (np.arange(w, dtype=np.float32) - u0) / fx  # (W,)
    y = (np.arange(h, dtype=np.float32) - v0) / fy  # (H,)
    scale = np.sqrt(1.0 + x[None, :] ** 2 + y[:, None] ** 2)  # (H, W)
    return (d * scale).astype(np.float32)


def fallback_depth(height: int, width: int, camera: dict, max_depth: float = DEFAULT_MAX_DEPTH) -> np.ndarray:
    """z-depth (m) of a flat ground plane seen from the camera's height and pitch (and roll).

    For images without disparity: pixels below the horizon hit the ground at z-depth
    ``h / (sin(pitch) + y·cos(pitch))`` (y = (v − v0)/fy, roll rotates (x, y) first); pixels on or
    above the horizon, or farther than ``max_depth``, get ``max_depth``.
    """
    fx, fy, u0, v0 = check_camera(camera)
    if height < 1 or width < 1:
        raise ValueError(f"height and width must be positive, got {height}x{width}")
    if max_depth <= 0:
        raise ValueError(f"max_depth must be positive, got {max_depth}")
    cam_h = float(camera["extrinsic"]["z"])
    if cam_h <= 0:
        raise ValueError(f"camera['extrinsic']['z'] (camera height) must be positive, got {cam_h}")
    pitch, roll = float(camera["extrinsic"]["pitch"]), float(camera["extrinsic"]["roll"])
    # Downward slope of the ray per unit z-depth, after undoing the roll about the optical axis:
    # sin(pitch) + (y·cos(roll) + x·sin(roll))·cos(pitch), separable into a row and a column term.
    y = (np.arange(height, dtype=np.float64) - v0) / fy
    x = (np.arange(width, dtype=np.float64) - u0) / fx
    rows = (math.sin(pitch) + y * math.cos(roll) * math.cos(pitch)).astype(np.float32)
    cols = (x * math.sin(roll) * math.cos(pitch)).astype(np.float32)
    down = np.add(rows[:, None], cols[None, :])  # (H, W) float32
    # h / down where the ray goes down and lands nearer than max_depth: down > h / max_depth
    z = np.full((height, width), max_depth, np.float32)
    np.divide(np.float32(cam_h), down, out=z, where=down > cam_h / max_depth)
    return z


def ego_mask(labels: np.ndarray, camera: dict) -> np.ndarray:
    """The ego vehicle in a trainId map: ignore (255) pixels joined to the bottom border along their
    column, below the horizon (the bonnet, with Cityscapes' out-of-roi band under it)."""
    lab = check_labels(labels)
    from_bottom = np.logical_and.accumulate(lab[::-1] == IGNORE_INDEX, axis=0)[::-1]
    below = np.arange(lab.shape[0]) > horizon_row(camera)
    return from_bottom & below[:, None]


def _nearest_below(z: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Per pixel, z of the nearest ``source`` pixel at or below it in its column (NaN if none)."""
    h = z.shape[0]
    rows = np.arange(h, dtype=np.int32)[:, None]
    idx = np.minimum.accumulate(np.where(source, rows, h)[::-1], axis=0)[::-1]
    out = np.take_along_axis(z, np.minimum(idx, h - 1), axis=0)
    out[idx == h] = np.nan
    return out


def fill_label_runs(z: np.ndarray, labels: np.ndarray, one_sided: bool = True) -> np.ndarray:
    """Fill NaN pixels of ``z`` from the finite ones of the same run of one label in their row.

    Between a finite pixel on each side the inverse depth is interpolated linearly (exact on a plane
    seen along the row: a facade, the road); with one side only (and ``one_sided``), that side's depth
    continues (the left stereo band, a hole at a segment's end). Pixels whose row run has no finite
    pixel stay NaN. Columns: pass transposed arrays.
    """
    h, w = z.shape
    valid = np.isfinite(z)
    cols = np.arange(w, dtype=np.int32)[None, :]
    start = np.ones((h, w), bool)
    start[:, 1:] = labels[:, 1:] != labels[:, :-1]
    run_start = np.maximum.accumulate(np.where(start, cols, 0), axis=1)
    end = np.ones((h, w), bool)
    end[:, :-1] = start[:, 1:]
    run_end = np.minimum.accumulate(np.where(end, cols, w)[:, ::-1], axis=1)[:, ::-1]
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    has_l, has_r = left >= run_start, right <= run_end
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / z
        il = np.take_along_axis(inv, np.clip(left, 0, w - 1), axis=1)
        ir = np.take_along_axis(inv, np.clip(right, 0, w - 1), axis=1)
        frac = (cols - left) / np.maximum(right - left, 1).astype(np.float32)
        both = il + (ir - il) * frac
        fill = np.where(has_l, il, np.where(has_r, ir, np.nan)) if one_sided else np.nan
        fill = np.where(has_l & has_r, both, fill)
        return np.where(valid, z, 1.0 / fill).astype(np.float32)


def _work_step(width: int) -> int:
    """Subsampling step of the depth filling for an image ``width`` px wide (1 up to 2·WORK_WIDTH)."""
    return max(1, width // WORK_WIDTH)


def _subsample(camera: dict, step: int) -> dict:
    """Camera of the grid of pixels ``step//2 + step·k`` (what ``a[o::step, o::step]`` keeps)."""
    o = step // 2
    out = copy.deepcopy(camera)
    i = out["intrinsic"]
    i["fx"], i["fy"] = i["fx"] / step, i["fy"] / step
    i["u0"], i["v0"] = (i["u0"] - o) / step, (i["v0"] - o) / step
    return out


def _expand(small: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
    """Each pixel of ``small`` (from ``_subsample``'s grid) repeated over its step x step block."""
    h, w = shape
    big = cv2.resize(small, (small.shape[1] * step, small.shape[0] * step), interpolation=cv2.INTER_NEAREST)
    big = big[:h, :w]
    if big.shape != (h, w):
        big = cv2.copyMakeBorder(big, 0, h - big.shape[0], 0, w - big.shape[1], cv2.BORDER_REPLICATE)
    return big


def label_prior(labels: np.ndarray, camera: dict, max_depth: float = DEFAULT_MAX_DEPTH) -> np.ndarray:
    """z-depth (m) from a trainId map and the camera, for frames without disparity.

    Ground classes (road, sidewalk, terrain) lie on the flat ground (``fallback_depth``); sky is
    ``max_depth``; the ego vehicle (``ego_mask``) is ``EGO_DEPTH`` away. Every other thing stands on
    the ground: each vertical run of one label whose bottom meets the ground (or the bonnet, or the
    image bottom) takes the ground depth there, up the whole run. Runs whose foot is hidden (a
    facade above a car, a sign on its pole) take the same label's depth along their row (inverse
    depth interpolated), else the depth of what stands in front of them below (a lower bound).
    Things are capped at ``THING_MAX_DEPTH``; anything left over gets the flat-ground depth, capped.
    Above 2·``WORK_WIDTH`` px the things are placed on a subsampled grid (ground, sky and the ego
    vehicle stay exact at full resolution; the fog's guided filter snaps the blocks to image edges).
    """
    lab = check_labels(labels)
    h, w = lab.shape
    step = _work_step(w)
    if step == 1:
        return _label_prior_at(lab, camera, max_depth)
    o = step // 2
    z = _expand(_label_prior_at(lab[o::step, o::step], _subsample(camera, step), max_depth), (h, w), step)
    group = _GROUP[lab]
    ego = ego_mask(lab, camera)
    ground = (group == GROUND) & ~ego
    z = np.where(ground, np.minimum(fallback_depth(h, w, camera, max_depth), min(THING_MAX_DEPTH, max_depth)), z)
    z[group == SKY] = max_depth
    z[ego] = min(EGO_DEPTH, max_depth)
    return z


def _label_prior_at(lab: np.ndarray, camera: dict, max_depth: float) -> np.ndarray:
    """``label_prior`` at the resolution of ``lab`` (checked trainIds)."""
    h, w = lab.shape
    ground_z = fallback_depth(h, w, camera, max_depth)
    far = np.float32(min(THING_MAX_DEPTH, max_depth))
    group = _GROUP[lab]
    ego, sky = ego_mask(lab, camera), group == SKY
    ground = (group == GROUND) & ~ego
    thing = (group == THING) & ~ego
    # Vertical runs of one thing label: the bottom pixel of each, and what lies under it.
    bottom = np.ones((h, w), bool)
    bottom[:-1] = (lab[:-1] != lab[1:]) | ego[1:]
    bottom &= thing
    on_ground = np.zeros((h, w), bool)
    on_ground[:-1] = ground[1:]
    on_near = np.zeros((h, w), bool)  # the foot is behind the bonnet or below the image
    on_near[:-1] = ego[1:]
    on_near[-1] = True
    contact = np.full((h, w), np.nan, np.float32)
    contact[:-1] = np.where(bottom[:-1] & on_ground[:-1], ground_z[1:], np.nan)
    contact = np.where(bottom & on_near, ground_z, contact)
    np.minimum(contact, far, out=contact)
    z = _nearest_below(contact, bottom)  # each thing pixel: the contact of its own run (NaN if hidden)
    z = np.where(thing, z, np.nan)
    z = np.where(ground, np.minimum(ground_z, far), z)
    z[sky] = max_depth
    z[ego] = min(EGO_DEPTH, max_depth)
    if np.isnan(z).any():
        z = fill_label_runs(z, lab, one_sided=False)
    if np.isnan(z).any():
        row, below = fill_label_runs(z, lab), _nearest_below(z, np.isfinite(z) & ~sky)
        with np.errstate(invalid="ignore"):
            # a facade stands behind what hides its foot; anything else may overhang what is below it
            # (a crown over a facade): the nearer guess, since a wrong far one whites out a near thing
            guess = np.where(_BEHIND[lab], np.fmax(row, below), np.fmin(row, below))
        z = np.where(np.isnan(z), guess, z)
    return np.where(np.isnan(z), np.minimum(ground_z, far), z).astype(np.float32)


def _fill_along_rows_far(d: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid pixels with the farther of the nearest valid pixels left and right in the row.

    Stereo holes are mostly occlusions next to foreground objects, whose true depth is the
    background's: taking the farther neighbour is the usual occlusion fill (as in the KITTI devkit).
    Rows without any valid pixel stay NaN.
    """
    h, w = d.shape
    cols = np.arange(w)
    left = np.maximum.accumulate(np.where(valid, cols, -1), axis=1)
    right = np.minimum.accumulate(np.where(valid, cols, w)[:, ::-1], axis=1)[:, ::-1]
    dl = np.where(left >= 0, np.take_along_axis(d, np.clip(left, 0, w - 1), axis=1), np.nan)
    dr = np.where(right < w, np.take_along_axis(d, np.clip(right, 0, w - 1), axis=1), np.nan)
    with np.errstate(invalid="ignore"):
        filled = np.fmax(dl, dr)  # NaN only where both sides are missing
    return np.where(valid, d, filled)


def _fill_with_labels(d: np.ndarray, valid: np.ndarray, lab: np.ndarray, camera: dict,
                      max_depth: float) -> np.ndarray:
    """Holes of measured depth from the same label: its row run, then its column run, then the prior."""
    z = np.where(valid, np.minimum(d, max_depth), np.nan).astype(np.float32)
    z[_GROUP[lab] == SKY] = max_depth  # stereo "depth" in the sky is matching noise
    z[ego_mask(lab, camera)] = min(EGO_DEPTH, max_depth)  # the bonnet: no match, or its reflections
    if np.isnan(z).any():
        z = fill_label_runs(z, lab)  # also the left stereo band: its row continues from the right
    if np.isnan(z).any():
        z = fill_label_runs(np.ascontiguousarray(z.T), np.ascontiguousarray(lab.T)).T
    if np.isnan(z).any():
        z = np.where(np.isnan(z), _label_prior_at(lab, camera, max_depth), z)
    return np.ascontiguousarray(z, dtype=np.float32)


def complete_depth(depth: np.ndarray, camera: dict | None = None, max_depth: float = DEFAULT_MAX_DEPTH,
                   labels: np.ndarray | None = None) -> np.ndarray:
    """Fill unknown depth (0 / non-finite) so every pixel has a distance; output float32 in (0, max_depth].

    With ``labels`` (trainIds; source ``disparity``): sky is ``max_depth``, the ego vehicle
    ``EGO_DEPTH``, and every other hole takes the valid depth of its own label along its row, then
    its column (``fill_label_runs``), then the label-guided prior (``label_prior``); never "far" by
    default. Without labels (``disparity_no_labels``), simple and robust rather than stereo inpainting:
    0. a short unknown run at the left border of a row (stereo occlusion) takes the first valid depth;
    1. unknown regions connected to the top border and above the horizon (image middle without a
       camera) are sky: ``max_depth``;
    2. other holes take the farther of the nearest valid depths left/right in their row (occlusion fill);
    3. anything left (rows with no valid pixel) takes the nearest valid depth in its column, else
       ``max_depth``; with a camera, no filled pixel is farther than the flat ground below the horizon
       (nothing visible there lies beyond the ground: this keeps the bonnet near).
    With no valid pixel at all: the label prior, else the flat-ground prior (camera given) or ``max_depth``.
    Above 2·``WORK_WIDTH`` px the holes are filled on a subsampled grid; measured pixels, sky and the
    ego vehicle stay exact at full resolution.
    """
    d = _check_depth(depth)
    if max_depth <= 0:
        raise ValueError(f"max_depth must be positive, got {max_depth}")
    h, w = d.shape
    valid = np.isfinite(d) & (d > 0)
    lab = None if labels is None else check_labels(labels, d.shape)
    if lab is not None and camera is None:
        camera = default_camera(h, w)
    if lab is None and (valid.all() or not valid.any()):
        return _fill_without_labels(d, valid, camera, max_depth)  # all measured, or the flat ground
    step = _work_step(w)
    if step == 1:
        if lab is not None:
            return _fill_with_labels(d, valid, lab, camera, max_depth)
        return _fill_without_labels(d, valid, camera, max_depth)
    o = step // 2
    sub = (slice(o, None, step),) * 2
    cam = None if camera is None else _subsample(camera, step)
    if lab is not None:
        small = _fill_with_labels(d[sub], valid[sub], lab[sub], cam, max_depth)
    else:
        small = _fill_without_labels(d[sub], valid[sub], cam, max_depth)
    z = np.where(valid, np.minimum(d, max_depth), _expand(small, (h, w), step)).astype(np.float32)
    if lab is not None:
        z[_GROUP[lab] == SKY] = max_depth
        z[ego_mask(lab, camera)] = min(EGO_DEPTH, max_depth)
    return z


def _fill_without_labels(d: np.ndarray, valid: np.ndarray, camera: dict | None, max_depth: float) -> np.ndarray:
    """``complete_depth`` without labels at the resolution of ``d`` (steps 0-3 of its docstring)."""
    h, w = d.shape
    valid = valid.copy()
    out = np.where(valid, np.minimum(d, max_depth), np.nan).astype(np.float32)
    if valid.all():
        return out
    if not valid.any():
        if camera is not None:
            return fallback_depth(h, w, camera, max_depth)
        return np.full((h, w), max_depth, np.float32)

    measured = valid.copy()
    # 0. Stereo occlusion band at the left border (the right camera does not see it): a short
    # leading run of unknown pixels continues the first valid surface of its row. Without this,
    # the band joins the sky component through the top rows and near objects get sky depth.
    first = np.argmax(valid, axis=1)  # (H,) first valid column (0 if none)
    rows = np.flatnonzero(valid.any(axis=1) & (first > 0) & (first <= int(np.ceil(LEFT_BAND_FRAC * w))))
    if rows.size:
        band = np.arange(w)[None, :] < first[rows, None]  # (R, W)
        fill = np.broadcast_to(out[rows, first[rows]][:, None], band.shape)
        out[rows] = np.where(band, fill, out[rows])
        valid[rows] |= band

    # 1. Sky: invalid components touching the top row, limited to rows above the horizon.
    invalid = ~valid
    n, comp = cv2.connectedComponents(invalid.astype(np.uint8), connectivity=4)
    touches_top = np.zeros(n, bool)
    touches_top[np.unique(comp[0][invalid[0]])] = True
    touches_top[0] = False  # label 0 = valid pixels
    limit = horizon_row(camera) if camera is not None else h / 2.0
    above = (np.arange(h) < limit)[:, None]
    sky = touches_top[comp] & above
    out[sky] = max_depth
    valid = valid | sky

    # 2. Row-wise occlusion fill, 3. column-wise nearest for rows that had nothing.
    out = _fill_along_rows_far(out, valid)
    still = ~np.isfinite(out)
    if still.any():
        out = _fill_along_rows_far(out.T.copy(), ~still.T).T
        out = np.where(np.isfinite(out), out, max_depth)
    if camera is not None:  # a filled pixel below the horizon lies in front of the ground there
        out = np.where(measured | sky, out, np.minimum(out, fallback_depth(h, w, camera, max_depth)))
    return np.ascontiguousarray(out, dtype=np.float32)


def depth_source(has_depth: bool, has_labels: bool) -> str:
    """The ``DEPTH_SOURCES`` name of a frame with or without measured depth and labels."""
    if has_depth:
        return "disparity" if has_labels else "disparity_no_labels"
    return "label_prior" if has_labels else "flat_ground_prior"


def scene_depth(shape: tuple[int, int], depth: np.ndarray | None, labels: np.ndarray | None, camera: dict,
                max_depth: float = DEFAULT_MAX_DEPTH) -> tuple[np.ndarray, str]:
    """Complete z-depth (m) of a frame of ``shape`` (H, W) from what it has, and the source's name."""
    h, w = shape
    if labels is not None:
        labels = check_labels(labels, (h, w))
    source = depth_source(depth is not None, labels is not None)
    if depth is not None:
        return complete_depth(_check_depth(depth, (h, w)), camera, max_depth, labels), source
    if labels is not None:
        return label_prior(labels, camera, max_depth), source
    return fallback_depth(h, w, camera, max_depth), source
