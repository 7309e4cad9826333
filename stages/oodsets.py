"""DVC stage `oodsets`: OOD image sets <out>/{val,test}/{near,far}/, generated or linked from ood.user_root."""

import time

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, OODConfig, load_params, section
from cityseg.oodsets import import_user_ood, ood_sample_grid, write_oodsets


def main() -> None:
    args = stage_args(__doc__, {"out": "OOD set folder (replaced atomically)"},
                      {"samples": "write a PNG grid of a few images of each folder here"})
    params = load_params(args.params)
    cfg, data = section(params, "ood", OODConfig), section(params, "data", DataConfig)
    start = time.perf_counter()
    if cfg.user_root:
        counts = import_user_ood(cfg.user_root, args.out)
        source = f"the user's images in {cfg.user_root}"
    else:
        counts = write_oodsets(args.out, cfg.seed, cfg.n_val, cfg.n_test, cfg.sizes, workers=data.workers)
        source = "SynthCity variants (near) and procedural images (far)"
    print(f"oodsets: {counts} from {source} in {time.perf_counter() - start:.1f} s -> {args.out}")
    if args.samples:
        ood_sample_grid(args.out, args.samples)


if __name__ == "__main__":
    run_stage(main)
