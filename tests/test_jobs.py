"""Cluster jobs: resume folder resolution, stop on SIGUSR1/SIGTERM mid-epoch, exit 75 and an exact continuation."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from cityseg import train as train_module
from cityseg.config import ModelConfig, TrainConfig
from cityseg.jobs import EXIT_PREEMPTED, StopSignals, project_root, resolve_resume_dir
from test_train import FASTSCNN, H, W, make_prepared, run_fit

REPO = Path(__file__).resolve().parents[1]
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def test_resume_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.delenv("CITYSEG_RESUME_ROOT", raising=False)
    main = tmp_path / "main"
    main.mkdir()
    git("init", "-q", cwd=main)
    (main / "f").write_text("x")
    git("add", "f", cwd=main)
    git("commit", "-qm", "init", cwd=main)
    git("worktree", "add", "-q", str(tmp_path / "wt"), cwd=main)
    (main / "sub").mkdir()
    assert project_root(main / "sub") == main.resolve()
    assert project_root(tmp_path / "wt") == main.resolve()  # a worktree resumes in the main checkout
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert project_root(outside) == outside.resolve()  # no Git: the current directory
    monkeypatch.chdir(tmp_path / "wt")
    assert resolve_resume_dir(".cityseg/resume/b") == main.resolve() / ".cityseg/resume/b"
    assert resolve_resume_dir(tmp_path / "abs") == tmp_path / "abs"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "parent"))  # what DVC sets in a temporary experiment copy
    assert resolve_resume_dir(".cityseg/resume/b") == (tmp_path / "parent").resolve() / ".cityseg/resume/b"
    monkeypatch.setenv("CITYSEG_RESUME_ROOT", "/scratch/me")
    assert resolve_resume_dir(".cityseg/resume/b") == Path("/scratch/me/.cityseg/resume/b")


def test_stop_signals_record_and_restore():
    before = signal.getsignal(signal.SIGUSR1)
    with StopSignals() as stop:
        assert not stop.requested()
        os.kill(os.getpid(), signal.SIGUSR1)
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested() and stop.name == "SIGUSR1"  # the first one counts
    assert signal.getsignal(signal.SIGUSR1) is before


def _weights_after_each_epoch(monkeypatch) -> list:
    real, weights = train_module.evaluate, []

    def capture(model, *args, **kwargs):
        weights.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real(model, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", capture)
    return weights


def test_signal_mid_epoch_saves_the_step_and_resumes_exactly(tmp_path, monkeypatch, caplog):
    # Dropout (Fast-SCNN), augmentation, warm-up + poly LR: the weights match only if the loader position,
    # partial loss, optimizer, scheduler and RNG of the step are all restored.
    make_prepared(tmp_path / "prepared", n_train=8)
    train = TrainConfig(epochs=2, batch_size=2, size=[H, W], lr=1e-2, augment="strong", schedule="poly",
                        warmup_epochs=0.5, loss="ce_dice", amp="fp32", seed=4)
    weights = _weights_after_each_epoch(monkeypatch)
    full, _ = run_fit(tmp_path, train, "full", FASTSCNN)
    full_final = weights[-1]
    real_build_loss, calls = train_module.build_loss, {"n": 0}

    def build_loss(cfg):  # SIGTERM during the 7th loss call (4 steps + validation, then step 2 of epoch 2)
        loss = real_build_loss(cfg)

        def signalling(logits, target):
            calls["n"] += 1
            if calls["n"] == 7:
                os.kill(os.getpid(), signal.SIGTERM)
            return loss(logits, target)
        return signalling

    monkeypatch.setattr(train_module, "build_loss", build_loss)
    first, part = run_fit(tmp_path, train, "part", FASTSCNN)
    assert first == {"interrupted": True, "epochs_done": 1, "steps": 2, "reason": "SIGTERM"}
    monkeypatch.setattr(train_module, "build_loss", real_build_loss)
    weights.clear()
    with caplog.at_level(logging.INFO, logger="cityseg.train"):
        resumed, _ = run_fit(tmp_path, train, "part", FASTSCNN)
    assert "after epoch 1 of 2, step 2 of epoch 2" in caplog.text
    assert len(weights) == 1 and all(torch.equal(weights[0][k], full_final[k]) for k in full_final)
    strip = lambda r: [{k: v for k, v in h.items() if k != "images_per_s"} for h in r["history"]]  # noqa: E731
    assert strip(resumed) == strip(full)
    assert not (part / "resume").exists()


WRAPPER = """
import runpy, sys, time, torch
import cityseg.train as T
real_finish, real_loss = T._finish, T.build_loss
def finish(setup, state, runlog, cfg, out_dir, resume_dir):  # keep the final weights for the comparison
    torch.save(setup.model.state_dict(), out_dir / "final.pt")
    return real_finish(setup, state, runlog, cfg, out_dir, resume_dir)
def slow_loss(cfg):  # a few seconds of training, so the signal lands while it runs
    loss = real_loss(cfg)
    return lambda logits, target: (time.sleep(0.05), loss(logits, target))[1]
T._finish, T.build_loss = finish, slow_loss
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow  # three training subprocesses, ~15 s; the in-process test above checks the same exactness
def test_sigterm_exits_75_and_the_next_job_ends_at_identical_weights(tmp_path):
    make_prepared(tmp_path / "prepared", n_train=16)
    params = {"model": {"arch": "fastscnn", "width": 0.25},
              "train": {"epochs": 3, "batch_size": 2, "size": [H, W], "augment": "strong", "amp": "fp32", "seed": 2},
              "benchmarks": {"tiny": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    (tmp_path / "wrapper.py").write_text(WRAPPER)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "CITYSEG_RESUME_ROOT": str(tmp_path / "root")}
    env.pop("DVC_ROOT", None)

    def start(name: str) -> subprocess.Popen:
        cmd = [sys.executable, str(tmp_path / "wrapper.py"), str(REPO / "stages/train.py"), "--benchmark", "tiny",
               "--prepared", str(tmp_path / "prepared"), "--out", str(tmp_path / name / "model"),
               "--live", str(tmp_path / name / "live"), "--resume", f"{name}/resume", "--params", str(tmp_path / "params.yaml")]
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    full = start("full")
    assert full.wait(timeout=300) == 0, full.stdout.read()
    job = start("part")
    resume = tmp_path / "root" / "part" / "resume"
    while not list(resume.glob("*/last.pt")):  # epoch 1 is done: preempt the job during epoch 2
        assert job.poll() is None, job.stdout.read()
        try:
            job.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    job.send_signal(signal.SIGTERM)
    assert job.wait(timeout=300) == EXIT_PREEMPTED
    assert "stopped by SIGTERM after epoch" in job.stdout.read()
    again = start("part")
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    assert "resuming from" in out and "after epoch" in out
    a = torch.load(tmp_path / "full/model/final.pt", weights_only=True)
    b = torch.load(tmp_path / "part/model/final.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not resume.exists()
