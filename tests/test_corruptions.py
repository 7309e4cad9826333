"""Tests for cityseg.corruptions: the Cityscapes-C-style suite at five severities."""

from __future__ import annotations

import numpy as np
import pytest

from cityseg.corruptions import CORRUPTION_GROUPS, CORRUPTIONS, SEVERITIES, corrupt

# Effects with randomness: another seed must give another image.
RANDOM = {"gaussian_noise", "shot_noise", "impulse_noise", "motion_blur", "snow", "spatter", "low_light"}
NOISE = CORRUPTION_GROUPS["noise"]


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    """128x512 street-like picture: sky, textured ground, boxes with edges (512 px so blur constants,
    which are defined at 2048 px and scale with width, still differ between severities)."""
    rng = np.random.default_rng(0)
    h, w = 128, 512
    img = np.empty((h, w, 3), np.float32)
    img[:50] = (150, 190, 235)
    img[50:] = (95, 95, 100)
    img[30:110, 40:160] = (170, 120, 90)
    img[60:120, 300:380] = (40, 60, 170)
    img[35:100:12, 45:155] = (60, 50, 40)  # window rows: fine structure for blur to remove
    img += rng.normal(0, 10, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def results(image) -> dict[tuple[str, int], np.ndarray]:
    return {(n, s): corrupt(image, n, s, seed=7) for n in CORRUPTIONS for s in SEVERITIES}


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_groups_cover_the_suite():
    grouped = [n for names in CORRUPTION_GROUPS.values() for n in names]
    assert sorted(grouped) == sorted(CORRUPTIONS) and len(grouped) == len(set(grouped))
    assert set(CORRUPTION_GROUPS) == {"noise", "blur", "digital", "weather", "low_light"}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_every_severity_changes_the_image_more_at_5(name, image, results):
    mads = []
    for s in SEVERITIES:
        out = results[(name, s)]
        assert out.dtype == np.uint8 and out.shape == image.shape
        mads.append(_mad(out, image))
        assert mads[-1] > 0.5, f"{name} severity {s} barely changes the image ({mads[-1]:.2f})"
    assert mads[4] > mads[0] * 1.2, f"{name}: severity 5 not harsher than 1: {mads}"
    if name in NOISE or name in ("brightness", "contrast", "low_light", "spatter"):
        assert all(a < b for a, b in zip(mads, mads[1:])), f"{name} not monotone: {mads}"


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corrupt_is_deterministic_per_seed(name, image, results):
    np.testing.assert_array_equal(corrupt(image, name, 3, seed=7), results[(name, 3)])
    other = corrupt(image, name, 3, seed=8)
    if name in RANDOM:
        assert not np.array_equal(other, results[(name, 3)])


def test_corruptions_do_what_their_names_say(image, results):
    grey = image.astype(np.float32).mean(axis=2)

    def edges(x):  # mean horizontal + vertical gradient of the grey image
        g = x.astype(np.float32).mean(axis=2)
        return np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean()

    for s in SEVERITIES:
        assert results[("brightness", s)].mean() > image.mean()
        assert results[("contrast", s)].astype(np.float32).mean(axis=2).std() < grey.std()
        assert results[("low_light", s)].mean() < image.mean()
        for blur in CORRUPTION_GROUPS["blur"]:
            assert edges(results[(blur, s)]) < edges(image)
    assert results[("low_light", 5)].mean() < results[("low_light", 1)].mean()
    # impulse noise: saturated pixel channels appear
    sat = lambda x: np.mean((x == 0) | (x == 255))  # noqa: E731
    assert sat(results[("impulse_noise", 5)]) > sat(image) + 0.2
    # mean preserved by zero-mean noise away from clipping (the mid-grey road)
    road = (slice(50, 128), slice(170, 290))
    assert abs(results[("shot_noise", 3)][road].mean() - image[road].mean()) < 3


def test_bad_input_raises(image):
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(image, "fog_of_war", 1)
    for bad in (0, 6, 2.5, True):
        with pytest.raises(ValueError, match="severity"):
            corrupt(image, "jpeg", bad)
    with pytest.raises(ValueError, match="image"):
        corrupt(image.astype(np.float32), "jpeg", 1)
    with pytest.raises(ValueError, match="image"):
        corrupt(image[..., 0], "jpeg", 1)


def _flat(value: int, h: int = 64, w: int = 256) -> np.ndarray:
    return np.full((h, w, 3), value, np.uint8)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_digital_corruptions_hit_their_table_values(severity):
    # brightness adds BRIGHTNESS_SHIFT (0.1 .. 0.5) x 255 to every channel
    out = corrupt(_flat(100), "brightness", severity).astype(float)
    assert np.abs(out - (100 + 25.5 * severity)).max() <= 1.0
    # contrast blends towards the mean grey (100 for a half-black, half-200 image) by CONTRAST_FACTOR
    factor = {1: 0.4, 3: 0.2, 5: 0.05}[severity]
    two_tone = _flat(0)
    two_tone[:, 128:] = 200
    out = corrupt(two_tone, "contrast", severity).astype(float)
    assert np.abs(out[:, :128] - (100 - 100 * factor)).max() <= 1.0
    assert np.abs(out[:, 128:] - (100 + 100 * factor)).max() <= 1.0
    # impulse noise: IMPULSE_NOISE_AMOUNT of the pixels, half white, half black, all channels at once
    amount = {1: 0.03, 3: 0.09, 5: 0.27}[severity]
    out = corrupt(_flat(128), "impulse_noise", severity)
    assert np.mean((out == 255).all(axis=2)) == pytest.approx(amount / 2, abs=0.005)
    assert np.mean((out == 0).all(axis=2)) == pytest.approx(amount / 2, abs=0.005)
    assert np.mean(out == 128) == pytest.approx(1 - amount, abs=0.005)


@pytest.mark.parametrize("severity", [1, 2])
def test_noise_has_the_tabulated_strength(severity):
    grey = _flat(128)
    gauss = corrupt(grey, "gaussian_noise", severity).astype(float)
    sigma = {1: 0.08, 2: 0.12}[severity] * 255  # no clipping within 4 sigma of 128
    assert gauss.mean() == pytest.approx(128, abs=1.0) and gauss.std() == pytest.approx(sigma, rel=0.05)
    # shot noise: Poisson(c·x)/c has std sqrt(x / c) for x = 128 / 255 and c = SHOT_NOISE_PHOTONS
    photons = {1: 60, 2: 25}[severity]
    shot = corrupt(grey, "shot_noise", severity).astype(float)
    assert shot.mean() == pytest.approx(128, abs=1.0)
    assert shot.std() == pytest.approx(255 * (128 / 255 / photons) ** 0.5, rel=0.05)


def test_low_light_exposure_and_blur_of_a_flat_image():
    # linear light x (200/255)^2.2 under-exposed by 0.4 and back through gamma 1/2.2: 200 * 0.4^(1/2.2)
    dark = corrupt(_flat(200), "low_light", 1).astype(float)
    assert dark.mean() == pytest.approx(200 * 0.4 ** (1 / 2.2), abs=1.0)
    for name in ("defocus_blur", "motion_blur", "gaussian_blur", "jpeg"):  # nothing to blur or compress
        assert (corrupt(_flat(128), name, 5) == 128).all(), name
