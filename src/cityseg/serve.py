"""The submission's entry points, written as library code and copied into each package by `cityseg.codegen`.

``main`` becomes predict.py (the 2025-26 Docker entrypoint); ``preprocess`` and ``postprocess`` become
process_data.py (the 2024-25 zip). The copies carry every definition they use, so they run where cityseg
is not installed (torch, numpy and cv2 only), and ``SETTINGS`` is pinned from the checkpoint.

The processing is the pipeline's own, reused rather than rewritten: `io.read_image` (any PNG mode to RGB),
`inference.resize_image` (cv2 bilinear to the training size), `transforms.normalize_batch`, float32
logits upsampled by `inference.logits_at` to the image's original size, and `postprocess.to_labels`
with the small-class threshold evaluation chose (``selection.min_class_area`` of the metrics). The network runs in float32 without autocast, as the
pipeline's evaluation does on a CPU (and its OOD scoring everywhere).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from cityseg.inference import logits_at, resize_image
from cityseg.io import DataError, read_image
from cityseg.postprocess import to_labels
from cityseg.transforms import normalize_batch

# Pinned per submission by cityseg.package: the [h, w] the network was trained at, the chosen min_class_area,
# and whether Model.forward returns (logits, include) (the OOD refusal; then predictions.csv is written).
SETTINGS = {"input_size": [128, 256], "min_area": 0.0, "refusal": False}


def to_input(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, h, w) float32 at the training size, normalised like training."""
    return normalize_batch(torch.from_numpy(np.stack([resize_image(image, SETTINGS["input_size"])])))


def split_output(output) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Model output -> (logits (B, C, h, w), include (B,) bool or None): the OOD model returns both."""
    if isinstance(output, (tuple, list)):
        return output[0], output[1]
    return output, None


def labels_at(logits: torch.Tensor, shape) -> np.ndarray:
    """(1, C, h, w) logits -> (H, W) uint8 trainIds at ``shape`` (H, W), after small-class removal."""
    up = logits_at(logits.float(), tuple(int(s) for s in shape[:2]))
    return to_labels(up[0], SETTINGS["min_area"]).cpu().numpy()


def preprocess(img) -> torch.Tensor:
    """2024-25 format: a PIL image of any mode -> (1, 3, h, w) float32 on the CPU."""
    return to_input(np.array(img.convert("RGB")))  # RGBA drops alpha, L and P expand, as cv2 reads PNGs


def postprocess(prediction, shape) -> np.ndarray:
    """2024-25 format: the model's output and the original (H, W) -> (H, W) uint8 trainIds."""
    logits, _ = split_output(prediction)
    return labels_at(logits.detach().cpu(), shape)


def load_model(path: Path, device: torch.device) -> torch.nn.Module:
    """``Model()`` of model.py with the state_dict at ``path`` (weights_only, strict), in eval mode.

    A file that is not a state_dict, or one of another architecture, stops with one line naming it.
    """
    from model import Model  # model.py next to this script: python puts the script's folder on sys.path

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # missing, truncated or not a torch file: all raise differently
        raise SystemExit(f"predict.py: cannot read the model file {path} ({type(exc).__name__}: {exc})") from None
    model = Model()
    try:
        model.load_state_dict(state, strict=True)
    except Exception as exc:  # RuntimeError for wrong keys/shapes, TypeError/AttributeError for a non-dict
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise SystemExit(f"predict.py: {path} does not fit model.py's Model() ({first})") from None
    return model.to(device).eval()


@torch.inference_mode()
def predict(model: torch.nn.Module, image: np.ndarray, device: torch.device) -> tuple[np.ndarray, bool | None]:
    """One RGB image -> ((H, W) uint8 trainIds at its own size, include or None)."""
    logits, include = split_output(model(to_input(image).to(device)))
    return labels_at(logits, image.shape[:2]), (None if include is None else bool(include.reshape(-1)[0]))


def write_mask(path: Path, labels: np.ndarray) -> None:
    """A single-channel uint8 PNG, written under a temporary name and renamed (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), np.ascontiguousarray(labels, dtype=np.uint8)):
        raise SystemExit(f"predict.py: could not write {path}")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Predict every PNG of --data into --output; 1 if some image could not be read (the others are done)."""
    ap = argparse.ArgumentParser(description="Cityscapes challenge submission: one trainId mask per input PNG")
    ap.add_argument("--data", default="/data", help="folder of input PNGs (default /data)")
    ap.add_argument("--output", default="/output", help="folder for the masks (default /output)")
    ap.add_argument("--model", default="/app/model.pt", help="state_dict for model.py's Model() (default /app/model.pt)")
    ap.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    args = ap.parse_args(argv)
    data, out = Path(args.data), Path(args.output)
    if not data.is_dir():
        raise SystemExit(f"predict.py: input folder {data} not found")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_model(Path(args.model), device)
    out.mkdir(parents=True, exist_ok=True)
    paths = sorted(p for p in data.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    failed, rows, start = [], [], time.perf_counter()
    for path in paths:
        try:
            image = read_image(path)
        except DataError as exc:
            print(f"predict.py: skipped {exc}", file=sys.stderr)
            failed.append(path.name)
            continue
        labels, include = predict(model, image, device)
        write_mask(out / path.name, labels)
        if SETTINGS["refusal"]:
            if include is None:
                raise SystemExit("predict.py: this submission refuses images but Model() returned no include flag")
            rows.append((path.name, include))
    if SETTINGS["refusal"]:
        with open(out / "predictions.csv", "w", newline="") as f:
            csv.writer(f).writerows([("image_name", "include"), *rows])
    seconds = time.perf_counter() - start
    print(f"predict.py: {len(paths) - len(failed)} masks in {seconds:.3f} s on {device}"
          + (f", {len(paths) - len(failed) - sum(r[1] for r in rows)} refused" if SETTINGS["refusal"] else ""))
    if failed:
        print(f"predict.py: {len(failed)} of {len(paths)} images could not be read: {', '.join(failed)}",
              file=sys.stderr)
        return 1
    return 0
