import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import CAMERA, label_pattern, write_root

from cityseg.config import ConfigError, DataConfig
from cityseg.dataset import full_res_samples
from cityseg.io import DataError
from cityseg.prepare import hold_out_cities, prepare, scan_root

EXPECTED = np.array(label_pattern(), np.uint8)


def _expected_train_ids():
    t = np.full(EXPECTED.shape, 255, np.uint8)
    for label_id, train_id in {7: 0, 23: 10, 11: 2, 26: 13, 24: 11, 33: 18}.items():
        t[EXPECTED == label_id] = train_id
    return t


def test_prepare_writes_exact_train_ids_depth_cache_and_manifest(cs_root, tmp_path):
    out = tmp_path / "prepared"
    manifest = prepare(cs_root, out, "cityscapes", (4, 8), workers=2, progress=False)
    stem = "tinytown_000000_000019"
    lab = cv2.imread(str(out / "gtFine/train/tinytown" / f"{stem}_gtFine_labelTrainIds.png"), cv2.IMREAD_UNCHANGED)
    assert lab.dtype == np.uint8 and np.array_equal(lab, _expected_train_ids())
    # the prepared folder is a Cityscapes-layout root: images present and identical
    src = cs_root / "leftImg8bit/train/tinytown" / f"{stem}_leftImg8bit.png"
    assert (out / "leftImg8bit/train/tinytown" / src.name).read_bytes() == src.read_bytes()
    # depth: disparity 20 px, baseline 0.2 m, fx 100 px -> 1.00 m (stored in cm), sky unknown (0)
    depth = cv2.imread(str(out / "depth/train/tinytown" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and (depth[2:] == 100).all() and (depth[:2] == 0).all()
    assert json.loads((out / "camera/train/tinytown" / f"{stem}_camera.json").read_text()) == CAMERA
    # cache at the requested size, nearest-neighbour labels (only values from the table)
    images = np.load(out / "cache/train/images.npy")
    labels = np.load(out / "cache/train/labels.npy")
    assert images.shape == (2, 4, 8, 3) and labels.shape == (2, 4, 8)
    assert set(np.unique(labels)) <= set(np.unique(_expected_train_ids()))
    index = json.loads((out / "cache/train/index.json").read_text())
    assert index["stems"] == [stem, "tinytown_000001_000019"]
    assert index["cameras"][0]["intrinsic"]["fx"] == pytest.approx(50.0)  # scaled with the 16 -> 8 px resize
    assert manifest["splits"]["train"]["count"] == 2 and manifest["splits"]["test"]["has_depth"]
    assert manifest["splits"]["val"]["size"] == [8, 16]
    freqs = manifest["class_frequencies"]
    road = (_expected_train_ids() == 0).sum() / (_expected_train_ids() != 255).sum()
    assert freqs["road"] == pytest.approx(road, abs=1e-6) and sum(freqs.values()) == pytest.approx(1.0, abs=1e-5)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_prepare_without_test_split_and_without_disparity(tmp_path):
    root = write_root(tmp_path / "root", splits=("train", "val"), disparity=False)
    manifest = prepare(root, tmp_path / "out", "cityscapes", (4, 8), workers=1, progress=False)
    assert set(manifest["splits"]) == {"train", "val"}
    assert not manifest["splits"]["train"]["has_depth"]
    assert not (tmp_path / "out/cache/train/depth.npy").exists()


def _break(root: Path, how: str) -> str:
    """Damage a valid root in one way; return a regex the error must match."""
    gt = root / "gtFine/train/tinytown"
    img = root / "leftImg8bit/train/tinytown"
    stem = "tinytown_000000_000019"
    if how == "image_without_label":
        (gt / f"{stem}_gtFine_labelIds.png").unlink()
        return r"gtFine/train.*1 image\(s\) have no label file.*tinytown_000000_000019"
    if how == "label_without_image":
        (img / f"{stem}_leftImg8bit.png").unlink()
        return r"leftImg8bit/train.*1 label file\(s\) have no image.*tinytown_000000_000019"
    if how == "size_mismatch":
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), np.full((4, 16), 7, np.uint8))
        return r"labelIds\.png: size 16x4 does not match its image"
    if how == "corrupt_png":
        (img / f"{stem}_leftImg8bit.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
        return r"leftImg8bit\.png: cannot decode image"
    if how == "unknown_ids":
        bad = label_pattern()
        bad[0, 0] = 77
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), bad)
        return r"labelIds\.png: label ids \[77\] are not in the Cityscapes label table"
    if how == "empty_split":
        shutil.rmtree(root / "leftImg8bit/val")
        shutil.rmtree(root / "gtFine/val")
        (root / "leftImg8bit/val/tinytown").mkdir(parents=True)
        return r"split 'val' is empty"
    if how == "missing_split":
        shutil.rmtree(root / "leftImg8bit/val")
        shutil.rmtree(root / "gtFine/val")
        return r"required split 'val' is missing"
    if how == "not_cityscapes":
        shutil.rmtree(root / "gtFine")
        return r"not a Cityscapes-layout root: missing gtFine/"
    if how == "rgb_label":
        cv2.imwrite(str(gt / f"{stem}_gtFine_labelIds.png"), np.zeros((8, 16, 3), np.uint8))
        return r"labelIds\.png: expected a single-channel image"
    if how == "disparity_size_mismatch":
        d = root / "disparity/val/tinytown" / "tinytown_000001_000019_disparity.png"
        cv2.imwrite(str(d), np.full((4, 16), 20 * 256 + 1, np.uint16))  # the image is 16x8
        return r"disparity/val/tinytown/tinytown_000001_000019_disparity\.png: size 16x4 does not match its image"
    if how == "missing_camera":
        (root / "camera/test/tinytown" / "tinytown_000001_000019_camera.json").unlink()
        return r"camera/test: 1 image\(s\) have no \*_camera\.json"
    raise AssertionError(how)


CASES = ["image_without_label", "label_without_image", "size_mismatch", "corrupt_png", "unknown_ids",
         "empty_split", "missing_split", "not_cityscapes", "rgb_label", "missing_camera",
         "disparity_size_mismatch"]


@pytest.mark.parametrize("how", CASES)
def test_bad_input_names_the_file_and_keeps_previous_output(cs_root, tmp_path, how):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "previous.txt").write_text("an earlier, complete output")
    pattern = _break(cs_root, how)
    with pytest.raises(DataError, match=pattern):
        prepare(cs_root, out, "cityscapes", (4, 8), workers=1, progress=False)
    # nothing half-written: the old output is untouched and no temporary folder is left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cityscapes", "prepared"]
    assert [p.name for p in out.iterdir()] == ["previous.txt"]


def test_prepare_memory_does_not_grow_with_the_number_of_frames(tmp_path):
    # The resized frames go straight into the memory-mapped cache: holding a split's frames until the end grew
    # with it (9 GB for Cityscapes' train at 512x1024). tracemalloc sees every numpy allocation.
    import tracemalloc

    def peak(n: int) -> int:
        root = write_root(tmp_path / f"cs{n}", splits=("train", "val"), n=n)
        tracemalloc.start()
        try:
            manifest = prepare(root, tmp_path / f"prepared{n}", "cityscapes", (64, 128), workers=1, progress=False)
            assert manifest["splits"]["train"]["count"] == n
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(4), peak(32)
    # Holding the frames would add 28 x 56 KB (image, label and float16 depth at 64x128) = 1.5 MB.
    assert large < small + 256 * 1024, (small, large)
    cache = np.load(tmp_path / "prepared32/cache/train/images.npy", mmap_mode="r")
    assert cache.shape == (32, 64, 128, 3)


CITIES = ("aachen", "bochum", "cologne", "dresden", "erfurt")


def _city_of(path: Path) -> str:
    return path.name.split("_", 1)[0]


def test_holdout_moves_whole_training_cities_and_the_manifest_names_them(tmp_path):
    root = write_root(tmp_path / "root", splits=("train", "val"), cities=CITIES)
    out = tmp_path / "out"
    manifest = prepare(root, out, "cityscapes", (4, 8), workers=1, progress=False, holdout_cities=2, holdout_seed=0)
    held, train = manifest["splits"]["holdout"], manifest["splits"]["train"]
    assert manifest["holdout"] == {"from": "train", "cities": held["cities"], "seed": 0} and len(held["cities"]) == 2
    assert held["cities"] == sorted(held["cities"]) and set(held["cities"]) | set(train["cities"]) == set(CITIES)
    assert not set(held["cities"]) & set(train["cities"])
    # whole cities: every frame of a held-out city left train, and no frame is on both sides
    assert {s.split("_")[0] for s in held["stems"]} == set(held["cities"]) and held["count"] == 2 * 2
    assert not set(held["stems"]) & set(train["stems"]) and train["count"] == 3 * 2
    assert manifest["splits"]["val"]["count"] == 5 * 2  # val untouched
    # prepared like val: trainId labels, full-resolution images, depth, camera and the cache
    for sub in ("leftImg8bit", "gtFine", "depth", "camera"):
        assert {_city_of(p) for p in (out / sub / "holdout").glob("*/*")} == set(held["cities"]), sub
        assert {_city_of(p) for p in (out / sub / "train").glob("*/*")} == set(train["cities"]), sub
    assert json.loads((out / "cache/holdout/index.json").read_text())["stems"] == held["stems"]
    assert np.load(out / "cache/holdout/labels.npy").shape == (4, 4, 8)
    assert np.load(out / "cache/train/labels.npy").shape == (6, 4, 8)
    assert [s.stem for s in full_res_samples(out, "holdout")] == held["stems"]
    # deterministic: the same seed chooses the same cities; the seed does choose
    again = prepare(root, tmp_path / "again", "cityscapes", (4, 8), workers=1, progress=False, holdout_cities=2)
    assert again["holdout"]["cities"] == held["cities"]
    assert len({tuple(hold_out_cities(scan_root(root), 2, seed)[1]) for seed in range(10)}) > 1


def test_no_holdout_keeps_the_manifest_as_it_was(cs_root, tmp_path):
    manifest = prepare(cs_root, tmp_path / "out", "cityscapes", (4, 8), workers=1, progress=False)
    assert "holdout" not in manifest and list(manifest["splits"]) == ["train", "val", "test"]
    assert not (tmp_path / "out/cache/holdout").exists()


def test_too_many_holdout_cities_is_an_error_naming_the_key(tmp_path):
    root = write_root(tmp_path / "root", splits=("train", "val"), cities=CITIES, disparity=False)
    with pytest.raises(ConfigError, match=r"data.holdout_cities is 5, but train has 5 cities .*at most 4"):
        prepare(root, tmp_path / "out", "cityscapes", (4, 8), workers=1, progress=False, holdout_cities=5)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConfigError, match="data.holdout_cities must be >= 0"):
        DataConfig(holdout_cities=-1)
