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
