"""DVC stage `prepare`: trainId labels, depth, training cache and manifest from a Cityscapes-layout root."""

import argparse
import time

from cityseg.cli import run_stage
from cityseg.config import DataConfig, load_params, section
from cityseg.plots import sample_grid
from cityseg.prepare import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--root", required=True, help="Cityscapes-layout root (data.cityscapes_root)")
    ap.add_argument("--out", required=True, help="prepared dataset folder")
    ap.add_argument("--samples", help="write a sample grid PNG (image, labels, depth) here")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    data = section(load_params(args.params), "data", DataConfig)
    start = time.perf_counter()
    manifest = prepare(args.root, args.out, data.source, tuple(data.cache_size), workers=data.workers)
    counts = {split: info["count"] for split, info in manifest["splits"].items()}
    print(f"prepare: {counts} from {args.root} ({data.source}) in {time.perf_counter() - start:.1f} s")
    if args.samples:
        sample_grid(args.out, "train", args.samples)


if __name__ == "__main__":
    run_stage(main)
