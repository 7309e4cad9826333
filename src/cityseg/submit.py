"""Check a submission's Docker image end to end (needs a Docker daemon; never part of ``dvc repro``).

    python -m cityseg.submit build <benchmark> [--submissions submissions] [--prepared data/prepared]
                                               [--ood data/ood] [--params params.yaml] [--save FILE]

Builds ``submissions/<benchmark>/`` into the image ``cityseg-<benchmark>``, runs it as the course does
(``docker run --network none``, the images mounted at /data, the masks written to /output) on the package
self-test's images, and compares its masks (and predictions.csv) with predict.py run locally without
cityseg, which the package stage has shown to equal the pipeline's predictions. ``--save`` then writes
``docker save -o FILE``. Exit 0 only when every output is identical.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cityseg.config import DataConfig, EvalConfig, PackageConfig, load_params, section
from cityseg.dataset import evaluation_split
from cityseg.io import DataError
from cityseg.selftest import UNREADABLE, isolated, make_test_images


def _docker(*args: str, timeout: float = 3600) -> subprocess.CompletedProcess:
    if shutil.which("docker") is None:
        raise DataError("docker: command not found (install Docker to check the image)")
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise DataError(f"docker {args[0]} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def _same(a: Path, b: Path) -> bool:
    x, y = cv2.imread(str(a), cv2.IMREAD_UNCHANGED), cv2.imread(str(b), cv2.IMREAD_UNCHANGED)
    return x is not None and y is not None and x.shape == y.shape and np.array_equal(x, y)


def check_image(package: str | Path, tag: str, prepared: str | Path, split: str, cfg: PackageConfig,
                ood_root: str | Path | None, work: str | Path) -> dict[str, Any]:
    """Build ``package`` as ``tag``, run it offline on the self-test's images under ``work``, compare with local."""
    package, work = Path(package).resolve(), Path(work).resolve()
    _docker("build", "-t", tag, str(package))
    data = work / "data"
    make_test_images(data, prepared, split, cfg, ood_root)
    local, docker_out = work / "local", work / "docker"
    docker_out.mkdir(parents=True)
    isolated(package / "predict.py", ["--data", data, "--output", local, "--model", package / "model.pt",
                                      "--device", "cpu"], cwd=work)
    proc = subprocess.run(["docker", "run", "--rm", "--network", "none", "-v", f"{data}:/data:ro",
                           "-v", f"{docker_out}:/output", tag], capture_output=True, text=True, timeout=3600)
    names = sorted(p.name for p in local.glob("*.png"))
    identical = [n for n in names if _same(local / n, docker_out / n)]
    csv_same = (local / "predictions.csv").is_file() == (docker_out / "predictions.csv").is_file() and (
        not (local / "predictions.csv").is_file()
        or (local / "predictions.csv").read_text() == (docker_out / "predictions.csv").read_text())
    return {"images": len(names), "identical": len(identical), "different": sorted(set(names) - set(identical)),
            "predictions_csv_identical": csv_same, "exit": proc.returncode, "stderr": proc.stderr.strip()[-1000:]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("command", choices=["build"])
    ap.add_argument("benchmark")
    ap.add_argument("--submissions", default="submissions")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--ood", default="data/ood")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--save", help="docker save -o this file when the image passes")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    cfg = section(params, "package", PackageConfig)
    split = evaluation_split(section(params, "eval", EvalConfig).split, section(params, "data", DataConfig).source)
    tag = f"cityseg-{args.benchmark}"
    ood = args.ood if args.benchmark in cfg.refusal else None
    with tempfile.TemporaryDirectory(prefix="cityseg-docker-") as tmp:
        r = check_image(Path(args.submissions) / args.benchmark, tag, args.prepared, split, cfg, ood, tmp)
    # The test images include an unreadable PNG: the container must name it and exit 1, like predict.py here.
    ok = r["identical"] == r["images"] > 0 and r["predictions_csv_identical"] and r["exit"] == 1 and UNREADABLE in r["stderr"]
    print(f"{tag}: {r['identical']} of {r['images']} masks identical to the local predict.py"
          + ("" if r["predictions_csv_identical"] else ", predictions.csv differs")
          + (f"; different: {r['different'][:5]}" if r["different"] else ""))
    if not ok:
        print(f"{tag}: FAILED (container exit {r['exit']}): {r['stderr']}", file=sys.stderr)
        return 1
    if args.save:
        _docker("save", "-o", args.save, tag)
        print(f"{tag}: saved to {args.save}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
