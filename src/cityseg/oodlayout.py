"""The OOD sets' folder layout, ``<root>/{val,test}/{near,far}/``, and its reader.

Apart from ``cityseg.oodsets`` (which writes the sets and needs the SynthCity renderer), so that
evaluation reads OOD sets without depending on the dataset generator.
"""

from __future__ import annotations

import os
from pathlib import Path

from cityseg.io import DataError

SPLITS = ("val", "test")
GROUPS = ("near", "far")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def images_under(folder: Path) -> list[Path]:
    """Every visible .png/.jpg/.jpeg file under ``folder``, recursively, sorted."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith("."))


def list_ood_images(root: str | os.PathLike) -> dict[str, list[Path]]:
    """Images of ``root/{val,test}/{near,far}/`` (recursive, sorted) as {"near_val": [...], ...}.

    Every folder must exist; one group may be empty (e.g. a far-only set), but each split needs at
    least one OOD image.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: OOD image root not found (run the oodsets stage)")
    out: dict[str, list[Path]] = {}
    for split in SPLITS:
        for group in GROUPS:
            folder = root / split / group
            if not folder.is_dir():
                raise DataError(f"{folder}: OOD folder missing; expected {root}/{{val,test}}/{{near,far}}/")
            out[f"{group}_{split}"] = images_under(folder)
        if not any(out[f"{g}_{split}"] for g in GROUPS):
            raise DataError(f"{root / split}: no OOD images in near/ or far/")
    return out
