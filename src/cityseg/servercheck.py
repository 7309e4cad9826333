"""What the course servers do with a submission, run by the package self-test where cityseg cannot be imported.

    python servercheck.py --package DIR --zip FILE --data DIR --zip-output DIR --result FILE

1. ``import cityseg`` must fail: the check proves the interpreter is as bare as the course's.
2. FLOPs as the efficiency server counts them: a freshly built ``Model()``, in the mode its constructor
   leaves it, under ``torch.utils.flop_counter.FlopCounterMode`` on one 1x3x1024x2048 input, on the meta
   device (shapes only: exact for these nets, no compute or memory).
3. The 2024-25 zip: unpacked on its own, ``Model()`` + model.pth (weights_only, strict), then per PNG
   ``postprocess(model(preprocess(img)), (H, W))`` as the old server called it; masks go to --zip-output.

This file is copied next to the package and run as a script, so it imports only the standard library,
torch, numpy and PIL (never cityseg).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import zipfile
from pathlib import Path

FLOP_INPUT = (1, 3, 1024, 2048)


def cityseg_importable() -> bool:
    try:
        importlib.import_module("cityseg")
    except ImportError:
        return False
    return True


def count_model_flops(package: Path) -> int:
    """FLOPs of ``Model()`` from package/model.py on one FLOP_INPUT tensor, as the server counts them."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    sys.path.insert(0, str(package))
    try:
        from model import Model

        model = Model().to("meta")  # built as the server builds it; only then moved to the meta device
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.empty(FLOP_INPUT, device="meta"))
        return int(counter.get_total_flops())
    finally:
        sys.path.remove(str(package))
        sys.modules.pop("model", None)


def run_zip(zip_path: Path, data: Path, out: Path) -> list[str]:
    """The 2024-25 flow on every PNG of ``data``; returns the mask names written to ``out``."""
    import numpy as np
    import torch
    from PIL import Image

    unpacked = out.parent / f"{out.name}-unzipped"
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(unpacked)
    sys.path.insert(0, str(unpacked))
    from model import Model
    from process_data import postprocess, preprocess

    model = Model()
    model.load_state_dict(torch.load(unpacked / "model.pth", map_location="cpu", weights_only=True), strict=True)
    model.eval()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(data.glob("*.png")):
        try:
            img = Image.open(path)
            img.load()
        except OSError:
            continue  # unreadable inputs are predict.py's to report
        with torch.no_grad():
            mask = postprocess(model(preprocess(img)), img.size[::-1])
        if mask.shape != img.size[::-1]:
            raise SystemExit(f"servercheck: process_data.postprocess gave {mask.shape} for {path.name} of {img.size[::-1]}")
        Image.fromarray(np.asarray(mask, dtype=np.uint8)).save(out / path.name)
        written.append(path.name)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("package", "zip", "data", "zip-output", "result"):
        ap.add_argument(f"--{name}", required=True, type=Path)
    args = ap.parse_args(argv)
    result = {"cityseg_importable": cityseg_importable()}
    if not result["cityseg_importable"]:  # otherwise the checks below would prove nothing
        result["flops"] = count_model_flops(args.package)
        result["zip_masks"] = run_zip(args.zip, args.data, args.zip_output)
    args.result.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
