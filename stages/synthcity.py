"""DVC stage `synthcity`: generate the embedded default dataset in the Cityscapes layout."""

import time
from pathlib import Path

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, SynthCityConfig, load_params, section
from cityseg.synthcity import generate


def main() -> None:
    args = stage_args(__doc__, {"out": "output root (Cityscapes layout)"})
    params = load_params(args.params)
    cfg = section(params, "synthcity", SynthCityConfig)
    data = section(params, "data", DataConfig)
    start = time.perf_counter()
    summary = generate(Path(args.out), cfg, workers=data.workers)
    print(f"synthcity: {summary['images']} images ({cfg.height}x{cfg.width}) -> {args.out} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    run_stage(main)
