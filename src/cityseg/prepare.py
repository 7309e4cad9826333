"""Turn a Cityscapes-layout root (real Cityscapes or SynthCity) into the prepared dataset.

Output (a valid Cityscapes-layout root itself, plus a training cache)::

    <out>/leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png       linked (or copied) from the source
    <out>/gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png   uint8 trainIds, 255 = ignore
    <out>/depth/<split>/<city>/<stem>_depth.png                   uint16 centimetres, 0 = unknown (if disparity exists)
    <out>/camera/<split>/<city>/<stem>_camera.json                copied (if camera exists)
    <out>/cache/<split>/{images,labels,depth}.npy + index.json    resized to cache_size for fast training
    <out>/manifest.json                                           counts, sizes, source, class pixel frequencies

With ``holdout_cities`` > 0, that many whole training cities (seeded choice) become a ``holdout`` split, prepared
like val and left out of train (`hold_out_cities`); the manifest's ``holdout`` says which.

Everything is validated before anything is kept: a bad file raises ``DataError`` naming it,
and the output directory only appears once complete (``atomic_dir``).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from cityseg import labels as L
from cityseg.config import HOLDOUT_SPLIT, ConfigError
from cityseg.io import DataError, atomic_dir, link_or_copy, read_image, read_json, read_png_raw, write_json
from cityseg.parallel import pmap

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
IMG_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
TRAIN_ID_SUFFIX = "_gtFine_labelTrainIds.png"
DISP_SUFFIX = "_disparity.png"
CAM_SUFFIX = "_camera.json"
DEPTH_SUFFIX = "_depth.png"
DEPTH_SCALE = 100.0  # depth PNG units per metre (centimetres); uint16 caps depth at 655.35 m


@dataclass(frozen=True)
class Item:
    """One image of the source root and its companion files."""

    split: str
    city: str
    stem: str
    image: Path
    label: Path
    disparity: Optional[Path]
    camera: Optional[Path]


def _stems(folder: Path, suffix: str) -> dict[str, Path]:
    return {p.name[: -len(suffix)]: p for p in sorted(folder.glob(f"*/*{suffix}"))}


def _fmt(names) -> str:
    names = sorted(names)
    more = f" (and {len(names) - 5} more)" if len(names) > 5 else ""
    return ", ".join(names[:5]) + more


def scan_root(root: str | os.PathLike) -> dict[str, list[Item]]:
    """List every image of a Cityscapes-layout root by split, checking that files pair up."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: dataset root does not exist (set data.cityscapes_root in params.yaml)")
    for sub in ("leftImg8bit", "gtFine"):
        if not (root / sub).is_dir():
            raise DataError(
                f"{root}: not a Cityscapes-layout root: missing {sub}/ "
                f"(expected {sub}/<split>/<city>/<city>_<seq>_<frame>{IMG_SUFFIX if sub == 'leftImg8bit' else LABEL_SUFFIX})"
            )
    out: dict[str, list[Item]] = {}
    for split in SPLITS:
        img_dir, gt_dir = root / "leftImg8bit" / split, root / "gtFine" / split
        if not img_dir.is_dir() and not gt_dir.is_dir():
            if split in REQUIRED_SPLITS:
                raise DataError(f"{root}: required split '{split}' is missing (no leftImg8bit/{split}/ or gtFine/{split}/)")
            continue
        images, labels_ = _stems(img_dir, IMG_SUFFIX), _stems(gt_dir, LABEL_SUFFIX)
        if not images and not labels_:
            raise DataError(f"{img_dir}: split '{split}' is empty (no *{IMG_SUFFIX} files in <city>/ folders)")
        if missing := set(images) - set(labels_):
            raise DataError(f"{gt_dir}: {len(missing)} image(s) have no label file *{LABEL_SUFFIX}: {_fmt(missing)}")
        if orphans := set(labels_) - set(images):
            raise DataError(f"{img_dir}: {len(orphans)} label file(s) have no image *{IMG_SUFFIX}: {_fmt(orphans)}")
        disp = _stems(root / "disparity" / split, DISP_SUFFIX) if (root / "disparity" / split).is_dir() else None
        cams = _stems(root / "camera" / split, CAM_SUFFIX) if (root / "camera" / split).is_dir() else None
        if disp is not None and cams is None:
            raise DataError(f"{root}: disparity/{split}/ exists but camera/{split}/ is missing (depth needs both)")
        for name, found, suffix in (("disparity", disp, DISP_SUFFIX), ("camera", cams, CAM_SUFFIX)):
            if found is not None and (missing := set(images) - set(found)):
                raise DataError(f"{root / name / split}: {len(missing)} image(s) have no *{suffix}: {_fmt(missing)}")
        use_depth = disp is not None
        out[split] = [
            Item(split, images[s].parent.name, s, images[s], labels_[s],
                 disp[s] if use_depth else None, cams[s] if use_depth else None)
            for s in sorted(images)
        ]
    return out


def hold_out_cities(items: dict[str, list[Item]], n: int, seed: int) -> tuple[dict[str, list[Item]], list[str]]:
    """(``items`` with ``n`` whole training cities moved to a ``holdout`` split, the sorted cities moved).

    Whole cities keep every frame of a sequence on one side; the choice depends only on the sorted city names
    and ``seed``. ``n`` = 0 returns ``items`` unchanged.
    """
    if n == 0:
        return items, []
    cities = sorted({it.city for it in items["train"]})
    if n > len(cities) - 1:
        raise ConfigError(f"data.holdout_cities is {n}, but train has {len(cities)} cities ({_fmt(cities)}): "
                          f"at most {len(cities) - 1} can be held out, so that train keeps one")
    chosen = sorted(random.Random(seed).sample(cities, n))
    out = dict(items)
    out["train"] = [it for it in items["train"] if it.city not in chosen]
    out[HOLDOUT_SPLIT] = [dataclasses.replace(it, split=HOLDOUT_SPLIT) for it in items["train"] if it.city in chosen]
    return out, chosen


def read_camera(path: Path) -> dict:
    cam = read_json(path)
    try:
        for key in ("fx", "fy", "u0", "v0"):
            float(cam["intrinsic"][key])
        float(cam["extrinsic"]["baseline"])
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: camera JSON needs intrinsic.fx/fy/u0/v0 and extrinsic.baseline") from None
    return cam


def depth_from_disparity(disp: np.ndarray, camera: dict) -> np.ndarray:
    """Cityscapes disparity PNG (uint16, d = (v-1)/256, 0 invalid) -> depth in metres (0 = unknown)."""
    d = (disp.astype(np.float32) - 1.0) / 256.0
    depth = np.zeros(disp.shape, np.float32)
    # d > 0 (value > 1) is valid; `where=` divides in place, without the masked copies boolean indexing makes.
    np.divide(camera["extrinsic"]["baseline"] * camera["intrinsic"]["fx"], d, out=depth, where=d > 0)
    return depth


def scale_camera(camera: dict, sx: float, sy: float) -> dict:
    """Camera intrinsics for an image resized by (sx, sy)."""
    cam = {"extrinsic": dict(camera["extrinsic"]), "intrinsic": dict(camera["intrinsic"])}
    for key, s in (("fx", sx), ("u0", sx), ("fy", sy), ("v0", sy)):
        cam["intrinsic"][key] = float(camera["intrinsic"][key]) * s
    return cam


def _process(args: tuple[Item, Path, tuple[int, int]]) -> dict:
    """Validate, convert and resize one image. Runs in a worker process."""
    item, out, (ch, cw) = args
    image = read_image(item.image)
    label_ids = read_png_raw(item.label, np.uint8)
    if label_ids.shape != image.shape[:2]:
        raise DataError(f"{item.label}: size {label_ids.shape[1]}x{label_ids.shape[0]} does not match its image "
                        f"{item.image.name} ({image.shape[1]}x{image.shape[0]})")
    train_ids = L.label_ids_to_train_ids(label_ids, source=str(item.label))
    rel = Path(item.split) / item.city
    link_or_copy(item.image, out / "leftImg8bit" / rel / item.image.name)
    _write(out / "gtFine" / rel / f"{item.stem}{TRAIN_ID_SUFFIX}", train_ids)
    result = {
        "image": cv2.resize(image, (cw, ch), interpolation=cv2.INTER_AREA),
        # NEAREST_EXACT samples pixel centres, so the label stays aligned with the INTER_AREA image
        "label": cv2.resize(train_ids, (cw, ch), interpolation=cv2.INTER_NEAREST_EXACT),
        "counts": np.bincount(train_ids.ravel(), minlength=256)[: L.NUM_CLASSES],
        "size": list(image.shape[:2]),
        "depth": None,
        "camera": None,
    }
    if item.disparity is not None:
        disp = read_png_raw(item.disparity, np.uint16)
        if disp.shape != image.shape[:2]:
            raise DataError(f"{item.disparity}: size {disp.shape[1]}x{disp.shape[0]} does not match its image "
                            f"({image.shape[1]}x{image.shape[0]})")
        camera = read_camera(item.camera)
        depth = depth_from_disparity(disp, camera)
        _write(out / "depth" / rel / f"{item.stem}{DEPTH_SUFFIX}",
               np.clip(np.round(depth * DEPTH_SCALE), 0, 65535).astype(np.uint16))
        shutil.copyfile(item.camera, out / "camera" / rel / item.camera.name)
        result["depth"] = cv2.resize(depth, (cw, ch), interpolation=cv2.INTER_NEAREST_EXACT).astype(np.float16)
        result["camera"] = scale_camera(camera, cw / image.shape[1], ch / image.shape[0])
    return result


def _write(path: Path, arr: np.ndarray) -> None:
    # Inside the temporary output tree already, so a plain write is safe here.
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), arr):
        raise OSError(f"{path}: could not write PNG")


def _open_cache(folder: Path, n: int, size: tuple[int, int], with_depth: bool) -> dict[str, np.ndarray]:
    """The split's cache arrays as writable memory maps of ``n`` frames at ``size``, filled as frames arrive:
    holding a split's resized frames until the end would grow with it (9 GB for Cityscapes' train at 512x1024)."""
    h, w = size
    specs = {"images": ((n, h, w, 3), np.uint8), "labels": ((n, h, w), np.uint8)}
    if with_depth:
        specs["depth"] = ((n, h, w), np.float16)
    return {name: np.lib.format.open_memmap(folder / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
            for name, (shape, dtype) in specs.items()}


def prepare(root: str | os.PathLike, out: str | os.PathLike, source: str, cache_size: tuple[int, int],
            workers: int = 0, progress: bool = True, holdout_cities: int = 0, holdout_seed: int = 0) -> dict:
    """Prepare ``root`` into ``out`` (``holdout_cities`` train cities as a holdout split); returns the manifest."""
    items, held_out = hold_out_cities(scan_root(root), holdout_cities, holdout_seed)
    manifest = {"source": source, "root": str(root), "cache_size": list(cache_size), "splits": {}}
    if held_out:  # absent without a holdout, so the default manifest (and training's config hash) stays as it was
        manifest[HOLDOUT_SPLIT] = {"from": "train", "cities": held_out, "seed": holdout_seed}
    totals = np.zeros(L.NUM_CLASSES, np.int64)
    with atomic_dir(out) as tmp:
        for split, split_items in items.items():
            for sub in ("camera",) if split_items[0].camera else ():
                for city in {it.city for it in split_items}:
                    (tmp / sub / split / city).mkdir(parents=True, exist_ok=True)
            jobs = [(it, tmp, tuple(cache_size)) for it in split_items]
            cache = tmp / "cache" / split
            cache.mkdir(parents=True)
            has_depth = split_items[0].disparity is not None  # scan_root: all or none of a split
            arrays = _open_cache(cache, len(jobs), tuple(cache_size), has_depth)
            counts, sizes, cameras = np.zeros(L.NUM_CLASSES, np.int64), set(), []
            for i, r in enumerate(pmap(_process, jobs, workers, f"prepare {split}", progress=progress)):
                arrays["images"][i], arrays["labels"][i] = r["image"], r["label"]
                if has_depth:
                    arrays["depth"][i] = r["depth"]
                counts += r["counts"]
                sizes.add(tuple(r["size"]))
                cameras.append(r["camera"])
            for array in arrays.values():
                array.flush()
            del arrays  # close the maps before the folder is renamed into place
            stems = [it.stem for it in split_items]
            write_json(cache / "index.json", {"stems": stems, "size": list(cache_size), "cameras": cameras})
            if split == "train":
                totals += counts
            sizes = sorted(sizes)
            manifest["splits"][split] = {
                "count": len(jobs),
                "cities": sorted({it.city for it in split_items}),
                "has_labels": bool(counts.sum() > 0),
                "has_depth": has_depth,
                "size": list(sizes[0]) if len(sizes) == 1 else [list(s) for s in sizes],
                "stems": stems,
            }
        labelled = max(int(totals.sum()), 1)
        manifest["class_frequencies"] = {n: round(float(c) / labelled, 6) for n, c in zip(L.CLASS_NAMES, totals)}
        write_json(tmp / "manifest.json", manifest)
    return manifest
