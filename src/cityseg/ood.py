"""Image-level out-of-distribution (OOD) scoring, metrics, calibration and the submission wrapper.

Conventions used everywhere in this module:

* Every score is "higher = more OOD": pixel scores, image scores and Mahalanobis distances alike.
* An image is accepted (treated as in-distribution, ID) when ``include = score <= threshold``.
  ``threshold = +inf`` accepts every image, ``threshold = -inf`` refuses every (finite-scored) image;
  a NaN score is always refused.
* Detection metrics take OOD as the positive class: ``auroc`` is the probability that a random OOD
  image scores higher than a random ID image; ``aupr_out`` is average precision with OOD positive.
  ``fpr_at_tpr`` follows OpenOOD's FPR@95TPR: the
  fraction of OOD images accepted when the threshold accepts 95% of ID images.
* Competition OOD score (course slides): mean over images of Dice where a refused OOD image is left
  out of the mean, an accepted OOD image counts 0, a refused ID image counts 0 and an accepted ID
  image counts its Dice. So ``score = sum(dice_id[include_id]) / (n_id + n_accepted_ood)``.
"""

from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cityseg.config import OOD_METHOD_PATTERN
from cityseg.config import OOD_PIXEL_SCORES as PIXEL_SCORES

# Default feature layers tried in order when no `layer` is given (see `resolve_feature_layer`).
# "encoder": segmentation-models-pytorch (returns a list of stages, deepest last);
# "down4": our course UNet bottleneck; "global_features": our Fast-SCNN's context branch.
DEFAULT_FEATURE_LAYERS = ("encoder", "down4", "global_features")


# --------------------------------------------------------------------------------------------
# Logit-based scores
# --------------------------------------------------------------------------------------------
def _check_logits(logits: torch.Tensor) -> torch.Tensor:
    if not isinstance(logits, torch.Tensor) or logits.ndim != 4:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ValueError(f"logits: expected a (B, C, H, W) tensor, got {shape}")
    if logits.shape[1] < 2:
        raise ValueError(f"logits: need at least 2 classes, got C={logits.shape[1]}")
    # Half-precision softmax/logsumexp loses the small differences these scores rely on.
    return logits.float()


def pixel_scores(logits: torch.Tensor, temperature: float | torch.Tensor,
                 names: Iterable[str] = PIXEL_SCORES) -> dict[str, torch.Tensor]:
    """Pixel-wise OOD scores {name: (B, H, W)} from logits (B, C, H, W); higher = more OOD.

    msp: 1 - max softmax(logits / T); max_logit: -max logit (T-free); energy: -T * logsumexp(logits / T);
    entropy: Shannon entropy (nats) of softmax(logits / T). ``temperature`` may be a 0-d tensor (a buffer).
    """
    if isinstance(temperature, (int, float)) and not temperature > 0:
        raise ValueError(f"temperature: must be > 0, got {temperature}")
    names = list(names)
    unknown = [n for n in names if n not in PIXEL_SCORES]
    if unknown:
        raise ValueError(f"score name: unknown {unknown[0]!r}; choose one of {PIXEL_SCORES}")
    z = _check_logits(logits)
    # One log-softmax shared by msp and entropy (full-resolution maps are large).
    log_p = F.log_softmax(z / temperature, dim=1) if {"msp", "entropy"} & set(names) else None
    formulas = {
        "msp": lambda: 1.0 - log_p.amax(dim=1).exp(),
        "max_logit": lambda: -z.amax(dim=1),
        "energy": lambda: -temperature * torch.logsumexp(z / temperature, dim=1),
        "entropy": lambda: -(log_p.exp() * log_p).sum(dim=1),
    }
    return {name: formulas[name]() for name in names}


def pixel_score(logits: torch.Tensor, name: str, temperature: float | torch.Tensor) -> torch.Tensor:
    """One of `pixel_scores` (B, H, W)."""
    return pixel_scores(logits, temperature, (name,))[name]


def row_percentile(x: torch.Tensor, percentile: float) -> torch.Tensor:
    """Per-row percentile of x (B, N) with linear interpolation, like ``torch.quantile``.

    Uses ``kthvalue`` because ``torch.quantile`` refuses inputs above 16M elements
    (a batch of eight 1024x2048 score maps already exceeds that).
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile: must be in [0, 100], got {percentile}")
    n = x.shape[1]
    pos = percentile / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    v_lo = x.kthvalue(lo + 1, dim=1).values  # kthvalue is 1-indexed
    if frac == 0.0 or hi == lo:
        return v_lo
    v_hi = x.kthvalue(hi + 1, dim=1).values
    return v_lo + frac * (v_hi - v_lo)


def agg_name(percentile: float) -> str:
    return f"p{percentile:g}".replace(".", "_")


def aggregate(pixel: torch.Tensor, agg: str) -> torch.Tensor:
    """Pool a pixel score map (B, H, W) to an image score (B,) by "mean" or "p<q>" (e.g. "p95")."""
    flat = pixel.flatten(1)
    if agg == "mean":
        return flat.mean(dim=1)
    m = re.fullmatch(r"p(\d+(?:_\d+)?)", agg)
    if not m:
        raise ValueError(f"aggregation: expected 'mean' or 'p<percentile>' (e.g. 'p95'), got {agg!r}")
    return row_percentile(flat, float(m.group(1).replace("_", ".")))


def image_scores(logits: torch.Tensor, percentile: float, temperature: float) -> dict[str, torch.Tensor]:
    """Image-level scores (B,) from logits: "<name>_mean" and "<name>_p<percentile>" for each pixel score.

    Every pixel counts (no labels exist at test time). Higher = more OOD.
    """
    agg_q = agg_name(percentile)
    out: dict[str, torch.Tensor] = {}
    for name, pix in pixel_scores(logits, temperature).items():
        out[f"{name}_mean"] = aggregate(pix, "mean")
        out[f"{name}_{agg_q}"] = aggregate(pix, agg_q)
    return out


def parse_method(method: str) -> tuple[str, str | None]:
    """Split "energy_p95" -> ("energy", "p95"), "msp_mean" -> ("msp", "mean"), "mahalanobis" -> (.., None)."""
    if not re.fullmatch(OOD_METHOD_PATTERN, str(method)):
        raise ValueError(
            f"method: unknown {method!r}; use 'mahalanobis' or '<score>_<agg>' with score in {PIXEL_SCORES} "
            "and agg 'mean' or 'p<q>' (e.g. 'energy_p95')"
        )
    if method == "mahalanobis":
        return method, None
    name = next(n for n in PIXEL_SCORES if method.startswith(n + "_"))
    return name, method[len(name) + 1 :]


# --------------------------------------------------------------------------------------------
# Feature-based score: Mahalanobis distance to a single Gaussian of pooled ID features
# --------------------------------------------------------------------------------------------
def mahalanobis_distance(features: torch.Tensor, mean: torch.Tensor, whitening: torch.Tensor) -> torch.Tensor:
    """Distance (N,) of features (N, D) to a Gaussian given its mean (D,) and a whitening matrix W (D, D)
    with precision = W @ W.T: ``|| (f - mean) @ W ||``. A sum of squares, so never negative."""
    diff = features.to(whitening.dtype) - mean
    return (diff @ whitening).square().sum(dim=1).sqrt()


class MahalanobisScorer:
    """Mahalanobis distance to the ID feature distribution with a Ledoit-Wolf shrinkage covariance.

    ``fit`` on pooled ID features (N, D); ``torch_buffers`` gives the (mean, whitening) pair that
    `mahalanobis_distance` and `OODSegmenter` score with (distances (N,), higher = more OOD).
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.precision: np.ndarray | None = None

    def fit(self, features: np.ndarray | torch.Tensor) -> "MahalanobisScorer":
        from sklearn.covariance import LedoitWolf

        x = _as_2d_float64(features, "features")
        if x.shape[0] < 2:
            raise ValueError(f"features: need at least 2 samples to fit a covariance, got {x.shape[0]}")
        lw = LedoitWolf(store_precision=True, assume_centered=False).fit(x)
        self.mean = lw.location_.astype(np.float64)
        self.precision = lw.precision_.astype(np.float64)
        return self

    def whitening(self) -> np.ndarray:
        """W (D, D) with precision = W @ W.T, so distances are sums of squares."""
        if self.mean is None or self.precision is None:
            raise RuntimeError("MahalanobisScorer: call fit() first")
        # Symmetrise first: LedoitWolf's precision comes from a pseudo-inverse and may be off by rounding.
        sym = 0.5 * (self.precision + self.precision.T)
        # An eigen-factor, not Cholesky: fitted on a few frames (a small or subsampled training split) the
        # precision can be singular to rounding, which Cholesky rejects; eigenvalues clamped at 0 keep it exact.
        values, vectors = np.linalg.eigh(sym)
        return vectors * np.sqrt(np.clip(values, 0.0, None))

    def torch_buffers(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean (D,), whitening (D, D)) tensors for `mahalanobis_distance` / `OODSegmenter`."""
        whitening = self.whitening()
        return torch.as_tensor(self.mean, dtype=dtype), torch.as_tensor(whitening, dtype=dtype)


def _as_2d_float64(x: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected shape (N, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or inf")
    return x


def resolve_feature_layer(model: nn.Module, layer: str | None = None) -> str:
    """Name of the module whose output gives the pooled features.

    An explicit ``layer`` (a ``named_modules`` name such as "down4" or "encoder.layer4") must exist.
    Otherwise the first of DEFAULT_FEATURE_LAYERS the model has: "encoder" (smp models), "down4"
    (our UNet), "global_features" (Fast-SCNN). Other nets must pass ``layer``.
    """
    names = dict(model.named_modules())
    if layer is not None:
        if layer not in names:
            raise ValueError(f"layer: model {type(model).__name__} has no submodule {layer!r}")
        return layer
    for cand in DEFAULT_FEATURE_LAYERS:
        if cand in names:
            return cand
    top = [n for n in names if n and "." not in n]
    raise ValueError(
        f"layer: no default feature layer found in {type(model).__name__}; pass one of its modules, e.g. {top}"
    )


def _pool(out: Any) -> torch.Tensor:
    """Global-average-pool a hooked output to (B, D). Lists/tuples (smp encoder stages) -> last element."""
    if isinstance(out, (list, tuple)):
        tensors = [t for t in out if isinstance(t, torch.Tensor)]
        if not tensors:
            raise ValueError("feature layer output: a list/tuple without tensors")
        out = tensors[-1]
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"feature layer output: expected a tensor, got {type(out).__name__}")
    if out.ndim == 4:  # (B, C, h, w)
        return out.float().mean(dim=(2, 3))
    if out.ndim == 3:  # (B, tokens, C) from a transformer block
        return out.float().mean(dim=1)
    if out.ndim == 2:
        return out.float()
    raise ValueError(f"feature layer output: unsupported shape {tuple(out.shape)}")


class _StopForward(Exception):
    """Raised from a hook to skip the rest of the forward once the features are captured."""


class FeatureTap:
    """The one feature-capture hook: a context manager that keeps the pooled output (B, D) of one module.

    ``layer``: a ``named_modules`` name, or None for `resolve_feature_layer`'s default. Inside the
    ``with`` block every forward of the model records that module's pooled output; `pop` returns
    the latest and clears. ``stop=True`` ends each forward right after the module (features only).
    """

    def __init__(self, model: nn.Module, layer: str | None = None, stop: bool = False):
        self.name = resolve_feature_layer(model, layer)
        self.module = model.get_submodule(self.name)
        self.stop = stop
        self.captured: list[torch.Tensor] = []

    def _hook(self, _module: nn.Module, _inputs: Any, out: Any) -> None:
        self.captured.append(_pool(out))
        if self.stop:
            raise _StopForward

    def __enter__(self) -> "FeatureTap":
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.handle.remove()

    def run(self, model: nn.Module, x: torch.Tensor) -> Any:
        """``model(x)`` (None when ``stop`` ended it early)."""
        try:
            return model(x)
        except _StopForward:
            return None

    def pop(self) -> torch.Tensor:
        if not self.captured:
            raise RuntimeError(f"feature layer {self.name!r} was not called during the forward pass")
        feats = self.captured[-1]
        self.captured.clear()
        return feats


@torch.no_grad()
def pooled_features(model: nn.Module, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
    """Global-average-pooled deepest encoder features (B, D), without gradients.

    smp models (with ``layer=None``): ``model.encoder(x)[-1]``. Other models: a `FeatureTap` on the
    module named ``layer`` (default from `resolve_feature_layer`); the forward stops right after it.
    The model's train/eval mode is left as it is: call ``model.eval()`` first (BatchNorm).
    """
    if layer is None and hasattr(model, "encoder") and hasattr(model, "segmentation_head"):
        return _pool(model.encoder(x))
    with FeatureTap(model, layer, stop=True) as tap:
        tap.run(model, x)
    return tap.pop()


# --------------------------------------------------------------------------------------------
# Detection metrics (OOD = positive class)
# --------------------------------------------------------------------------------------------
def _scores_1d(x: Sequence[float] | np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64).reshape(-1)
    if a.size == 0:
        raise ValueError(f"{name}: empty")
    if np.isnan(a).any():
        raise ValueError(f"{name}: contains NaN")
    return a


def _labelled(scores_id, scores_ood) -> tuple[np.ndarray, np.ndarray]:
    sid, sood = _scores_1d(scores_id, "scores_id"), _scores_1d(scores_ood, "scores_ood")
    y = np.concatenate([np.zeros(sid.size), np.ones(sood.size)])
    return y, np.concatenate([sid, sood])


def auroc(scores_id, scores_ood) -> float:
    """Area under the ROC curve with OOD positive (1 = perfect, 0.5 = chance); ties count half."""
    from sklearn.metrics import roc_auc_score

    y, s = _labelled(scores_id, scores_ood)
    return float(roc_auc_score(y, s))


def aupr_out(scores_id, scores_ood) -> float:
    """Average precision with OOD as the positive class (higher score = more OOD)."""
    from sklearn.metrics import average_precision_score

    y, s = _labelled(scores_id, scores_ood)
    return float(average_precision_score(y, s))


def fpr_at_tpr(scores_id, scores_ood, tpr: float = 0.95) -> float:
    """FPR@TPR (OpenOOD): fraction of OOD images accepted when the threshold accepts ``tpr`` of ID images.

    The threshold is the smallest ID score t with ``mean(scores_id <= t) >= tpr`` (the k-th smallest ID
    score, k = ceil(tpr * n_id)); the result is ``mean(scores_ood <= t)``. Ties at t are accepted.
    """
    if not 0.0 < tpr <= 1.0:
        raise ValueError(f"tpr: must be in (0, 1], got {tpr}")
    sid = np.sort(_scores_1d(scores_id, "scores_id"))
    sood = _scores_1d(scores_ood, "scores_ood")
    k = max(1, math.ceil(tpr * sid.size - 1e-9))  # guard against 0.95 * 20 = 19.000000000000004
    t = sid[k - 1]
    return float(np.mean(sood <= t))


# --------------------------------------------------------------------------------------------
# Competition score and threshold calibration
# --------------------------------------------------------------------------------------------
def _dice_1d(dice_id) -> np.ndarray:
    d = _scores_1d(dice_id, "dice_id")
    if (d < 0).any() or (d > 1).any():
        raise ValueError("dice_id: values must lie in [0, 1]")
    return d


def _bool_1d(x, name: str, n: int | None = None) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x).reshape(-1)
    if a.dtype != bool:
        if not np.isin(a, (0, 1)).all():
            raise ValueError(f"{name}: expected booleans, got values {np.unique(a)[:5]}")
        a = a.astype(bool)
    if n is not None and a.size != n:
        raise ValueError(f"{name}: expected {n} entries, got {a.size}")
    return a


def competition_ood_score(dice_id, include_id, include_ood) -> float:
    """Course OOD score: sum(dice_id[include_id]) / (n_id + n_accepted_ood).

    Refused ID images count 0 (they stay in the mean), accepted OOD images count 0, refused OOD
    images leave the mean. Needs at least one ID image.
    """
    d = _dice_1d(dice_id)
    inc_id = _bool_1d(include_id, "include_id", d.size)
    inc_ood = _bool_1d(include_ood, "include_ood")
    return float(d[inc_id].sum() / (d.size + inc_ood.sum()))


def accept_all_score(dice_id, n_ood: int) -> float:
    """Competition OOD score when every image is accepted: sum(dice_id) / (n_id + n_ood)."""
    d = _dice_1d(dice_id)
    if n_ood < 0:
        raise ValueError(f"n_ood: must be >= 0, got {n_ood}")
    return float(d.sum() / (d.size + n_ood))


def oracle_score(dice_id) -> float:
    """Upper bound: every ID image accepted and every OOD image refused = mean ID Dice."""
    return float(_dice_1d(dice_id).mean())


def calibrate_threshold(scores_id, dice_id, scores_ood) -> tuple[float, float]:
    """Threshold maximising the competition OOD score on validation data, and that score.

    Exact search over every cut point: -inf (refuse all), each distinct finite score value
    (include = score <= t), and +inf (accept all). O(n log n): sort once, cumulative Dice of ID
    images and counts of OOD images below each cut via ``searchsorted``. Ties go to the more
    permissive (higher) threshold, so accepting everything returns +inf. Scores must be finite.
    """
    sid = _scores_1d(scores_id, "scores_id")
    sood = _scores_1d(scores_ood, "scores_ood")
    d = _dice_1d(dice_id)
    if d.size != sid.size:
        raise ValueError(f"dice_id: {d.size} values for {sid.size} ID scores")
    if not (np.isfinite(sid).all() and np.isfinite(sood).all()):
        raise ValueError("scores_id / scores_ood: must be finite (±inf is reserved for the threshold)")

    order = np.argsort(sid, kind="stable")
    sid_sorted = sid[order]
    cum_dice = np.concatenate([[0.0], np.cumsum(d[order])])  # cum_dice[k] = Dice of the k lowest ID
    sood_sorted = np.sort(sood)

    cuts = np.concatenate([[-np.inf], np.unique(np.concatenate([sid, sood])), [np.inf]])
    k_id = np.searchsorted(sid_sorted, cuts, side="right")  # accepted ID at each cut
    k_ood = np.searchsorted(sood_sorted, cuts, side="right")  # accepted OOD at each cut
    values = cum_dice[k_id] / (sid.size + k_ood)
    best = values.max()
    # Last index among (numerically) equal maxima = the highest, most permissive threshold.
    idx = int(np.flatnonzero(values >= best - 1e-12 * max(1.0, abs(best)))[-1])
    return float(cuts[idx]), float(values[idx])


# --------------------------------------------------------------------------------------------
# Submission wrapper: forward(x) -> (logits, include)
# --------------------------------------------------------------------------------------------
class OODSegmenter(nn.Module):
    """A segmenter plus an image-level OOD decision: ``forward(x) -> (logits, include)``.

    ``method``: "<score>_<agg>" (e.g. "energy_p95", "msp_mean"; see `image_scores`) or
    "mahalanobis" (distance of pooled ``feature_layer`` features; set it with `set_mahalanobis`).
    Buffers: ``threshold`` and ``temperature`` (scalars), ``maha_mean`` (D,) and ``maha_whitening``
    (D, D). The method and feature layer travel in the state_dict's extra state, so
    ``OODSegmenter(segmenter, any_method, 1.0).load_state_dict(sd, strict=True)`` restores the whole
    decision rule (method, feature layer, temperature, threshold and Gaussian).
    """

    def __init__(
        self,
        segmenter: nn.Module,
        method: str,
        temperature: float,
        threshold: float = math.inf,
        feature_layer: str | None = None,
    ) -> None:
        super().__init__()
        parse_method(method)
        if not temperature > 0:
            raise ValueError(f"temperature: must be > 0, got {temperature}")
        self.segmenter = segmenter
        self.method = method
        self.feature_layer = feature_layer
        self.register_buffer("threshold", torch.tensor(float(threshold), dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(float(temperature), dtype=torch.float32))
        # Empty until set_mahalanobis(); _load_from_state_dict resizes them to the saved shapes.
        self.register_buffer("maha_mean", torch.zeros(0))
        self.register_buffer("maha_whitening", torch.zeros(0, 0))

    def set_mahalanobis(self, scorer: MahalanobisScorer) -> None:
        mean, whitening = scorer.torch_buffers()
        dev = self.threshold.device
        self.maha_mean = mean.to(dev)
        self.maha_whitening = whitening.to(dev)

    def get_extra_state(self) -> dict[str, Any]:
        # Plain str/None values: loadable with torch.load(weights_only=True).
        return {"method": self.method, "feature_layer": self.feature_layer}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        parse_method(state["method"])
        self.method = state["method"]
        self.feature_layer = state.get("feature_layer")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001
        for name in ("maha_mean", "maha_whitening"):
            saved = state_dict.get(prefix + name)
            own = getattr(self, name)
            if isinstance(saved, torch.Tensor) and saved.shape != own.shape:
                setattr(self, name, torch.empty(saved.shape, dtype=own.dtype, device=own.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, C, H, W), image score (B,)), higher score = more OOD."""
        name, agg = parse_method(self.method)
        if name != "mahalanobis":
            logits = self.segmenter(x)
            return logits, aggregate(pixel_score(logits, name, self.temperature), agg)
        if self.maha_mean.numel() == 0:
            raise RuntimeError("OODSegmenter: method 'mahalanobis' needs set_mahalanobis() or a loaded state_dict")
        with FeatureTap(self.segmenter, self.feature_layer) as tap:
            logits = self.segmenter(x)
        features = tap.pop()
        return logits, mahalanobis_distance(features, self.maha_mean, self.maha_whitening)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits (B, C, H, W), include (B,) bool); include = score <= threshold (NaN -> refused)."""
        logits, score = self.score(x)
        return logits, score <= self.threshold
