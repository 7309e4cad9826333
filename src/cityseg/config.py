"""Typed views of params.yaml.

Each params section maps to a dataclass. Unknown keys are rejected with a message that
names the file and the dotted key, so a typo such as ``model.widht`` fails loudly instead of
silently training the default.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


class ConfigError(ValueError):
    """A bad params file or key: the message names the file and the dotted key."""


# Every default below equals params.yaml (tests/test_config.py checks it), so a section left out of
# params.yaml means what the committed pipeline runs.
# The OOD refusal's image scores (cityseg.ood): a pixel score pooled by mean or a percentile, or Mahalanobis.
OOD_PIXEL_SCORES = ("msp", "max_logit", "energy", "entropy")
OOD_METHOD_PATTERN = rf"mahalanobis|(?:{'|'.join(OOD_PIXEL_SCORES)})_(?:mean|p\d+(?:_\d+)?)"
DEFAULT_CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "motion_blur", "gaussian_blur",
                       "brightness", "contrast", "jpeg", "snow", "spatter", "low_light")


HOLDOUT_SPLIT = "holdout"  # the split prepare carves out of train with data.holdout_cities > 0


@dataclass
class DataConfig:
    source: str = "synthcity"  # synthcity | cityscapes
    cityscapes_root: str = "data/synthcity"
    cache_size: list = field(default_factory=lambda: [128, 256])  # [H, W] of the training cache
    workers: int = 0  # processes for per-image work; 0 = all cores
    # Whole training cities moved into a 'holdout' split (0 = none), chosen with holdout_seed: when val is the
    # reported split (real Cityscapes), training's checkpoint choice and evaluation's tuning need a split the
    # score never sees. Whole cities, so no sequence has frames on both sides.
    holdout_cities: int = 0
    holdout_seed: int = 0

    def __post_init__(self):
        if self.source not in ("synthcity", "cityscapes"):
            raise ConfigError(f"data.source must be 'synthcity' or 'cityscapes', got {self.source!r}")
        _check_size("data.cache_size", self.cache_size)
        if self.holdout_cities < 0:
            raise ConfigError(f"data.holdout_cities must be >= 0 (0 = no holdout split), got {self.holdout_cities}")


@dataclass
class SynthCityConfig:
    seed: int = 0
    height: int = 256
    width: int = 512
    train: int = 200
    val: int = 40
    test: int = 60

    def __post_init__(self):
        _check_size("synthcity.[height,width]", [self.height, self.width])
        for key in ("train", "val", "test"):
            if getattr(self, key) < 0:
                raise ConfigError(f"synthcity.{key} must be >= 0")


@dataclass
class ModelConfig:
    arch: str = "unet"  # unet | <our efficient nets> | any smp architecture name (e.g. DeepLabV3Plus)
    width: float = 1.0  # channel multiplier of our own nets (the ablation knob)
    base_channels: int = 16  # U-Net only: first-stage channels at width 1 (the course's net has 64)
    encoder_name: str = "resnet18"  # smp only
    encoder_weights: Optional[str] = None  # smp only; None = offline (random init)
    weights_path: Optional[str] = None  # local pretrained weights (encoder or whole model)
    num_classes: int = 19
    extra: dict = field(default_factory=dict)  # passed through to smp.create_model / our nets

    def __post_init__(self):
        if self.width <= 0:
            raise ConfigError(f"model.width must be > 0, got {self.width}")
        if not isinstance(self.base_channels, int) or self.base_channels < 1:
            raise ConfigError(f"model.base_channels must be a positive integer, got {self.base_channels!r}")


@dataclass
class TrainConfig:
    epochs: int = 24
    batch_size: int = 2
    size: list = field(default_factory=lambda: [128, 256])  # [H, W] the network is trained at
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-2
    momentum: float = 0.9
    schedule: str = "constant"  # constant | poly | cosine
    warmup_epochs: float = 0.0
    loss: str = "ce"  # ce | ce_dice
    dice_weight: float = 0.5
    augment: str = "none"  # none | standard | strong | robust
    scale_range: list = field(default_factory=lambda: [0.5, 2.0])
    weather_types: list = field(default_factory=list)  # augment=robust: corruption/weather names to train with
    weather_prob: float = 0.5  # augment=robust: chance that a training image gets one of weather_types
    select_by: str = "dice"  # dice | loss: which validation number picks the best checkpoint
    # Predicted classes covering less than this fraction of an image are dropped (their pixels take the
    # next most likely class) in training's validation, so it shapes which epoch is kept (cityseg.postprocess).
    # 0 = the recipe has no small-class removal; otherwise evaluation and the submission use the value
    # eval.min_class_area's sweep chooses on the selection split.
    min_class_area: float = 0.0
    # bf16 autocast: "auto" = on CUDA, and on CPUs with native bf16 (AVX512-BF16/AMX, ~1.3x faster
    # convolutions there); "bf16" forces it, "fp32" never uses it.
    amp: str = "auto"
    # channels_last memory format on a CPU (always on CUDA): faster for our U-Net and Fast-SCNN in
    # oneDNN, slower for smp's ResNet encoders (benchmarks/train_speed.py).
    cpu_channels_last: bool = True
    num_workers: int = 0
    # Batches each DataLoader worker loads ahead (num_workers > 0); the uint8 batches are small, and a deeper
    # queue absorbs uneven augmentation times. Never changes a result.
    prefetch_factor: int = 4
    # torch.compile the network for the training steps (validation, checkpoints stay eager/plain). Compiled
    # kernels can round differently, so it is part of the resume hash.
    compile: bool = False
    # Under torchrun (several GPUs): BatchNorm statistics over the global batch instead of each GPU's share of
    # it (CUDA only; slower; changes the result). One process ignores it.
    sync_batchnorm: bool = False
    seed: int = 42
    wandb: bool = False  # also log to Weights & Biases (needs the wandb package; see README); never changes a result

    def __post_init__(self):
        _check_choice("train.amp", self.amp, ("auto", "bf16", "fp32"))
        _check_choice("train.optimizer", self.optimizer, ("adamw", "sgd"))
        _check_choice("train.schedule", self.schedule, ("constant", "poly", "cosine"))
        _check_choice("train.loss", self.loss, ("ce", "ce_dice"))
        _check_choice("train.augment", self.augment, ("none", "standard", "strong", "robust"))
        _check_choice("train.select_by", self.select_by, ("dice", "loss"))
        _check_size("train.size", self.size)
        if not 0.0 <= self.min_class_area < 1.0:
            raise ConfigError(f"train.min_class_area must be a fraction in [0, 1), got {self.min_class_area}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("train.epochs and train.batch_size must be >= 1")
        if self.prefetch_factor < 1:
            raise ConfigError(f"train.prefetch_factor must be >= 1, got {self.prefetch_factor}")


@dataclass
class EvalConfig:
    split: str = "auto"  # auto = test on SynthCity (labelled), val on Cityscapes (test labels private)
    batch_size: int = 4
    # Where evaluation tunes its choices (min_class_area, the OOD method): never the reported split.
    # auto = val, or holdout when val is the reported split (real Cityscapes; data.holdout_cities makes it).
    selection_split: str = "auto"
    # Candidates for the small-class removal of models trained with it (train.min_class_area > 0); the one with
    # the best Dice on the selection split wins (ties: the smaller). Models trained without it are scored without.
    min_class_area: list = field(default_factory=lambda: [0.0, 0.001, 0.002, 0.005])

    def __post_init__(self):
        _check_choice("eval.split", self.split, ("auto", "train", "val", "test"))
        _check_choice("eval.selection_split", self.selection_split, ("auto", "train", "val", "test", "holdout"))
        areas = self.min_class_area
        if not areas or any(isinstance(a, bool) or not isinstance(a, (int, float)) or not 0.0 <= a < 1.0 for a in areas):
            raise ConfigError(f"eval.min_class_area must be a non-empty list of fractions in [0, 1), got {areas!r}")
        if len(set(areas)) != len(areas):
            raise ConfigError(f"eval.min_class_area lists a candidate twice: {areas!r}")
        self.min_class_area = [float(a) for a in areas]


@dataclass
class WeatherConfig:
    """The robustness test bed written by the ``weather`` stage (for the evaluation split)."""

    seed: int = 0
    images: int = 4  # images of the evaluation split used (0 = all); each gets every condition and severity
    fog_betas: list = field(default_factory=lambda: [0.005, 0.01, 0.02])  # m^-1, severities 1..3
    rain_levels: list = field(default_factory=lambda: [1, 2, 3])
    # corruption names (cityseg.corruptions), 5 severities each
    corruptions: list = field(default_factory=lambda: list(DEFAULT_CORRUPTIONS))
    severities: list = field(default_factory=lambda: [1, 2, 3, 4, 5])
    # conditions no benchmark may train on (checked against train.weather_types): one per group + low light
    heldout: list = field(default_factory=lambda: ["impulse_noise", "defocus_blur", "jpeg", "snow", "low_light"])

    def __post_init__(self):
        if self.images < 0:
            raise ConfigError("weather.images must be >= 0 (0 = all)")
        if any(not isinstance(b, (int, float)) or b < 0 for b in self.fog_betas):
            raise ConfigError(f"weather.fog_betas must be non-negative numbers, got {self.fog_betas}")
        if any(s not in (1, 2, 3, 4, 5) for s in self.severities):
            raise ConfigError(f"weather.severities must be within 1..5, got {self.severities}")
        if any(level not in (1, 2, 3) for level in self.rain_levels):
            raise ConfigError(f"weather.rain_levels must be within 1..3, got {self.rain_levels}")


@dataclass
class OODConfig:
    """Out-of-distribution test beds and the image-level refusal."""

    seed: int = 7
    n_val: int = 20  # images per group (near, far) in the validation set (threshold calibration)
    n_test: int = 25  # images per group in the test set
    sizes: list = field(default_factory=lambda: [[256, 512], [192, 384], [240, 320], [320, 480]])
    user_root: Optional[str] = None  # your own OOD images: <user_root>/{val,test}/{near,far}/*.png|jpg
    # Image score used for the refusal (every method is reported); auto = the best validation OOD score.
    method: str = "auto"
    temperature: float = 1.0
    percentile: float = 95.0

    def __post_init__(self):
        if self.n_val < 1 or self.n_test < 1:
            raise ConfigError("ood.n_val and ood.n_test must be >= 1")
        if self.method != "auto" and not re.fullmatch(OOD_METHOD_PATTERN, str(self.method)):
            raise ConfigError(f"ood.method must be 'auto', 'mahalanobis' or '<score>_<agg>' with score in {list(OOD_PIXEL_SCORES)} "
                              f"and agg 'mean' or 'p<q>' (e.g. 'energy_p95'), got {self.method!r}")
        for size in self.sizes:
            _check_size("ood.sizes[]", size)


@dataclass
class EfficiencyConfig:
    """How the efficiency benchmark is measured."""

    gate: float = 0.8  # efficiency score = 0 when Dice < gate x baseline Dice (course rule)
    latency_size: list = field(default_factory=lambda: [1024, 2048])
    latency_runs: int = 50  # median of this many timed runs...
    latency_warmup: int = 1
    latency_budget_s: float = 2.0  # ...unless the CPU timing would exceed this many seconds (0 = no cap; runs are recorded)
    threads: int = 0  # CPU threads for the latency measurement (0 = torch's default)

    def __post_init__(self):
        _check_size("efficiency.latency_size", self.latency_size)
        if self.latency_runs < 1 or self.latency_warmup < 0:
            raise ConfigError("efficiency.latency_runs must be >= 1 and latency_warmup >= 0")
        if not 0 <= self.gate <= 1:
            raise ConfigError(f"efficiency.gate must be within [0, 1], got {self.gate}")


@dataclass
class PackageConfig:
    """The competition submissions (package stage) and their self-test."""

    refusal: list = field(default_factory=lambda: ["ood"])  # benchmarks whose Model returns (logits, include)
    odd_size: list = field(default_factory=lambda: [333, 517])  # [H, W] of the self-test's odd-sized image
    ood_images: int = 2  # OOD test images (near and far each) added to a refusing submission's self-test
    # |Dice of the submission's masks - metrics dice|: the metrics round to 6 digits. A CPU evaluation is fp32 like
    # the submission; one on CUDA (bf16 autocast) differs slightly, so set about 1e-3 there.
    dice_tolerance: float = 1e-6
    base_image: str = "pytorch/pytorch:2.10.0-cuda12.6-cudnn9-runtime"  # the course's Docker base image

    def __post_init__(self):
        _check_size("package.odd_size", self.odd_size)
        if self.ood_images < 0 or not self.dice_tolerance >= 0:
            raise ConfigError("package.ood_images and package.dice_tolerance must be >= 0")


def _check_choice(key: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


def _check_size(key: str, value: Any) -> None:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise ConfigError(f"{key} must be [height, width] positive integers, got {value!r}")


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    return tp


def from_dict(cls: type, data: Optional[dict], where: str, source: str = "params.yaml"):
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and wrong types."""
    data = data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: '{where}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key '{where}.{unknown[0]}' (known keys in '{where}': {', '.join(sorted(names))})"
        )
    kwargs = {}
    for key, value in data.items():
        tp = _strip_optional(hints[key])
        if value is not None and tp in (int, float, str, bool, list, dict):
            ok = isinstance(value, tp) or (tp is float and isinstance(value, int) and not isinstance(value, bool))
            if isinstance(value, bool) and tp in (int, float):
                ok = False
            if not ok:
                raise ConfigError(f"{source}: '{where}.{key}' must be {tp.__name__}, got {value!r}")
            if tp is float:
                value = float(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# params.yaml top-level sections and their types ("benchmarks" and "students" are checked separately).
SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "synthcity": SynthCityConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "weather": WeatherConfig,
    "ood": OODConfig,
    "efficiency": EfficiencyConfig,
    "package": PackageConfig,
}


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read and validate params.yaml; returns the plain dict.

    Every section is checked against its dataclass here, so a typo anywhere fails every stage
    with a message naming the key, instead of being silently ignored.
    """
    path = Path(path)
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    check_params(params, str(path))
    return params


def check_params(params: dict, source: str = "params.yaml") -> None:
    """Raise ConfigError for any unknown or ill-typed key in any section."""
    groups = ("benchmarks", "students")
    unknown = sorted(set(params) - set(SECTIONS) - {*groups, "models"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key '{unknown[0]}' "
                          f"(known: {', '.join(sorted([*SECTIONS, *groups, 'models']))})")
    for name, cls in SECTIONS.items():
        section(params, name, cls, source)
    for group in groups:
        if not isinstance(params.get(group) or {}, dict):
            raise ConfigError(f"{source}: '{group}' must be a mapping of name -> overrides")
    if both := sorted(set(params.get("benchmarks") or {}) & set(params.get("students") or {})):
        raise ConfigError(f"{source}: '{both[0]}' is both under 'benchmarks' and under 'students' (one model per name)")
    listed, names = params.get("models"), model_names(params)
    if "models" in params and (not isinstance(listed, list) or sorted(map(str, listed)) != sorted(names)):
        raise ConfigError(f"{source}: 'models' must list every key of 'benchmarks' and 'students' once (dvc.yaml "
                          f"evaluates and packages exactly these): have {listed}, expected the names {names}")
    refusal = set(section(params, "package", PackageConfig, source).refusal) if "package" in params else set()
    if unknown := sorted(refusal - set(model_names(params))):  # a typo would silently ship no refusal
        raise ConfigError(f"{source}: package.refusal names {unknown}, which are not benchmarks or students")
    heldout = set(section(params, "weather", WeatherConfig, source).heldout)
    for name in model_names(params):
        _, train = benchmark_configs(params, name, source)
        if leaked := sorted(heldout & set(train.weather_types)):
            raise ConfigError(f"{source}: {_where(params, name)}.train.weather_types trains on held-out condition(s) "
                              f"{leaked} (weather.heldout); remove them from one of the two lists")


def section(params: dict, name: str, cls: type, source: str = "params.yaml"):
    """Typed view of one top-level section of params."""
    return from_dict(cls, params.get(name), name, source)


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base``."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "extra":
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


BENCHMARK_KEYS = ("model", "train", "description")


@dataclass
class DistillConfig:
    """One entry of ``students``: a model trained by `distill@<name>` from a teacher's logits (cityseg.distill)."""

    teacher: str  # a benchmark: its models/<teacher>/best.pt teaches
    # The benchmark whose model and recipe the student takes; its own `train@` run is the no-teacher ablation.
    student: str
    temperature: float = 2.0  # softmax temperature of both logits in the KL term
    weight: float = 1.0  # the KL term's weight beside the student recipe's own loss
    init_from_teacher: bool = False  # start from the teacher's weights (needs the teacher's architecture)
    description: str = ""
    model: dict = field(default_factory=dict)  # overrides of the student benchmark's model and train sections
    train: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.temperature <= 0 or self.weight < 0:
            raise ConfigError(f"temperature must be > 0 and weight >= 0, got {self.temperature} and {self.weight}")


def model_names(params: dict) -> list[str]:
    """Every model the pipeline trains: the benchmarks, then the students."""
    return [*(params.get("benchmarks") or {}), *(params.get("students") or {})]


def _where(params: dict, name: str) -> str:
    return f"students.{name}" if name in (params.get("students") or {}) else f"benchmarks.{name}"


def distill_config(params: dict, name: str, source: str = "params.yaml") -> DistillConfig:
    """The ``students.<name>`` entry, checked: its teacher and student are benchmarks (not students)."""
    students, benchmarks = params.get("students") or {}, params.get("benchmarks") or {}
    if name not in students:
        raise ConfigError(f"{source}: no student '{name}' under 'students' (have: {', '.join(students) or 'none'})")
    try:
        cfg = from_dict(DistillConfig, students[name], f"students.{name}", source)
    except TypeError as exc:  # a required key left out
        raise ConfigError(f"{source}: students.{name} needs 'teacher' and 'student' ({exc})") from None
    for key in ("teacher", "student"):
        if getattr(cfg, key) not in benchmarks:
            raise ConfigError(f"{source}: students.{name}.{key} is '{getattr(cfg, key)}', which is not a key of "
                              f"'benchmarks' (have: {', '.join(benchmarks)})")
    return cfg


def _merged(params: dict, name: str, source: str) -> tuple[dict, dict]:
    """The raw model and train dicts of ``name``: shared defaults < benchmark entry < student overrides."""
    if name in (params.get("students") or {}):
        cfg = distill_config(params, name, source)
        model, train = _merged(params, cfg.student, source)
        return deep_merge(model, cfg.model), deep_merge(train, cfg.train)
    benchmarks = params.get("benchmarks") or {}
    if name not in benchmarks:
        raise ConfigError(f"{source}: no benchmark or student '{name}' (have: {', '.join(model_names(params))})")
    entry = benchmarks[name] or {}
    unknown = sorted(set(entry) - set(BENCHMARK_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key 'benchmarks.{name}.{unknown[0]}' (known: {', '.join(BENCHMARK_KEYS)})")
    return (deep_merge(params.get("model") or {}, entry.get("model") or {}),
            deep_merge(params.get("train") or {}, entry.get("train") or {}))


def benchmark_configs(params: dict, name: str, source: str = "params.yaml") -> tuple[ModelConfig, TrainConfig]:
    """Model and train config of benchmark or student ``name``: its entry merged over the shared defaults (a
    student's over those of the benchmark it takes its recipe from)."""
    model, train = _merged(params, name, source)
    where = _where(params, name)
    return (from_dict(ModelConfig, model, f"{where}.model", source),
            from_dict(TrainConfig, train, f"{where}.train", source))
