"""Dice against GFLOPs for every benchmark of every DVC experiment (the efficiency trade-off).

After a sweep such as::

    dvc exp run --queue -S model.width=0.25,0.5,0.75 && dvc queue start && dvc queue status

run ``python -m cityseg.pareto --out reports/pareto_experiments.png``: it reads
``dvc exp show --json`` and plots one point per (experiment, benchmark) that has both numbers.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from cityseg.report import pareto_plot
from cityseg.seeds import iter_runs


def experiment_points(exp_json: list) -> list[tuple[str, float, float]]:
    """(label, gflops, dice) for every experiment and benchmark in ``dvc exp show --json`` output."""
    return [(f"{name}:{model}", float(values["gflops"]), float(values["dice"]))
            for name, _, metrics in iter_runs(exp_json) for model, values in metrics.items()
            if "gflops" in values and "dice" in values]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="reports/pareto_experiments.png")
    args = ap.parse_args()
    proc = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: dvc exp show failed: {proc.stderr.strip()}")
    points = experiment_points(json.loads(proc.stdout))
    if not points:
        sys.exit("error: no experiment has both 'dice' and 'gflops' metrics yet (run `dvc repro` or `dvc exp run` first)")
    pareto_plot(points, args.out, title="Dice against GFLOPs, all experiments")
    print(f"pareto: {len(points)} points -> {args.out}")


if __name__ == "__main__":
    main()
