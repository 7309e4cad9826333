"""Model factory, local pretrained weights, and self-describing checkpoints.

* Our own nets (the course U-Net, our Fast-SCNN) come from ``OUR_MODELS`` by name; every other
  ``model.arch`` goes to ``segmentation_models_pytorch.create_model`` with smp's own argument
  names (``encoder_name``, ``encoder_weights``, ``classes``, plus ``model.extra``).
* Offline by default: ``encoder_weights`` is None (random init). Compute nodes of an HPC cluster
  have no network, so ``model.weights_path`` loads a local file instead (whole model or encoder).
* A checkpoint stores the model config beside the state_dict, so evaluation and packaging
  rebuild the model without reading params.yaml.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn

from cityseg.config import ConfigError, ModelConfig
from cityseg.fastscnn import FastSCNN
from cityseg.io import DataError, atomic_path
from cityseg.unet import UNet

def _unet_args(cfg: ModelConfig) -> dict[str, Any]:
    return {"num_classes": cfg.num_classes, "width": cfg.width, "base_channels": cfg.base_channels, **cfg.extra}


def _fastscnn_args(cfg: ModelConfig) -> dict[str, Any]:
    return {"num_classes": cfg.num_classes, "width": cfg.width, **cfg.extra}


# Our nets by name: the class and its constructor arguments from the config fields it has (base_channels
# is the U-Net's alone). The submission's model.py pins the same arguments (`constructor`).
OUR_ARCHS: dict[str, tuple[type[nn.Module], Callable[[ModelConfig], dict[str, Any]]]] = {
    "unet": (UNet, _unet_args), "fastscnn": (FastSCNN, _fastscnn_args)}
OUR_MODELS: dict[str, Callable[[ModelConfig], nn.Module]] = {
    name: (lambda cfg, cls=cls, args=args: cls(**args(cfg))) for name, (cls, args) in OUR_ARCHS.items()}

CHECKPOINT_KEYS = ("model_config", "state_dict", "meta")


def smp_architectures() -> list[str]:
    """Architecture names smp.create_model accepts (lower case)."""
    import segmentation_models_pytorch as smp

    return sorted(smp.MODEL_ARCHITECTURES_MAPPING)


def is_smp_model(model: nn.Module) -> bool:
    """True for models built by segmentation_models_pytorch."""
    from segmentation_models_pytorch.base import SegmentationModel

    return isinstance(model, SegmentationModel)


def build_model(cfg: ModelConfig) -> nn.Module:
    """Build the network ``cfg`` describes: (B,3,H,W) float -> (B,num_classes,H,W) logits.

    Loads ``cfg.weights_path`` when set (see ``load_weights``).
    """
    # Our names match exactly ("unet" is the course U-Net); any other spelling goes to smp, whose
    # names are case-insensitive, so "Unet" is smp's U-Net with a pretrained-style encoder.
    arch = cfg.arch
    try:
        if arch in OUR_MODELS:
            model = OUR_MODELS[arch](cfg)
        else:
            model = _build_smp(cfg)
    except TypeError as exc:  # an argument in model.extra the constructor does not take
        raise ConfigError(f"model.extra {cfg.extra} does not fit model.arch={cfg.arch!r}: {exc}") from None
    if cfg.weights_path:
        load_weights(model, cfg.weights_path)
    return model


def _build_smp(cfg: ModelConfig) -> nn.Module:
    import segmentation_models_pytorch as smp

    if cfg.arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ConfigError(
            f"model.arch: unknown architecture {cfg.arch!r}; ours: {', '.join(OUR_MODELS)}; "
            f"segmentation_models_pytorch: {', '.join(smp_architectures())}"
        )
    if cfg.width != 1.0:
        # A warning, not an error: a shared default width must not break smp benchmarks.
        warnings.warn(
            f"model.width={cfg.width} applies only to our own nets ({', '.join(OUR_MODELS)}); "
            f"it is ignored for the smp architecture {cfg.arch!r} (choose model.encoder_name instead)",
            UserWarning,
            stacklevel=3,
        )
    try:
        return smp.create_model(arch=cfg.arch, **smp_args(cfg))
    except OSError as exc:
        # huggingface_hub / urllib / requests failures are all OSErrors; config mistakes
        # (unknown encoder or weights name) are KeyError/ValueError and pass through.
        if cfg.encoder_weights is None:
            raise
        raise RuntimeError(
            f"could not download the {cfg.encoder_weights!r} weights of encoder {cfg.encoder_name!r} "
            f"for model.arch={cfg.arch!r} ({type(exc).__name__}: {exc}). Without network access "
            f"(e.g. on HPC compute nodes) set model.encoder_weights to null and model.weights_path "
            f"to a local weights file (a state_dict of the encoder or of the whole model), or "
            f"download the weights once on a machine with network access into the Hugging Face cache."
        ) from exc


def smp_args(cfg: ModelConfig) -> dict[str, Any]:
    """smp.create_model's keyword arguments (besides ``arch``) for ``cfg``, in smp's own names."""
    return {"encoder_name": cfg.encoder_name, "encoder_weights": cfg.encoder_weights, "classes": cfg.num_classes,
            **cfg.extra}


def constructor(cfg: ModelConfig) -> tuple[type[nn.Module], dict[str, Any]]:
    """The class ``build_model(cfg)`` instantiates and its keyword arguments, offline (no encoder weights).

    ``cls(**kwargs)`` rebuilds the architecture: the submission's ``Model()`` pins exactly these.
    """
    if cfg.arch in OUR_ARCHS:
        cls, args = OUR_ARCHS[cfg.arch]
        return cls, args(cfg)
    import segmentation_models_pytorch as smp

    if cfg.arch.lower() not in smp.MODEL_ARCHITECTURES_MAPPING:
        raise ConfigError(f"model.arch: unknown architecture {cfg.arch!r}")
    return smp.MODEL_ARCHITECTURES_MAPPING[cfg.arch.lower()], {**smp_args(cfg), "encoder_weights": None}


def pad_multiple(model: nn.Module) -> int:
    """Input H and W should be padded to a multiple of this for ``model``.

    smp models: the encoder's output stride (they raise on other sizes unless they declare
    otherwise). UNet: 16 (four 2x pools; other sizes work but get padded internally).
    FastSCNN: 32 in the network's own resolution (other sizes work, via interpolation).
    """
    if isinstance(model, UNet):
        return 16
    if isinstance(model, FastSCNN):
        # The net sees round(H * input_scale); ask for inputs that map to multiples of 32.
        return max(1, int(math.ceil(32 / model.input_scale - 1e-9)))
    if is_smp_model(model):
        if not getattr(model, "requires_divisible_input_shape", True):
            return 1
        return int(getattr(model.encoder, "output_stride", 32))
    return 32


# ----------------------------------------------------------------------------- weights files


def _load_file(path: Path, what: str, key: str = "") -> Any:
    """``torch.load`` on the CPU with tensors only (no code runs); DataError naming the file otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found" + (f" ({key})" if key else ""))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, foreign or pickled-code files all raise differently
        raise DataError(f"{path}: cannot read {what.split()[0]} ({type(exc).__name__}: {exc})") from None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from a file holding one, or a checkpoint dict with 'state_dict'/'model'."""
    obj = _load_file(path, "weights file", "model.weights_path")
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not (isinstance(obj, Mapping) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise DataError(f"{path}: expected a state_dict (name -> tensor), or a dict with 'state_dict' or 'model'")
    return {_strip_wrappers(k): v for k, v in obj.items()}


def _strip_wrappers(key: str) -> str:
    # DataParallel / DistributedDataParallel and torch.compile add these prefixes.
    for prefix in ("module.", "_orig_mod."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def _key_report(expected: set[str], got: set[str], n: int = 5) -> str:
    missing, unexpected = sorted(expected - got), sorted(got - expected)
    return (
        f"missing {len(missing)} (e.g. {missing[:n]}), unexpected {len(unexpected)} (e.g. {unexpected[:n]})"
    )


def load_weights(model: nn.Module, path: str | Path) -> str:
    """Load a local weights file into ``model``; return what was loaded ("model" or "encoder").

    Keys matching the whole model load strictly. Otherwise, for smp models, the file is tried
    as encoder weights (a leading ``encoder.`` is accepted, so a whole smp model with another
    head also works; a torchvision ResNet state_dict works as smp drops its ``fc``).
    """
    path = Path(path)
    state = _read_state_dict(path)
    model_keys = set(model.state_dict())
    if set(state) == model_keys:
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise DataError(f"{path}: weights do not fit the model: {exc}") from None
        return "model"
    if not is_smp_model(model):
        raise DataError(
            f"{path}: weights do not fit {type(model).__name__}: {_key_report(model_keys, set(state))}"
        )
    if any(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
    try:
        model.encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        encoder_keys = set(model.encoder.state_dict())
        raise DataError(
            f"{path}: weights fit neither the whole {type(model).__name__} nor its encoder "
            f"({_key_report(encoder_keys, set(state))}); {str(exc).splitlines()[0]}"
        ) from None
    return "encoder"


# ----------------------------------------------------------------------------- checkpoints


def _plain(value: Any, where: str) -> Any:
    """``value`` as plain Python types that ``torch.load(weights_only=True)`` accepts."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist"):  # small numpy arrays (e.g. per-class scores)
        return value.tolist()
    raise ValueError(f"save_checkpoint: {where} has type {type(value).__name__}; store plain types only")


def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else None
        )
        if inner is None:
            return model
        model = inner


def save_checkpoint(path: str | Path, model: nn.Module, cfg: ModelConfig, **meta: Any) -> None:
    """Write ``{"model_config", "state_dict", "meta"}`` atomically (plain types + tensors only)."""
    payload = {
        "model_config": _plain(dataclasses.asdict(cfg), "model_config"),
        "state_dict": {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()},
        "meta": _plain(meta, "meta"),
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelConfig, dict]:
    """Rebuild the model a checkpoint describes and load its weights: ``(model, cfg, meta)``.

    The model is rebuilt offline: the stored ``encoder_weights``/``weights_path`` are not
    fetched again (the state_dict holds the trained weights); ``cfg`` is returned as stored.
    The model is returned in eval mode on ``device``.
    """
    path = Path(path)
    ckpt = _load_file(path, "checkpoint")
    if not (isinstance(ckpt, dict) and all(k in ckpt for k in ("model_config", "state_dict"))):
        got = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise DataError(f"{path}: not a cityseg checkpoint (expected keys {list(CHECKPOINT_KEYS)}, got {got})")
    try:
        cfg = ModelConfig(**ckpt["model_config"])
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: bad model_config in checkpoint ({exc})") from None
    model = build_model(dataclasses.replace(cfg, encoder_weights=None, weights_path=None))
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise DataError(f"{path}: state_dict does not fit the model its config describes: {exc}") from None
    return model.to(device).eval(), cfg, dict(ckpt.get("meta") or {})
