"""Tests for cityseg.depth: the label-guided prior, label-aware hole filling, fidelity on SynthCity."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg import depth as D
from cityseg import labels as L
from cityseg import weather as W
from cityseg.synthcity import EGO, render_scene
from cityseg.stereo import LEFT_BAND_FRAC, degraded_depth

ROAD, SIDEWALK, BUILDING, CAR, SKY = (L.CLASS_NAMES.index(n) for n in ("road", "sidewalk", "building", "car", "sky"))


def _pinhole(h: int, w: int) -> dict:
    return {"extrinsic": {"baseline": 0.2, "pitch": 0.0, "roll": 0.0, "x": 0.0, "y": 0.0, "yaw": 0.0, "z": 1.2},
            "intrinsic": {"fx": 100.0, "fy": 100.0, "u0": w / 2, "v0": h / 2}}


def _street(h: int = 60, w: int = 80) -> tuple[np.ndarray, dict]:
    """Sky above row 20, a building standing on the road (its foot at row 40), a car in front of it
    (foot at row 50) hiding the building's foot in columns 30..49, the bonnet (255) below row 55."""
    lab = np.full((h, w), ROAD, np.uint8)
    lab[:20] = SKY
    lab[5:41, 10:70] = BUILDING
    lab[28:51, 30:50] = CAR
    lab[55:] = L.IGNORE_INDEX
    return lab, _pinhole(h, w)


def _ground(cam: dict, row: int) -> float:
    return 1.2 / ((row - cam["intrinsic"]["v0"]) / cam["intrinsic"]["fy"])


def test_label_prior_stands_things_on_the_ground():
    lab, cam = _street()
    z = D.label_prior(lab, cam, max_depth=800.0)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    assert (z[:5] == 800.0).all()  # sky
    np.testing.assert_allclose(z[45, :], np.where(np.isin(np.arange(80), range(30, 50)), z[45, 40], _ground(cam, 45)),
                               rtol=1e-5)  # the road is flat ground, except where the car is
    np.testing.assert_allclose(z[5:41, 12], _ground(cam, 41), rtol=1e-5)  # the facade: its foot's depth, all up
    np.testing.assert_allclose(z[28:51, 40], _ground(cam, 51), rtol=1e-5)  # the car: its own foot
    # above the car, the building's foot is hidden: it continues its facade from both sides of the row
    np.testing.assert_allclose(z[10:28, 40], _ground(cam, 41), rtol=1e-5)
    assert (z[55:] == D.EGO_DEPTH).all()  # the bonnet
    # the flat-ground prior would put the upper facade at sky distance
    assert (D.fallback_depth(60, 80, cam, 800.0)[5:20, 12] == 800.0).all()


def test_label_prior_hidden_foot_takes_the_nearer_guess():
    lab, cam = _street()
    lab[5:28, 10:70] = L.CLASS_NAMES.index("vegetation")  # a crown over the car, no foot anywhere in its rows
    z = D.label_prior(lab, cam)
    assert z[15, 40] == pytest.approx(z[40, 40])  # behind-or-over the car: the car's depth, not far
    assert (z < D.THING_MAX_DEPTH + 1e-3)[:50].sum() == (lab[:50] != SKY).sum()


def test_labels_are_checked():
    lab, cam = _street()
    with pytest.raises(ValueError, match="not trainIds"):
        D.label_prior(np.full((8, 8), 30, np.uint8), cam)
    with pytest.raises(ValueError, match="shape"):
        D.complete_depth(np.ones((60, 80)), cam, labels=lab[:-1])
    assert D.is_train_ids(lab) and not D.is_train_ids(lab.astype(np.float32)) and not D.is_train_ids(lab + 30)


def test_complete_depth_with_labels_fills_holes_from_the_same_label():
    lab, cam = _street()
    true = D.label_prior(lab, cam)
    d = true.copy()
    d[lab == SKY] = 0.0  # sky: no match
    d[55:] = 0.0  # the bonnet: no match
    d[:, :3] = 0.0  # the left stereo band
    d[30:36, 45:56] = 0.0  # a hole straddling the car's edge and the building behind it
    d[42:48, 20:25] = np.nan  # a textureless patch of road
    out = D.complete_depth(d, cam, max_depth=800.0, labels=lab)
    assert (out[lab == SKY] == 800.0).all() and (out[55:] == D.EGO_DEPTH).all()
    hole = (d == 0) | np.isnan(d)
    keep = hole & (lab != SKY) & (lab != L.IGNORE_INDEX)
    np.testing.assert_allclose(out[keep], true[keep], rtol=1e-4)  # car from car, facade from facade, road
    np.testing.assert_array_equal(out[~hole], d[~hole])


def test_complete_depth_without_labels_keeps_filled_pixels_in_front_of_the_ground():
    h, w = 60, 80
    cam = _pinhole(h, w)
    d = D.fallback_depth(h, w, cam)
    d[:30] = 0.0  # sky and the upper half unknown
    d[52:] = 0.0  # the bonnet: no match, rows that reach the image sides
    d[52:, :5] = 900.0  # a far mismatch beside it
    out = D.complete_depth(d, cam)
    ground = D.fallback_depth(h, w, cam)
    assert (out[52:, 5:] <= ground[52:, 5:] + 1e-4).all()  # never farther than the ground there


def test_subsampled_filling_keeps_measured_pixels_exact():
    """Above 2·WORK_WIDTH the holes are filled on a coarser grid; measured depth, sky, ego stay exact."""
    h, w = 64, 2 * D.WORK_WIDTH
    cam = _pinhole(h, w)
    lab = np.full((h, w), ROAD, np.uint8)
    lab[:20] = SKY
    lab[20:40, 100:900] = BUILDING
    lab[58:] = L.IGNORE_INDEX
    z = D.label_prior(lab, cam)
    full = D._label_prior_at(lab, cam, D.DEFAULT_MAX_DEPTH)
    np.testing.assert_allclose(z[lab == ROAD], full[lab == ROAD], rtol=1e-6)  # ground exact
    # things: placed on the 2x grid, so a foot may land one pixel lower (nearer)
    assert np.abs(z - full)[lab == BUILDING].max() < 0.15 * full[lab == BUILDING].min()
    d = full.copy()
    d[25:30, 300:340] = 0.0
    out = D.complete_depth(d, cam, labels=lab)
    np.testing.assert_array_equal(out[d > 0], np.minimum(d, D.DEFAULT_MAX_DEPTH)[d > 0])
    np.testing.assert_allclose(out[25:30, 300:340], full[25:30, 300:340], rtol=0.05)


def test_scene_depth_names_its_source():
    lab, cam = _street()
    d = D.label_prior(lab, cam)
    assert D.scene_depth(lab.shape, d, lab, cam)[1] == "disparity"
    assert D.scene_depth(lab.shape, d, None, cam)[1] == "disparity_no_labels"
    assert D.scene_depth(lab.shape, None, lab, cam)[1] == "label_prior"
    assert D.scene_depth(lab.shape, None, None, cam)[1] == "flat_ground_prior"
    assert set(D.DEPTH_SOURCES) == {D.depth_source(a, b) for a in (True, False) for b in (True, False)}


# ---- fog fidelity on SynthCity (exact depth known) -----------------------------------------------
@pytest.fixture(scope="module")
def synth_frames():
    """Three SynthCity test frames at 128x256: (scene, trainIds, degraded depth)."""
    frames = []
    for i in range(3):
        scene = render_scene(np.random.default_rng([0, 2, i]), 128, 256)
        frames.append((scene, L.ID_TO_TRAIN_ID[scene.label_ids], degraded_depth(scene, np.random.default_rng(i))))
    return frames


def _t(z: np.ndarray, cam: dict, beta: float) -> np.ndarray:
    return np.exp(-beta * D.ray_distance(z, cam))


def test_degraded_disparity_is_like_cityscapes(synth_frames):
    scene, _, d = synth_frames[0]
    invalid = ~(d > 0)
    assert 0.10 < invalid.mean() < 0.30
    assert invalid[:, : int(LEFT_BAND_FRAC * 256)].all() and invalid[scene.label_ids == EGO].all()
    valid = ~invalid
    np.testing.assert_allclose(d[valid], scene.depth[valid], rtol=0.05)  # quantised, else exact


@pytest.mark.parametrize("beta", [0.005, 0.02])
def test_fog_transmission_fidelity_on_synthcity(synth_frames, beta):
    """The acceptance figures of benchmarks/fog_fidelity.py, on three small frames."""
    err = {"disparity": [], "refined": [], "labels": [], "flat": []}
    for scene, lab, d in synth_frames:
        cam = scene.camera
        t_exact = _t(np.where(np.isfinite(scene.depth), scene.depth, 1e9), cam, beta)
        near = t_exact > 0.75
        ego = scene.label_ids == EGO
        z_disp = D.scene_depth(lab.shape, d, lab, cam)[0]
        t_disp, t_refined = _t(z_disp, cam, beta), W.transmission(scene.image, z_disp, cam, beta)
        assert t_disp[ego].mean() >= 0.95 and t_refined[ego].mean() >= 0.95
        t_lab = _t(D.label_prior(lab, cam), cam, beta)
        assert ((t_lab < 0.3) & near).sum() <= 0.01 * near.sum()  # near things are not whited out
        t_flat = _t(D.fallback_depth(*lab.shape, cam), cam, beta)  # what the labels fix
        for key, t in (("disparity", t_disp), ("refined", t_refined), ("labels", t_lab), ("flat", t_flat)):
            err[key].append(np.abs(t - t_exact).mean())
    mean = {k: float(np.mean(v)) for k, v in err.items()}
    assert mean["disparity"] <= 0.03 and mean["refined"] <= 0.03
    assert mean["labels"] <= 0.08
    assert mean["flat"] > mean["labels"] + 0.05


def test_rain_veil_follows_the_label_prior(synth_frames):
    scene, lab, _ = synth_frames[1]
    cam = scene.camera
    exact = np.where(np.isfinite(scene.depth), scene.depth, 1e9).astype(np.float32)
    light = np.array([0.8, 0.85, 0.9])
    # α = 50 m^-1 leaves no streak: the image is only the veil A = 1 − exp(−β·ℓ)
    kw = dict(level=None, alpha=50.0, beta=0.015, atmospheric=light)
    ref = W.rain(scene.image, exact, cam, **kw).astype(int)
    with_labels = W.rain(scene.image, None, cam, labels=lab, **kw).astype(int)
    flat = W.rain(scene.image, None, cam, **kw).astype(int)
    assert np.abs(with_labels - ref).mean() < 0.5 * np.abs(flat - ref).mean()


def test_guided_filter_makes_no_patch_foggier_than_its_surroundings():
    """A near dark wall with bright specks: the refined t stays within the raw t's local range."""
    rng = np.random.default_rng(0)
    h, w = 64, 128
    cam = _pinhole(h, w)
    img = np.full((h, w, 3), 40, np.uint8)
    img[:, 64:] = 220  # bright far background
    specks = rng.random((h, 64)) < 0.05
    img[:, :64][specks] = 255
    z = np.where(np.arange(w)[None, :] < 64, 3.0, 200.0) * np.ones((h, 1), np.float32)
    t_raw = W.transmission(img, z, cam, 0.02, refine=False)
    t = W.transmission(img, z, cam, 0.02, window=15)
    assert t[:, :50].min() >= t_raw[:, :64].min() - 1e-6  # the wall: no whiter blocks
    assert t.min() >= t_raw.min() - 1e-6 and t.max() <= t_raw.max() + 1e-6
