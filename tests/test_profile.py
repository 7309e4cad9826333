"""profiles/cityscapes.yaml and `python -m cityseg.profile`: params.yaml switched in place with its comments, params
that load, one real training step per benchmark at its real size, and clear errors that leave params.yaml alone."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from cityseg.config import ConfigError, benchmark_configs, load_params
from cityseg.flops import count_flops
from cityseg.labels import label_ids_to_train_ids
from cityseg.models import build_model
from cityseg.profile import apply_profile
from cityseg.synthcity import render_scene
from cityseg.train import build_loss, build_optimizer
from cityseg.transforms import build_train_transform, normalize

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
PROFILE = REPO / "profiles" / "cityscapes.yaml"
BENCHMARKS = list(yaml.safe_load(PROFILE.read_text())["benchmarks"])
# Steps heavier than this (forward GFLOPs at the training size) run on the centre quarter of the transformed crop:
# a ResNet-50 DeepLabV3+ step at 512x1024, batch 2, takes 15-40 s on 2 CPU cores, at 256x512 about 4 s.
STEP_GFLOPS_MAX = 100.0


@pytest.fixture(scope="module")
def applied(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("profile") / "params.yaml"
    shutil.copyfile(PARAMS, path)
    changed = apply_profile(path, PROFILE, ["data.cityscapes_root=/data/cityscapes"])
    assert changed["data.source"] == ("synthcity", "cityscapes")
    return path


@pytest.fixture(scope="module")
def frame() -> tuple[np.ndarray, np.ndarray]:
    """One full-resolution SynthCity frame: (1024, 2048, 3) uint8 RGB and (1024, 2048) uint8 trainIds."""
    scene = render_scene(np.random.default_rng(0), 1024, 2048)
    return scene.image, label_ids_to_train_ids(scene.label_ids)


def test_profile_keeps_comments_order_and_untouched_values(applied):
    before, after = PARAMS.read_text(), applied.read_text()
    # Full-line comments (the header, section notes) all survive; so do the comments of keys the profile leaves alone.
    for line in before.splitlines():
        if line.lstrip().startswith("#") and len(line) - len(line.lstrip()) < 33:
            assert line in after, f"comment lost: {line!r}"
    for kept in ("# passed to smp.create_model / our constructors", "# never trained on: one per group + low light",
                 "# out-of-distribution test beds (oodsets stage) and the refusal"):
        assert kept in after
    # A changed value carries the profile's reason, not the SynthCity one.
    assert "source: cityscapes             # the real dataset" in after
    assert "# the augmented recipe gets fewer epochs" not in after
    assert "# 4x the FLOPs for 1.3x the CPU time" not in after  # continuation of the replaced base_channels comment
    old, new = yaml.safe_load(before), yaml.safe_load(after)
    assert list(new) == list(old) and all(list(new[k])[: len(old[k])] == list(old[k]) for k in old if isinstance(old[k], dict))
    assert new["synthcity"] == old["synthcity"] and new["ood"] == old["ood"]
    assert new["students"]["ood"]["temperature"] == 2.0  # a key the profile does not name stays


def test_applied_params_load_with_the_profile_recipes(applied):
    params = load_params(applied)
    assert params["data"] == {"source": "cityscapes", "cityscapes_root": "/data/cityscapes", "cache_size": [512, 1024],
                              "workers": 18, "holdout_cities": 3, "holdout_seed": 0}
    model, train = benchmark_configs(params, "baseline")  # the course recipe exactly
    assert (model.arch, model.base_channels, model.width) == ("unet", 64, 1.0)
    assert (train.size, train.batch_size, train.epochs, train.optimizer, train.lr, train.schedule, train.augment,
            train.loss, train.select_by, train.seed, train.min_class_area) == (
        [256, 256], 64, 100, "adamw", 1e-3, "constant", "none", "ce", "loss", 42, 0.0)
    model, train = benchmark_configs(params, "peak")
    assert (model.arch, model.encoder_name, train.size, train.schedule, train.loss) == (
        "DeepLabV3Plus", "resnet50", [512, 1024], "poly", "ce_dice")
    assert model.weights_path and train.warmup_epochs > 0 and train.augment == "standard"
    model, _ = benchmark_configs(params, "efficient")
    assert model.arch == "fastscnn" and model.extra == {"input_scale": 0.25}
    assert params["weather"]["images"] == 100 and params["efficiency"]["latency_budget_s"] == 0


def _batch(frame, train_cfg, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` samples of the frame through the benchmark's own training transform: (n,3,H,W), (n,H,W)."""
    transform = build_train_transform(train_cfg)
    images, masks = [], []
    for i in range(n):
        image, mask = transform(frame[0], frame[1], rng=np.random.default_rng(i))
        images.append(normalize(image))
        masks.append(torch.from_numpy(np.ascontiguousarray(mask)).long())
    return torch.stack(images), torch.stack(masks)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_one_training_step_at_the_real_size(applied, frame, name):
    model_cfg, train_cfg = benchmark_configs(load_params(applied), name)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(model_cfg, weights_path=None)).train()  # no weights file here
    images, masks = _batch(frame, train_cfg)
    assert images.shape == (2, 3, *train_cfg.size) and masks.shape == (2, *train_cfg.size)
    assert set(masks.unique().tolist()) <= set(range(19)) | {255}
    if count_flops(model, tuple(train_cfg.size)) / 1e9 > STEP_GFLOPS_MAX:  # reduced on CPU: see STEP_GFLOPS_MAX
        h, w = (s // 2 for s in train_cfg.size)
        images, masks = images[..., h // 2: h // 2 + h, w // 2: w // 2 + w], masks[..., h // 2: h // 2 + h, w // 2: w // 2 + w]
    optimizer, loss_fn = build_optimizer(model, train_cfg), build_loss(train_cfg)
    before = [p.detach().clone() for p in model.parameters()]
    logits = model(images)
    assert logits.shape == (2, 19, *images.shape[-2:])
    loss = loss_fn(logits, masks)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "the step changed no weight"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "cityseg.profile", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize("where", ["profile", "set"])
def test_unknown_key_exits_2_and_leaves_params_untouched(tmp_path, where):
    params = tmp_path / "params.yaml"
    shutil.copyfile(PARAMS, params)
    profile = tmp_path / "bad.yaml"
    text = PROFILE.read_text()
    profile.write_text(text.replace("eval:\n  batch_size:", "eval:\n  batch_sise:") if where == "profile" else text)
    sets = ["--set", "train.epoch=3"] if where == "set" else []
    proc = _cli(str(profile), "--params", str(params), *sets)
    assert proc.returncode == 2, proc.stderr
    named = f"{profile}: unknown key 'eval.batch_sise'" if where == "profile" else "--set: unknown key 'train.epoch'"
    assert named in proc.stderr and "Traceback" not in proc.stderr
    assert params.read_bytes() == PARAMS.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".params.yaml.*"))  # no temporary left


def test_unknown_benchmark_and_bad_values_are_rejected(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copyfile(PARAMS, params)
    with pytest.raises(ConfigError, match=r"--set: unknown key 'benchmarks\.peek'"):
        apply_profile(params, PROFILE, ["benchmarks.peek.train.epochs=3"])  # a typo must not add a benchmark
    with pytest.raises(ConfigError, match=r"'benchmarks\.peak\.train\.epochs' must be int"):
        apply_profile(params, PROFILE, ["benchmarks.peak.train.epochs=ten"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_profile(params, PROFILE, ["train.epochs"])
    assert params.read_bytes() == PARAMS.read_bytes()


def test_applying_twice_changes_nothing(applied, tmp_path):
    again = tmp_path / "params.yaml"
    shutil.copyfile(applied, again)
    assert apply_profile(again, PROFILE, ["data.cityscapes_root=/data/cityscapes"]) == {}
    assert again.read_bytes() == applied.read_bytes()
