"""cityseg.tracking: W&B beside DVCLive, off by default, with a fake wandb module (no network, no package)."""

from __future__ import annotations

import sys
import types

import pytest

from cityseg.config import ConfigError, TrainConfig, load_params
from test_train import H, W, make_prepared, run_fit


class FakeRun:
    def __init__(self, calls: list):
        self.calls, self.summary = calls, {}

    def log(self, data: dict, step: int) -> None:
        self.calls.append(("log", sorted(data), step))

    def finish(self, exit_code: int = 0) -> None:
        self.calls.append(("finish", exit_code))


@pytest.fixture
def fake_wandb(monkeypatch) -> list:
    calls: list = []
    module = types.ModuleType("wandb")
    module.init = lambda **kw: calls.append(("init", kw)) or FakeRun(calls)
    module.Image = lambda array: ("image", array.shape)
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("DVC_EXP_NAME", "zesty-gulf")
    return calls


def test_wandb_is_off_by_default():
    assert TrainConfig().wandb is False and load_params()["train"]["wandb"] is False


def test_wandb_run_named_after_the_experiment_gets_every_epoch(tmp_path, fake_wandb):
    make_prepared(tmp_path / "prepared")
    train = TrainConfig(epochs=2, batch_size=2, size=[H, W], wandb=True, seed=1)
    result, _ = run_fit(tmp_path, train, "run", run_name="baseline")
    kind, init = fake_wandb[0]
    assert kind == "init" and init["name"] == "zesty-gulf-baseline" and init["group"] == "zesty-gulf"
    assert init["config"]["train"]["epochs"] == 2 and init["project"] == "cityseg"
    epochs = [c for c in fake_wandb if c[0] == "log" and "epoch" in c[1]]
    assert [c[2] for c in epochs] == [0, 1] and {"train/loss", "val/dice", "val/miou", "lr"} <= set(epochs[0][1])
    assert ("log", ["overlay"], 0) in fake_wandb
    assert fake_wandb[-1] == ("finish", 0) and result["interrupted"] is False


def test_wandb_enabled_without_the_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    make_prepared(tmp_path / "prepared")
    with pytest.raises(ConfigError, match="wandb package is not installed"):
        run_fit(tmp_path, TrainConfig(epochs=1, batch_size=2, size=[H, W], wandb=True), "run")
