"""The out-of-distribution (OOD) benchmark: score one segmentation model's image-level refusal.

Image sets (names used throughout as keys of ``OODEvaluation.sets``):

* ``id_val`` / ``id_test``: in-distribution images with labels, from the prepared dataset's ``val``
  split (threshold calibration) and the evaluation split. When the evaluation split *is* ``val``
  (real Cityscapes, whose test labels are private) its images are halved (even positions calibrate,
  odd positions test), so the threshold is never chosen on the images it is scored on.
* ``near_val`` / ``far_val`` / ``near_test`` / ``far_test``: unlabelled OOD images under
  ``<ood_root>/{val,test}/{near,far}/`` (written by the ``oodsets`` stage).

Every image is resized to the network's input size and scored from the logits at that size, as the
submitted ``OODSegmenter`` does (float32, no autocast, so the deployed decisions match these). ID
images also get their competition Dice at the label's resolution (logits upsampled bilinearly).
Mahalanobis uses pooled features of the same forward pass, with a Gaussian fitted on the prepared
train split. Conventions of `cityseg.ood`: higher score = more OOD, ``include = score <= threshold``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from cityseg import ood
from cityseg.dataset import full_res_samples, load_cache, read_manifest, read_sample
from cityseg.io import DataError, atomic_path, read_image
from cityseg.metrics import DiceMeter
from cityseg.oodsets import GROUPS, list_ood_images
from cityseg.postprocess import to_labels
from cityseg.transforms import normalize_batch

SET_NAMES = ("id_val", "id_test", "near_val", "far_val", "near_test", "far_test")
CALIBRATION_SPLIT = "val"


# --------------------------------------------------------------------------------------------
# OOD image folders
# --------------------------------------------------------------------------------------------




# --------------------------------------------------------------------------------------------
# Forward pass: logits at the input size + pooled features from one pass
# --------------------------------------------------------------------------------------------
class _FeatureTap:
    """Forward hook that keeps the pooled output (B, D) of one module, as `ood.OODSegmenter` does."""

    def __init__(self, model: nn.Module, layer: str | None):
        self.name = ood.resolve_feature_layer(model, layer)
        self.module = model.get_submodule(self.name)
        self.captured: list[torch.Tensor] = []

    def __enter__(self) -> "_FeatureTap":
        self.handle = self.module.register_forward_hook(lambda _m, _i, out: self.captured.append(ood._pool(out)))
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()

    def pop(self) -> torch.Tensor:
        if not self.captured:
            raise RuntimeError(f"feature layer {self.name!r} was not called during the forward pass")
        feats = self.captured[-1]
        self.captured.clear()
        return feats


def _resize_to(image: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    if image.shape[:2] == tuple(input_size):
        return np.ascontiguousarray(image)
    return cv2.resize(image, (input_size[1], input_size[0]), interpolation=cv2.INTER_LINEAR)  # same as predict_logits


def _to_batch(images: Sequence[np.ndarray], input_size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uint8 RGB images of any sizes -> (B, 3, h, w) normalised float32 at the input size."""
    stacked = np.stack([_resize_to(im, input_size) for im in images])
    return normalize_batch(torch.from_numpy(stacked).to(device))


@torch.inference_mode()
def _forward(model: nn.Module, images: Sequence[np.ndarray], input_size: tuple[int, int], device: torch.device,
             tap: _FeatureTap) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, C, h, w) float32 at the input size, pooled features (B, D)), both on ``device``."""
    logits = model(_to_batch(images, input_size, device)).float()
    return logits, tap.pop()


def _batches(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def fit_mahalanobis(model: nn.Module, prepared: str | os.PathLike, input_size: tuple[int, int], device: torch.device,
                    feature_layer: str | None = None, batch_size: int = 16, max_images: int = 1000,
                    progress: bool = True) -> ood.MahalanobisScorer:
    """Fit the ID feature Gaussian on pooled features of the prepared train cache (resized to the input size).

    At most ``max_images`` images, evenly spaced over the split (Cityscapes has 2975).
    """
    cache = load_cache(prepared, "train")
    n = len(cache)
    if n < 2:
        raise DataError(f"{prepared}: the train split has {n} image(s); Mahalanobis needs at least 2")
    idx = np.unique(np.linspace(0, n - 1, min(n, max(2, int(max_images)))).round().astype(int))
    model.eval()
    feats = []
    for chunk in tqdm(list(_batches(idx, batch_size)), desc="ood features (train)", unit="batch", disable=not progress):
        x = _to_batch([np.asarray(cache.images[i]) for i in chunk], input_size, device)
        feats.append(ood.pooled_features(model, x, feature_layer).double().cpu())
    return ood.MahalanobisScorer().fit(torch.cat(feats))


# --------------------------------------------------------------------------------------------
# Image-level scores
# --------------------------------------------------------------------------------------------
@dataclass
class ImageScores:
    """Scores of one image set: ``scores[method]`` (N,), higher = more OOD; ``dice`` (N,) for ID sets."""

    names: list[str]
    scores: dict[str, np.ndarray]
    dice: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)


def method_names(method: str, percentile: float = 95.0) -> list[str]:
    """Every method reported: 4 pixel scores x {mean, p<percentile>}, "mahalanobis", and ``method``."""
    ood.parse_method(method)
    q = f"p{percentile:g}".replace(".", "_")
    names = [f"{s}_{agg}" for s in ood.PIXEL_SCORES for agg in ("mean", q)] + ["mahalanobis"]
    return names if method in names else names[:-1] + [method, "mahalanobis"]


def _score_batch(logits: torch.Tensor, feats: torch.Tensor, methods: Sequence[str], temperature: float,
                 percentile: float, maha: tuple[torch.Tensor, torch.Tensor]) -> dict[str, np.ndarray]:
    out = {k: v for k, v in ood.image_scores(logits, percentile, temperature).items() if k in methods}
    for m in methods:
        if m == "mahalanobis":
            out[m] = ood.mahalanobis_distance(feats, *(t.to(feats.device) for t in maha))
        elif m not in out:
            name, agg = ood.parse_method(m)
            out[m] = ood.aggregate(ood.pixel_score(logits, name, temperature), agg)
    return {m: out[m].detach().cpu().double().numpy() for m in methods}


def _empty(methods: Sequence[str]) -> dict[str, list[np.ndarray]]:
    return {m: [] for m in methods}


def _cat(parts: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {m: np.concatenate(v) if v else np.zeros(0) for m, v in parts.items()}


def score_id_images(model: nn.Module, samples: Sequence[Any], input_size: tuple[int, int], device: torch.device,
                    tap: _FeatureTap, methods: Sequence[str], temperature: float, percentile: float,
                    maha: tuple[torch.Tensor, torch.Tensor], batch_size: int, desc: str, progress: bool,
                    min_area: float = 0.0) -> ImageScores:
    """Scores and competition Dice of labelled prepared samples (`dataset.Sample`)."""
    meter, parts, names = DiceMeter(), _empty(methods), []
    for chunk in tqdm(list(_batches(samples, batch_size)), desc=desc, unit="batch", disable=not progress):
        data = [read_sample(s) for s in chunk]
        logits, feats = _forward(model, [d[0] for d in data], input_size, device, tap)
        for m, v in _score_batch(logits, feats, methods, temperature, percentile, maha).items():
            parts[m].append(v)
        for i, (sample, (_, label, _, _)) in enumerate(zip(chunk, data)):
            if label is None:
                raise DataError(f"{sample.image_path}: no label; OOD evaluation needs labelled ID images")
            up = F.interpolate(logits[i : i + 1], size=label.shape, mode="bilinear", align_corners=False)
            meter.update(to_labels(up[0], min_area).cpu().numpy(), label, batched=False)
            names.append(sample.stem)
    return ImageScores(names, _cat(parts), meter.per_image())


def score_ood_images(model: nn.Module, paths: Sequence[Path], input_size: tuple[int, int], device: torch.device,
                     tap: _FeatureTap, methods: Sequence[str], temperature: float, percentile: float,
                     maha: tuple[torch.Tensor, torch.Tensor], batch_size: int, desc: str, progress: bool,
                     root: Path | None = None) -> ImageScores:
    """Scores of unlabelled images of any sizes (all resized to the input size, so they batch together)."""
    parts = _empty(methods)
    for chunk in tqdm(list(_batches(paths, batch_size)), desc=desc, unit="batch", disable=not progress):
        logits, feats = _forward(model, [read_image(p) for p in chunk], input_size, device, tap)
        for m, v in _score_batch(logits, feats, methods, temperature, percentile, maha).items():
            parts[m].append(v)
    names = [(p.relative_to(root) if root else p).as_posix() for p in paths]
    return ImageScores(names, _cat(parts))


# --------------------------------------------------------------------------------------------
# Metrics and calibration
# --------------------------------------------------------------------------------------------
def calibrate(scores_id: np.ndarray, dice_id: np.ndarray, scores_ood: np.ndarray) -> tuple[float, float]:
    """`ood.calibrate_threshold`, then moved to the middle of the gap above it: (threshold, val score).

    Any threshold in [t, next higher validation score) makes the same validation decisions; the
    midpoint keeps a margin on both sides, so tiny numerical differences (another batch size, the
    packaged model) do not flip the image that sits exactly on t.
    """
    t, value = ood.calibrate_threshold(scores_id, dice_id, scores_ood)
    if math.isfinite(t):
        allv = np.concatenate([np.ravel(scores_id), np.ravel(scores_ood)])
        above = allv[allv > t]
        if above.size:
            mid = t + (float(above.min()) - t) / 2
            if t < mid < above.min():
                t = mid
    return float(t), float(value)


def _detection(sid: np.ndarray, sood: np.ndarray) -> dict[str, float | None]:
    if sood.size == 0 or sid.size == 0:
        return {"auroc": None, "fpr95": None, "aupr": None}
    return {"auroc": ood.auroc(sid, sood), "fpr95": ood.fpr_at_tpr(sid, sood, 0.95), "aupr": ood.aupr_out(sid, sood)}


def _num(v: Any) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def _frac(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def method_metrics(sets: dict[str, ImageScores], method: str) -> tuple[dict[str, Any], float]:
    """Detection metrics (test and ``val_``-prefixed), the calibrated threshold and the test OOD score."""
    out: dict[str, Any] = {}
    for split, prefix in (("test", ""), (CALIBRATION_SPLIT, "val_")):
        sid = sets[f"id_{split}"].scores[method]
        for group in GROUPS:
            for key, v in _detection(sid, sets[f"{group}_{split}"].scores[method]).items():
                out[f"{prefix}{key}_{group}"] = _num(v)
    s = {name: st.scores[method] for name, st in sets.items()}
    t, val_score = calibrate(s["id_val"], sets["id_val"].dice, np.concatenate([s["near_val"], s["far_val"]]))
    inc = {name: v <= t for name, v in s.items()}
    out["score"] = _num(ood.competition_ood_score(sets["id_test"].dice, inc["id_test"],
                                                  np.concatenate([inc["near_test"], inc["far_test"]])))
    out["score_val"] = _num(val_score)
    out["threshold"] = float(t) if math.isfinite(t) else None  # unrounded: it must reproduce the decisions
    out["threshold_policy"] = "calibrated" if math.isfinite(t) else ("accept_all" if t > 0 else "refuse_all")
    out["accepted_id_frac"] = _num(_frac(inc["id_test"]))
    out["refused_near_frac"] = _num(_frac(~inc["near_test"]))
    out["refused_far_frac"] = _num(_frac(~inc["far_test"]))
    return out, t


@dataclass
class OODEvaluation:
    """Everything the OOD benchmark measured for one model (see `evaluate_ood`)."""

    method: str  # the configured refusal method
    methods: list[str]
    sets: dict[str, ImageScores]
    thresholds: dict[str, float]  # per method, may be +inf (accept everything)
    metrics: dict[str, Any]  # JSON-ready, goes under "ood" in the metrics file
    scorer: ood.MahalanobisScorer
    feature_layer: str
    temperature: float = 1.0
    notes: list[str] = field(default_factory=list)

    def include(self, set_name: str, method: str | None = None) -> np.ndarray:
        """Decisions (N,) bool of one set under ``method``'s calibrated threshold."""
        method = method or self.method
        return self.sets[set_name].scores[method] <= self.thresholds[method]


def _id_samples(prepared: str | os.PathLike, eval_split: str) -> tuple[list, list, list[str]]:
    manifest = read_manifest(prepared)
    if CALIBRATION_SPLIT not in manifest["splits"]:
        raise DataError(f"{prepared}: no '{CALIBRATION_SPLIT}' split to calibrate the OOD threshold on")
    for split in {CALIBRATION_SPLIT, eval_split}:
        if not manifest["splits"].get(split, {}).get("has_labels", False):
            raise DataError(f"{prepared}: split '{split}' has no labels; the OOD benchmark needs labelled ID images")
    val = full_res_samples(prepared, CALIBRATION_SPLIT)
    if eval_split != CALIBRATION_SPLIT:
        return val, full_res_samples(prepared, eval_split), []
    if len(val) < 2:
        raise DataError(f"{prepared}: '{CALIBRATION_SPLIT}' has {len(val)} image(s); need 2 to calibrate and test on halves")
    note = (f"evaluation split is '{CALIBRATION_SPLIT}': its even positions calibrate the threshold, "
            "its odd positions test it")
    return val[0::2], val[1::2], [note]


def evaluate_ood(model: nn.Module, prepared: str | os.PathLike, ood_root: str | os.PathLike, *,
                 input_size: Sequence[int], eval_split: str, method: str = "energy_p95", temperature: float = 1.0,
                 percentile: float = 95.0, batch_size: int = 8, device: torch.device | str = "cpu",
                 feature_layer: str | None = None, fit_images: int = 1000, progress: bool = True,
                 min_area: float = 0.0) -> OODEvaluation:
    """Score ``model`` on the OOD benchmark: every method's detection metrics, calibrated threshold and score.

    ``metrics`` keys (the configured ``method``, on test): auroc/fpr95/aupr _near/_far, score,
    score_accept_all, score_oracle, threshold, accepted_id_frac, refused_near_frac, refused_far_frac;
    ``methods.<m>`` holds the same per method, plus ``val_``-prefixed detection metrics. ID Dice uses
    ``postprocess.to_labels(.., min_area)``.
    """
    methods = method_names(method, percentile)
    if not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    device = torch.device(device)
    input_size = (int(input_size[0]), int(input_size[1]))
    ood_root = Path(ood_root)
    ood_paths = list_ood_images(ood_root)
    val_samples, test_samples, notes = _id_samples(prepared, eval_split)
    model.eval()

    scorer = fit_mahalanobis(model, prepared, input_size, device, feature_layer, batch_size=max(batch_size, 16),
                             max_images=fit_images, progress=progress)
    maha = scorer.torch_buffers()
    sets: dict[str, ImageScores] = {}
    common = dict(input_size=input_size, device=device, methods=methods, temperature=temperature,
                  percentile=percentile, maha=maha, batch_size=int(batch_size), progress=progress)
    with _FeatureTap(model, feature_layer) as tap:
        sets["id_val"] = score_id_images(model, val_samples, tap=tap, desc="ood id val", min_area=min_area, **common)
        sets["id_test"] = score_id_images(model, test_samples, tap=tap, desc=f"ood id {eval_split}",
                                          min_area=min_area, **common)
        for name in SET_NAMES[2:]:
            sets[name] = score_ood_images(model, ood_paths[name], tap=tap, desc=f"ood {name}", root=ood_root, **common)

    # Images without any scorable class have no Dice (the competition Dice skips them): leave them out.
    for name in ("id_val", "id_test"):
        st = sets[name]
        keep = ~np.isnan(st.dice)
        if not keep.all():
            notes.append(f"{name}: {int((~keep).sum())} image(s) without labelled pixels left out")
            sets[name] = ImageScores([n for n, k in zip(st.names, keep) if k], {m: v[keep] for m, v in st.scores.items()}, st.dice[keep])
        if len(sets[name]) == 0:
            raise DataError(f"{prepared}: no labelled ID images for {name}")
    for name, st in sets.items():
        for m, v in st.scores.items():
            if not np.isfinite(v).all():
                raise ValueError(f"model gives non-finite {m} scores on {name} (diverged weights?)")

    per_method, thresholds = {}, {}
    for m in methods:
        per_method[m], thresholds[m] = method_metrics(sets, m)
    dice_test = sets["id_test"].dice
    n_ood_test = len(sets["near_test"]) + len(sets["far_test"])
    metrics = {
        "method": method,
        **per_method[method],
        "score_accept_all": _num(ood.accept_all_score(dice_test, n_ood_test)),
        "score_oracle": _num(ood.oracle_score(dice_test)),
        "id_dice_val": _num(sets["id_val"].dice.mean()),
        "id_dice_test": _num(dice_test.mean()),
        "images": {name: len(st) for name, st in sets.items()},
        "id_split": eval_split,
        "feature_layer": tap.name,
        "mahalanobis_fit_images": int(min(len(load_cache(prepared, "train")), max(2, fit_images))),
        "methods": per_method,
    }
    if notes:
        metrics["notes"] = notes
    return OODEvaluation(method, methods, sets, thresholds, metrics, scorer, tap.name, float(temperature), notes)


# --------------------------------------------------------------------------------------------
# The deployable model
# --------------------------------------------------------------------------------------------
def build_ood_model(model: nn.Module, method: str, threshold: float, scorer: ood.MahalanobisScorer | None = None,
                    feature_layer: str | None = None, temperature: float = 1.0) -> ood.OODSegmenter:
    """``OODSegmenter`` whose forward returns ``(logits, include)`` with the calibrated rule.

    The Mahalanobis buffers are stored whenever a scorer is given (needed for method "mahalanobis").
    """
    if ood.parse_method(method)[0] == "mahalanobis" and scorer is None:
        raise ValueError("scorer: method 'mahalanobis' needs the fitted MahalanobisScorer")
    seg = ood.OODSegmenter(model, method=method, threshold=threshold, temperature=temperature, feature_layer=feature_layer)
    if scorer is not None:
        seg.set_mahalanobis(scorer)
    tensors = [*model.parameters(), *model.buffers()]
    return seg.to(tensors[0].device if tensors else "cpu").eval()


def ood_model_from(evaluation: OODEvaluation, model: nn.Module, method: str | None = None) -> ood.OODSegmenter:
    """`build_ood_model` with an evaluation's calibrated threshold for ``method`` (default: the configured one)."""
    method = method or evaluation.method
    return build_ood_model(model, method, evaluation.thresholds[method], evaluation.scorer,
                           evaluation.feature_layer, evaluation.temperature)


def save_ood_model(ood_model: ood.OODSegmenter, path: str | os.PathLike) -> None:
    """Write the OODSegmenter's state_dict (loadable with ``weights_only=True``) atomically."""
    state = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in ood_model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# --------------------------------------------------------------------------------------------
# Report: table, plots, per-image CSV
# --------------------------------------------------------------------------------------------
def _fmt(v: Any, digits: int = 3) -> str:
    return "–" if v is None else f"{v:.{digits}f}"


def method_table(ood_metrics: dict[str, Any]) -> str:
    """Markdown table of every method on test: AUROC/FPR95 near/far and the OOD score (configured one in bold)."""
    rows = ["| method | AUROC near | AUROC far | FPR95 near | FPR95 far | OOD score |",
            "|---|---:|---:|---:|---:|---:|"]
    for m, r in ood_metrics["methods"].items():
        name = f"**{m}**" if m == ood_metrics.get("method") else m
        cells = [r.get(k) for k in ("auroc_near", "auroc_far", "fpr95_near", "fpr95_far", "score")]
        rows.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
    for label, key in (("accept everything", "score_accept_all"), ("oracle (mean ID Dice)", "score_oracle")):
        rows.append(f"| _{label}_ | – | – | – | – | {_fmt(ood_metrics.get(key))} |")
    return "\n".join(rows) + "\n"


def roc_plot(evaluation: OODEvaluation, path: str | os.PathLike, title: str = "") -> None:
    """ROC curves (OOD positive) on test, near and far panels: the configured method bold, the others light."""
    from sklearn.metrics import roc_curve

    from cityseg.plots import plt, save_figure

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), sharey=True)
    colours = plt.get_cmap("tab10")
    for ax, group in zip(axes, GROUPS):
        sid, other = evaluation.sets["id_test"], evaluation.sets[f"{group}_test"]
        for i, m in enumerate(evaluation.methods):
            if len(other) == 0:
                break
            y = np.r_[np.zeros(len(sid)), np.ones(len(other))]
            s = np.r_[sid.scores[m], other.scores[m]]
            fpr, tpr, _ = roc_curve(y, s)
            auc = ood.auroc(sid.scores[m], other.scores[m])
            bold = m == evaluation.method
            ax.plot(fpr, tpr, color="black" if bold else colours(i % 10), lw=2.4 if bold else 1.0,
                    alpha=1.0 if bold else 0.55, zorder=3 if bold else 2, label=f"{m} ({auc:.2f})")
        ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=0.8)
        ax.set_title(f"ID vs {group}-OOD (test)" + ("" if len(other) else ": no images"))
        ax.set_xlabel("false positive rate (ID flagged as OOD)")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.grid(alpha=0.3)
        if len(other):
            ax.legend(fontsize=7, loc="lower right", title="method (AUROC)", title_fontsize=7)
    axes[0].set_ylabel("true positive rate (OOD flagged)")
    if title:
        fig.suptitle(title)
    save_figure(fig, path)


def score_histogram(evaluation: OODEvaluation, path: str | os.PathLike, method: str | None = None,
                    title: str = "") -> None:
    """Histograms of ``method``'s test scores for ID, near and far images, with the calibrated threshold."""
    from cityseg.plots import plt, save_figure

    method = method or evaluation.method
    data = {"ID": evaluation.sets["id_test"].scores[method],
            "near-OOD": evaluation.sets["near_test"].scores[method],
            "far-OOD": evaluation.sets["far_test"].scores[method]}
    edges = np.histogram_bin_edges(np.concatenate(list(data.values())), bins=30)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for (label, v), colour in zip(data.items(), ("#4c72b0", "#dd8452", "#c44e52")):
        if v.size:
            ax.hist(v, bins=edges, alpha=0.55, color=colour, label=f"{label} (n={v.size})")
    t = evaluation.thresholds[method]
    if math.isfinite(t):
        ax.axvline(t, color="black", ls="--", lw=1.5, label=f"threshold {t:.4g} (refuse right)")
    else:
        ax.text(0.99, 0.95, "threshold: accept everything", transform=ax.transAxes, ha="right", va="top", fontsize=8)
    ax.set_xlabel(f"{method} (higher = more OOD)")
    ax.set_ylabel("images")
    ax.legend(fontsize=8)
    ax.set_title(title or f"{method} on test")
    save_figure(fig, path)


def write_scores_csv(evaluation: OODEvaluation, path: str | os.PathLike) -> None:
    """One row per image: set, name, Dice (ID only), include under the configured method, every score."""
    header = ["set", "name", "dice", "include"] + evaluation.methods
    lines = [",".join(header)]
    for set_name, st in evaluation.sets.items():
        inc = evaluation.include(set_name)
        for i, name in enumerate(st.names):
            dice = "" if st.dice is None else f"{st.dice[i]:.6f}"
            vals = [f"{st.scores[m][i]:.6g}" for m in evaluation.methods]
            lines.append(",".join([set_name, name.replace(",", "_"), dice, str(bool(inc[i])).lower()] + vals))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")

