"""File I/O with clear errors and atomic writes.

Every writer goes through a temporary sibling path and ``os.replace`` so an interrupted
stage never leaves a file that looks complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

# cv2 threads fight with our own process pool; one thread per worker is faster overall.
cv2.setNumThreads(1)


class DataError(ValueError):
    """Bad input data: the message names the file and what is wrong with it."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit RGB image as (H, W, 3) uint8, or raise DataError naming the file."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"{path}: cannot decode image (missing, unreadable or corrupt PNG)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_png_raw(path: str | os.PathLike, dtype: type = np.uint8) -> np.ndarray:
    """Read a single-channel PNG unchanged (8- or 16-bit) and check its dtype."""
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise DataError(f"{path}: cannot decode image (missing, unreadable or corrupt PNG)")
    if arr.ndim != 2:
        raise DataError(f"{path}: expected a single-channel image, got shape {arr.shape}")
    if arr.dtype != dtype:
        raise DataError(f"{path}: expected {np.dtype(dtype).name} pixels, got {arr.dtype.name}")
    return arr


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to ``path``; it replaces ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_png(path: str | os.PathLike, arr: np.ndarray, rgb: bool = True) -> None:
    """Write a PNG atomically. 3-channel arrays are taken as RGB."""
    if arr.ndim == 3 and rgb:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), arr):
            raise OSError(f"{path}: could not write PNG")


def write_json(path: str | os.PathLike, obj: object) -> None:
    """Write JSON atomically, pretty-printed with sorted keys (stable diffs)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link ``src`` to ``dst`` (no extra disk for large image sets), copying across filesystems."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
