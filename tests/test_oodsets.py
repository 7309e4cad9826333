"""Far/near OOD image generators and the on-disk OOD sets."""

from __future__ import annotations

import hashlib
import json
import re
import sys

import cv2
import numpy as np
import pytest
from conftest import fake_synthcity

from cityseg import oodsets
from cityseg.io import DataError, read_image

SIZES = [[24, 32], [16, 40], [32, 24]]


# ------------------------------------------------------------------ far-OOD generators
@pytest.mark.parametrize("kind", oodsets.FAR_KINDS)
def test_far_kinds_deterministic_varied_uint8(kind):
    a = oodsets.far_ood_image(np.random.default_rng(7), 40, 56, kind)
    b = oodsets.far_ood_image(np.random.default_rng(7), 40, 56, kind)
    c = oodsets.far_ood_image(np.random.default_rng(8), 40, 56, kind)
    assert a.shape == (40, 56, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 1  # not a blank image
    odd = oodsets.far_ood_image(np.random.default_rng(1), 17, 83, kind)
    assert odd.shape == (17, 83, 3) and odd.dtype == np.uint8


def test_far_random_kind_and_errors():
    imgs = [oodsets.far_ood_image(np.random.default_rng(s), 24, 32) for s in range(12)]
    assert all(i.shape == (24, 32, 3) for i in imgs)
    assert len({hashlib.sha1(i.tobytes()).hexdigest() for i in imgs}) == 12
    with pytest.raises(ValueError, match="kind"):
        oodsets.far_ood_image(np.random.default_rng(0), 24, 32, "cat")
    with pytest.raises(ValueError, match="height/width"):
        oodsets.far_ood_image(np.random.default_rng(0), 4, 32, "stripes")


def test_perlin_is_zero_on_lattice_and_bounded():
    n = oodsets.perlin_noise(np.random.default_rng(0), 64, 96, (4, 6))  # lattice every 16 px
    assert np.allclose(n[::16, ::16], 0.0)
    assert np.abs(n).max() <= 1.0 and n.std() > 0.05
    f = oodsets.fbm(np.random.default_rng(0), 30, 50)
    assert f.shape == (30, 50) and f.min() == 0.0 and f.max() == 1.0


# ------------------------------------------------------------------ near-OOD (SynthCity)
def test_near_options_never_default(monkeypatch):
    calls: list = []
    monkeypatch.setitem(sys.modules, "cityseg.synthcity", fake_synthcity(calls))
    rng = np.random.default_rng(0)
    kinds = set()
    for _ in range(300):
        img = oodsets.near_ood_image(rng, 24, 32)
        assert img.shape == (24, 32, 3) and img.dtype == np.uint8
    for o in calls:
        assert (o.environment, o.novel_objects, o.camera) != ("street", False, "default")
        assert o.environment in ("street", "night", "tunnel", "offroad")
        assert o.camera in ("default", "wide", "tilted")
        kinds.add(oodsets.near_ood_kind(o))
    # Every single shift occurs on its own, and combinations occur too.
    assert {"night", "tunnel", "offroad", "novel", "wide", "tilted"} <= kinds
    assert any("-" in k for k in kinds)
    a = oodsets.near_ood_image(np.random.default_rng(3), 24, 32)
    assert np.array_equal(a, oodsets.near_ood_image(np.random.default_rng(3), 24, 32))


def test_near_ood_with_real_synthcity():
    a = oodsets.near_ood_image(np.random.default_rng(5), 48, 96)
    b = oodsets.near_ood_image(np.random.default_rng(5), 48, 96)
    assert a.shape == (48, 96, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)


# ------------------------------------------------------------------ sets on disk
def _digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.png"))}


def test_write_oodsets_layout_and_determinism(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cityseg.synthcity", fake_synthcity([]))
    root = tmp_path / "ood"
    counts = oodsets.write_oodsets(root, seed=3, n_val=3, n_test=2, sizes=SIZES)
    assert counts == {"val_near": 3, "val_far": 3, "test_near": 2, "test_far": 2, "total": 10}
    files = _digest(root)
    assert len(files) == 10
    for rel in files:
        split, group, name = rel.split("/")
        assert split in ("val", "test") and group in ("near", "far")
        assert re.fullmatch(r"[a-z_\-]+_\d{4}\.png", name), name
        img = read_image(root / rel)
        assert list(img.shape[:2]) in SIZES
    assert {f.split("/")[2].rsplit("_", 1)[0] for f in files if "/far/" in f} <= set(oodsets.FAR_KINDS)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["counts"] == counts and len(manifest["images"]) == 10
    # val and test never share an image; a re-run gives identical bytes; another seed differs.
    val = {h for r, h in files.items() if r.startswith("val/")}
    test = {h for r, h in files.items() if r.startswith("test/")}
    assert not val & test
    oodsets.write_oodsets(tmp_path / "again", seed=3, n_val=3, n_test=2, sizes=SIZES)
    assert _digest(tmp_path / "again") == files
    oodsets.write_oodsets(tmp_path / "other", seed=4, n_val=3, n_test=2, sizes=SIZES)
    assert not set(_digest(tmp_path / "other").values()) & set(files.values())
    # A second write replaces the folder (no stale files survive).
    (root / "val" / "far" / "stale.png").write_bytes(b"x")
    oodsets.write_oodsets(root, seed=3, n_val=3, n_test=2, sizes=SIZES)
    assert _digest(root) == files


def test_write_oodsets_far_only_workers_match(tmp_path, monkeypatch):
    # No synthcity needed for far-only sets; the process pool gives the same bytes as one worker.
    monkeypatch.setitem(sys.modules, "cityseg.synthcity", None)  # any near call would fail
    c1 = oodsets.write_oodsets(tmp_path / "w1", seed=9, n_val=4, n_test=2, sizes=SIZES, workers=1, groups=["far"])
    c2 = oodsets.write_oodsets(tmp_path / "w2", seed=9, n_val=4, n_test=2, sizes=SIZES, workers=2, groups=["far"])
    assert c1 == c2 == {"val_near": 0, "val_far": 4, "test_near": 0, "test_far": 2, "total": 6}
    d1 = _digest(tmp_path / "w1")
    assert d1 == _digest(tmp_path / "w2") and len(d1) == 6
    assert (tmp_path / "w1" / "val" / "near").is_dir()  # layout is complete even when a group is skipped
    # Far images match those of a full run with the same seed (group index fixed by name).
    monkeypatch.setitem(sys.modules, "cityseg.synthcity", fake_synthcity([]))
    oodsets.write_oodsets(tmp_path / "full", seed=9, n_val=4, n_test=2, sizes=SIZES)
    full = _digest(tmp_path / "full")
    assert {r: h for r, h in full.items() if "/far/" in r} == d1


def test_write_oodsets_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="sizes"):
        oodsets.write_oodsets(tmp_path / "x", seed=0, n_val=1, n_test=1, sizes=[])
    with pytest.raises(ValueError, match="sizes"):
        oodsets.write_oodsets(tmp_path / "x", seed=0, n_val=1, n_test=1, sizes=[[32]])
    with pytest.raises(ValueError, match="seed"):
        oodsets.write_oodsets(tmp_path / "x", seed=-1, n_val=1, n_test=1, sizes=SIZES)
    with pytest.raises(ValueError, match="groups"):
        oodsets.write_oodsets(tmp_path / "x", seed=0, n_val=1, n_test=1, sizes=SIZES, groups=["mid"])
    assert not (tmp_path / "x").exists()


def test_collect_user_ood(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    (tmp_path / "a" / "b").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "a" / "x.png"), img)
    cv2.imwrite(str(tmp_path / "a" / "b" / "y.JPG"), img)
    cv2.imwrite(str(tmp_path / "a" / "b" / "z.jpeg"), img)
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    found = oodsets.collect_user_ood(tmp_path / "a")
    assert [p.name for p in found] == ["y.JPG", "z.jpeg", "x.png"]  # sorted by full path
    with pytest.raises(DataError, match="does not exist"):
        oodsets.collect_user_ood(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .png"):
        oodsets.collect_user_ood(tmp_path / "empty")
    with pytest.raises(DataError, match="got a file"):
        oodsets.collect_user_ood(tmp_path / "a" / "x.png")
