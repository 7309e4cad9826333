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
    d = np.full((h, w), 20.0, np.float32)
    d[0, 0], d[1, 1] = 0.0, np.nan  # unknown depth stays unknown
    ell = W.ray_distance(d, cam)
    assert ell[0, 0] == 0.0 and np.isnan(ell[1, 1])


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
    # above the horizon (row ~16.5), where the flat ground does not bound the depth
    d[12, 10:20] = 5.0  # near object ...
    d[12, 20:26] = np.nan  # ... with an occlusion hole on its right, then background at 50 m
    d[12, 26:] = 50.0
    out = W.complete_depth(d, cam, max_depth=800.0)
    assert np.isfinite(out).all() and (out > 0).all()
    assert (out[:5] == 800.0).all()
    assert (out[12, 20:26] == 50.0).all()  # occlusions take the farther neighbour
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
    h, w, beta = 96, 192, 0.05
    cam = _pinhole(fx=100.0, fy=100.0, u0=96.0, v0=40.0)
    cam["extrinsic"]["pitch"] = 0.05
    img = np.full((h, w, 3), 30, np.uint8)
    out = W.fog(img, None, cam, beta, refine=False, atmospheric=1.0)
    # bottom row, far right: flat ground 1.2 m below the camera at z = 1.2 / (sin p + y·cos p)
    v, u = h - 1, w - 1
    x, y = (u - 96.0) / 100.0, (v - 40.0) / 100.0
    z = 1.2 / (math.sin(0.05) + y * math.cos(0.05))
    t = math.exp(-beta * z * math.sqrt(1.0 + x * x + y * y))
    np.testing.assert_allclose(out[v, u], 30.0 * t + 255.0 * (1.0 - t), atol=0.51)
    assert (out[:30] == 255).all()  # above the horizon (row 35): sky at 1000 m, t ≈ 0, all fog


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


def _pinhole(fx: float, fy: float, u0: float, v0: float) -> dict:
    return {"extrinsic": {"baseline": 0.2, "pitch": 0.0, "roll": 0.0, "x": 0.0, "y": 0.0, "yaw": 0.0, "z": 1.2},
            "intrinsic": {"fx": fx, "fy": fy, "u0": u0, "v0": v0}}


@pytest.mark.parametrize("z", [20.0, 60.0])
def test_rain_veil_follows_the_ray_distance(z):
    """Rain Cityscapes' veil A = 1 − exp(−β·d), d the distance along the ray, not the z-depth."""
    h, w, beta = 60, 100, 0.01
    cam = _pinhole(fx=50.0, fy=40.0, u0=10.0, v0=5.0)
    img = np.full((h, w, 3), 40, np.uint8)
    light = np.array([0.8, 0.85, 0.9])
    # α = 50 m^-1 attenuates every streak (the nearest layer is 1.5 m away) by exp(−75): only the veil is left
    out = W.rain(img, np.full((h, w), z, np.float32), cam, None, alpha=50.0, beta=beta, atmospheric=light)
    for v, u in ((5, 10), (59, 99)):  # the principal point (d = z) and the far corner (d ≈ 2.6·z)
        d = z * math.sqrt(1.0 + ((u - 10.0) / 50.0) ** 2 + ((v - 5.0) / 40.0) ** 2)
        t = math.exp(-beta * d)
        np.testing.assert_allclose(out[v, u], 40.0 * t + 255.0 * light * (1.0 - t), atol=0.51)
    # Rain Cityscapes' middle setting has β = 0.01 too: the level alone gives the same veil
    level2 = W.rain(img, np.full((h, w), z, np.float32), cam, 2, alpha=50.0, atmospheric=light)
    np.testing.assert_array_equal(level2, out)


def test_rain_explicit_alpha_beta_and_errors():
    img, depth, cam = _scene(64, 128)
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
        assert np.abs(out.astype(int) - img).mean() > 0.5, f"{name} left the image (nearly) unchanged"
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
