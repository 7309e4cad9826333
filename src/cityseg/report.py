"""The paper's tables and figures from every benchmark's metrics file.

Reads ``metrics/<benchmark>.json`` (written by ``evaluate``) and renders Markdown and LaTeX
tables plus PNG figures. Missing sections (e.g. no OOD numbers yet) are skipped, not faked.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cityseg import labels as L
from cityseg.io import atomic_path
from cityseg.plots import plt, save_figure

CLASS_KEYS = [n.replace(" ", "_") for n in L.CLASS_NAMES]

MAIN_COLUMNS = [  # (metrics key, header, format)
    ("dice", "Dice", "{:.3f}"),
    ("miou", "mIoU", "{:.3f}"),
    ("gflops", "GFLOPs", "{:.1f}"),
    ("params_m", "Params (M)", "{:.2f}"),
    ("efficiency.score", "Dice/TFLOP", "{:.2f}"),
    ("efficiency.fps_cpu", "FPS (CPU)", "{:.2f}"),
    ("robustness.dice_corrupted_mean", "Corrupted Dice", "{:.3f}"),
    ("robustness.retention", "Retention", "{:.2f}"),
    ("ood.auroc_far", "AUROC far", "{:.3f}"),
    ("ood.auroc_near", "AUROC near", "{:.3f}"),
    ("ood.score", "OOD score", "{:.3f}"),
]


def get(metrics: dict, dotted: str):
    """``get(m, "a.b")`` = m["a"]["b"], or None when absent."""
    value = metrics
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _fmt(value, fmt: str) -> str:
    return "–" if value is None else fmt.format(value)


def table(rows: list[list[str]], header: list[str]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def latex_table(rows: list[list[str]], header: list[str], caption: str) -> str:
    """A booktabs LaTeX table (IEEE paper friendly)."""
    esc = lambda s: s.replace("_", r"\_").replace("%", r"\%").replace("–", "--")  # noqa: E731
    cols = "l" + "r" * (len(header) - 1)
    body = "\n".join("    " + " & ".join(esc(c) for c in r) + r" \\" for r in rows)
    return (f"\\begin{{table}}[t]\n  \\centering\n  \\caption{{{esc(caption)}}}\n  \\begin{{tabular}}{{{cols}}}\n"
            f"    \\toprule\n    {' & '.join(esc(h) for h in header)} \\\\\n    \\midrule\n{body}\n"
            f"    \\bottomrule\n  \\end{{tabular}}\n\\end{{table}}\n")


def main_rows(metrics: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    cols = [c for c in MAIN_COLUMNS if any(get(m, c[0]) is not None for m in metrics.values())]
    header = ["Benchmark"] + [c[1] for c in cols]
    rows = [[name] + [_fmt(get(m, key), fmt) for key, _, fmt in cols] for name, m in metrics.items()]
    return header, rows


def distill_rows(metrics: dict[str, dict], students: dict[str, tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """The distillation ablation: each student's Dice beside its teacher's and its no-teacher twin's (the
    benchmark it took its recipe from). ``students``: {student: (teacher, twin)}; rows missing a number are left out."""
    header = ["Student", "Teacher (Dice)", "Without teacher", "With teacher", "Gain"]
    rows = []
    for name, (teacher, twin) in students.items():
        dice = [get(metrics.get(n, {}), "dice") for n in (teacher, twin, name)]
        if None not in dice:
            rows.append([name, f"{teacher} ({dice[0]:.3f})", f"{twin}: {dice[1]:.3f}", f"{dice[2]:.3f}",
                         f"{dice[2] - dice[1]:+.3f}"])
    return header, rows


def class_rows(metrics: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    header = ["Class"] + list(metrics)
    rows = [[name] + [_fmt(get(m, f"class_iou.{key}"), "{:.3f}") for m in metrics.values()]
            for name, key in zip(L.CLASS_NAMES, CLASS_KEYS)]
    return header, rows


def pareto_plot(points: list[tuple[str, float, float]], path: str | os.PathLike, baseline_dice: float | None = None,
                gate: float | None = None, title: str = "Dice against GFLOPs (1x3x1024x2048)") -> None:
    """Dice vs GFLOPs (log axis) for (label, gflops, dice) points; the efficiency gate
    (``efficiency.gate`` x ``baseline_dice``) as a line when both are given."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for label, gflops, dice in points:
        ax.scatter(gflops, dice, s=40, zorder=3)
        ax.annotate(label, (gflops, dice), textcoords="offset points", xytext=(5, 4), fontsize=8)
    if baseline_dice is not None and gate is not None:
        ax.axhline(gate * baseline_dice, color="0.5", ls="--", lw=1, label=f"efficiency gate ({gate:.0%} of baseline)")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs at 1x3x1024x2048 (FlopCounterMode, log scale)")
    ax.set_ylabel("Dice (competition)")
    ax.grid(alpha=0.3, which="both")
    ax.set_title(title)
    save_figure(fig, path)


def class_plot(metrics: dict[str, dict], path: str | os.PathLike) -> None:
    """Per-class IoU of every benchmark side by side."""
    names = list(metrics)
    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(CLASS_KEYS))
    w = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        vals = [get(metrics[name], f"class_iou.{k}") or 0.0 for k in CLASS_KEYS]
        ax.bar(x + (i - (len(names) - 1) / 2) * w, vals, w, label=name)
    ax.set_xticks(x, L.CLASS_NAMES, rotation=60, ha="right")
    ax.set_ylabel("IoU")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(ncol=len(names), fontsize=8, loc="upper right")
    ax.set_title("Per-class IoU by benchmark")
    save_figure(fig, path)


def write_report(metrics: dict[str, dict], out: str | os.PathLike, gate: float,
                 descriptions: dict[str, str] | None = None, students: dict[str, tuple[str, str]] | None = None) -> None:
    """Write ``summary.md``, ``tables.tex``, ``pareto.png`` and ``per_class.png`` into ``out``; ``students``
    ({student: (teacher, twin)}) adds the distillation ablation."""
    out = Path(out)
    header, rows = main_rows(metrics)
    dheader, drows = distill_rows(metrics, students or {})
    cheader, crows = class_rows(metrics)
    md = ["# Results", "", "Generated by the `report` stage from `metrics/*.json`; do not edit by hand.", ""]
    if descriptions:
        md += [f"- **{n}**: {d}" for n, d in descriptions.items() if n in metrics] + [""]
    md += ["## Main results", "", table(rows, header), ""]
    base = metrics.get("baseline", {}).get("dice")
    if base is not None:
        md += [f"Efficiency gate (`efficiency.gate`): a Dice/TFLOP score counts only with Dice >= {gate:g} x "
               f"baseline {base:.3f} = {gate * base:.3f}.", ""]
    if drows:
        md += ["## Distillation", "", "Each student against the same model and recipe trained without its teacher "
               "(Dice on the evaluation split).", "", table(drows, dheader), ""]
    md += ["## Per-class IoU", "", table(crows, cheader), ""]
    with atomic_path(out / "summary.md") as tmp:
        tmp.write_text("\n".join(md))
    with atomic_path(out / "tables.tex") as tmp:
        tmp.write_text(latex_table(rows, header, "Main results per benchmark") + "\n"
                       + (latex_table(drows, dheader, "Distillation ablation") + "\n" if drows else "")
                       + latex_table(crows, cheader, "Per-class IoU"))
    points = [(n, m["gflops"], m["dice"]) for n, m in metrics.items() if "gflops" in m and "dice" in m]
    pareto_plot(points, out / "pareto.png", base, gate)
    class_plot(metrics, out / "per_class.png")
