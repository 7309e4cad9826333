"""DVC stage `weather`: the robustness test bed (fog, rain, corruptions) from the evaluation split."""

import time

from cityseg.cli import run_stage, stage_args
from cityseg.config import DataConfig, EvalConfig, WeatherConfig, load_params, section
from cityseg.dataset import evaluation_split
from cityseg.testbed import build_testbed, condition_grid


def main() -> None:
    args = stage_args(__doc__, {"prepared": "prepared dataset folder",
                                "out": "test bed folder (<out>/<condition>/<severity>/, Cityscapes layout)"},
                      {"samples": "write a PNG of one image under every condition here",
                       "fog-rain": "write a PNG of one image under every fog and rain severity here"})
    params = load_params(args.params)
    cfg = section(params, "weather", WeatherConfig)
    data, ev = section(params, "data", DataConfig), section(params, "eval", EvalConfig)
    split = evaluation_split(ev.split, data.source)
    start = time.perf_counter()
    manifest = build_testbed(args.prepared, args.out, cfg, split, workers=data.workers)
    n_folders = sum(len(s) for s in manifest["conditions"].values())
    print(f"weather: {manifest['images']} {split} images x {n_folders} condition-severities "
          f"({', '.join(manifest['conditions'])}) -> {args.out} in {time.perf_counter() - start:.1f} s; "
          f"label-guided depth prior for {manifest['label_prior_images']} image(s)")
    if args.samples:
        condition_grid(args.out, args.samples)
    if args.fog_rain:
        conds = manifest["conditions"]
        entries = [("clean", 0)] + [("fog", k) for k in conds.get("fog", [])]
        entries += [("clean", 0)] + [("rain", k) for k in conds.get("rain", [])]
        condition_grid(args.out, args.fog_rain, cols=len(entries) // 2, entries=entries)


if __name__ == "__main__":
    run_stage(main)
