"""Team sharing through a DVC remote and a Git remote (README "Sharing one cache with teammates").

Project A runs the tiny pipeline and pushes (Git: bare local remote; DVC: local-folder remote, with the run-cache).
A fresh clone B with its own empty cache pulls and must hold every output of every stage, byte for byte, with
nothing left to run. Then the run-cache: which re-runs B can skip because A already ran and pushed them, which it
cannot, and why; a teammate on the same machine sharing A's cache directory; and `dvc exp push/pull`.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import DVC, copy_project, dvc_env, run

pytestmark = pytest.mark.slow

LR = "benchmarks.efficient.train.lr"  # a training param of one benchmark: the cheapest training chain to re-run
EXP = "lr-fast"
# What that change makes `dvc repro` run: the benchmark's training, its evaluation and submission, the paper report.
LR_CHAIN = {"train@efficient", "evaluate@efficient", "package@efficient", "report"}


def tree(path: Path) -> dict[str, str]:
    """md5 of every file under path (or of path itself), by relative path."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p.relative_to(path)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def lock_outs(root: Path) -> dict[str, str]:
    """Every output of every stage in dvc.lock: path -> stage."""
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return {out["path"]: stage for stage, entry in lock["stages"].items() for out in entry.get("outs", [])}


def ran(proc) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", proc.stdout))


def restored(proc) -> set[str]:
    return set(re.findall(r"Stage '([^']+)' is cached - skipping run, checking out outputs", proc.stdout))


def set_param(root: Path, dotted: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    *parents, leaf = dotted.split(".")
    node = params
    for key in parents:
        node = node[key]
    node[leaf] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_cache_cmds(cache: Path) -> list[str]:
    """The stage commands that have an entry in a cache's run-cache (runs/<key>/<value>)."""
    return sorted(" ".join(yaml.safe_load(p.read_text())["cmd"].split()[1:4]) for p in (cache / "runs").glob("*/*/*"))


def in_remote(remote: Path, md5: str) -> bool:
    return (remote / "files/md5" / md5[:2] / md5[2:]).exists()


@pytest.fixture(scope="module")
def team(pipeline_run, tmp_path_factory):
    """A: the run pipeline, pushed to a bare Git remote and a local-folder DVC remote; B: a fresh clone, pulled."""
    base = tmp_path_factory.mktemp("team")
    a, origin, remote, b = base / "a", base / "origin.git", base / "remote", base / "b"
    env_a = copy_project(pipeline_run, a)
    branch = run(["git", "branch", "--show-current"], a, env_a).stdout.strip()
    run(["git", "init", "-q", "--bare", "-b", branch, str(origin)], base, env_a)
    run(["git", "remote", "add", "origin", str(origin)], a, env_a)
    run(DVC + ["remote", "add", "-d", "shared", str(remote)], a, env_a)
    run(["git", "commit", "-qam", "DVC remote"], a, env_a)
    run(["git", "push", "-q", "origin", branch], a, env_a)
    run(DVC + ["push", "--run-cache"], a, env_a)
    run(["git", "clone", "-q", str(origin), str(b)], base, env_a)
    env_b = dvc_env(b)
    assert not (b / ".dvc/cache").exists()  # B starts with no data: everything below comes from the remotes
    run(DVC + ["pull"], b, env_b)
    return {"a": a, "b": b, "remote": remote, "base": base, "env_a": env_a, "env_b": env_b}


def test_fresh_clone_pull_restores_every_output_and_runs_nothing(team):
    a, b = team["a"], team["b"]
    outs = lock_outs(a)
    assert {"models/efficient", "live/efficient", "metrics/efficient.json", "reports/eval/efficient", "reports/paper",
            "submissions/ood", "data/prepared", "reports/figures/samples.png", "live/baseline"} <= set(outs)
    assert lock_outs(b) == outs
    tracked = set(run(["git", "ls-files"], b, team["env_b"]).stdout.split())
    for path, stage in outs.items():
        in_git = any(f == path or f.startswith(path + "/") for f in tracked)
        files_a = tree(a / path)
        assert files_a, f"{path} ({stage}) is empty in A"
        assert tree(b / path) == files_a, f"{path} ({stage}) differs in the clone"
        # cache: false outputs (metrics, reports, figures) come from Git; the rest (DVCLive folders too) from the remote
        assert in_git == path.startswith(("metrics/", "reports/")), f"{path}: in Git = {in_git}"
    assert (b / "live/efficient/plots/metrics/val/dice.tsv").exists() and (b / "models/efficient/best.pt").exists()
    assert json.loads(run(DVC + ["status", "--json"], b, team["env_b"]).stdout) == {}
    again = run(DVC + ["repro"], b, team["env_b"])
    assert "Running stage" not in again.stdout and "Data and pipelines are up to date." in again.stdout, again.stdout


def test_run_cache_restores_an_all_cached_stage_through_the_remote(team):
    # synthcity's only output is DVC-cached: DVC saves its run-cache entry, pushes it, and a clone that makes the
    # same change gets the output from the remote instead of generating it.
    a, b, env_a, env_b = team["a"], team["b"], team["env_a"], team["env_b"]
    set_param(a, "synthcity.seed", 1)
    first = run(DVC + ["repro", "-s", "synthcity"], a, env_a)
    assert ran(first) == {"synthcity"}
    expected = tree(a / "data/synthcity")
    run(DVC + ["push", "--run-cache"], a, env_a)
    run(["git", "checkout", "--", "params.yaml", "dvc.lock"], a, env_a)
    run(DVC + ["checkout", "--force"], a, env_a)

    set_param(b, "synthcity.seed", 1)
    proc = run(DVC + ["repro", "--pull", "-s", "synthcity"], b, env_b)
    assert restored(proc) == {"synthcity"} and not ran(proc), proc.stdout
    assert tree(b / "data/synthcity") == expected != tree(a / "data/synthcity")
    run(["git", "checkout", "--", "params.yaml", "dvc.lock"], b, env_b)
    run(DVC + ["checkout", "--force"], b, env_b)
    assert json.loads(run(DVC + ["status", "--json"], b, env_b).stdout) == {}


def test_training_param_change_pushed_by_a_is_restored_in_the_clone_without_training(team):
    # DVC 3 saves no run-cache entry for a stage with a `cache: false` output that is not a metric or plot file
    # (dvc/stage/__init__.py: run_cache=not no_cache_outs) and never pushes `cache: false` objects. So training's
    # outputs (models/<b>, live/<b>) are all cached: B gets A's training from the remote. evaluate@<b>
    # (reports/eval/<b>) and report (reports/paper) keep their figures in Git for the README, so B re-runs them;
    # package@<b> depends on the re-measured metrics (latency differs run to run), so it re-runs too.
    a, b, env_a, env_b = team["a"], team["b"], team["env_a"], team["env_b"]
    first = run(DVC + ["exp", "run", "-n", EXP, "-S", f"{LR}=0.01"], a, env_a)
    assert ran(first) == LR_CHAIN, first.stdout
    run(DVC + ["push", "--run-cache"], a, env_a)
    entries = run_cache_cmds(a / ".dvc/cache")
    assert {e.split()[0] for e in entries} == {"stages/synthcity.py", "stages/train.py", "stages/package.py"}, entries
    assert entries.count("stages/train.py --benchmark efficient") == 2  # the first run and the lr change
    remote_entries = sorted(p.name for p in (team["remote"] / "runs").glob("*/*/*"))
    assert remote_entries == sorted(p.name for p in (a / ".dvc/cache/runs").glob("*/*/*"))
    lock = yaml.safe_load((a / "dvc.lock").read_text())["stages"]
    outs = {o["path"]: o["md5"] for o in lock["train@efficient"]["outs"]}
    assert in_remote(team["remote"], outs["models/efficient"]) and in_remote(team["remote"], outs["live/efficient"])
    eval_outs = {o["path"]: o["md5"] for o in lock["evaluate@efficient"]["outs"]}
    assert not in_remote(team["remote"], eval_outs["reports/eval/efficient"])  # Git-tracked: never on the remote

    set_param(b, LR, 0.01)
    proc = run(DVC + ["repro", "--pull"], b, env_b)
    assert restored(proc) == {"train@efficient"}, proc.stdout
    assert ran(proc) == LR_CHAIN - {"train@efficient"}, proc.stdout
    assert tree(b / "models/efficient") == tree(a / "models/efficient")  # A's weights, not a re-training
    assert tree(b / "live/efficient") == tree(a / "live/efficient")
    run(["git", "checkout", "--", "."], b, env_b)
    run(DVC + ["checkout", "--force"], b, env_b)
    assert json.loads(run(DVC + ["status", "--json"], b, env_b).stdout) == {}


def test_teammate_sharing_the_cache_directory(team):
    # A cluster: one cache directory for every clone (`dvc cache dir`), group-writable, outputs as symlinks into it.
    # The clone fetches nothing; the run-cache entries A saved are seen directly.
    a, base = team["a"], team["base"]
    c = base / "c"
    run(["git", "clone", "-q", str(base / "origin.git"), str(c)], base, team["env_a"])
    env_c = dvc_env(c)
    run(DVC + ["cache", "dir", "--local", str(a / ".dvc/cache")], c, env_c)
    run(DVC + ["config", "--local", "cache.shared", "group"], c, env_c)
    run(DVC + ["config", "--local", "cache.type", "symlink"], c, env_c)
    run(DVC + ["checkout"], c, env_c)
    best = c / "models/baseline/best.pt"
    assert best.is_symlink() and best.resolve().is_relative_to(a / ".dvc/cache")
    assert tree(best) == tree(a / "models/baseline/best.pt")
    assert not (c / ".dvc/cache").exists()
    assert json.loads(run(DVC + ["status", "--json"], c, env_c).stdout) == {}
    set_param(c, "synthcity.seed", 1)  # A ran it (previous test): restored from the shared run-cache, no remote
    proc = run(DVC + ["repro", "-s", "synthcity"], c, env_c)
    assert restored(proc) == {"synthcity"} and not ran(proc), proc.stdout
    assert (c / "data/synthcity").is_dir() and any(p.is_symlink() for p in (c / "data/synthcity").rglob("*"))


def test_exp_push_and_pull_through_the_git_remote(team):
    a, b, env_a, env_b = team["a"], team["b"], team["env_a"], team["env_b"]
    exp_metrics = json.loads((a / "metrics/efficient.json").read_text())  # A's workspace holds the applied experiment
    exp_model = tree(a / "models/efficient")
    run(DVC + ["exp", "push", "origin", EXP], a, env_a)
    assert EXP not in run(DVC + ["exp", "list", "--all-commits"], b, env_b).stdout
    assert EXP in run(DVC + ["exp", "list", "origin"], b, env_b).stdout
    run(DVC + ["exp", "pull", "origin", EXP], b, env_b)
    assert EXP in run(DVC + ["exp", "list"], b, env_b).stdout
    show = json.loads(run(DVC + ["exp", "show", "--json"], b, env_b).stdout)
    names = {exp.get("name") for commit in show for exp in (commit.get("experiments") or []) for exp in exp["revs"]}
    assert EXP in names, names
    run(DVC + ["exp", "apply", EXP], b, env_b)
    params = yaml.safe_load((b / "params.yaml").read_text())
    assert params["benchmarks"]["efficient"]["train"]["lr"] == 0.01
    assert json.loads((b / "metrics/efficient.json").read_text()) == exp_metrics
    assert tree(b / "models/efficient") == exp_model  # the experiment's cached output came with `exp pull`
    assert json.loads(run(DVC + ["status", "--json"], b, env_b).stdout) == {}
