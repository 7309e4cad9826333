"""Shared fixtures: a tiny hand-built Cityscapes-layout root with known contents."""

from __future__ import annotations

import json
import types
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

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
               disparity: bool = True) -> Path:
    """Write a minimal Cityscapes-layout dataset with exact, known labels."""
    rng = np.random.default_rng(0)
    for split in splits:
        for i in range(n):
            city = "tinytown"
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
