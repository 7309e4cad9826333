"""Images/s delivered by our training data loader next to the course's naive loader, in one run.

Both loaders read the same full-resolution frames (Cityscapes layout: ``leftImg8bit`` PNGs and
``gtFine`` labelIds PNGs) and deliver batches of images and trainId labels at the training size, each
in the form its training step takes them, with the same worker count, batch size and ``pin_memory`` (on
when CUDA is there, as training does):

* NAIVE, the reference: the course starter kit's loader, unchanged in substance. torchvision's
  ``Cityscapes`` dataset decodes both PNGs at full resolution with PIL for every sample, v2
  transforms resize (image bilinear, label nearest) and normalise (mean 0.5, std 0.5), and the
  training loop maps label ids to trainIds in the main process with a per-pixel Python lambda
  (``labels.apply_``), as the course's ``train.py`` does. The anchors (shared/docs/anchors.md,
  "Speed") measure the course's training at about 28 images/s on an H100 node, bound by exactly this
  loading; it is what a student starts from, so it is the figure to beat.
* OURS: what ``stages/train.py`` uses. ``prepare`` (run here in-process, not timed) converts the
  labels once and writes a memory-mapped cache resized to the training height (the frames' aspect
  kept, as the README's course recipe sets ``data.cache_size``); training then reads that cache
  through ``SegDataset`` + ``build_train_transform`` + ``make_loader``. Its batches are uint8 (images
  (B,H,W,3), trainIds (B,H,W)): the training step normalises and widens them on the device
  (``train._to_device``), so a quarter of the naive loader's float32 image bytes and an eighth of its int64
  label bytes pass through worker IPC, collation and pinning.

``--recipe`` chooses OUR recipe: ``course`` is the baseline benchmark's (plain resize + normalise, no
augmentation), ``peak`` the peak benchmark's ``train.augment`` (params.yaml), both at ``--size``; the
naive loader stays the course's either way. Each loader's first batch per worker is a warm-up (worker start-up and the first decodes
are not timed); then the same number of full batches is timed for both. Progress goes to stderr and one
JSON line to stdout:

    python benchmarks/data_speed.py --images 128 --workers 8 --size 256 256 --batch 64 --recipe course

Without ``--root`` a few SynthCity frames are rendered at ``--height x --width`` (default 1024x2048,
Cityscapes' size) and linked under new names until there are ``--images`` of them, in a temporary
folder (``--keep DIR`` keeps it). With ``--root`` the first ``--images`` train frames of that
Cityscapes-layout root are linked instead (cycled when it has fewer).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Iterator, Optional

import torch
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import Cityscapes, wrap_dataset_for_transforms_v2
from torchvision.transforms import v2

from cityseg.config import SynthCityConfig, TrainConfig, benchmark_configs, load_params
from cityseg.dataset import SegDataset, load_cache
from cityseg.prepare import CAM_SUFFIX, DISP_SUFFIX, IMG_SUFFIX, LABEL_SUFFIX, Item, prepare, scan_root
from cityseg.synthcity import generate
from cityseg.train import make_loader
from cityseg.transforms import build_train_transform
from latency import cpu_model  # benchmarks/ is the script's folder, so it is on sys.path

REPO = Path(__file__).resolve().parents[1]
RECIPES = {"course": "baseline", "peak": "peak"}  # --recipe -> the benchmark in params.yaml whose train section it uses

# The course's label mapping, verbatim in substance: a dict from torchvision's class table and a Python
# call per pixel. It runs in the training loop, i.e. in the main process, after the DataLoader.
ID_TO_TRAIN_ID = {cls.id: cls.train_id for cls in Cityscapes.classes}


def log(msg: str) -> None:
    print(f"data_speed: {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- data


def link_root(source: Path, n: int, out: Path) -> Path:
    """A Cityscapes-layout root at ``out`` with ``n`` train frames, symlinks to ``source``'s train frames
    (cycled, under new stems) and their disparity/camera when present; val gets one (``prepare`` needs it)."""
    items = scan_root(source)["train"]

    def link(item: Item, split: str, stem: str) -> None:
        pairs = [(item.image, "leftImg8bit", IMG_SUFFIX), (item.label, "gtFine", LABEL_SUFFIX),
                 (item.disparity, "disparity", DISP_SUFFIX), (item.camera, "camera", CAM_SUFFIX)]
        for src, top, suffix in pairs:
            if src is not None:
                dst = out / top / split / item.city / f"{stem}{suffix}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(src.resolve(), dst)

    for i in range(n):
        item = items[i % len(items)]
        link(item, "train", f"{item.city}_{i:06d}_000019")  # <city>_<seq>_<frame>: the city is the stem's prefix
    link(items[0], "val", f"{items[0].city}_000000_000019")
    return out


def cache_size_for(size: tuple[int, int], frame: tuple[int, int]) -> tuple[int, int]:
    """The training height at the frames' aspect (never narrower than the training width): 256x256 from
    1024x2048 frames gives 256x512, the README's cache for the course recipe."""
    h, w = size
    return h, max(w, round(h * frame[1] / frame[0]))


def frame_size(root: Path) -> tuple[int, int]:
    """(H, W) of the first train image (PIL reads only the header)."""
    with Image.open(scan_root(root)["train"][0].image) as im:
        return im.height, im.width


def make_data(args: argparse.Namespace, work: Path) -> tuple[Path, Path]:
    """(raw root both loaders read, prepared root ours reads), built under ``work``."""
    source = args.root
    if source is None:
        source = work / "synthcity"
        frames = min(args.images, args.frames)
        log(f"rendering {frames} SynthCity frames at {args.height}x{args.width}")
        # one val frame: scan_root (and so prepare) requires a val split
        cfg = SynthCityConfig(seed=0, height=args.height, width=args.width, train=frames, val=1, test=0)
        generate(source, cfg, workers=max(1, args.workers), progress=False)
    raw = link_root(Path(source), args.images, work / "raw")
    prepared = work / "prepared"
    cache = cache_size_for(tuple(args.size), frame_size(raw))
    log(f"prepare: {args.images} frames -> cache {cache[0]}x{cache[1]} (not timed)")
    prepare(raw, prepared, "cityscapes" if args.root else "synthcity", cache, workers=max(1, args.workers),
            progress=False)
    return raw, prepared


# --------------------------------------------------------------------------- the two loaders


def naive_batches(raw: Path, size: tuple[int, int], batch: int, workers: int, pin_memory: bool) -> Iterator:
    """(images (B,3,H,W) float32, labels (B,H,W) int64 trainIds) as the course's training loop sees them."""
    transform = v2.Compose([v2.ToImage(), v2.Resize(tuple(size)), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize((0.5,), (0.5,))])
    dataset = wrap_dataset_for_transforms_v2(
        Cityscapes(str(raw), split="train", mode="fine", target_type="semantic", transforms=transform))
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(0))
    for images, labels in loader:
        labels = labels.apply_(lambda x: ID_TO_TRAIN_ID[x])  # per pixel, in Python, in the main process
        yield images, labels.long().squeeze(1)


def our_batches(prepared: Path, cfg: TrainConfig, workers: int, pin_memory: bool) -> Iterable:
    """The training loader of ``stages/train.py`` over the prepared cache: (images (B,H,W,3) uint8, trainIds
    (B,H,W) uint8), normalised and widened on the device by the training step."""
    dataset = SegDataset(load_cache(prepared, "train"), build_train_transform(cfg), seed=cfg.seed)
    return make_loader(dataset, cfg.batch_size, shuffle=True, num_workers=workers, seed=cfg.seed, pin_memory=pin_memory)


def recipe_config(recipe: str, size: tuple[int, int], batch: int, workers: int, params: Path) -> TrainConfig:
    train_cfg = benchmark_configs(load_params(params), RECIPES[recipe])[1]
    return dataclasses.replace(train_cfg, size=list(size), batch_size=batch, num_workers=workers)


def loaders(args: argparse.Namespace, raw: Path, prepared: Path) -> dict[str, Iterable]:
    """Fresh batch iterables of both loaders (name -> iterable), built the same way as timed."""
    pin = torch.cuda.is_available()  # training pins host memory only when it feeds a GPU
    cfg = recipe_config(args.recipe, tuple(args.size), args.batch, args.workers, args.params)
    return {"naive": naive_batches(raw, tuple(args.size), args.batch, args.workers, pin),
            "ours": our_batches(prepared, cfg, args.workers, pin)}


def first_batches(args: argparse.Namespace, raw: Path, prepared: Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The first (images, labels) batch of each loader."""
    return {name: next(iter(batches)) for name, batches in loaders(args, raw, prepared).items()}


def warmup_batches(workers: int) -> int:
    """Untimed batches: one per worker. Workers start together, so when the first batch arrives the others'
    first batches are nearly done too; timing from there would count their work as free."""
    return max(1, workers)


def images_per_second(batches: Iterable, warmup: int, timed_batches: int) -> float:
    """Throughput over ``timed_batches`` batches after ``warmup`` untimed ones (worker start-up, first decodes)."""
    it = iter(batches)
    for _ in itertools.islice(it, warmup):
        pass
    start, n = time.perf_counter(), 0
    for images, _ in itertools.islice(it, timed_batches):
        n += len(images)
    return n / (time.perf_counter() - start)


# --------------------------------------------------------------------------- main


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=128,
                    help="train frames both loaders read (at least one batch per worker + one)")
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers of both loaders (also set-up processes)")
    ap.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"), help="training input size")
    ap.add_argument("--batch", type=int, default=16, help="batch size (the course uses 64)")
    ap.add_argument("--recipe", choices=sorted(RECIPES), default="course",
                    help="course: resize + normalise; peak: the peak benchmark's augmentation")
    ap.add_argument("--height", type=int, default=1024, help="height of the generated frames")
    ap.add_argument("--width", type=int, default=2048, help="width of the generated frames")
    ap.add_argument("--frames", type=int, default=8, help="distinct SynthCity frames to render (the rest are links)")
    ap.add_argument("--root", type=Path, default=None, help="an existing Cityscapes-layout root instead of SynthCity")
    ap.add_argument("--keep", type=Path, default=None, help="build the data here and keep it (default: a temp dir)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    args = ap.parse_args(argv)
    need = (warmup_batches(args.workers) + 1) * args.batch
    if args.images < need:
        ap.error(f"--images must be at least {need}: one warm-up batch per worker, then one timed batch")
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        ap.error(f"--keep {args.keep}: folder exists and is not empty")
    return args


def measure(args: argparse.Namespace, work: Path) -> dict:
    """Build the data under ``work``, time both loaders, return the result row."""
    raw, prepared = make_data(args, work)
    warmup = warmup_batches(args.workers)
    timed = args.images // args.batch - warmup  # full batches only: the same count for both loaders
    rates = {}
    for name, batches in loaders(args, raw, prepared).items():
        log(f"timing {name}: {warmup} warm-up + {timed} batches of {args.batch}")
        rates[name] = images_per_second(batches, warmup, timed)
    cfg = recipe_config(args.recipe, tuple(args.size), args.batch, args.workers, args.params)
    return {
        "benchmark": "data_speed", "recipe": args.recipe, "augment": cfg.augment,
        "naive_images_per_s": round(rates["naive"], 2), "ours_images_per_s": round(rates["ours"], 2),
        "ratio": round(rates["ours"] / rates["naive"], 3),
        "images": args.images, "timed_images": timed * args.batch, "batch": args.batch, "workers": args.workers,
        "size": list(args.size), "frame_size": list(frame_size(raw)),
        "cache_size": json.loads((prepared / "manifest.json").read_text())["cache_size"],
        "pin_memory": torch.cuda.is_available(), "source": str(args.root) if args.root else "synthcity",
        "cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "warmup_batches": warmup,
        "timing": "first batch per worker untimed (worker start-up, first decodes); naive includes the course's main-process "
                  "id->trainId mapping; ours excludes prepare (run once per dataset)",
    }


def main(argv: Optional[list[str]] = None) -> dict:
    args = parse_args(argv)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
        row = measure(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="data_speed-") as tmp:
            row = measure(args, Path(tmp))
    print(json.dumps(row), flush=True)
    return row


if __name__ == "__main__":
    main()
