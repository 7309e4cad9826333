"""Shared fixtures: a tiny hand-built Cityscapes-layout root with known contents, and the real pipeline in a
temporary Git repo with tiny params (the end-to-end DVC tests)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

CAMERA = {
    "extrinsic": {"baseline": 0.2, "pitch": 0.04, "roll": 0.0, "x": 1.7, "y": 0.1, "yaw": 0.0, "z": 1.2},
    "intrinsic": {"fx": 100.0, "fy": 100.0, "u0": 8.0, "v0": 4.0},
}


def label_pattern(h: int = 8, w: int = 16) -> np.ndarray:
    """A label image using evaluated ids, ignored ids (0, 1, 4, 6) and thing classes."""
    ids = np.full((h, w), 7, np.uint8)  # road
    ids[:2] = 23  # sky
    ids[2:4, :4] = 11  # building
    ids[2:4, 4:6] = 4  # static -> ignore
    ids[2:4, 6:8] = 26  # car (thing)
    ids[2:4, 8:10] = 24  # person (thing)
    ids[4:6, :3] = 33  # bicycle
    ids[4:6, 3:5] = 6  # ground -> ignore
    ids[-1, :] = 1  # ego vehicle -> ignore
    ids[4:6, 12:] = 0  # unlabeled -> ignore
    return ids


def write_root(root: Path, splits=("train", "val", "test"), n: int = 2, h: int = 8, w: int = 16,
               disparity: bool = True, cities=("tinytown",)) -> Path:
    """Write a minimal Cityscapes-layout dataset with exact, known labels: ``n`` frames per city and split."""
    rng = np.random.default_rng(0)
    for split in splits:
        for city, i in ((c, i) for c in cities for i in range(n)):
            stem = f"{city}_{i:06d}_000019"
            img_dir = root / "leftImg8bit" / split / city
            gt_dir = root / "gtFine" / split / city
            img_dir.mkdir(parents=True, exist_ok=True)
            gt_dir.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(img_dir / f"{stem}_leftImg8bit.png"), rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            ids = label_pattern(h, w)
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_labelIds.png"), ids)
            inst = ids.astype(np.uint16)
            inst[ids == 26] = 26000
            inst[ids == 24] = 24001
            cv2.imwrite(str(gt_dir / f"{stem}_gtFine_instanceIds.png"), inst)
            if disparity:
                d_dir, c_dir = root / "disparity" / split / city, root / "camera" / split / city
                d_dir.mkdir(parents=True, exist_ok=True)
                c_dir.mkdir(parents=True, exist_ok=True)
                disp = np.full((h, w), 20 * 256 + 1, np.uint16)  # disparity 20 px -> depth 0.2*100/20 = 1 m
                disp[:2] = 0  # sky: invalid
                cv2.imwrite(str(d_dir / f"{stem}_disparity.png"), disp)
                (c_dir / f"{stem}_camera.json").write_text(json.dumps(CAMERA))
    return root


@pytest.fixture
def cs_root(tmp_path: Path) -> Path:
    return write_root(tmp_path / "cityscapes")


def fake_synthcity(calls: list):
    """Stand-in with the agreed SynthCity API; records the options it is asked for."""

    @dataclass
    class SceneOptions:
        environment: str = "street"
        novel_objects: bool = False
        camera: str = "default"

    @dataclass
    class Scene:
        image: np.ndarray

    def render_scene(rng, height, width, options=None):
        calls.append(options)
        return Scene(image=rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))

    mod = types.ModuleType("cityseg.synthcity")
    mod.SceneOptions, mod.Scene, mod.render_scene = SceneOptions, Scene, render_scene
    return mod


# --- the real pipeline, tiny -------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]

TINY = {
    "data": {"cache_size": [32, 64], "workers": 2},
    "synthcity": {"height": 64, "width": 128, "train": 6, "val": 3, "test": 3},
    "model": {"base_channels": 16},
    "train": {"epochs": 1, "batch_size": 3, "size": [32, 64]},
    "weather": {"images": 2, "corruptions": ["gaussian_noise", "jpeg"], "severities": [1, 5], "heldout": ["jpeg"],
                "fog_betas": [0.01], "rain_levels": [2]},
    "ood": {"n_val": 2, "n_test": 2, "sizes": [[48, 96], [64, 64]]},
    "efficiency": {"latency_size": [64, 128], "latency_runs": 3, "latency_warmup": 1},
}


def _merge(base: dict, over: dict) -> dict:
    for k, v in over.items():
        base[k] = _merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return base


def run(cmd: list[str], cwd: Path, env: dict, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if ok and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def dvc_env(root: Path) -> dict:
    """Environment for DVC and Git in a test repo: no analytics, DVC's site cache inside the repo, fixed author."""
    return dict(os.environ, DVC_NO_ANALYTICS="1", DVC_SITE_CACHE_DIR=str(root / ".site-cache"),
                PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")


def make_project(root: Path) -> dict:
    """Copy the real dvc.yaml, params.yaml (with TINY merged in), stages/ and src/ into a new Git repo with one
    commit; returns its environment. Nothing has run yet."""
    for name in ("dvc.yaml", "params.yaml", ".dvcignore", "stages", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name,
                                                          **({"ignore": shutil.ignore_patterns("__pycache__")} if src.is_dir() else {}))
    (root / ".dvc").mkdir()
    shutil.copy(REPO / ".dvc/config", root / ".dvc/config")
    (root / ".dvc/.gitignore").write_text("/config.local\n/tmp\n/cache\n")
    params = _merge(yaml.safe_load((root / "params.yaml").read_text()), TINY)
    for entry in [*params["benchmarks"].values(), *params["students"].values()]:  # entries override the shared train
        if "train" in entry:
            entry["train"].update(TINY["train"])
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / ".gitignore").write_text("/.cityseg/\n__pycache__/\n/.site-cache/\n")
    env = dvc_env(root)
    run(["git", "init", "-q"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "init"], root, env)
    return env


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory) -> Path:
    """The tiny pipeline, run once per session and committed; modules work on copies (copy_project)."""
    root = tmp_path_factory.mktemp("pipeline")
    env = make_project(root)
    run(DVC + ["repro"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "baseline run"], root, env)
    return root


def copy_project(src: Path, dst: Path) -> dict:
    """A private copy of a test repo (Git history, DVC cache, workspace); returns its environment."""
    skip = {src / ".dvc/tmp", src / ".site-cache", src / ".cityseg"}
    shutil.copytree(src, dst, symlinks=True, ignore=lambda d, names: [n for n in names if Path(d) / n in skip])
    return dvc_env(dst)
