"""DVC stage `report`: the paper's tables (Markdown, LaTeX) and figures from every benchmark's metrics."""

import argparse
from pathlib import Path

from cityseg.cli import run_stage
from cityseg.config import EfficiencyConfig, distill_config, load_params, section
from cityseg.io import read_json
from cityseg.report import write_report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--metrics", nargs="+", required=True, help="metrics/<benchmark>.json files")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    params = load_params(args.params)
    metrics = {Path(p).stem: read_json(p) for p in args.metrics}
    entries = {**(params.get("benchmarks") or {}), **(params.get("students") or {})}
    descriptions = {name: (entry or {}).get("description", "") for name, entry in entries.items()}
    students = {name: distill_config(params, name) for name in params.get("students") or {}}
    write_report(metrics, args.out, section(params, "efficiency", EfficiencyConfig).gate, descriptions,
                 {name: (cfg.teacher, cfg.student) for name, cfg in students.items()})
    print(f"report: {len(metrics)} benchmarks -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
