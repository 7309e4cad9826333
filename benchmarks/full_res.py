"""Every stage at full Cityscapes resolution: wall time and peak memory per stage, at two dataset sizes.

Runs the real dvc.yaml (``dvc repro evaluate@baseline package@baseline``: synthcity, prepare, weather, oodsets,
train, evaluate, package) in a throw-away Git repo, with SynthCity rendered at 1024x2048 and N frames in each of
train/val/test, and the course U-Net (64 base channels) trained for one epoch at 256x256 (``--train-size 512
1024`` for the larger variant). A ``python`` shim first on PATH runs each stage command and reads its resource
use with ``os.wait4``: wall time, and the peak resident memory of the stage's process tree (``ru_maxrss`` covers
the worker processes it waited for). Two sizes side by side show what grows with the number of images: time
should, memory should not (every stage streams). Per-image slopes give the extrapolation to real Cityscapes
(2975 training frames per epoch, 500 validation frames scored). Prints a Markdown table.

    python benchmarks/full_res.py --sizes 2 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from cityseg.config import deep_merge
from latency import cpu_model, markdown_table  # benchmarks/ is the script's folder, so it is on sys.path

REPO = Path(__file__).resolve().parents[1]
STATS_ENV = "CITYSEG_FULLRES_STATS"
# N (frames per split here) that matches real Cityscapes for each stage: prepare reads all 5000 frames of the
# three splits (N = 5000 / 3); train one epoch of 2975 (its 500 val frames ride along); weather, evaluate and
# package the 500 val frames. synthcity and oodsets do not exist there.
SCALE = {"prepare": 1667, "weather": 500, "train": 2975, "evaluate": 500, "package": 500}

SHIM = '''#!{python}
# Runs one DVC stage command and appends its wall time and peak RSS (os.wait4) to ${env}.
import json, os, sys, time
args = sys.argv[1:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv({python!r}, [{python!r}] + args)
_, status, usage = os.wait4(pid, 0)
stage = os.path.basename(args[0]).removesuffix(".py") if args and args[0].startswith("stages/") else " ".join(args[:1])
with open(os.environ["{env}"], "a") as f:
    f.write(json.dumps({{"stage": stage, "wall_s": time.perf_counter() - start, "max_rss_mb": usage.ru_maxrss / 1024}}) + "\\n")
sys.exit(os.waitstatus_to_exitcode(status))
'''


def overrides(n: int, train_size: list[int], frame: list[int]) -> dict:
    """params.yaml changes for the full-resolution profile with ``n`` frames per split."""
    h = train_size[0]
    return {
        "data": {"cache_size": [h, 2 * h]},
        "synthcity": {"height": frame[0], "width": frame[1], "train": n, "val": n, "test": n},
        "model": {"base_channels": 64},
        "train": {"epochs": 1, "batch_size": 2, "size": list(train_size)},
        "weather": {"images": 0},
        "ood": {"n_val": 2, "n_test": 2},
        "efficiency": {"latency_runs": 2, "latency_budget_s": 1},
    }


def make_project(root: Path, params: dict) -> dict:
    """The repo's pipeline in a new Git repo at ``root`` with ``params``; returns the environment to run DVC in."""
    for name in ("dvc.yaml", ".dvcignore", "stages", "src"):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, root / name)
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", root / ".dvc/config")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("/.cityseg/\n__pycache__/\n/.site-cache/\n/bin/\n/stats.jsonl\n")
    shim = root / "bin/python"
    shim.parent.mkdir()
    shim.write_text(SHIM.format(python=sys.executable, env=STATS_ENV))
    shim.chmod(0o755)
    env = dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(root / ".site-cache"),
               PATH=f"{shim.parent}{os.pathsep}{os.environ['PATH']}", **{STATS_ENV: str(root / "stats.jsonl")},
               GIT_AUTHOR_NAME="b", GIT_AUTHOR_EMAIL="b@b", GIT_COMMITTER_NAME="b", GIT_COMMITTER_EMAIL="b@b")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "full-res profile"]):
        subprocess.run(cmd, cwd=root, env=env, check=True)
    return env


def run_profile(n: int, train_size: list[int], frame: list[int], work: Path, targets: list[str]) -> dict[str, dict]:
    """Stage -> {"wall_s", "max_rss_mb"} for one dataset size (``train``, ``evaluate``, ``package``: baseline)."""
    root = work / f"n{n}"
    root.mkdir(parents=True)
    params = deep_merge(yaml.safe_load((REPO / "params.yaml").read_text()), overrides(n, train_size, frame))
    env = make_project(root, params)
    print(f"full_res: {n} frames per split at {frame[0]}x{frame[1]}, training at {train_size[0]}x{train_size[1]} ...",
          file=sys.stderr, flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro", *targets], cwd=root,
                          env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"full_res: dvc repro failed for n={n}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"full_res: n={n} done in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    rows = [json.loads(line) for line in (root / "stats.jsonl").read_text().splitlines()]
    return {r["stage"]: r for r in rows}


def table(sizes: list[int], results: list[dict[str, dict]]) -> str:
    (n1, r1), (n2, r2) = zip(sizes, results)
    rows = []
    for stage in [s for s in r1 if s in r2]:  # the order they ran in
        a, b = r1[stage], r2[stage]
        slope = (b["wall_s"] - a["wall_s"]) / (n2 - n1)  # seconds per extra frame in each split
        scale = SCALE.get(stage)
        extra = (("n/a (slope within noise)" if slope <= 0 else f"{(a['wall_s'] + slope * (scale - n1)) / 60:.0f} min "
                  f"(N = {scale})") if scale else "not on Cityscapes")
        rows.append([stage, f"{a['wall_s']:.0f}", f"{a['max_rss_mb']:.0f}", f"{b['wall_s']:.0f}",
                     f"{b['max_rss_mb']:.0f}", f"{slope:.1f}", extra])
    header = ["stage", f"wall s, N={n1}", f"peak MB, N={n1}", f"wall s, N={n2}", f"peak MB, N={n2}",
              "s per extra N", "extrapolated, this CPU"]
    return markdown_table(header, rows, right=6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs=2, default=[2, 4], metavar=("N1", "N2"), help="frames per split")
    ap.add_argument("--train-size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    ap.add_argument("--frame", type=int, nargs=2, default=[1024, 2048], metavar=("H", "W"),
                    help="SynthCity frame size (Cityscapes': 1024 2048)")
    ap.add_argument("--targets", nargs="+", default=["evaluate@baseline", "package@baseline"],
                    help="dvc repro targets (their upstream stages run too)")
    ap.add_argument("--keep", type=Path, default=None, help="build the projects here and keep them")
    args = ap.parse_args()
    if not 2 <= args.sizes[0] < args.sizes[1]:
        ap.error("--sizes: two frame counts, 2 <= N1 < N2 (the OOD refusal fits on at least 2 training frames)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="full_res-"))
    try:
        results = [run_profile(n, args.train_size, args.frame, work, args.targets) for n in args.sizes]
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"Full resolution ({args.frame[0]}x{args.frame[1]} frames; U-Net base 64 at {args.train_size[0]}x{args.train_size[1]}, one epoch; "
          f"{cpu_model()}, {os.cpu_count()} cores)\n")
    print(table(args.sizes, results))


if __name__ == "__main__":
    main()
