"""Tests for cityseg.testbed (the weather stage's test bed) and cityseg.robustness (scoring on it)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import write_root

from cityseg import robustness as R
from cityseg import testbed as T
from cityseg import depth as D
from cityseg import weather as W
from cityseg.config import ConfigError, WeatherConfig
from cityseg.corruptions import corrupt
from cityseg.dataset import full_res_samples, read_sample
from cityseg.inference import Predictor
from cityseg.io import read_image
from cityseg.prepare import prepare
from cityseg.transforms import normalize

REPO = Path(__file__).resolve().parents[1]
H, W_ = 16, 32
TINY = dict(images=2, fog_betas=[0.02], rain_levels=[3], corruptions=["contrast", "gaussian_noise"],
            severities=[1, 5], heldout=["contrast"])
CONDITIONS = {"fog": [1], "rain": [3], "gaussian_noise": [1, 5], "contrast": [1, 5]}  # test-bed order
WRONG = 5  # "pole": a class absent from conftest's label pattern


def _prepared(tmp: Path, disparity: bool) -> Path:
    root = write_root(tmp / "root", splits=("train", "val", "test"), n=3, h=H, w=W_, disparity=disparity)
    prepare(root, tmp / "prepared", "cityscapes", (8, 16), workers=1, progress=False)
    return tmp / "prepared"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return _prepared(tmp_path_factory.mktemp("with_depth"), disparity=True)


@pytest.fixture(scope="module")
def testbed(prepared) -> Path:
    out = prepared.parent / "weather"
    T.build_testbed(prepared, out, WeatherConfig(**TINY), "test", workers=1, progress=False)
    return out


def _img(root: Path, condition: str, severity, stem: str) -> Path:
    folder = root / condition if severity is None else root / condition / str(severity)
    return folder / "leftImg8bit/test" / stem.split("_")[0] / f"{stem}_leftImg8bit.png"


def _label(root: Path, folder: str, stem: str) -> Path:
    return root / folder / "gtFine/test" / stem.split("_")[0] / f"{stem}_gtFine_labelTrainIds.png"


# ---- the weather stage -------------------------------------------------------------------------
def test_testbed_layout_labels_and_renders(prepared, testbed):
    manifest = T.read_testbed(testbed)
    samples = full_res_samples(prepared, "test")
    stems = [s.stem for s in samples][:2]  # images=2: the first two of three
    assert manifest["conditions"] == CONDITIONS and list(manifest["conditions"]) == list(CONDITIONS)
    assert manifest["stems"] == stems and manifest["split"] == "test" and manifest["images"] == 2
    assert manifest["depth_source"] == {s: "disparity" for s in stems} and manifest["flat_ground_prior_images"] == 0
    assert manifest["label_prior_images"] == 0
    assert manifest["fog_betas"] == [0.02] and manifest["heldout"] == ["contrast"]
    for index, sample in enumerate(samples[:2]):
        image, labels, depth, camera = read_sample(sample)
        assert read_image(_img(testbed, "clean", None, sample.stem)).tobytes() == image.tobytes()
        for name, sevs in CONDITIONS.items():
            for sev in sevs:
                out = read_image(_img(testbed, name, sev, sample.stem))
                assert out.shape == image.shape and not np.array_equal(out, image), (name, sev)
                # labels are the prepared ones, byte for byte
                assert _label(testbed, f"{name}/{sev}", sample.stem).read_bytes() == sample.label_path.read_bytes()
        # fog uses the prepared depth, labels and camera; corruptions use the documented per-image seed
        assert np.array_equal(read_image(_img(testbed, "fog", 1, sample.stem)),
                              W.fog(image, depth, camera, 0.02, labels=labels))
        seed = T.condition_seed(0, "gaussian_noise", 5, index)
        assert np.array_equal(read_image(_img(testbed, "gaussian_noise", 5, sample.stem)),
                              corrupt(image, "gaussian_noise", 5, seed))
    assert not _img(testbed, "fog", 1, samples[2].stem).exists()  # only the first `images` images
    # every folder is a prepared-style root that cityseg.dataset reads
    assert [s.stem for s in full_res_samples(testbed / "rain" / "3", "test")] == stems
    assert [s.stem for s in full_res_samples(testbed / "clean", "test")] == stems


def test_testbed_is_deterministic_and_independent_of_workers_and_order(prepared, testbed, tmp_path):
    # workers=2 and the corruption list in another order: the same bytes everywhere
    cfg = WeatherConfig(**{**TINY, "corruptions": ["gaussian_noise", "contrast"]})
    T.build_testbed(prepared, tmp_path / "again", cfg, "test", workers=2, progress=False)
    first = sorted(p.relative_to(testbed) for p in testbed.rglob("*.png"))
    assert first == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*.png"))
    assert len(first) == 2 * 2 * (1 + 1 + 1 + 2 + 2)  # (image + label) x 2 stems x (clean + 6 entries)
    for rel in first:
        assert (testbed / rel).read_bytes() == (tmp_path / "again" / rel).read_bytes(), rel
    # another seed changes the random conditions but not the deterministic fog
    other = tmp_path / "seed1"
    T.build_testbed(prepared, other, WeatherConfig(**{**TINY, "seed": 1}), "test", workers=1, progress=False)
    stem = T.read_testbed(testbed)["stems"][0]
    for name, sev, same in (("gaussian_noise", 1, False), ("gaussian_noise", 5, False), ("fog", 1, True)):
        assert (_img(testbed, name, sev, stem).read_bytes() == _img(other, name, sev, stem).read_bytes()) == same


def test_without_depth_uses_the_label_prior_and_says_so(tmp_path, caplog):
    prepared = _prepared(tmp_path, disparity=False)
    cfg = WeatherConfig(**{**TINY, "images": 0})
    with caplog.at_level(logging.WARNING, logger="cityseg.robustness"):
        manifest = T.build_testbed(prepared, tmp_path / "weather", cfg, "test", workers=1, progress=False)
    assert "3 of 3 images" in caplog.text and "label-guided depth prior" in caplog.text
    assert manifest["label_prior_images"] == 3 and set(manifest["depth_source"].values()) == {"label_prior"}
    assert manifest["flat_ground_prior_images"] == 0
    assert set(manifest["camera_source"].values()) == {"default"}
    assert json.loads((tmp_path / "weather/manifest.json").read_text())["depth_source"] == manifest["depth_source"]
    stem = manifest["stems"][0]
    image = read_image(_img(tmp_path / "weather", "clean", None, stem))
    labels = cv2.imread(str(_label(tmp_path / "weather", "clean", stem)), cv2.IMREAD_UNCHANGED)
    camera = W.default_camera(H, W_)
    expected = W.fog(image, D.label_prior(labels, camera), camera, 0.02)
    assert np.array_equal(read_image(_img(tmp_path / "weather", "fog", 1, stem)), expected)
    assert not np.array_equal(expected, W.fog(image, None, camera, 0.02))  # not the flat-ground prior


@pytest.mark.parametrize("change, pattern", [
    ({"corruptions": ["gaussian_noise", "glass_blur"]}, r"weather\.corruptions.*glass_blur.*valid names:.*shot_noise"),
    ({"corruptions": ["fog"]}, r"weather\.corruptions.*\['fog'\].*fog_betas"),
    ({"corruptions": ["jpeg", "jpeg"]}, r"weather\.corruptions lists \['jpeg'\] more than once"),
    ({"heldout": ["snow"]}, r"weather\.heldout names \['snow'\]"),
    ({"fog_betas": [], "rain_levels": [], "corruptions": []}, r"test bed is empty"),
])
def test_bad_weather_params_fail_clearly_and_write_nothing(prepared, tmp_path, change, pattern):
    with pytest.raises(ConfigError, match=pattern):
        T.build_testbed(prepared, tmp_path / "weather", WeatherConfig(**{**TINY, **change}), "test", workers=1,
                        progress=False)
    assert not (tmp_path / "weather").exists()


def test_stage_script_writes_the_testbed_and_a_sample_figure(prepared, tmp_path):
    params = {"data": {"source": "synthcity", "workers": 1}, "eval": {"split": "auto"},
              "weather": {**TINY, "corruptions": ["jpeg"], "severities": [2], "heldout": ["jpeg"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    proc = subprocess.run([sys.executable, str(REPO / "stages/weather.py"), "--prepared", str(prepared), "--out",
                           str(tmp_path / "w"), "--samples", str(tmp_path / "w.png"), "--params",
                           str(tmp_path / "params.yaml")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "weather: 2 test images x 3 condition-severities (fog, rain, jpeg)" in proc.stdout
    assert T.read_testbed(tmp_path / "w")["conditions"] == {"fog": [1], "rain": [3], "jpeg": [2]}
    assert cv2.imread(str(tmp_path / "w.png")) is not None


# ---- evaluation bookkeeping --------------------------------------------------------------------
class LookupModel(torch.nn.Module):
    """Predicts the ground truth for an image it knows exactly (clean), and class WRONG for anything else."""

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray]):
        super().__init__()
        self.keys = [normalize(im) for im in images]
        self.targets = [torch.from_numpy(np.where(lab == 255, 0, lab)).long() for lab in labels]
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # so the module has a device

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) -> (B, 19, H, W)
        out = []
        for item in x:
            hit = next((t for k, t in zip(self.keys, self.targets) if torch.equal(k, item)), None)
            target = torch.full(item.shape[1:], WRONG) if hit is None else hit
            out.append(F.one_hot(target, 19).permute(2, 0, 1).float())
        return torch.stack(out)


# (condition, severity) -> how many of the 2 images keep their clean pixels (the model gets those right)
PLAN = {("fog", 1): 2, ("rain", 3): 1, ("gaussian_noise", 1): 1, ("gaussian_noise", 5): 0,
        ("contrast", 1): 2, ("contrast", 5): 1}


@pytest.fixture(scope="module")
def constructed(prepared, testbed, tmp_path_factory) -> tuple[Path, LookupModel]:
    """The test bed with each image replaced by its clean image or a flat grey one, as PLAN says."""
    root = tmp_path_factory.mktemp("constructed") / "weather"
    shutil.copytree(testbed, root)  # real copies: writing below must not touch hard-linked originals
    samples = full_res_samples(prepared, "test")
    data = [read_sample(s) for s in samples]
    for (name, sev), keep in PLAN.items():
        for i, sample in enumerate(samples[:2]):
            image = data[i][0] if i < keep else np.full_like(data[i][0], 128)
            path = _img(root, name, sev, sample.stem)
            path.unlink()
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    # The model knows only the two test-bed images: scored on the whole split, clean Dice would be 2/3.
    model = LookupModel([d[0] for d in data[:2]], [d[1] for d in data[:2]])
    return root, Predictor(model, (H, W_), 0.0, torch.device("cpu"))


def test_evaluate_robustness_exact_dice_means_retention_and_heldout(constructed):
    root, model = constructed
    res = R.evaluate_robustness(model, root, batch_size=2, progress=False)
    expected = {f"{n}_{s}": keep / 2 for (n, s), keep in PLAN.items()}
    assert {k: res[k] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert res["dice_clean"] == 1.0 and res["images"] == 2  # the same 2-image subset, not the whole split
    corrupted = (1 + 0.5 + 0.5 + 0 + 1 + 0.5) / 6
    assert res["dice_corrupted_mean"] == pytest.approx(corrupted, abs=1e-6)
    assert res["retention"] == pytest.approx(corrupted, abs=1e-6)
    assert res["gaussian_noise_mean"] == pytest.approx(0.25) and res["contrast_mean"] == pytest.approx(0.75)
    assert res["fog_mean"] == 1.0 and res["rain_mean"] == 0.5
    # held out: the test bed's own list (contrast) by default, or the one given
    assert res["dice_heldout_mean"] == pytest.approx(0.75)
    assert res["dice_seen_mean"] == pytest.approx((1 + 0.5 + 0.5 + 0) / 4)
    other = R.evaluate_robustness(model, root, batch_size=1, heldout=["gaussian_noise"], progress=False)
    assert other["dice_heldout_mean"] == pytest.approx(0.25) and other["dice_seen_mean"] == pytest.approx(0.75)
    assert {k: v for k, v in other.items() if "heldout" not in k and "seen" not in k} == \
        {k: v for k, v in res.items() if "heldout" not in k and "seen" not in k}  # batch size changes nothing


def test_summarize_handles_missing_values():
    res = R.summarize_robustness(0.0, {("fog", 1): float("nan"), ("rain", 2): 0.4}, heldout=())
    assert res["fog_1"] is None and res["fog_mean"] is None and res["rain_2"] == 0.4
    assert res["dice_corrupted_mean"] == 0.4 and res["retention"] is None  # clean Dice 0: no ratio
    assert res["dice_heldout_mean"] is None and res["dice_seen_mean"] == 0.4
    json.dumps(res, allow_nan=False)  # valid JSON: no NaN anywhere


def test_figures_and_table(constructed, tmp_path):
    root, model = constructed
    res = R.evaluate_robustness(model, root, batch_size=4, progress=False)
    assert R._entries(res)["gaussian_noise"] == [(1, 0.5), (5, 0.0)]
    R.severity_plot(res, tmp_path / "sev.png", "lookup", heldout=["contrast"])
    R.qualitative_grid(model, root, tmp_path / "grid.png", n=2)
    T.condition_grid(root, tmp_path / "conditions.png")
    for name in ("sev.png", "grid.png", "conditions.png"):
        assert cv2.imread(str(tmp_path / name)) is not None, name
