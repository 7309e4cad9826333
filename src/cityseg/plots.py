"""Static figures (PNG) for the README and the paper; matplotlib with the Agg backend, no display needed."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from cityseg import labels as L  # noqa: E402
from cityseg.io import atomic_path, read_image, read_json, read_png_raw  # noqa: E402


def save_figure(fig, path: str | os.PathLike) -> None:
    """Save a matplotlib figure atomically (format from the suffix) and close it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)


def sample_grid(prepared: str | os.PathLike, split: str, path: str | os.PathLike, n: int = 4) -> None:
    """Rows of (image | coloured trainIds | depth) from a prepared dataset."""
    prepared = Path(prepared)
    info = read_json(prepared / "manifest.json")["splits"][split]
    stems = info["stems"][:n]
    cols = 3 if info["has_depth"] else 2
    fig, axes = plt.subplots(len(stems), cols, figsize=(4.2 * cols, 2.3 * len(stems)), squeeze=False)
    for row, stem in zip(axes, stems):
        city = stem.split("_")[0]
        image = read_image(prepared / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        label = read_png_raw(prepared / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png")
        row[0].imshow(image)
        row[1].imshow(L.colorize(label))
        if cols == 3:
            depth = read_png_raw(prepared / "depth" / split / city / f"{stem}_depth.png", np.uint16) / 100.0
            shown = np.ma.masked_equal(depth, 0)
            im = row[2].imshow(np.log10(np.maximum(shown, 1)), cmap="magma_r", vmin=0, vmax=np.log10(300))
        for ax in row:
            ax.set_axis_off()
    titles = ["image", "labels (trainIds)", "depth (log10 m; white = unknown)"][:cols]
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=10)
    if cols == 3:
        fig.colorbar(im, ax=axes[:, 2].tolist(), shrink=0.6, label="log10 depth [m]")
    save_figure(fig, path)


def per_class_plot(metrics: dict, png: str | os.PathLike, csv: str | os.PathLike, title: str = "") -> None:
    """Horizontal bars of per-class IoU and Dice, plus the same numbers as CSV (for ``dvc plots``)."""
    names = list(L.CLASS_NAMES)
    iou = [metrics["class_iou"][n.replace(" ", "_")] for n in names]
    dice = [metrics["class_dice"][n.replace(" ", "_")] for n in names]
    with atomic_path(csv) as tmp:
        rows = ["class,iou,dice"] + [f"{n},{_csv(i)},{_csv(d)}" for n, i, d in zip(names, iou, dice)]
        tmp.write_text("\n".join(rows) + "\n")
    fig, ax = plt.subplots(figsize=(6, 6))
    y = np.arange(len(names))
    ax.barh(y - 0.2, [v or 0 for v in iou], 0.4, label="IoU", color="#4c72b0")
    ax.barh(y + 0.2, [v or 0 for v in dice], 0.4, label="Dice (per image, mean)", color="#dd8452")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(f"{title}: Dice {metrics['dice']:.3f}, mIoU {metrics['miou']:.3f}")
    save_figure(fig, png)


def _csv(v) -> str:
    return "" if v is None else f"{v:.6f}"


def confusion_plot(matrix: np.ndarray, png: str | os.PathLike, title: str = "") -> None:
    """Row-normalised confusion matrix (rows = ground truth), log-free so small classes stay readable."""
    m = np.asarray(matrix, np.float64)
    rows = m.sum(1, keepdims=True)
    norm = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ticks = np.arange(len(L.CLASS_NAMES))
    ax.set_xticks(ticks, L.CLASS_NAMES, rotation=90, fontsize=8)
    ax.set_yticks(ticks, L.CLASS_NAMES, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(f"{title}: confusion (row-normalised)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    save_figure(fig, png)
