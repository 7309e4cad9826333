"""cluster/: the SLURM scripts parse, call commands and options that exist, and forward a signal to training."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cityseg.jobs import EXIT_PREEMPTED

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((REPO / "cluster").glob("*.sh")) + sorted((REPO / "cluster").glob("*.sbatch"))
DVC = [sys.executable, "-m", "dvc"]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shell_scripts_parse(script):
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_sbatch_headers():
    for name in ("train.sbatch", "sweep.sbatch"):
        text = (REPO / "cluster" / name).read_text()
        for option in ("--partition=gpu_a100", "--gpus=1", "--cpus-per-task=18", "--time=04:00:00",
                       "--signal=B:USR1@", "--requeue"):
            assert f"#SBATCH {option}" in text, (name, option)


def test_dvc_commands_and_options_the_scripts_use_exist():
    text = "\n".join(p.read_text() for p in SCRIPTS)
    uses = {("exp", "run"): ["--queue", "--run-all", "-j", "-S", "-n"], ("repro",): [],
            ("queue", "remove"): ["--queued", "--failed"], ("exp", "show"): ["--md"]}
    for sub, options in uses.items():
        assert re.search(r"dvc " + " ".join(sub), text), sub
        out = subprocess.run([*DVC, *sub, "--help"], capture_output=True, text=True, check=True,
                             env={**os.environ, "DVC_NO_ANALYTICS": "1"}).stdout
        for option in options:
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}[\s,=\]]", out), (sub, option)


def test_the_forwarding_matches_the_training_stage_command():
    train_cmd = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    assert train_cmd.startswith("python stages/train.py ") and (REPO / "stages/train.py").is_file()
    assert 'grep -q "stages/train.py"' in (REPO / "cluster/common.sh").read_text()
    assert f"EXIT_PREEMPTED={EXIT_PREEMPTED}" in (REPO / "cluster/common.sh").read_text()
    assert "requirements.txt" in (REPO / "cluster/cityseg.def").read_text() and (REPO / "requirements.txt").is_file()


FAKE_TRAIN = """
import signal, sys, time, pathlib
signal.signal(signal.SIGUSR1, lambda *a: sys.exit(75))  # as the real stage: save, then exit 75
pathlib.Path(sys.argv[1]).write_text("ready")
deadline = time.monotonic() + 60  # never outlives a failed test for long
while time.monotonic() < deadline:
    time.sleep(0.05)
"""


def test_usr1_to_the_job_script_reaches_training_which_exits_75(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages/train.py").write_text(FAKE_TRAIN)
    job = tmp_path / "job.sh"
    job.write_text(f'. {REPO}/cluster/common.sh\nRUN=()\nrun_requeueable {sys.executable} stages/train.py ready\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.Popen(["bash", str(job)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    while not (tmp_path / "ready").exists():
        assert proc.poll() is None, proc.stdout.read()
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    proc.send_signal(__import__("signal").SIGUSR1)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == EXIT_PREEMPTED, out
    assert "SIGUSR1 received, forwarded to training process" in out
    assert "interrupted (status 75); run the same command again" in out
