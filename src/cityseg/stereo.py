"""SynthCity's exact depth degraded like a real Cityscapes disparity map, for fog-fidelity checks.

Real Cityscapes disparity (SGM) is invalid on ≈13% of a frame: the sky, the ego vehicle's bonnet,
a band at the left border (the right camera does not see it; ≈3% of the width), occlusion shadows
left of near objects, and holes on specular (car glass and paint) and textureless surfaces.
``degraded_depth`` makes all of these from a rendered scene, so the depth completion can be scored
against the exact depth it came from. Not used to generate the dataset (its bytes stay pinned).
"""

from __future__ import annotations

import cv2
import numpy as np

from cityseg.prepare import depth_from_disparity
from cityseg.synthcity.render import stereo_match
from cityseg.synthcity.scene import BUS, CAR, CARAVAN, EGO, ROAD, TRAILER, TRAIN, TRUCK, Scene

LEFT_BAND_FRAC = 0.03  # SGM's disparity search range at 2048 px: the first ~64 columns have no match
SPECULAR_IDS = (CAR, TRUCK, BUS, CARAVAN, TRAILER, TRAIN)
SPECULAR_SHARE = 0.15  # of vehicle pixels (glass, reflections on paint)
TEXTURELESS_SHARE = 0.03  # of road pixels (smooth asphalt, glare)
DROPOUT_SHARE = 0.005  # scattered single-pixel mismatches


def _blobs(rng: np.random.Generator, shape: tuple[int, int], cell: int, share: float) -> np.ndarray:
    """Smooth random blobs covering about ``share`` of the image (bilinear noise thresholded)."""
    h, w = shape
    noise = cv2.resize(rng.random((max(2, h // cell), max(2, w // cell))).astype(np.float32), (w, h),
                       interpolation=cv2.INTER_LINEAR)
    return noise < np.quantile(noise, share)


def degraded_disparity(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """Cityscapes 16-bit disparity of ``scene`` (``round(256·d) + 1``, 0 = invalid) with real-looking holes.

    Invalid: no stereo match (sky, the bonnet, occlusion shadows, the left border beyond the
    disparity), the left band, specular blobs on vehicles, textureless blobs on the road, dropouts.
    """
    ids = scene.label_ids
    h, w = ids.shape
    depth = np.where(ids == EGO, np.inf, scene.depth)  # no stereo match on the bonnet
    cam = scene.camera
    q, valid = stereo_match(depth, float(cam["extrinsic"]["baseline"]) * float(cam["intrinsic"]["fx"]))
    valid[:, : int(round(LEFT_BAND_FRAC * w))] = False
    cell = max(2, w // 64)
    valid &= ~(np.isin(ids, SPECULAR_IDS) & _blobs(rng, (h, w), cell, SPECULAR_SHARE))
    valid &= ~((ids == ROAD) & _blobs(rng, (h, w), 2 * cell, TEXTURELESS_SHARE))
    valid &= rng.random((h, w)) >= DROPOUT_SHARE
    return np.where(valid, q + 1, 0).astype(np.uint16)


def degraded_depth(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """z-depth (m) as ``prepare`` decodes ``degraded_disparity``: (H, W) float32, 0 = unknown."""
    return depth_from_disparity(degraded_disparity(scene, rng), scene.camera)
