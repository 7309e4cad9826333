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


def experiment_points(exp_json: list) -> list[tuple[str, float, float]]:
    """(label, gflops, dice) for every experiment and benchmark in ``dvc exp show --json`` output."""
    points: list[tuple[str, float, float]] = []

    def visit(entry: dict, label: str) -> None:
        data = entry.get("data") or {}
        name = entry.get("name") or data.get("name") or (data.get("rev") or entry.get("rev") or "?")[:7]
        label = name if not label else f"{label}/{name}"
        for path, content in (data.get("metrics") or {}).items():
            values = (content or {}).get("data") or {}
            if "gflops" in values and "dice" in values:
                bench = path.rsplit("/", 1)[-1].removesuffix(".json")
                points.append((f"{name}:{bench}", float(values["gflops"]), float(values["dice"])))
        for child in entry.get("experiments") or []:
            for rev in child.get("revs") or [child]:
                visit(rev, "")

    for entry in exp_json:
        visit(entry, "")
    return points


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
