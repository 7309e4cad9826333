"""The one reader of the prepared dataset (written by the ``prepare`` stage).

Layout under ``<prepared>``::

    manifest.json
    leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png          RGB, original resolution
    gtFine/<split>/<city>/<stem>_gtFine_labelTrainIds.png      uint8 trainIds (255 = ignore)
    depth/<split>/<city>/<stem>_depth.png                      uint16 centimetres, 0 = unknown (optional)
    camera/<split>/<city>/<stem>_camera.json                   Cityscapes camera json (optional)
    cache/<split>/{images,labels,depth}.npy + index.json       training cache at manifest["cache_size"]

Training reads the cache (memory-mapped, so workers share pages instead of copies);
evaluation and weather synthesis read the original-resolution files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from cityseg.config import HOLDOUT_SPLIT
from cityseg.io import DataError, read_image, read_json, read_png_raw


def read_manifest(root: str | Path) -> dict:
    """Read ``<root>/manifest.json``; DataError if it is missing, invalid or lacks ``splits``."""
    path = Path(root) / "manifest.json"
    if not path.is_file():
        raise DataError(f"{path}: manifest not found (is '{root}' a prepared dataset? run the prepare stage)")
    manifest = read_json(path)
    if not isinstance(manifest.get("splits"), dict):
        raise DataError(f"{path}: manifest has no 'splits' mapping")
    return manifest


HOLDOUT_HINT = "set data.holdout_cities > 0 in params.yaml (3 of real Cityscapes' 18 train cities) and re-run prepare"


def no_split(root: str | Path, split: str, have) -> str:
    """The message for a split the prepared data lacks; for holdout, which key makes it."""
    hint = f" ({HOLDOUT_HINT})" if split == HOLDOUT_SPLIT else ""
    return f"{Path(root) / 'manifest.json'}: no split '{split}' (have: {', '.join(have)}){hint}"


def _split_info(root: str | Path, split: str) -> dict:
    manifest = read_manifest(root)
    if split not in manifest["splits"]:
        raise DataError(no_split(root, split, manifest["splits"]))
    return manifest["splits"][split]


def validation_split(manifest: dict) -> str:
    """The split training validates on (and picks its checkpoint by): holdout when prepare made one
    (data.holdout_cities), else val."""
    return HOLDOUT_SPLIT if HOLDOUT_SPLIT in manifest["splits"] else "val"


def evaluation_split(split: str, source: str) -> str:
    """``eval.split`` as a split name. ``auto``: SynthCity's test split is labelled; Cityscapes' test
    labels are private, so its scores are reported on val."""
    if split != "auto":
        return split
    return "test" if source == "synthcity" else "val"


def city_of(stem: str) -> str:
    """Cityscapes stems are ``<city>_<seq>_<frame>``; the city is the part before the first '_'."""
    return stem.split("_", 1)[0]


# --------------------------------------------------------------------------- cache


@dataclass
class CacheSplit:
    """One split of the training cache. Arrays are read-only memory maps.

    images (N, h, w, 3) uint8; labels (N, h, w) uint8 trainIds; depth (N, h, w) float16
    metres (0 = unknown) or None; cameras: per-sample camera dict scaled to (h, w) or None.
    """

    images: np.ndarray
    labels: np.ndarray
    depth: Optional[np.ndarray]
    stems: list[str]
    cameras: list[Optional[dict]]
    size: tuple[int, int]
    directory: Optional[Path] = None  # where it was loaded from; lets pickling reopen the memmaps

    def __len__(self) -> int:
        return len(self.stems)

    # A pickled np.memmap is copied in full; DataLoader workers started by spawn/forkserver
    # would each get a private copy of the whole cache. Reopen the maps by path instead.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if self.directory is not None:
            state["images"] = state["labels"] = state["depth"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if self.directory is not None:
            self.images, self.labels, self.depth = _open_arrays(self.directory)


def _open_arrays(directory: Path) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    arrays = {}
    for name in ("images", "labels", "depth"):
        path = directory / f"{name}.npy"
        if not path.is_file():
            if name == "depth":
                arrays[name] = None
                continue
            raise DataError(f"{path}: cache file not found (re-run the prepare stage)")
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except (ValueError, OSError) as exc:
            raise DataError(f"{path}: cannot read cache array ({exc})") from None
    return arrays["images"], arrays["labels"], arrays["depth"]


def load_cache(root: str | Path, split: str) -> CacheSplit:
    """Open ``<root>/cache/<split>`` as a :class:`CacheSplit` (memory-mapped, nothing is copied)."""
    info = _split_info(root, split)
    directory = Path(root) / "cache" / split
    index_path = directory / "index.json"
    if not index_path.is_file():
        raise DataError(f"{index_path}: cache index not found (re-run the prepare stage)")
    index = read_json(index_path)
    images, labels, depth = _open_arrays(directory)
    if info.get("has_depth") and depth is None:
        raise DataError(f"{directory / 'depth.npy'}: cache file not found but the manifest says has_depth")
    stems = list(index.get("stems", []))
    size = tuple(int(v) for v in index.get("size", images.shape[1:3]))
    n = len(stems)
    if images.ndim != 4 or images.shape[0] != n or images.shape[1:] != (*size, 3) or images.dtype != np.uint8:
        raise DataError(
            f"{directory / 'images.npy'}: expected ({n}, {size[0]}, {size[1]}, 3) uint8, "
            f"got {images.shape} {images.dtype}"
        )
    if labels.shape != (n, *size) or labels.dtype != np.uint8:
        raise DataError(f"{directory / 'labels.npy'}: expected ({n}, {size[0]}, {size[1]}) uint8, got {labels.shape} {labels.dtype}")
    if depth is not None and depth.shape != (n, *size):
        raise DataError(f"{directory / 'depth.npy'}: expected ({n}, {size[0]}, {size[1]}), got {depth.shape}")
    cameras = index.get("cameras") or [None] * n
    if len(cameras) != n:
        raise DataError(f"{index_path}: {len(cameras)} cameras for {n} stems")
    return CacheSplit(images, labels, depth, stems, list(cameras), size, directory=directory)


# --------------------------------------------------------------------------- full resolution


@dataclass(frozen=True)
class Sample:
    """Paths of one prepared frame at original resolution (None where the file is not available)."""

    stem: str
    image_path: Path
    label_path: Optional[Path]
    depth_path: Optional[Path]
    camera_path: Optional[Path]


def sample_paths(root: str | Path, split: str, stem: str) -> Sample:
    """Where the files of ``stem`` live (does not check that they exist)."""
    root, city = Path(root), city_of(stem)
    return Sample(
        stem=stem,
        image_path=root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png",
        label_path=root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png",
        depth_path=root / "depth" / split / city / f"{stem}_depth.png",
        camera_path=root / "camera" / split / city / f"{stem}_camera.json",
    )


def full_res_samples(root: str | Path, split: str) -> list[Sample]:
    """The frames of ``split`` in manifest (sorted) order.

    Image files must exist; labels must exist when the split ``has_labels`` (else
    ``label_path`` is None), depth when it ``has_depth`` (else None); a camera file is used
    when present. A missing required file raises DataError naming it.
    """
    info = _split_info(root, split)
    out = []
    for stem in info.get("stems", []):
        s = sample_paths(root, split, stem)
        if not s.image_path.is_file():
            raise DataError(f"{s.image_path}: image listed in the manifest is missing")
        label = s.label_path if info.get("has_labels", False) else None
        if label is not None and not label.is_file():
            raise DataError(f"{label}: label listed in the manifest (has_labels) is missing")
        depth = s.depth_path if info.get("has_depth", False) else None
        if depth is not None and not depth.is_file():
            raise DataError(f"{depth}: depth listed in the manifest (has_depth) is missing")
        camera = s.camera_path if s.camera_path.is_file() else None
        out.append(Sample(stem, s.image_path, label, depth, camera))
    return out


def read_depth(path: str | Path) -> np.ndarray:
    """uint16 centimetre PNG -> (H, W) float32 metres, 0 = unknown."""
    return read_png_raw(path, np.uint16).astype(np.float32) / 100.0


def read_sample(sample: Sample) -> tuple[np.ndarray, Optional[np.ndarray], Optional[np.ndarray], Optional[dict]]:
    """Load one frame at original resolution.

    Returns image (H, W, 3) uint8 RGB, label (H, W) uint8 trainIds or None, depth (H, W)
    float32 metres (0 = unknown) or None, camera dict or None.
    """
    image = read_image(sample.image_path)
    label = read_png_raw(sample.label_path, np.uint8) if sample.label_path is not None else None
    depth = read_depth(sample.depth_path) if sample.depth_path is not None else None
    camera = read_json(sample.camera_path) if sample.camera_path is not None else None
    for name, arr, path in (("label", label, sample.label_path), ("depth", depth, sample.depth_path)):
        if arr is not None and arr.shape != image.shape[:2]:
            raise DataError(f"{path}: {name} is {arr.shape[1]}x{arr.shape[0]} but the image is {image.shape[1]}x{image.shape[0]}")
    return image, label, depth, camera


# --------------------------------------------------------------------------- torch dataset


def sample_seed(seed: int, epoch: int, index: int) -> np.random.SeedSequence:
    """The seed of one sample's augmentation: a pure function of (seed, epoch, index)."""
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])


class SegDataset(torch.utils.data.Dataset):
    """A cache split seen through a transform: ``(image (H,W,3) uint8, mask (H,W) uint8)``.

    The training step normalises the images and widens the masks to int64 on the device
    (`train.to_device`): through worker IPC, collation, pinning and the host-to-device copy a
    uint8 sample is a quarter of the float32 image bytes and an eighth of the int64 mask bytes
    (trainIds 0..18 and 255 fit). Images stay HWC, the layout of the cache and albumentations:
    `transforms.normalize_batch` takes that layout, and its permute to (B,3,H,W) on the device is a
    view whose strides are already channels_last, so no CPU transpose is needed anywhere.

    Each sample's random generator is seeded from ``(seed, epoch, index)`` so the result does not
    depend on worker count, visiting order or a resume. An item is an ``(epoch, index)`` pair (what
    `batches.EpochBatches` yields: workers need no per-epoch state, so they can persist across epochs)
    or a plain index, which uses the epoch of the last ``set_epoch`` (0 by default).
    """

    def __init__(self, cache: CacheSplit, transform: Callable, seed: int = 0):
        self.cache = cache
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch of plain-index items (a worker sees it only when started after this call)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = item if isinstance(item, (tuple, list)) else (self.epoch, item)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        c = self.cache
        rng = np.random.default_rng(sample_seed(self.seed, epoch, index))
        # np.array copies out of the read-only memmap (cv2/albumentations may write in place).
        depth = np.asarray(c.depth[index], dtype=np.float32) if c.depth is not None else None
        image, mask = self.transform(
            np.array(c.images[index]), np.array(c.labels[index]), rng=rng, depth=depth, camera=c.cameras[index]
        )
        if image.dtype != np.uint8 or mask.dtype != np.uint8:
            raise TypeError(f"{self.transform!r} returned {image.dtype} image / {mask.dtype} mask; expected uint8")
        # torch.from_numpy wants writable, contiguous arrays (a transform may return a view or the input).
        image = np.require(image, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        mask = np.require(mask, requirements=["C_CONTIGUOUS", "WRITEABLE"])
        return torch.from_numpy(image), torch.from_numpy(mask)
