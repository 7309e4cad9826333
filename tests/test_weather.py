"""Tests for cityseg.weather: Koschmieder fog, depth completion/prior, guided filter, rain, augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cityseg import weather as W
from cityseg.corruptions import CORRUPTIONS


def _camera(h: int, w: int, f: float | None = None) -> dict:
    cam = W.default_camera(h, w)
    if f is not None:  # square pixels: the Foggy Cityscapes formula uses fx for both axes
        cam["intrinsic"]["fx"] = cam["intrinsic"]["fy"] = f
    return cam


def _scene(h: int = 96, w: int = 192, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """Textured street: sky above the horizon, ground plane below, two fronto-parallel boxes."""
    rng = np.random.default_rng(seed)
    cam = _camera(h, w)
    depth = W.fallback_depth(h, w, cam)
    img = np.empty((h, w, 3), np.float32)
    img[:] = (90, 90, 95)
    hz = int(W.horizon_row(cam))
    img[: hz + 1] = (150, 190, 235)  # sky
    for (u0, u1, v0, v1, z, col) in ((0.05, 0.35, 0.15, 0.75, 25.0, (160, 120, 90)), (0.6, 0.8, 0.35, 0.8, 8.0, (40, 60, 170))):
        r = (slice(int(v0 * h), int(v1 * h)), slice(int(u0 * w), int(u1 * w)))
        img[r] = col
        depth[r] = z
    img += rng.normal(0, 12, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8), depth, cam


def _grey_std(img: np.ndarray) -> float:
    return float(img.astype(np.float32).mean(axis=2).std())


# ---- camera & depth -----------------------------------------------------------------------------
def test_ray_distance_matches_foggy_cityscapes_formula():
    h, w, f = 40, 80, 90.0
    cam = _camera(h, w, f)
    u0, v0 = cam["intrinsic"]["u0"], cam["intrinsic"]["v0"]
    ell = W.ray_distance(np.full((h, w), 20.0, np.float32), cam)
    for v, u in ((h // 2, w // 2), (0, 0), (h - 1, w - 1)):
        expected = 20.0 * math.sqrt(f**2 + (u - u0) ** 2 + (v - v0) ** 2) / f
        assert ell[v, u] == pytest.approx(expected, rel=1e-5)
    assert ell.min() >= 20.0 - 1e-4  # never shorter than the z-depth


def test_ray_distance_survives_anisotropic_resize():
    """1024x2048 → 256x256 (fx, fy scaled differently): the same scene point keeps its distance."""
    cam = W.CITYSCAPES_CAMERA
    small = W.scale_camera(cam, 256 / 2048, 256 / 1024)
    full = W.ray_distance(np.full((1024, 2048), 10.0, np.float32), cam)
    low = W.ray_distance(np.full((256, 256), 10.0, np.float32), small)
    # pixel centre (v, u) in the small image ↔ ((v + .5)·4 − .5, (u + .5)·8 − .5) in the full one
    for v, u in ((0, 0), (255, 255), (100, 30)):
        fv, fu = (v + 0.5) * 4 - 0.5, (u + 0.5) * 8 - 0.5
        assert low[v, u] == pytest.approx(full[int(round(fv)), int(round(fu))], rel=2e-3)


def test_scale_camera_and_validation():
    cam = W.scale_camera(W.CITYSCAPES_CAMERA, 0.5, 0.25)
    assert cam["intrinsic"]["fx"] == pytest.approx(2262.52 * 0.5)
    assert cam["intrinsic"]["v0"] == pytest.approx((513.14 + 0.5) * 0.25 - 0.5)
    assert W.CITYSCAPES_CAMERA["intrinsic"]["fx"] == 2262.52  # input untouched
    with pytest.raises(ValueError, match="intrinsic"):
        W.check_camera({"extrinsic": {"pitch": 0.0, "roll": 0.0, "z": 1.2}})
    with pytest.raises(ValueError, match="fx"):
        W.check_camera({"intrinsic": {"fx": "x", "fy": 1, "u0": 0, "v0": 0}, "extrinsic": {}})


def test_fallback_depth_ground_prior():
    h, w = 64, 128
    cam = _camera(h, w)
    d = W.fallback_depth(h, w, cam, max_depth=500.0)
    hz = W.horizon_row(cam)
    below = np.arange(h) > hz + 1
    assert np.isfinite(d).all() and (d > 0).all()
    col = d[below, w // 2]
    assert (np.diff(col) < 0).all()  # farther towards the horizon (upwards)
    assert (d <= 500.0).all()
    assert (d[: int(hz)] == 500.0).all()  # above the horizon: far
    # closed form at the bottom row: h_cam / (sin(pitch) + y·cos(pitch))
    p, zc = cam["extrinsic"]["pitch"], cam["extrinsic"]["z"]
    y = (h - 1 - cam["intrinsic"]["v0"]) / cam["intrinsic"]["fy"]
    assert d[h - 1, w // 2] == pytest.approx(zc / (math.sin(p) + y * math.cos(p)), rel=1e-4)


def test_complete_depth_fills_sky_and_occlusions():
    h, w = 40, 60
    cam = _camera(h, w)
    d = np.full((h, w), 30.0, np.float32)
    d[:5] = 0.0  # sky band at the top
    d[25, 10:20] = 5.0  # near object ...
    d[25, 20:26] = np.nan  # ... with an occlusion hole on its right, then background at 50 m
    d[25, 26:] = 50.0
    out = W.complete_depth(d, cam, max_depth=800.0)
    assert np.isfinite(out).all() and (out > 0).all()
    assert (out[:5] == 800.0).all()
    assert (out[25, 20:26] == 50.0).all()  # occlusions take the farther neighbour
    valid = d > 0
    np.testing.assert_array_equal(out[valid & np.isfinite(d)], d[valid & np.isfinite(d)])
    # nothing valid: the flat-ground prior
    np.testing.assert_array_equal(W.complete_depth(np.zeros((h, w)), cam), W.fallback_depth(h, w, cam))
    with pytest.raises(ValueError, match="depth"):
        W.complete_depth(np.zeros((2, 3, 4)))


# ---- guided filter & atmospheric light ----------------------------------------------------------
def test_guided_filter_constant_and_edge_preserving():
    rng = np.random.default_rng(0)
    guide = rng.random((50, 70)).astype(np.float32)
    out = W.guided_filter(guide, np.full((50, 70), 0.3, np.float32), radius=5, eps=1e-3)
    np.testing.assert_allclose(out, 0.3, atol=1e-5)
    # a step in both guide and source survives (a box blur of radius 5 would smear it)
    step = np.zeros((40, 40), np.float32)
    step[:, 20:] = 1.0
    out = W.guided_filter(step, step, radius=5, eps=1e-4)
    assert out[:, 19].max() < 0.05 and out[:, 20].min() > 0.95


def test_atmospheric_light_picks_bright_region():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 60, (80, 120, 3)).astype(np.uint8)
    img[10:40, 70:110] = (250, 240, 230)  # bright hazy patch: the atmospheric light
    img[60, 5] = img[70, 50] = 255  # isolated white pixels: removed by the dark-channel min filter
    light = W.atmospheric_light(img, patch=7)
    np.testing.assert_allclose(light, np.array([250, 240, 230]) / 255.0, atol=1e-6)


# ---- fog ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("refine", [False, True])
def test_fog_constant_depth_is_koschmieder(refine):
    h, w, f, beta, z = 48, 96, 80.0, 0.02, 40.0
    cam = _camera(h, w, f)
    rng = np.random.default_rng(2)
    # refine=True is checked on a constant image (the guided filter then only smooths t, which is smooth)
    img = np.full((h, w, 3), 90, np.uint8) if refine else rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    light = np.array([0.8, 0.85, 0.9])
    out = W.fog(img, np.full((h, w), z, np.float32), cam, beta, refine=refine, atmospheric=light)
    u0, v0 = cam["intrinsic"]["u0"], cam["intrinsic"]["v0"]
    for v, u in ((h // 2, w // 2), (0, 0), (h - 1, w - 1)):
        ell = z * math.sqrt(f**2 + (u - u0) ** 2 + (v - v0) ** 2) / f
        t = math.exp(-beta * ell)
        expected = 255.0 * (img[v, u] / 255.0 * t + light * (1 - t))
        np.testing.assert_allclose(out[v, u], expected, atol=1.0 if refine else 0.51)


def test_fog_beta_zero_is_identity_and_errors():
    img, depth, cam = _scene()
    out = W.fog(img, depth, cam, 0.0)
    assert out is not img and np.array_equal(out, img)
    with pytest.raises(ValueError, match="beta"):
        W.fog(img, depth, cam, -0.01)
    with pytest.raises(ValueError, match="depth shape"):
        W.fog(img, depth[:-1], cam, 0.01)
    with pytest.raises(ValueError, match="image"):
        W.fog(img.astype(np.float32), depth, cam, 0.01)


def test_fog_monotone_in_beta_and_depth_dependent():
    img, depth, cam = _scene()
    stds, diffs = [], []
    for beta in (0.0, 0.005, 0.01, 0.02, 0.04):
        out = W.fog(img, depth, cam, beta)
        assert out.dtype == np.uint8 and out.shape == img.shape
        stds.append(_grey_std(out))
        diffs.append(np.abs(out.astype(int) - img).mean())
    assert all(a > b for a, b in zip(stds, stds[1:]))  # contrast drops
    assert all(a < b for a, b in zip(diffs, diffs[1:]))
    # the 8 m box keeps more of its colour than the 25 m box (refine off: no edge smoothing)
    out = W.fog(img, depth, cam, 0.03, refine=False).astype(int)
    near = np.abs(out - img)[int(0.5 * 96), int(0.7 * 192)].mean()
    far = np.abs(out - img)[int(0.5 * 96), int(0.2 * 192)].mean()
    assert near < far


def test_fog_without_depth_uses_ground_prior():
    img, _, cam = _scene()
    out = W.fog(img, None, cam, 0.01)
    assert out.shape == img.shape and not np.array_equal(out, img)


# ---- rain ---------------------------------------------------------------------------------------
def test_rain_deterministic_and_levels_increase_change():
    img, depth, cam = _scene(128, 256)
    a = W.rain(img, depth, cam, 2, seed=3)
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, W.rain(img, depth, cam, 2, seed=3))
    assert not np.array_equal(a, W.rain(img, depth, cam, 2, seed=4))
    change = [np.abs(W.rain(img, depth, cam, lv, seed=3).astype(int) - img).mean() for lv in (1, 2, 3)]
    assert change[0] > 0 and change[0] < change[1] < change[2]


def test_rain_streaks_are_oriented_and_occluded():
    h, w = 256, 256
    cam = _camera(h, w)
    params = W.RAIN_LEVELS[3]
    far = np.full((h, w), 1000.0, np.float32)
    r = W.rain_streaks(far, cam, params, np.random.default_rng(0), angle_deg=0.0)
    assert r.min() >= 0 and r.max() <= 1 and r.mean() > 0.001
    # vertical streaks: the layer varies much less along columns than along rows
    dv = np.abs(np.diff(r, axis=0)).mean()
    du = np.abs(np.diff(r, axis=1)).mean()
    assert dv < 0.5 * du
    # a wall at 1 m hides every streak (all drops are rendered at >= 1.5 m)
    near = np.full((h, w), 1.0, np.float32)
    assert W.rain_streaks(near, cam, params, np.random.default_rng(0)).max() == 0.0
    # only the nearest layers in front of a 4 m wall: brighter per streak than the far-only layers
    wall = W.rain_streaks(np.full((h, w), 4.0, np.float32), cam, params, np.random.default_rng(0), angle_deg=0.0)
    assert np.percentile(wall[wall > 0], 99) > np.percentile(r[r > 0], 50)


def test_rain_explicit_alpha_beta_and_errors():
    img, depth, cam = _scene(64, 128)
    out = W.rain(img, depth, cam, None, alpha=0.015, beta=0.008, seed=0)
    assert out.shape == img.shape and not np.array_equal(out, img)
    with pytest.raises(ValueError, match="level"):
        W.rain(img, depth, cam, 4)
    with pytest.raises(ValueError, match="alpha and beta"):
        W.rain(img, depth, cam, None, alpha=0.01)


# ---- augmentation -------------------------------------------------------------------------------
@pytest.mark.parametrize("with_depth", [True, False])
def test_weather_augment_every_type(with_depth):
    img, depth, cam = _scene(64, 128)
    rng = np.random.default_rng(0)
    for name in ["fog", "rain", *CORRUPTIONS]:
        out, applied = W.weather_augment(img, depth if with_depth else None, cam if with_depth else None, rng, [name])
        assert applied == name
        assert out.dtype == np.uint8 and out.shape == img.shape, name
    seen = {W.weather_augment(img, depth, cam, rng, ["fog", "rain", "jpeg"])[1] for _ in range(30)}
    assert seen == {"fog", "rain", "jpeg"}
    with pytest.raises(ValueError, match="unknown"):
        W.weather_augment(img, depth, cam, rng, ["hail"])
    with pytest.raises(ValueError):
        W.weather_augment(img, depth, cam, rng, [])


def test_complete_depth_fills_left_occlusion_band_from_the_right_not_as_sky():
    # a near wall (5 m) whose left-border band is unknown and joins the unknown sky at the top
    depth = np.full((20, 100), 5.0, np.float32)
    depth[:6] = 0.0  # sky
    depth[:, :4] = 0.0  # stereo occlusion band at the left border
    out = W.complete_depth(depth, max_depth=1000.0)
    assert np.allclose(out[6:, :4], 5.0)  # band continues the wall, not sky
    assert np.allclose(out[:6, 10:], 1000.0)  # the sky stays sky
