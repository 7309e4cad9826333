"""Error bars: the pipeline over several training seeds, as mean ± std per model and metric.

One seed cannot tell a method from noise: on the embedded default the baseline's validation Dice moves by
±0.015 from epoch to epoch, and most gaps between benchmarks are 0.02-0.05. The sweep runs the whole pipeline
once per seed as DVC experiments (``train.seed`` is shared by every model that does not pin its own)::

    python -m cityseg.seeds queue --seeds 1 2           # queues one experiment per seed (the workspace run is a third)
    dvc queue start -j 1 && dvc queue status            # ~15 min per seed on 2 cores; wait until all are done
    python -m cityseg.seeds table --out reports/seeds.md   # --commits N: experiments queued N-1 commits ago too

``table`` reads ``dvc exp show --json``: every experiment (and the workspace) with complete metrics, one row per
(model, metric) with mean ± std over the seeds (sample std, n - 1) and, for every model but the baseline, the
difference of the means marked significant only when it exceeds the two spreads added (std + std of the baseline).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Iterator

from cityseg.io import atomic_path
from cityseg.report import get, table

BASELINE = "baseline"
METRICS = [  # (dotted key in metrics/<model>.json, header)
    ("dice", "Dice"),
    ("miou", "mIoU"),
    ("robustness.dice_corrupted_mean", "Corrupted Dice"),
    ("robustness.dice_heldout_mean", "Held-out Dice"),
    ("ood.score", "OOD score"),
    ("ood.auroc_near", "AUROC near"),
]


def iter_runs(exp_json: list) -> Iterator[tuple[str, dict, dict[str, dict]]]:
    """(name, params.yaml as a dict, {model: its metrics}) for the workspace, HEAD and every experiment in
    ``dvc exp show --json`` output."""

    def visit(entry: dict) -> Iterator[tuple[str, dict, dict[str, dict]]]:
        data = entry.get("data") or {}
        name = entry.get("name") or data.get("name") or (data.get("rev") or entry.get("rev") or "?")[:7]
        params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
        metrics = {Path(path).stem: (content or {}).get("data") or {}
                   for path, content in (data.get("metrics") or {}).items()}
        yield name, params, metrics
        for child in entry.get("experiments") or []:
            for rev in child.get("revs") or [child]:
                yield from visit(rev)

    for entry in exp_json:
        yield from visit(entry)


def seed_runs(exp_json: list) -> dict[int, dict[str, dict]]:
    """{train.seed: {model: metrics}}: one run per seed (the first listed: the workspace before HEAD's copy of it),
    runs without metrics left out."""
    runs: dict[int, dict[str, dict]] = {}
    for _, params, metrics in iter_runs(exp_json):
        seed = get(params, "train.seed")
        if seed is not None and metrics and seed not in runs:
            runs[int(seed)] = metrics
    return runs


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def summarise(runs: dict[int, dict[str, dict]]) -> dict[str, dict[str, dict]]:
    """{model: {metric key: {"mean", "std", "n", and for non-baseline models "diff", "significant"}}} over the
    seeds where the model has the metric."""
    models = sorted({m for metrics in runs.values() for m in metrics}, key=lambda m: (m != BASELINE, m))
    out: dict[str, dict[str, dict]] = {}
    for model in models:
        for key, _ in METRICS:
            values = [float(v) for metrics in runs.values() if (v := get(metrics.get(model, {}), key)) is not None]
            if values:
                mean, std = mean_std(values)
                out.setdefault(model, {})[key] = {"mean": mean, "std": std, "n": len(values)}
    for model, stats in out.items():
        for key, s in stats.items():
            base = out.get(BASELINE, {}).get(key)
            if model != BASELINE and base is not None:
                s["diff"] = s["mean"] - base["mean"]
                # Significant only beyond both seed spreads added: a conservative rule for 3 seeds, which
                # cannot support a t-test's normality assumption.
                s["significant"] = s["n"] > 1 and abs(s["diff"]) > s["std"] + base["std"]
    return out


def markdown(summary: dict[str, dict[str, dict]], seeds: list[int]) -> str:
    """The seeds table: one row per model, "mean ± std" per metric, the difference to the baseline beside it
    (bold when significant)."""
    header = ["Model"] + [h for _, h in METRICS]
    rows = []
    for model, stats in summary.items():
        cells = [model]
        for key, _ in METRICS:
            s = stats.get(key)
            if s is None:
                cells.append("–")
                continue
            cell = f"{s['mean']:.3f} ± {s['std']:.3f}"
            if "diff" in s:
                diff = f"{s['diff']:+.3f}"
                cell += f" ({'**' + diff + '**' if s['significant'] else diff})"
            cells.append(cell)
        rows.append(cells)
    return (f"Mean ± std over {len(seeds)} training seeds ({', '.join(map(str, seeds))}); in brackets the difference "
            f"to the baseline's mean, **bold** where it exceeds both seed spreads added.\n\n{table(rows, header)}\n")


def _dvc(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"error: dvc {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    queue = sub.add_parser("queue", help="queue one DVC experiment per seed")
    queue.add_argument("--seeds", type=int, nargs="+", required=True)
    out = sub.add_parser("table", help="mean ± std over the seeds' experiments")
    out.add_argument("--out", default="reports/seeds.md")
    out.add_argument("--commits", type=int, default=1,
                     help="how many commits back from HEAD to read experiments of (dvc exp show -n): experiments "
                          "queued before a later commit belong to the earlier one")
    args = ap.parse_args(argv)
    if args.command == "queue":
        for seed in args.seeds:
            _dvc("exp", "run", "--queue", "-n", f"seed-{seed}", "-S", f"train.seed={seed}")
            print(f"queued seed-{seed}")
        print("run them with: dvc queue start -j 1   (dvc queue status shows progress)")
        return
    runs = seed_runs(json.loads(_dvc("exp", "show", "--json", "-n", str(args.commits)).stdout))
    if len(runs) < 2:
        sys.exit(f"error: {len(runs)} seed(s) with metrics in `dvc exp show`; queue and run more first")
    text = markdown(summarise(runs), sorted(runs))
    with atomic_path(Path(args.out)) as tmp:
        tmp.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
