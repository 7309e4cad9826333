"""Training loop: overfitting smoke test, exact resume, DVCLive output, checkpoints, LR and losses."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cityseg.config import ModelConfig, TrainConfig
from cityseg.dataset import SegDataset, load_cache, read_manifest
from cityseg.io import write_json
from cityseg import train as train_module
from cityseg.inference import Predictor
from cityseg.models import load_checkpoint
from cityseg.train import (
    ResumeState,
    amp_dtype_for,
    build_loss,
    config_hash,
    evaluate,
    fit,
    images_per_epoch,
    lr_factor,
    make_loader,
    soft_dice_loss,
    steps_per_epoch,
)
from cityseg.transforms import build_eval_transform, normalize

H, W = 32, 64
COLOURS = {0: (128, 64, 128), 2: (70, 70, 70), 10: (70, 130, 180), 13: (0, 0, 142)}  # road building sky car
MODEL = ModelConfig(arch="unet", base_channels=64, width=0.125)
FASTSCNN = ModelConfig(arch="fastscnn", width=0.25)  # has dropout: a resume must restore the RNG state


def make_prepared(root: Path, n_train: int = 4, n_val: int = 2, seed: int = 0, n_holdout: int = 0) -> Path:
    """A learnable prepared cache: sky / building / road / a car at a random place, noisy colours; with
    ``n_holdout``, also the holdout split prepare makes with data.holdout_cities."""
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)) + ((("holdout", n_holdout),) if n_holdout else ()):
        images, labels = [], []
        for _ in range(n):
            lab = np.zeros((H, W), np.uint8)
            lab[: H // 3] = 10
            lab[H // 3 : H // 3 + H // 4 + int(rng.integers(0, 3)), : W // 2] = 2
            r, c = int(rng.integers(H // 2, H - 8)), int(rng.integers(0, W - 16))
            lab[r : r + 6, c : c + 14] = 13
            lab[-2:] = 255  # ego vehicle: ignored
            img = np.zeros((H, W, 3), np.float32)
            for k, colour in COLOURS.items():
                img[lab == k] = colour
            images.append(np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8))
            labels.append(lab)
        stems = [f"tiny_{i:06d}_000019" for i in range(n)]
        cache = root / "cache" / split
        cache.mkdir(parents=True)
        np.save(cache / "images.npy", np.stack(images))
        np.save(cache / "labels.npy", np.stack(labels))
        write_json(cache / "index.json", {"stems": stems, "size": [H, W], "cameras": [None] * n})
        splits[split] = {"count": n, "has_labels": True, "has_depth": False, "stems": stems, "size": [H, W]}
    write_json(root / "manifest.json", {"source": "synthcity", "splits": splits, "cache_size": [H, W],
                                        "class_frequencies": {}})
    return root


@contextlib.contextmanager
def cwd(path: Path):
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def run_fit(base: Path, train: TrainConfig, name: str, model: ModelConfig = MODEL, **kw) -> tuple[dict, Path]:
    """fit() with its outputs under base/name, run from base (so a stray dvc.yaml would land there)."""
    out = base / name
    with cwd(base):
        result = fit(model, train, base / "prepared", out / "model", out / "live", out / "resume",
                     device="cpu", progress=False, **kw)
    return result, out


def run_dir(base: Path, out: Path, train: TrainConfig, model: ModelConfig = MODEL) -> Path:
    """The folder of ``run_fit(base, train, out.name, model)``'s resume files (keyed by the config hash)."""
    return train_module.run_resume_dir(out / "resume", config_hash(model, train, read_manifest(base / "prepared")))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("train")
    make_prepared(base / "prepared")
    return base


@pytest.fixture(scope="module")
def overfit(workdir) -> tuple[dict, Path, TrainConfig]:
    train = TrainConfig(epochs=8, batch_size=2, size=[H, W], lr=1e-2, augment="none", seed=3)
    result, out = run_fit(workdir, train, "overfit")
    return result, out, train


def test_smoke_overfits_tiny_images(overfit):
    result, _, _ = overfit
    hist = result["history"]
    assert result["interrupted"] is False and len(hist) == 8
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]
    assert max(h["val_dice"] for h in hist[-3:]) > hist[0]["val_dice"] + 0.2
    assert result["val_dice"] == max(h["val_dice"] for h in hist)  # best = highest val Dice
    assert result["device"] == "cpu" and result["train_images_per_s"] > 0


def test_dvclive_logs_without_dvc_yaml(overfit, workdir):
    _, out, _ = overfit
    metrics = out / "live" / "plots" / "metrics"
    for name in ("train/loss", "val/loss", "val/dice", "val/miou", "lr"):
        with (metrics / f"{name}.tsv").open() as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        assert [int(r["step"]) for r in rows] == list(range(8)), name
    summary = json.loads((out / "live" / "metrics.json").read_text())
    assert summary["best"]["best_epoch"] >= 1 and "dice" in summary["val"]
    overlay = cv2.imread(str(out / "live" / "plots" / "images" / "overlay.png"))
    assert overlay.shape == (H, 3 * W, 3)  # image | ground truth | prediction
    assert not list(workdir.rglob("dvc.yaml")) and not (workdir / ".dvc").exists()
    assert not (out / "resume" / "last.pt").exists()  # removed after a successful end


def test_best_checkpoint_reloads_and_reproduces_its_score(overfit, workdir):
    result, out, train = overfit
    model, cfg, meta = load_checkpoint(out / "model" / "best.pt", "cpu")
    assert cfg == MODEL
    assert meta["epoch"] == result["best_epoch"] and meta["val_dice"] == pytest.approx(result["val_dice"])
    val = SegDataset(load_cache(workdir / "prepared", "val"), build_eval_transform(train.size, resize_mask=False))
    scores = evaluate(model, make_loader(val, 2, shuffle=False, num_workers=0, seed=0), build_loss(train),
                      torch.device("cpu"), train.min_class_area)
    assert scores["dice"] == pytest.approx(meta["val_dice"], abs=1e-6)
    assert scores["miou"] == pytest.approx(meta["val_miou"], abs=1e-6)
    summary = json.loads((out / "model" / "summary.json").read_text())
    assert summary["best_epoch"] == result["best_epoch"]
    assert meta["val_split"] == summary["val_split"] == "val"  # no holdout split prepared


def test_training_validates_on_the_holdout_split_when_prepared(tmp_path, caplog):
    make_prepared(tmp_path / "prepared", n_holdout=3)
    _, train_cache, val_cache, split = train_module._read_splits(tmp_path / "prepared")
    assert split == "holdout" and len(val_cache) == 3 and len(train_cache) == 4  # val has 2
    train = TrainConfig(epochs=1, batch_size=2, size=[H, W], seed=3)
    with caplog.at_level(logging.INFO, logger="cityseg.train"):
        result, out = run_fit(tmp_path, train, "held")
    assert result["val_split"] == "holdout" and "3 holdout images (validation)" in caplog.text
    assert "holdout loss" in caplog.text
    model, _, meta = load_checkpoint(out / "model" / "best.pt", "cpu")
    assert meta["val_split"] == "holdout"
    assert Predictor.from_checkpoint(out / "model" / "best.pt", "cpu").epoch_split == "holdout"
    held = SegDataset(load_cache(tmp_path / "prepared", "holdout"), build_eval_transform(train.size, resize_mask=False))
    scores = evaluate(model, make_loader(held, 2, shuffle=False, num_workers=0, seed=0), build_loss(train),
                      torch.device("cpu"), train.min_class_area)
    assert scores["dice"] == pytest.approx(meta["val_dice"], abs=1e-6)  # the recorded score is the holdout's


def test_resume_with_dropout_gives_identical_weights_and_keeps_the_best(workdir, monkeypatch, caplog):
    # Fast-SCNN's dropout draws from the global torch RNG, so the weights after a resume match only when
    # the RNG state is restored; augmentation, warm-up + poly schedule and the Dice loss take part too.
    # Validation is the real one, but its Dice is scripted (epoch 1 best, then worse), so the final
    # best.pt must be the one saved *before* the interruption, restored although `out` was deleted.
    train = TrainConfig(epochs=3, batch_size=2, size=[H, W], lr=1e-2, augment="strong", schedule="poly",
                        warmup_epochs=1.0, loss="ce_dice", select_by="dice", amp="fp32", seed=11)
    real_evaluate, scripted_dice, weights = train_module.evaluate, [0.9, 0.5, 0.4], []
    epoch = {"next": 0}

    def scripted(model, loader, loss_fn, device, min_area=0.0):
        out = real_evaluate(model, loader, loss_fn, device, min_area)
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})  # after this epoch
        out["dice"] = scripted_dice[epoch["next"]]
        epoch["next"] += 1
        return out

    monkeypatch.setattr(train_module, "evaluate", scripted)
    full, full_dir = run_fit(workdir, train, "full", FASTSCNN)
    full_final = weights[-1]
    epoch["next"] = 0
    first, part_dir = run_fit(workdir, train, "part", FASTSCNN, stop_after_epochs=1)
    assert first == {"interrupted": True, "epochs_done": 1, "steps": 0, "reason": "stop_after_epochs"}
    saved = torch.load(run_dir(workdir, part_dir, train, FASTSCNN) / "last.pt", weights_only=True)
    assert list(saved) == [f.name for f in dataclasses.fields(ResumeState)]
    assert saved["epoch"] == 1 and saved["best"]["epoch"] == 1 and saved["best_score"] == 0.9
    # `dvc repro` deletes a stage's outputs before re-running it; only the resume dir survives.
    shutil.rmtree(part_dir / "model")
    shutil.rmtree(part_dir / "live")
    with caplog.at_level(logging.INFO, logger="cityseg.train"):
        resumed, _ = run_fit(workdir, train, "part", FASTSCNN)
    assert "resuming" in caplog.text and epoch["next"] == 3
    assert not (part_dir / "resume").exists()  # emptied and removed after a successful end

    def trajectory(result):  # every epoch's losses, scores and LR (timings differ, of course)
        return [{k: v for k, v in h.items() if k != "images_per_s"} for h in result["history"]]

    # The weights after the last epoch, bit for bit, and every epoch's numbers.
    assert weights[-1].keys() == full_final.keys() and all(torch.equal(weights[-1][k], full_final[k]) for k in full_final)
    assert trajectory(resumed) == trajectory(full)
    assert full["best_epoch"] == resumed["best_epoch"] == 1
    a = torch.load(full_dir / "model" / "best.pt", weights_only=True)
    b = torch.load(part_dir / "model" / "best.pt", weights_only=True)
    assert a["meta"]["epoch"] == b["meta"]["epoch"] == 1 and b["meta"]["val_dice"] == 0.9
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    with (part_dir / "live" / "plots" / "metrics" / "val" / "dice.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert [(int(r["step"]), float(r["dice"])) for r in rows] == [(0, 0.9), (1, 0.5), (2, 0.4)]  # replayed + new


def test_stale_resume_checkpoint_is_ignored(workdir):
    train = TrainConfig(epochs=1, batch_size=4, size=[H, W], seed=5)
    resume = run_dir(workdir, workdir / "stale", train) / "last.pt"
    resume.parent.mkdir(parents=True)
    torch.save({"config_hash": "another run", "epoch": 7}, resume)
    result, _ = run_fit(workdir, train, "stale")
    assert result["interrupted"] is False and len(result["history"]) == 1
    assert not resume.exists()


def test_config_hash_tracks_what_changes_results():
    manifest = {"splits": {"train": {"count": 4}}}
    base = config_hash(MODEL, TrainConfig(), manifest)
    assert base == config_hash(MODEL, TrainConfig(num_workers=4), manifest)
    assert base == config_hash(MODEL, TrainConfig(prefetch_factor=8), manifest)
    assert base != config_hash(MODEL, TrainConfig(compile=True), manifest)  # compiled kernels may round differently
    assert base != config_hash(MODEL, TrainConfig(lr=2e-3), manifest)
    assert base != config_hash(ModelConfig(base_channels=64, width=0.5), TrainConfig(), manifest)
    assert base != config_hash(MODEL, TrainConfig(), {"splits": {"train": {"count": 5}}})


def test_lr_schedules():
    assert [lr_factor(s, 100, 10, "constant") for s in (0, 4, 9, 50)] == [0.1, 0.5, 1.0, 1.0]
    assert lr_factor(10, 100, 10, "poly") == 1.0 and lr_factor(100, 100, 10, "poly") == 0.0
    assert lr_factor(55, 100, 10, "poly") == pytest.approx(0.5**0.9)
    assert lr_factor(55, 100, 10, "cosine") == pytest.approx(0.5)
    assert lr_factor(100, 100, 10, "cosine") == pytest.approx(0.0)
    with pytest.raises(ValueError, match="schedule"):
        lr_factor(20, 100, 10, "step")


class PairEcho(torch.utils.data.Dataset):
    """n items; item ``(epoch, index)`` (what a training loader asks for) is the tensor [epoch, index]."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        return torch.tensor(item)


def test_steps_per_epoch_matches_loader():
    for n, bs in ((4, 2), (5, 2), (3, 4), (9, 4), (1, 1)):
        loader = make_loader(PairEcho(n), bs, shuffle=True, num_workers=0, seed=0)
        assert len(loader) == steps_per_epoch(n, bs), (n, bs)
        assert sum(len(batch) for batch in loader) == images_per_epoch(n, bs), (n, bs)
    # A last batch of one image is dropped (BatchNorm): 9 = 4 + 4 + 1 -> 2 steps, 8 images; 5 = 2 + 2 + 1 too.
    assert (steps_per_epoch(9, 4), images_per_epoch(9, 4)) == (2, 8)
    assert (steps_per_epoch(5, 2), images_per_epoch(5, 2)) == (2, 4)
    assert (steps_per_epoch(6, 4), images_per_epoch(6, 4)) == (2, 6)  # a last batch of 2 is kept
    assert (steps_per_epoch(1, 1), images_per_epoch(1, 1)) == (1, 1)  # a single image is never dropped


def test_batches_travel_as_uint8_and_widen_on_the_device(monkeypatch):
    images = torch.randint(0, 256, (2, H, W, 3), dtype=torch.uint8)
    masks = torch.randint(0, 19, (2, H, W), dtype=torch.uint8)
    moved, real_to = [], torch.Tensor.to

    def spy(self, *args, **kwargs):
        out = real_to(self, *args, **kwargs)
        if out.device != self.device:
            moved.append((self.dtype, kwargs.get("non_blocking")))
        return out

    monkeypatch.setattr(torch.Tensor, "to", spy)
    # The meta device stands in for a GPU: what crosses to it is uint8, the float and int64 tensors are made there.
    x, y = train_module._to_device(images, masks, torch.device("meta"), channels_last=True)
    assert moved == [(torch.uint8, True), (torch.uint8, True)]
    assert x.device.type == y.device.type == "meta" and x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.shape == (2, 3, H, W) and x.is_contiguous(memory_format=torch.channels_last)
    monkeypatch.undo()
    # On a CPU, bit for bit the batch of the old path (each image normalised in the worker, masks widened there).
    x, y = train_module._to_device(images, masks, torch.device("cpu"), channels_last=True)
    old = torch.stack([normalize(im.numpy()) for im in images]).contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, old) and x.stride() == old.stride() and torch.equal(y, masks.long())
    with pytest.raises(ValueError, match="uint8"):  # an already normalised batch is not normalised again
        train_module._to_device(old.permute(0, 2, 3, 1), masks, torch.device("cpu"))


def test_compiled_training_checkpoints_the_plain_module(workdir, monkeypatch):
    # CPU stand-in for `train.compile`: torch.compile with the eager backend wraps the network in the same
    # OptimizedModule (state_dict keys prefixed `_orig_mod.`) and traces it with dynamo, without inductor's
    # kernel compilation (minutes on a small CPU). The call itself is `train.compile_for_training`.
    wrapped, real_compile = [], torch.compile

    def eager_compile(module, **kwargs):
        wrapped.append(real_compile(module, backend="eager", **kwargs))
        return wrapped[-1]

    monkeypatch.setattr(torch, "compile", eager_compile)
    train = TrainConfig(epochs=2, batch_size=2, size=[H, W], lr=1e-2, augment="none", seed=3, compile=True)
    first, out = run_fit(workdir, train, "compiled", stop_after_epochs=1)
    assert first["interrupted"] and len(wrapped) == 1
    assert all(k.startswith("_orig_mod.") for k in wrapped[0].state_dict())  # what saving the wrapper would give
    plain = set(train_module.build_model(MODEL).state_dict())
    assert set(torch.load(run_dir(workdir, out, train) / "last.pt", weights_only=True)["model"]) == plain
    result, out = run_fit(workdir, train, "compiled")  # resumes the compiled run from the plain resume state
    assert not result["interrupted"] and len(wrapped) == 2
    assert set(torch.load(out / "model" / "best.pt", weights_only=True)["state_dict"]) == plain
    load_checkpoint(out / "model" / "best.pt", "cpu")  # evaluation and packaging load it unchanged


def test_soft_dice_loss_ignores_255_and_rewards_overlap():
    target = torch.tensor([[[0, 0, 1, 255]]])  # (1, 1, 4)
    perfect = torch.full((1, 3, 1, 4), -20.0)
    perfect[0, 0, 0, :2] = 20.0
    perfect[0, 1, 0, 2] = 20.0
    perfect[0, 2, 0, 3] = 20.0  # confidently "class 2" on the ignored pixel: must not count
    assert soft_dice_loss(perfect, target).item() == pytest.approx(0.0, abs=1e-6)
    wrong = perfect.roll(1, dims=1)
    assert soft_dice_loss(wrong, target, eps=1e-6).item() == pytest.approx(1.0, abs=1e-5)
    assert soft_dice_loss(perfect, torch.full_like(target, 255)).item() == 0.0
    ce_dice = build_loss(TrainConfig(loss="ce_dice", dice_weight=0.5))
    ce = build_loss(TrainConfig(loss="ce"))
    assert ce_dice(wrong, target).item() == pytest.approx(ce(wrong, target).item() + 0.5 * soft_dice_loss(wrong, target).item())


def test_amp_choice(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_dtype_for(cpu, "fp32") is None and amp_dtype_for(cuda, "fp32") is None
    assert amp_dtype_for(cpu, "bf16") == torch.bfloat16 and amp_dtype_for(cuda, "auto") == torch.bfloat16
    # auto on a CPU follows oneDNN's native-bf16 check (emulated bf16 is slower than fp32)
    for native in (True, False):
        monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda native=native: native)
        assert amp_dtype_for(cpu, "auto") == (torch.bfloat16 if native else None)
    with pytest.raises(ValueError, match="train.amp"):
        TrainConfig(amp="fp16")


def test_bf16_training_runs_and_learns_on_cpu(workdir):
    train = TrainConfig(epochs=4, batch_size=2, size=[H, W], lr=1e-2, augment="none", seed=3, amp="bf16")
    result, _ = run_fit(workdir, train, "bf16")
    assert result["amp"] == "bfloat16"
    losses = [h["train_loss"] for h in result["history"]]
    assert losses[-1] < losses[0]


def test_min_class_area_is_validated():
    assert TrainConfig(min_class_area=0.002).min_class_area == 0.002
    with pytest.raises(ValueError, match="train.min_class_area"):
        TrainConfig(min_class_area=1.0)
