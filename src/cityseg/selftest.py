"""The package stage's self-test: a submission, run as the course servers run it, must reproduce the pipeline.

In a temporary folder: the evaluation split's images at original resolution, plus the first one as RGBA,
grayscale, palette and at an odd size (``package.odd_size``), an unreadable PNG, and for a refusing
submission a few OOD test images. predict.py then runs in a subprocess whose interpreter cannot import
cityseg (`isolated`); `servercheck` (same interpreter) counts ``Model()``'s FLOPs and runs the 2024-25 zip.
The test passes when:

* every written mask is bit-identical to the pipeline's prediction (`cityseg.inference` + `postprocess`),
  for predict.py and the zip; the unreadable file is named on stderr and the exit status is non-zero;
* the competition Dice of the written masks equals ``metrics/<benchmark>.json``'s ``dice`` (to
  ``package.dice_tolerance``, 1e-6);
* ``Model()``'s FLOPs equal its ``gflops``; for a refusal, predictions.csv's flags equal the pipeline's.

Anything else raises DataError (the stage fails and keeps no submission). Results go to selftest.json.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from cityseg import servercheck
from cityseg.config import PackageConfig
from cityseg.dataset import full_res_samples, read_sample
from cityseg.inference import FP32, predict_logits, to_batch
from cityseg.io import DataError, link_or_copy, read_image, write_json, write_png
from cityseg.metrics import DiceMeter
from cityseg.ood import OODSegmenter
from cityseg.oodlayout import list_ood_images
from cityseg.package import Trained
from cityseg.postprocess import to_labels

UNREADABLE = "selftest_unreadable.png"
APP_FILES = ("model.py", "predict.py", "model.pt")
GFLOPS_TOL = 1e-3  # the metrics JSON rounds GFLOPs to 3 digits

# `python -I` drops PYTHONPATH and the working directory from sys.path, but an editable install (a .pth
# file in site-packages, as `make setup` makes) still finds cityseg. A finder at the head of sys.meta_path
# that refuses it makes the interpreter as bare as the course's container, whatever the install; then the
# script runs as `python script.py` would run it (its folder first on sys.path).
LAUNCHER = """
import os, runpy, sys
class NoCityseg:
    def find_spec(self, name, path=None, target=None):
        if name == "cityseg" or name.startswith("cityseg."):
            raise ModuleNotFoundError(f"No module named {name!r} (a submission must run without cityseg)", name=name)
sys.meta_path.insert(0, NoCityseg())
sys.argv = sys.argv[1:]
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _command(script: Path, args: list) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return [sys.executable, "-I", "-c", LAUNCHER, str(script), *map(str, args)], env


def isolated(script: Path, args: list, cwd: Path, timeout: float = 1800) -> subprocess.CompletedProcess:
    """Run ``script`` with ``args`` under an interpreter that cannot import cityseg (no PYTHON* variables)."""
    cmd, env = _command(script, args)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def make_test_images(folder: Path, prepared: str | Path, split: str, cfg: PackageConfig,
                     ood_root: str | Path | None = None) -> dict[str, np.ndarray | None]:
    """Write the self-test's input PNGs into ``folder``; returns {file name: label or None} of the readable ones."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = full_res_samples(prepared, split)
    if not samples:
        raise DataError(f"{prepared}: the evaluation split '{split}' has no images to test the submission on")
    labels: dict[str, np.ndarray | None] = {}
    for sample in samples:
        link_or_copy(sample.image_path, folder / sample.image_path.name)
        labels[sample.image_path.name] = read_sample(sample)[1]
    first = read_image(samples[0].image_path)
    h, w = first.shape[:2]
    alpha = np.linspace(0, 255, h * w).reshape(h, w).astype(np.uint8)  # varied alpha: it must be ignored
    variants = {"selftest_rgba.png": Image.fromarray(np.dstack([first, alpha]), "RGBA"),
                "selftest_gray.png": Image.fromarray(first).convert("L"),
                "selftest_palette.png": Image.fromarray(first).quantize(64),
                "selftest_odd.png": Image.fromarray(cv2.resize(first, tuple(cfg.odd_size[::-1]), interpolation=cv2.INTER_AREA))}
    for name, img in variants.items():
        img.save(folder / name)
        labels[name] = None
    if ood_root is not None and cfg.ood_images:
        sets = list_ood_images(ood_root)
        for group in ("near_test", "far_test"):
            for i, path in enumerate(sets[group][: cfg.ood_images]):
                write_png(folder / f"selftest_{group}_{i}.png", read_image(path))
                labels[f"selftest_{group}_{i}.png"] = None
    (folder / UNREADABLE).write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return labels


@torch.inference_mode()
def pipeline_predictions(trained: Trained, folder: Path, names: list[str]) -> dict[str, tuple[np.ndarray, bool | None]]:
    """{name: (mask, include or None)} as the pipeline predicts each image: one at a time, float32."""
    p = trained.predictor
    refusal = None
    if trained.refusal is not None:
        refusal = OODSegmenter(p.model, trained.refusal["method"], trained.refusal["temperature"])
        refusal.load_state_dict(trained.state, strict=True)
        refusal.eval()
    out = {}
    for name in names:
        image = read_image(folder / name)
        logits = predict_logits(p.model, [image], p.input_size, p.device, FP32)
        include = None if refusal is None else bool(refusal(to_batch([image], p.input_size, p.device))[1][0])
        out[name] = (to_labels(logits[0], p.min_area).numpy(), include)
    return out


def compare_masks(expected: dict[str, tuple[np.ndarray, Any]], out: Path, who: str) -> list[str]:
    """Problems with the masks in ``out``: missing, not single-channel uint8, wrong size, different pixels."""
    problems = []
    for name, (want, _) in expected.items():
        got = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        if got is None:
            problems.append(f"{who}: no mask {name}")
        elif got.dtype != np.uint8 or got.ndim != 2:
            problems.append(f"{who}: {name} is {got.dtype} with shape {got.shape}, not single-channel uint8")
        elif got.shape != want.shape:
            problems.append(f"{who}: {name} is {got.shape[1]}x{got.shape[0]}, the input {want.shape[1]}x{want.shape[0]}")
        elif not np.array_equal(got, want):
            problems.append(f"{who}: {name} differs from the pipeline's prediction in {int((got != want).sum())} pixels")
    return problems


def _read_flags(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return {r[0]: r[1] for r in rows[1:] if len(r) == 2} if rows[:1] == [["image_name", "include"]] else {}


def _dice(out: Path, labels: dict[str, np.ndarray | None]) -> float:
    meter = DiceMeter()
    for name, label in labels.items():
        mask = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        if label is not None and mask is not None and mask.shape == label.shape:
            meter.update(mask, label, batched=False)
    return float(meter.mean()) if len(meter) else float("nan")


def _run(package: Path, work: Path) -> tuple[subprocess.CompletedProcess, float, dict]:
    """predict.py and servercheck in the bare interpreter: (predict.py's process, its image-loop seconds, the check)."""
    app = work / "app"
    app.mkdir()
    for name in APP_FILES:
        shutil.copy(package / name, app / name)
    zip_data = work / "zipdata"  # the zip runs on the converted images and one original: the same code path
    zip_data.mkdir()
    inputs = sorted((work / "data").glob("*.png"))
    for p in [p for p in inputs if p.name.startswith("selftest_")] + [p for p in inputs if not p.name.startswith("selftest_")][:1]:
        link_or_copy(p, zip_data / p.name)
    checker = work / "servercheck.py"
    shutil.copy(servercheck.__file__, checker)
    zip_path = next(package.glob("submission_*.zip"))
    # The server check runs beside predict.py: both spend most of their time importing torch (and smp) on
    # one core each; predict.py's images/s comes from its own timing of the image loop.
    cmd, env = _command(checker, ["--package", app, "--zip", zip_path, "--data", zip_data, "--zip-output",
                                  work / "zipout", "--result", work / "check.json"])
    with subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as check:
        proc = isolated(app / "predict.py", ["--data", work / "data", "--output", work / "out", "--model",
                                             app / "model.pt", "--device", "cpu"], cwd=work)
        _, check_err = check.communicate(timeout=1800)
    if check.returncode != 0:
        raise DataError(f"{package}: the server check failed (exit {check.returncode}): {check_err.strip()[-2000:]}")
    timing = re.search(r"(\d+) masks in ([\d.]+) s", proc.stdout)
    seconds = float(timing.group(2)) if timing else float("nan")
    return proc, seconds, json.loads((work / "check.json").read_text())


def _checks(trained: Trained, work: Path, labels: dict, expected: dict, proc: subprocess.CompletedProcess,
            check: dict, metrics: dict, dice_tolerance: float) -> tuple[list[str], dict[str, Any]]:
    """(problems, measured values) of one self-test run."""
    problems, measured = [], {"dice_reported": metrics.get("dice"), "gflops_reported": metrics.get("gflops")}
    if check["cityseg_importable"]:
        return ["cityseg is importable in the isolated interpreter, so the test would prove nothing"], measured
    problems += compare_masks(expected, work / "out", "predict.py")
    zip_names = sorted(p.name for p in (work / "zipdata").glob("*.png") if p.name in expected)
    problems += compare_masks({n: expected[n] for n in zip_names}, work / "zipout", "zip")
    if proc.returncode == 0 or UNREADABLE not in proc.stderr:
        problems.append(f"predict.py: exit {proc.returncode} and {UNREADABLE} "
                        f"{'named' if UNREADABLE in proc.stderr else 'not named'} on stderr (want non-zero and named)")
    measured["dice_from_masks"] = round(_dice(work / "out", labels), 8)
    if not abs(measured["dice_from_masks"] - float(metrics.get("dice", np.nan))) <= dice_tolerance:
        problems.append(f"Dice of the written masks {measured['dice_from_masks']:.6f} != metrics dice {metrics.get('dice')}")
    measured["gflops_model"] = round(check["flops"] / 1e9, 6)
    if not abs(round(measured["gflops_model"], 3) - float(metrics.get("gflops", np.nan))) <= GFLOPS_TOL:
        problems.append(f"Model() counts {measured['gflops_model']:.3f} GFLOPs, metrics gflops {metrics.get('gflops')}")
    if trained.refusal is not None:
        flags = _read_flags(work / "out" / "predictions.csv")
        want = {name: str(include) for name, (_, include) in expected.items()}
        if flags != want:
            wrong = sorted(n for n in want if flags.get(n) != want[n])
            problems.append(f"predictions.csv: {len(wrong)} of {len(want)} include flags differ from the pipeline's "
                            f"decisions or are missing (e.g. {wrong[:3]})")
        measured["refused"] = sum(not inc for _, inc in expected.values())
    return problems, measured


def self_test(package: str | Path, trained: Trained, prepared: str | Path, split: str, metrics: dict,
              cfg: PackageConfig, ood_root: str | Path | None = None) -> dict[str, Any]:
    """Run the self-test on the submission folder ``package``; write and return selftest.json's contents."""
    package = Path(package).resolve()  # the subprocesses run in the temporary folder
    with tempfile.TemporaryDirectory(prefix="cityseg-selftest-") as tmp:
        work = Path(tmp)
        labels = make_test_images(work / "data", prepared, split, cfg, ood_root if trained.refusal else None)
        expected = pipeline_predictions(trained, work / "data", sorted(labels))
        proc, seconds, check = _run(package, work)
        problems, measured = _checks(trained, work, labels, expected, proc, check, metrics, cfg.dice_tolerance)
    if problems:
        tail = proc.stderr.strip().replace(UNREADABLE, "").strip()[-1500:]
        raise DataError(f"{package}: self-test failed:\n  " + "\n  ".join(problems[:20])
                        + (f"\npredict.py stderr:\n{tail}" if tail else ""))
    result = {"passed": True, "images": len(labels), "eval_images": sum(v is not None for v in labels.values()),
              "other_images": sorted(n for n, v in labels.items() if v is None), "unreadable_reported": UNREADABLE,
              "masks_identical": len(expected), "zip_masks_identical": len(check["zip_masks"]),
              "cityseg_importable": False, "predict_seconds": round(seconds, 3),
              "images_per_s": round(len(expected) / seconds, 3) if seconds > 0 else None, "torch": torch.__version__, "device": "cpu",
              **measured}
    write_json(package / "selftest.json", result)
    return result
