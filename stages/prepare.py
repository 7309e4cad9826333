"""DVC stage `prepare`: trainId labels, depth, training cache and manifest from a Cityscapes-layout root."""

import time

from cityseg.cli import run_stage, stage_args
from cityseg.config import HOLDOUT_SPLIT, DataConfig, load_params, section
from cityseg.plots import sample_grid
from cityseg.prepare import prepare


def main() -> None:
    args = stage_args(__doc__, {"root": "Cityscapes-layout root (data.cityscapes_root)", "out": "prepared dataset folder"},
                      {"samples": "write a sample grid PNG (image, labels, depth) here"})
    data = section(load_params(args.params), "data", DataConfig)
    start = time.perf_counter()
    manifest = prepare(args.root, args.out, data.source, tuple(data.cache_size), workers=data.workers,
                       holdout_cities=data.holdout_cities, holdout_seed=data.holdout_seed)
    counts = {split: info["count"] for split, info in manifest["splits"].items()}
    held = manifest.get(HOLDOUT_SPLIT)
    held = f", {HOLDOUT_SPLIT} cities {', '.join(held['cities'])}" if held else ""
    print(f"prepare: {counts} from {args.root} ({data.source}){held} in {time.perf_counter() - start:.1f} s")
    if args.samples:
        sample_grid(args.out, "train", args.samples)


if __name__ == "__main__":
    run_stage(main)
