"""End to end: the real dvc.yaml in a temporary Git repo with tiny params."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DVC, copy_project, run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(pipeline_run, tmp_path_factory):
    # A private copy of the session's one tiny run (conftest.pipeline_run): these tests run experiments in it.
    root = tmp_path_factory.mktemp("project") / "p"
    return root, copy_project(pipeline_run, root)


def test_repro_writes_metrics_and_is_up_to_date(project):
    root, env = project
    for bench in ("baseline", "peak", "robust", "efficient", "ood"):
        metrics = json.loads((root / "metrics" / f"{bench}.json").read_text())
        assert 0.0 <= metrics["dice"] <= 1.0 and 0.0 <= metrics["miou"] <= 1.0
        assert metrics["gflops"] > 0 and metrics["params_m"] > 0
        assert {"fog_1", "rain_2", "gaussian_noise_5", "dice_corrupted_mean", "retention", "dice_heldout_mean"} \
            <= set(metrics["robustness"])
        assert {"auroc_near", "auroc_far", "fpr95_near", "fpr95_far", "score", "score_accept_all"} <= set(metrics["ood"])
        assert {"score", "fps_cpu", "latency_ms_cpu"} <= set(metrics["efficiency"])
        assert (root / "models" / bench / "best.pt").exists()
        assert (root / "live" / bench / "plots/metrics/val/dice.tsv").exists()
    manifest = json.loads((root / "data/prepared/manifest.json").read_text())
    assert manifest["splits"]["train"]["count"] == 6
    assert (root / "reports/figures/samples.png").exists()
    assert (root / "data/weather/fog/1/leftImg8bit/test").is_dir()
    assert (root / "reports/paper/summary.md").exists() and (root / "reports/paper/pareto.png").exists()
    status = run(DVC + ["status", "--json"], root, env)
    assert json.loads(status.stdout) == {}
    again = run(DVC + ["repro"], root, env)
    assert "Running stage" not in again.stdout
    plots = run(DVC + ["plots", "show", "--json"], root, env)
    assert '"errors"' not in plots.stdout


def test_experiment_changes_flops_in_metrics_diff(project):
    root, env = project
    base = json.loads((root / "metrics/baseline.json").read_text())
    # The README's ablation, for the baseline's chain alone (train@baseline, evaluate@baseline): the whole
    # pipeline would retrain every model that inherits the model section, for the same assertions.
    run(DVC + ["exp", "run", "-S", "model.width=0.5", "evaluate@baseline"], root, env)
    new = json.loads((root / "metrics/baseline.json").read_text())
    assert new["gflops"] == pytest.approx(base["gflops"] / 4, rel=0.1)
    diff = run(DVC + ["metrics", "diff", "--json"], root, env)
    changes = json.loads(diff.stdout)["metrics/baseline.json"]
    assert changes["gflops"]["old"] == base["gflops"] and changes["gflops"]["new"] == new["gflops"]


def test_bad_params_key_fails_the_stage_with_its_name(project, tmp_path):
    root, env = project
    bad = tmp_path / "params.yaml"
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["widht"] = 0.5
    bad.write_text(yaml.safe_dump(params))
    proc = run([sys.executable, str(root / "stages/train.py"), "--benchmark", "baseline", "--prepared",
                str(root / "data/prepared"), "--out", str(tmp_path / "m"), "--live", str(tmp_path / "l"), "--resume", str(tmp_path / "r"),
                "--params", str(bad)], root, env, ok=False)
    assert proc.returncode == 2 and "unknown key 'model.widht'" in proc.stderr
    assert not (tmp_path / "m").exists()


def test_temp_experiment_killed_in_training_resumes_in_the_next_run(project):
    # `dvc exp run --temp` trains in a throw-away copy under .dvc/tmp/exps/; the resume state must land in the
    # main project (DVC_ROOT) so the next run continues instead of starting over.
    import signal
    import time

    root, env = project
    resume = root / ".cityseg/resume/baseline"
    cmd = DVC + ["exp", "run", "--temp", "-S", "train.epochs=40", "train@baseline"]  # the training stage alone
    first = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 600
    while not list(resume.glob("*/last.pt")):
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
        time.sleep(0.1)  # polling interval, not a timing assumption
    pids = subprocess.run(["pgrep", "-f", f"stages/train.py --benchmark baseline"], capture_output=True, text=True)
    # DVC runs the command through `sh -c`, so pgrep also matches the shell: signal the Python process itself.
    training = [int(p) for p in pids.stdout.split()
                if Path(f"/proc/{p}/cwd").resolve().is_relative_to(root / ".dvc/tmp/exps")
                and Path(f"/proc/{p}/exe").resolve().name.startswith("python")]
    assert len(training) == 1, pids.stdout
    os.kill(training[0], signal.SIGTERM)
    out = first.communicate(timeout=600)[0]
    assert first.returncode != 0 and "exited with 75" in out, out[-3000:]
    again = run(cmd, root, env)
    log = again.stdout + again.stderr  # the stage logs to stderr; DVC passes it through
    assert "resuming from" in log and str(resume) in log, log[-3000:]
    assert not resume.exists()
