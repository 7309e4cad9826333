"""The out-of-distribution (OOD) benchmark: score one segmentation model's image-level refusal.

Image sets (names used throughout as keys of ``OODEvaluation.sets``):

* ``id_val`` / ``id_test``: in-distribution images with labels, from the calibration split (the
  evaluation's selection split; ``val`` by default) and the evaluation split. When the evaluation split
  *is* the calibration split its images are halved (even positions calibrate, odd positions test), so
  the threshold is never chosen on the images it is scored on.
* ``near_val`` / ``far_val`` / ``near_test`` / ``far_test``: unlabelled OOD images under
  ``<ood_root>/{val,test}/{near,far}/`` (written by the ``oodsets`` stage).

Every image is resized to the network's input size and scored from the logits at that size, as the
submitted ``OODSegmenter`` does: through `cityseg.inference` at `inference.FP32` (float32, no
autocast, so the deployed decisions match these), not at evaluation precision. ID images also get
their competition Dice at the label's resolution (logits upsampled bilinearly).
Mahalanobis uses pooled features of the same forward pass, with a Gaussian fitted on the prepared
train split. Conventions of `cityseg.ood`: higher score = more OOD, ``include = score <= threshold``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from cityseg import ood
from cityseg.config import OODConfig
from cityseg.dataset import full_res_samples, load_cache, no_split, read_manifest, read_sample
from cityseg.evaluate import json_number
from cityseg.inference import FP32, Predictor, forward, logits_at, to_batch
from cityseg.io import DataError, atomic_path, read_image
from cityseg.metrics import DiceMeter
from cityseg.oodlayout import GROUPS, list_ood_images
from cityseg.postprocess import to_labels
from cityseg.progress import progress as progress_bar

SET_NAMES = ("id_val", "id_test", "near_val", "far_val", "near_test", "far_test")
CALIBRATION_SPLIT = "val"  # the default ID calibration split; the evaluate stage passes its selection split
AUTO = "auto"  # ood.method: choose the method on the validation sets


# --------------------------------------------------------------------------------------------
# Forward pass: logits at the input size + pooled features from one pass
# --------------------------------------------------------------------------------------------
def _forward(model: nn.Module, images: Sequence[np.ndarray], input_size: tuple[int, int], device: torch.device,
             tap: ood.FeatureTap) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (B, C, h, w) float32 at the input size, pooled features (B, D)), both on ``device``."""
    logits = forward(model, to_batch(images, input_size, device), device, FP32)
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
    for chunk in progress_bar(list(_batches(idx, batch_size)), desc="ood features (train)", unit="batch", enabled=progress):
        x = to_batch([np.asarray(cache.images[i]) for i in chunk], input_size, device)
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


def method_names(method: str, percentile: float) -> list[str]:
    """Every method reported: 4 pixel scores x {mean, p<percentile>}, "mahalanobis", and ``method``
    (``auto``: no extra one). This order breaks ties of `choose_method`."""
    if method != AUTO:
        ood.parse_method(method)
    q = ood.agg_name(percentile)
    names = [f"{s}_{agg}" for s in ood.PIXEL_SCORES for agg in ("mean", q)] + ["mahalanobis"]
    return names if method in names or method == AUTO else names[:-1] + [method, "mahalanobis"]


def choose_method(per_method: dict[str, dict[str, Any]]) -> str:
    """``ood.method: auto``: the method with the highest validation OOD score (``score_val``, as rounded in the
    metrics); ties go to the first in ``per_method``'s order (`method_names`)."""
    def val(m: str) -> float:
        v = per_method[m]["score_val"]
        return v if v is not None else -math.inf

    return max(per_method, key=val)  # max keeps the first of equal keys


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
                    tap: ood.FeatureTap, methods: Sequence[str], temperature: float, percentile: float,
                    maha: tuple[torch.Tensor, torch.Tensor], batch_size: int, desc: str, progress: bool,
                    min_area: float) -> ImageScores:
    """Scores and competition Dice of labelled prepared samples (`dataset.Sample`)."""
    meter, parts, names = DiceMeter(), _empty(methods), []
    for chunk in progress_bar(list(_batches(samples, batch_size)), desc=desc, unit="batch", enabled=progress):
        data = [read_sample(s) for s in chunk]
        logits, feats = _forward(model, [d[0] for d in data], input_size, device, tap)
        for m, v in _score_batch(logits, feats, methods, temperature, percentile, maha).items():
            parts[m].append(v)
        for i, (sample, (_, label, _, _)) in enumerate(zip(chunk, data)):
            if label is None:
                raise DataError(f"{sample.image_path}: no label; OOD evaluation needs labelled ID images")
            up = logits_at(logits[i : i + 1], label.shape)
            meter.update(to_labels(up[0], min_area).cpu().numpy(), label, batched=False)
            names.append(sample.stem)
    return ImageScores(names, _cat(parts), meter.per_image())


def score_ood_images(model: nn.Module, paths: Sequence[Path], input_size: tuple[int, int], device: torch.device,
                     tap: ood.FeatureTap, methods: Sequence[str], temperature: float, percentile: float,
                     maha: tuple[torch.Tensor, torch.Tensor], batch_size: int, desc: str, progress: bool,
                     root: Path | None = None) -> ImageScores:
    """Scores of unlabelled images of any sizes (all resized to the input size, so they batch together)."""
    parts = _empty(methods)
    for chunk in progress_bar(list(_batches(paths, batch_size)), desc=desc, unit="batch", enabled=progress):
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


def _frac(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if mask.size else None


def method_metrics(sets: dict[str, ImageScores], method: str) -> tuple[dict[str, Any], float]:
    """Detection metrics (test and ``val_``-prefixed), the calibrated threshold and the test OOD score."""
    out: dict[str, Any] = {}
    for split, prefix in (("test", ""), (CALIBRATION_SPLIT, "val_")):
        sid = sets[f"id_{split}"].scores[method]
        for group in GROUPS:
            for key, v in _detection(sid, sets[f"{group}_{split}"].scores[method]).items():
                out[f"{prefix}{key}_{group}"] = json_number(v)
    s = {name: st.scores[method] for name, st in sets.items()}
    t, val_score = calibrate(s["id_val"], sets["id_val"].dice, np.concatenate([s["near_val"], s["far_val"]]))
    inc = {name: v <= t for name, v in s.items()}
    out["score"] = json_number(ood.competition_ood_score(sets["id_test"].dice, inc["id_test"],
                                                  np.concatenate([inc["near_test"], inc["far_test"]])))
    out["score_val"] = json_number(val_score)
    out["threshold"] = float(t) if math.isfinite(t) else None  # unrounded: it must reproduce the decisions
    out["threshold_policy"] = "calibrated" if math.isfinite(t) else ("accept_all" if t > 0 else "refuse_all")
    out["accepted_id_frac"] = json_number(_frac(inc["id_test"]))
    out["refused_near_frac"] = json_number(_frac(~inc["near_test"]))
    out["refused_far_frac"] = json_number(_frac(~inc["far_test"]))
    return out, t


@dataclass
class OODEvaluation:
    """Everything the OOD benchmark measured for one model (see `evaluate_ood`)."""

    method: str  # the refusal method: the configured one, or the one ``auto`` chose
    methods: list[str]
    sets: dict[str, ImageScores]
    thresholds: dict[str, float]  # per method, may be +inf (accept everything)
    metrics: dict[str, Any]  # JSON-ready, goes under "ood" in the metrics file
    scorer: ood.MahalanobisScorer
    feature_layer: str
    temperature: float
    notes: list[str] = field(default_factory=list)

    def include(self, set_name: str, method: str | None = None) -> np.ndarray:
        """Decisions (N,) bool of one set under ``method``'s calibrated threshold."""
        method = method or self.method
        return self.sets[set_name].scores[method] <= self.thresholds[method]


def _id_samples(prepared: str | os.PathLike, eval_split: str, calibration_split: str) -> tuple[list, list, list[str]]:
    manifest = read_manifest(prepared)
    if calibration_split not in manifest["splits"]:
        raise DataError(f"{no_split(prepared, calibration_split, manifest['splits'])}: nothing to calibrate the OOD "
                        "threshold on")
    for split in {calibration_split, eval_split}:
        if not manifest["splits"].get(split, {}).get("has_labels", False):
            raise DataError(f"{prepared}: split '{split}' has no labels; the OOD benchmark needs labelled ID images")
    val = full_res_samples(prepared, calibration_split)
    if eval_split != calibration_split:
        return val, full_res_samples(prepared, eval_split), []
    if len(val) < 2:
        raise DataError(f"{prepared}: '{calibration_split}' has {len(val)} image(s); need 2 to calibrate and test on halves")
    note = (f"evaluation split is '{calibration_split}': its even positions calibrate the threshold, "
            "its odd positions test it")
    return val[0::2], val[1::2], [note]


def _score_sets(predictor: Predictor, val_samples: list, test_samples: list, ood_paths: dict[str, list[Path]],
                ood_root: Path, eval_split: str, feature_layer: str | None, **common: Any) -> tuple[dict, str]:
    """({set name: ImageScores} of the six sets, the feature layer's name), from one forward per image."""
    model, sets = predictor.model, {}
    with ood.FeatureTap(model, feature_layer) as tap:
        sets["id_val"] = score_id_images(model, val_samples, tap=tap, desc="ood id val", min_area=predictor.min_area,
                                         **common)
        sets["id_test"] = score_id_images(model, test_samples, tap=tap, desc=f"ood id {eval_split}",
                                          min_area=predictor.min_area, **common)
        for name in SET_NAMES[2:]:
            sets[name] = score_ood_images(model, ood_paths[name], tap=tap, desc=f"ood {name}", root=ood_root, **common)
    return sets, tap.name


def _drop_unscored(sets: dict[str, ImageScores], notes: list[str], prepared: str | os.PathLike) -> None:
    """Leave out ID images without any scorable class (the competition Dice skips them); check finiteness."""
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


def _set_metrics(sets: dict[str, ImageScores]) -> dict[str, Any]:
    """The method-free numbers: the accept-everything and oracle scores, ID Dice, image counts."""
    dice_test = sets["id_test"].dice
    return {
        "score_accept_all": json_number(ood.accept_all_score(dice_test, len(sets["near_test"]) + len(sets["far_test"]))),
        "score_oracle": json_number(ood.oracle_score(dice_test)),
        "id_dice_val": json_number(sets["id_val"].dice.mean()),
        "id_dice_test": json_number(dice_test.mean()),
        "images": {name: len(st) for name, st in sets.items()},
    }


def evaluate_ood(predictor: Predictor, prepared: str | os.PathLike, ood_root: str | os.PathLike, *, eval_split: str,
                 method: str, temperature: float, percentile: float, batch_size: int, feature_layer: str | None = None,
                 fit_images: int = 1000, progress: bool = True,
                 calibration_split: str = CALIBRATION_SPLIT) -> OODEvaluation:
    """Score ``predictor`` on the OOD benchmark: every method's detection metrics, calibrated threshold and score.

    Thresholds, and the method when ``method`` is ``auto`` (`choose_method`), are chosen on the validation
    sets only: ID images of ``calibration_split`` and the ``val`` OOD images.
    ``metrics`` keys (the refusal ``method``, on test): auroc/fpr95/aupr _near/_far, score,
    score_accept_all, score_oracle, threshold, accepted_id_frac, refused_near_frac, refused_far_frac;
    ``methods.<m>`` holds the same per method, plus ``val_``-prefixed detection metrics. Images are
    resized to ``predictor.input_size``; ID Dice uses ``postprocess.to_labels(.., predictor.min_area)``.
    """
    methods = method_names(method, percentile)
    if not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    input_size = (int(predictor.input_size[0]), int(predictor.input_size[1]))
    ood_root = Path(ood_root)
    ood_paths = list_ood_images(ood_root)
    val_samples, test_samples, notes = _id_samples(prepared, eval_split, calibration_split)
    predictor.model.eval()
    scorer = fit_mahalanobis(predictor.model, prepared, input_size, predictor.device, feature_layer,
                             batch_size=max(batch_size, 16), max_images=fit_images, progress=progress)
    sets, layer = _score_sets(predictor, val_samples, test_samples, ood_paths, ood_root, eval_split, feature_layer,
                              input_size=input_size, device=predictor.device, methods=methods, temperature=temperature,
                              percentile=percentile, maha=scorer.torch_buffers(), batch_size=int(batch_size),
                              progress=progress)
    _drop_unscored(sets, notes, prepared)
    per_method, thresholds = {}, {}
    for m in methods:
        per_method[m], thresholds[m] = method_metrics(sets, m)
    method_config, method = method, choose_method(per_method) if method == AUTO else method
    metrics = {"method": method, "method_config": method_config, **per_method[method], **_set_metrics(sets),
               "id_split": eval_split, "calibration_split": calibration_split, "feature_layer": layer,
               "mahalanobis_fit_images": int(min(len(load_cache(prepared, "train")), max(2, fit_images))),
               "methods": per_method}
    if notes:
        metrics["notes"] = notes
    return OODEvaluation(method, methods, sets, thresholds, metrics, scorer, layer, float(temperature), notes)


def ood_benchmark(predictor: Predictor, prepared: str | os.PathLike, ood_root: str | os.PathLike, eval_split: str,
                  cfg: OODConfig, batch_size: int, plots: str | os.PathLike, ood_model_path: str | os.PathLike,
                  name: str, calibration_split: str = CALIBRATION_SPLIT) -> dict[str, Any]:
    """`evaluate_ood` with the ``ood`` params, its plots and per-image CSV under ``plots``, and the
    deployable ``(logits, include)`` model saved to ``ood_model_path``; returns the metrics block."""
    ev = evaluate_ood(predictor, prepared, ood_root, eval_split=eval_split, method=cfg.method,
                      temperature=cfg.temperature, percentile=cfg.percentile, batch_size=batch_size,
                      calibration_split=calibration_split)
    plots = Path(plots)
    roc_plot(ev, plots / "ood_roc.png", title=f"{name}: OOD detection")
    score_histogram(ev, plots / "ood_scores.png", title=f"{name}: {ev.method} on test")
    write_scores_csv(ev, plots / "ood_scores.csv")
    save_ood_model(ood_model_from(ev, predictor.model), ood_model_path)
    return ev.metrics


# --------------------------------------------------------------------------------------------
# The deployable model
# --------------------------------------------------------------------------------------------
def build_ood_model(model: nn.Module, method: str, threshold: float, temperature: float,
                    scorer: ood.MahalanobisScorer | None = None, feature_layer: str | None = None) -> ood.OODSegmenter:
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
    return build_ood_model(model, method, evaluation.thresholds[method], evaluation.temperature, evaluation.scorer,
                           evaluation.feature_layer)


def save_ood_model(ood_model: ood.OODSegmenter, path: str | os.PathLike) -> None:
    """Write the OODSegmenter's state_dict (loadable with ``weights_only=True``) atomically."""
    state = {k: (v.detach().cpu() if isinstance(v, torch.Tensor) else v) for k, v in ood_model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# --------------------------------------------------------------------------------------------
# Report: plots, per-image CSV
# --------------------------------------------------------------------------------------------
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

