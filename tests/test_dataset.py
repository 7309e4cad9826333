"""The prepared-dataset reader: manifest, training cache, full-resolution samples, SegDataset."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cityseg.config import TrainConfig
from cityseg.dataset import (
    SegDataset,
    full_res_samples,
    load_cache,
    read_manifest,
    read_sample,
)
from cityseg.io import DataError, write_json, write_png
from cityseg.transforms import build_eval_transform, build_train_transform, normalize, normalize_batch

H, W = 16, 32  # original resolution of the fixture
CH, CW = 8, 16  # cache size
CAMERA = {"extrinsic": {"baseline": 0.2, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.2},
          "intrinsic": {"fx": 30.0, "fy": 30.0, "u0": 16.0, "v0": 8.0}}


def make_prepared(root: Path, counts=(("train", 3, True), ("val", 2, True), ("test", 2, False))) -> dict:
    """Write a tiny prepared tree by hand; returns {split: {stem: (image, label, depth_cm)}}."""
    rng = np.random.default_rng(0)
    truth, splits = {}, {}
    for split, n, labelled in counts:
        stems = sorted(f"{city}_{i:06d}_000019" for i, city in zip(range(n), ["aachen", "bonn", "aachen", "cologne"]))
        truth[split] = {}
        imgs, labs, deps, cams = [], [], [], []
        for stem in stems:
            city = stem.split("_")[0]
            image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            label = rng.choice(np.array([0, 1, 13, 255], np.uint8), size=(H, W))
            depth_cm = rng.integers(0, 5000, (H, W)).astype(np.uint16)
            write_png(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", image)
            if labelled:
                write_png(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", label)
            write_png(root / "depth" / split / city / f"{stem}_depth.png", depth_cm)
            write_json(root / "camera" / split / city / f"{stem}_camera.json", CAMERA)
            truth[split][stem] = (image, label if labelled else None, depth_cm)
            imgs.append(image[::2, ::2])
            labs.append(label[::2, ::2] if labelled else np.full((CH, CW), 255, np.uint8))
            deps.append((depth_cm[::2, ::2] / 100.0).astype(np.float16))
            cams.append({"extrinsic": CAMERA["extrinsic"], "intrinsic": {k: v / 2 for k, v in CAMERA["intrinsic"].items()}})
        cache = root / "cache" / split
        cache.mkdir(parents=True)
        np.save(cache / "images.npy", np.stack(imgs))
        np.save(cache / "labels.npy", np.stack(labs))
        np.save(cache / "depth.npy", np.stack(deps))
        write_json(cache / "index.json", {"stems": stems, "size": [CH, CW], "cameras": cams})
        splits[split] = {"count": n, "has_labels": labelled, "has_depth": True, "stems": stems, "size": [H, W]}
    write_json(root / "manifest.json", {"source": "synthcity", "splits": splits, "cache_size": [CH, CW],
                                        "class_frequencies": {"road": 0.5}})
    return truth


@pytest.fixture
def prepared(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "prepared"
    return root, make_prepared(root)


def test_manifest_round_trip_and_missing(prepared, tmp_path):
    root, truth = prepared
    manifest = read_manifest(root)
    assert manifest["splits"]["train"]["stems"] == sorted(truth["train"])
    with pytest.raises(DataError, match="manifest.json"):
        read_manifest(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text(json.dumps({"source": "synthcity"}))
    with pytest.raises(DataError, match="splits"):
        read_manifest(tmp_path / "bad")


def test_load_cache_reads_back_exactly(prepared):
    root, truth = prepared
    cache = load_cache(root, "train")
    stems = sorted(truth["train"])
    assert cache.stems == stems and len(cache) == 3 and cache.size == (CH, CW)
    assert isinstance(cache.images, np.memmap) and not cache.images.flags.writeable
    assert cache.images.shape == (3, CH, CW, 3) and cache.labels.dtype == np.uint8
    for i, stem in enumerate(stems):
        image, label, depth_cm = truth["train"][stem]
        np.testing.assert_array_equal(cache.images[i], image[::2, ::2])
        np.testing.assert_array_equal(cache.labels[i], label[::2, ::2])
        np.testing.assert_allclose(cache.depth[i].astype(np.float32), depth_cm[::2, ::2] / 100.0, rtol=1e-3)
    assert cache.cameras[0]["intrinsic"]["fx"] == 15.0


def test_load_cache_missing_files_name_the_file(prepared):
    root, _ = prepared
    (root / "cache" / "val" / "labels.npy").unlink()
    with pytest.raises(DataError, match=r"cache[/\\]val[/\\]labels\.npy"):
        load_cache(root, "val")
    (root / "cache" / "train" / "index.json").unlink()
    with pytest.raises(DataError, match="index.json"):
        load_cache(root, "train")
    with pytest.raises(DataError, match="no split 'extra'"):
        load_cache(root, "extra")


def test_load_cache_without_depth(prepared):
    root, _ = prepared
    (root / "cache" / "test" / "depth.npy").unlink()
    manifest = read_manifest(root)
    manifest["splits"]["test"]["has_depth"] = False
    write_json(root / "manifest.json", manifest)
    assert load_cache(root, "test").depth is None
    # ...but a split that claims depth must have it.
    (root / "cache" / "val" / "depth.npy").unlink()
    with pytest.raises(DataError, match="depth.npy"):
        load_cache(root, "val")


def test_cache_pickles_by_path_not_by_value(prepared):
    root, _ = prepared
    cache = load_cache(root, "train")
    blob = pickle.dumps(cache)
    assert len(blob) < cache.images.nbytes  # the arrays are not inside the pickle
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.images, cache.images)
    np.testing.assert_array_equal(again.labels, cache.labels)


def test_full_res_samples_and_read_sample(prepared):
    root, truth = prepared
    samples = full_res_samples(root, "train")
    assert [s.stem for s in samples] == sorted(truth["train"])
    s = samples[0]
    assert s.image_path == root / "leftImg8bit" / "train" / "aachen" / f"{s.stem}_leftImg8bit.png"
    image, label, depth, camera = read_sample(s)
    want_image, want_label, want_cm = truth["train"][s.stem]
    np.testing.assert_array_equal(image, want_image)
    np.testing.assert_array_equal(label, want_label)
    assert depth.dtype == np.float32
    np.testing.assert_allclose(depth, want_cm / 100.0, rtol=1e-6)
    assert camera == CAMERA
    # An unlabelled split has no label path and reads None.
    test = full_res_samples(root, "test")
    assert all(t.label_path is None for t in test)
    assert read_sample(test[0])[1] is None


def test_full_res_missing_files_name_the_file(prepared):
    root, truth = prepared
    stem = sorted(truth["val"])[1]
    label = root / "gtFine" / "val" / stem.split("_")[0] / f"{stem}_gtFine_labelTrainIds.png"
    label.unlink()
    with pytest.raises(DataError, match=f"{stem}_gtFine_labelTrainIds.png"):
        full_res_samples(root, "val")
    image = root / "leftImg8bit" / "train" / "aachen" / f"{sorted(truth['train'])[0]}_leftImg8bit.png"
    image.unlink()
    with pytest.raises(DataError, match="_leftImg8bit.png"):
        full_res_samples(root, "train")
    # A camera file is optional: without it the sample simply has none.
    cam = next((root / "camera" / "test").rglob("*.json"))
    cam.unlink()
    assert sum(s.camera_path is None for s in full_res_samples(root, "test")) == 1


def test_seg_dataset_eval_returns_the_cache_as_uint8(prepared):
    root, _ = prepared
    cache = load_cache(root, "train")
    ds = SegDataset(cache, build_eval_transform([CH, CW]))
    image, mask = ds[1]
    # uint8 through the loader (a quarter / an eighth of the float32 / int64 bytes), HWC as in the cache:
    # the training step normalises on the device.
    assert image.dtype == torch.uint8 and image.shape == (CH, CW, 3)
    assert mask.dtype == torch.uint8 and mask.shape == (CH, CW)
    assert torch.equal(image, torch.from_numpy(np.array(cache.images[1])))
    assert torch.equal(mask, torch.from_numpy(np.array(cache.labels[1])))
    assert torch.equal(normalize_batch(image[None])[0], normalize(np.asarray(cache.images[1])))
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=2)))  # collation keeps the dtypes
    assert batch[0].dtype == torch.uint8 and batch[0].shape == (2, CH, CW, 3) and batch[1].dtype == torch.uint8
    with pytest.raises(IndexError):
        ds[3]


def test_seg_dataset_is_a_function_of_seed_epoch_index(prepared):
    root, _ = prepared
    cfg = TrainConfig(augment="strong", size=[CH, CW])
    ds = SegDataset(load_cache(root, "train"), build_train_transform(cfg), seed=7)
    ds.set_epoch(3)
    a = [ds[i] for i in range(len(ds))]
    b = [ds[i] for i in reversed(range(len(ds)))][::-1]  # another visiting order
    for (ia, ma), (ib, mb) in zip(a, b):
        assert torch.equal(ia, ib) and torch.equal(ma, mb)
    ds.set_epoch(4)
    assert not all(torch.equal(x[0], y[0]) for x, y in zip(a, [ds[i] for i in range(len(ds))]))
    other_seed = SegDataset(ds.cache, ds.transform, seed=8)
    other_seed.set_epoch(3)
    assert not torch.equal(other_seed[0][0], a[0][0])
    # An (epoch, index) pair is the sample of that epoch, whatever epoch the dataset was last set to.
    pairs = [ds[(3, i)] for i in range(len(ds))]
    assert all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, pairs))


def test_seg_dataset_independent_of_worker_count(prepared):
    root, _ = prepared
    cfg = TrainConfig(augment="strong", size=[CH, CW])
    ds = SegDataset(load_cache(root, "train"), build_train_transform(cfg), seed=1)
    ds.set_epoch(2)
    batches = {}
    for workers in (0, 2):
        loader = torch.utils.data.DataLoader(ds, batch_size=2, shuffle=False, num_workers=workers)
        batches[workers] = [(x.clone(), y.clone()) for x, y in loader]
    for (x0, y0), (x2, y2) in zip(batches[0], batches[2]):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)
