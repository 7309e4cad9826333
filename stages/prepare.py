"""DVC stage `prepare`: trainId labels, depth, training cache and manifest from a Cityscapes-layout root."""

import time

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, load_params, section
from cityseg.plots import sample_grid
from cityseg.prepare import prepare


def main() -> None:
    args = stage_args(__doc__, {"root": "Cityscapes-layout root (data.cityscapes_root)", "out": "prepared dataset folder"},
                      {"samples": "write a sample grid PNG (image, labels, depth) here"})
    data = section(load_params(args.params), "data", DataConfig)
    start = time.perf_counter()
    manifest = prepare(args.root, args.out, data.source, tuple(data.cache_size), workers=data.workers)
    counts = {split: info["count"] for split, info in manifest["splits"].items()}
    print(f"prepare: {counts} from {args.root} ({data.source}) in {time.perf_counter() - start:.1f} s")
    if args.samples:
        sample_grid(args.out, "train", args.samples)


if __name__ == "__main__":
    run_stage(main)
