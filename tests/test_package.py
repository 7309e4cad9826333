"""The submission package: generated model.py / predict.py / zip round-trip for every architecture family we
train, run without cityseg, and reproduce the pipeline's masks, Dice, FLOPs and refusals; failures are clear."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from cityseg import codegen, models, serve
from cityseg.config import ConfigError, ModelConfig, PackageConfig, check_params, load_params
from cityseg.evaluate import evaluate_model
from cityseg.flops import count_flops
from cityseg.inference import Predictor, to_batch
from cityseg.io import DataError, write_json, write_png
from cityseg.ood import MahalanobisScorer, OODSegmenter, pooled_features
from cityseg.oodeval import build_ood_model, save_ood_model
from cityseg.package import predict_source, read_trained, requirements, selected_min_area, write_package
from cityseg.selftest import isolated, self_test

ROOT = Path(__file__).resolve().parents[1]
SIZE = [32, 64]  # the tiny nets' "training" size
FAMILIES = {
    "unet": ModelConfig(arch="unet", base_channels=4),
    "fastscnn": ModelConfig(arch="fastscnn", width=0.25),
    "smp": ModelConfig(arch="DeepLabV3Plus", encoder_name="tu-resnet10t", encoder_weights=None),  # params.yaml's peak
}
CFG = PackageConfig(refusal=["ood"], odd_size=[33, 51], ood_images=0)


def write_prepared(root: Path, n: int = 3, h: int = 40, w: int = 72) -> Path:
    """A prepared dataset: ``n`` labelled test images with smooth structure, and a 2-image train cache."""
    rng = np.random.default_rng(0)
    stems = [f"tinytown_{i:06d}_000019" for i in range(n)]
    yy, xx = np.mgrid[0:h, 0:w]
    for i, stem in enumerate(stems):
        image = np.stack([(xx * (3 + i)) % 256, (yy * 5) % 256, ((xx + yy) * (i + 1)) % 256], -1).astype(np.uint8)
        write_png(root / "leftImg8bit" / "test" / "tinytown" / f"{stem}_leftImg8bit.png", image)
        label = (yy // 10 * 3 + xx // 24).astype(np.uint8) % 19
        label[rng.random((h, w)) < 0.05] = 255
        write_png(root / "gtFine" / "test" / "tinytown" / f"{stem}_gtFine_labelTrainIds.png", label, rgb=False)
    cache = root / "cache" / "train"
    cache.mkdir(parents=True)
    np.save(cache / "images.npy", rng.integers(0, 256, (2, *SIZE, 3), dtype=np.uint8))
    np.save(cache / "labels.npy", np.zeros((2, *SIZE), np.uint8))
    write_json(cache / "index.json", {"stems": ["tinytown_000009_000019", "tinytown_000010_000019"], "size": SIZE,
                                      "cameras": [None, None]})
    info = {"has_labels": True, "has_depth": False, "size": [h, w]}
    write_json(root / "manifest.json", {"source": "cityscapes", "cache_size": SIZE, "splits": {
        "train": {**info, "count": 2, "stems": ["tinytown_000009_000019", "tinytown_000010_000019"]},
        "test": {**info, "count": n, "stems": stems}}})
    return root


def trained_checkpoint(tmp: Path, cfg: ModelConfig, min_area: float = 0.02) -> Path:
    torch.manual_seed(0)
    model = models.build_model(cfg).eval()
    path = tmp / "best.pt"
    models.save_checkpoint(path, model, cfg, epoch=1, train={"size": SIZE, "min_class_area": min_area})
    return path


def metrics_of(checkpoint: Path, prepared: Path) -> dict:
    """The two numbers the self-test reproduces, as the evaluate stage computes them (batched)."""
    p = Predictor.from_checkpoint(checkpoint, "cpu")
    m, _ = evaluate_model(p, prepared, "test", batch_size=2, progress=False)
    return {"dice": m["dice"], "gflops": round(count_flops(p.model) / 1e9, 3)}


def ood_model(tmp: Path, checkpoint: Path, prepared: Path) -> Path:
    """A Mahalanobis refusal whose threshold refuses about half of the test images."""
    p = Predictor.from_checkpoint(checkpoint, "cpu")
    from cityseg.dataset import full_res_samples, read_sample

    images = [read_sample(s)[0] for s in full_res_samples(prepared, "test")]
    feats = pooled_features(p.model, to_batch(images, SIZE, p.device), "down4").double()
    scorer = MahalanobisScorer().fit(torch.cat([feats, feats + 0.1 * torch.randn_like(feats)]))
    seg = build_ood_model(p.model, "mahalanobis", float("inf"), 1.0, scorer, "down4")
    with torch.no_grad():
        scores = seg.score(to_batch(images, SIZE, p.device))[1]
    seg.threshold.fill_(float(scores.median()))
    save_ood_model(seg, tmp / "ood_model.pt")
    return tmp / "ood_model.pt"


def package(tmp: Path, family: str, refusal: bool = False) -> tuple[Path, object, Path, dict]:
    prepared = write_prepared(tmp / "prepared")
    ckpt = trained_checkpoint(tmp, FAMILIES[family])
    trained = read_trained(ckpt, ood_model(tmp, ckpt, prepared) if refusal else None)
    out = tmp / "submission"
    write_package(out, "b", trained, CFG.base_image)
    return out, trained, prepared, metrics_of(ckpt, prepared)


@pytest.fixture(scope="module")
def unet_package(tmp_path_factory):
    return package(tmp_path_factory.mktemp("unet"), "unet")


@pytest.mark.parametrize("family", ["fastscnn", "smp"])
def test_round_trip_fastscnn_and_smp(tmp_path, family):
    out, trained, prepared, metrics = package(tmp_path, family)
    r = self_test(out, trained, prepared, "test", metrics, CFG)
    assert r["passed"] and r["masks_identical"] == 3 + 4 and r["zip_masks_identical"] == 5
    assert r["dice_from_masks"] == pytest.approx(metrics["dice"], abs=1e-6)
    assert round(r["gflops_model"], 3) == metrics["gflops"]
    assert "refused" not in r and not (out / "predictions.csv").exists()


def test_round_trip_unet_writes_every_file(unet_package):
    out, trained, prepared, metrics = unet_package
    r = self_test(out, trained, prepared, "test", metrics, CFG)
    assert json.loads((out / "selftest.json").read_text()) == r
    assert r["cityseg_importable"] is False and r["images_per_s"] > 0
    assert {"model.py", "model.pt", "predict.py", "Dockerfile", "README.md", "requirements.txt", "submission_b.zip",
            "selftest.json", ".dockerignore"} <= {p.name for p in out.iterdir()}
    with zipfile.ZipFile(out / "submission_b.zip") as zf:
        assert sorted(zf.namelist()) == ["model.pth", "model.py", "process_data.py"]
        assert zf.read("model.pth") == (out / "model.pt").read_bytes()
    for name in ("model.py", "predict.py"):
        codegen.check_standalone((out / name).read_text(), name)
    docker = (out / "Dockerfile").read_text()
    assert docker.startswith("#") and "FROM pytorch/pytorch:2.10.0-cuda12.6-cudnn9-runtime" in docker
    assert "docker run --rm --network none" in (out / "README.md").read_text()


def test_round_trip_ood_refusal(tmp_path):
    out, trained, prepared, metrics = package(tmp_path, "unet", refusal=True)
    r = self_test(out, trained, prepared, "test", metrics, CFG)
    assert 0 < r["refused"] < r["masks_identical"]  # the flags were really compared both ways
    assert "class Model(OODSegmenter)" in (out / "model.py").read_text()


def test_the_self_test_fails_when_the_package_breaks(unet_package, tmp_path):
    out, trained, prepared, metrics = unet_package
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "selftest.json").unlink(missing_ok=True)
    text = (broken / "predict.py").read_text()
    assert text.count("'input_size': [32, 64]") == 1
    (broken / "predict.py").write_text(text.replace("'input_size': [32, 64]", "'input_size': [16, 32]"))
    wrong = {"dice": metrics["dice"] + 0.01, "gflops": metrics["gflops"] + 1}
    with pytest.raises(DataError) as err:
        self_test(broken, trained, prepared, "test", wrong, CFG)
    msg = str(err.value)
    assert "differs from the pipeline's prediction" in msg and "metrics dice" in msg and "GFLOPs" in msg
    assert not (broken / "selftest.json").exists()


def _predict(app: Path, data: Path, out: Path, model: Path) -> subprocess.CompletedProcess:
    return isolated(app / "predict.py", ["--data", data, "--output", out, "--model", model, "--device", "cpu"], cwd=data.parent)


def test_corrupted_and_wrong_architecture_model_files(unet_package, tmp_path):
    out = unet_package[0]
    data = tmp_path / "data"
    write_png(data / "a.png", np.zeros((20, 30, 3), np.uint8))
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes((out / "model.pt").read_bytes()[:200])
    proc = _predict(out, data, tmp_path / "o1", corrupt)
    assert proc.returncode != 0 and f"cannot read the model file {corrupt}" in proc.stderr
    assert "Traceback" not in proc.stderr
    other = tmp_path / "fastscnn.pt"
    torch.save(models.build_model(FAMILIES["fastscnn"]).state_dict(), other)
    proc = _predict(out, data, tmp_path / "o2", other)
    assert proc.returncode != 0 and f"{other} does not fit model.py's Model()" in proc.stderr
    assert not (tmp_path / "o2" / "a.png").exists()


def test_unreadable_image_is_named_and_the_others_are_done(unet_package, tmp_path):
    out = unet_package[0]
    data = tmp_path / "data"
    data.mkdir()
    cv2.imwrite(str(data / "odd.png"), np.full((333, 517, 3), 90, np.uint8))
    cv2.imwrite(str(data / "rgba.png"), np.full((21, 40, 4), 200, np.uint8))
    (data / "broken.png").write_bytes(b"not a png")
    proc = _predict(out, data, tmp_path / "o", out / "model.pt")
    assert proc.returncode == 1 and "broken.png" in proc.stderr and "Traceback" not in proc.stderr
    odd = cv2.imread(str(tmp_path / "o" / "odd.png"), cv2.IMREAD_UNCHANGED)
    assert odd.shape == (333, 517) and odd.dtype == np.uint8 and odd.max() < 19
    assert cv2.imread(str(tmp_path / "o" / "rgba.png"), cv2.IMREAD_UNCHANGED).shape == (21, 40)
    assert not (tmp_path / "o" / "broken.png").exists()


def test_isolated_interpreter_cannot_import_cityseg(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("import cityseg\n")
    proc = isolated(script, [], cwd=tmp_path)
    assert proc.returncode != 0 and "ModuleNotFoundError" in proc.stderr


def test_package_is_deterministic(unet_package, tmp_path):
    out, trained = unet_package[0], unet_package[1]
    write_package(tmp_path / "again", "b", trained, CFG.base_image)
    for name in ("model.py", "predict.py", "model.pt", "submission_b.zip", "Dockerfile", "README.md"):
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes(), name


def test_requirements_pin_only_what_the_sources_import():
    import importlib.metadata as md

    plain = requirements("import cv2\nimport numpy as np\nimport torch\nimport os\nfrom model import Model\n")
    assert plain == [f"numpy=={md.version('numpy')}", f"opencv-python-headless=={md.version('opencv-python-headless')}"]
    smp = requirements("import segmentation_models_pytorch as smp\n")
    assert smp == [f"segmentation-models-pytorch=={md.version('segmentation-models-pytorch')}",
                   f"timm=={md.version('timm')}"]


def test_ood_model_of_another_checkpoint_is_refused(tmp_path):
    prepared = write_prepared(tmp_path / "prepared")
    ckpt = trained_checkpoint(tmp_path, FAMILIES["unet"])
    ood = ood_model(tmp_path, ckpt, prepared)
    torch.manual_seed(1)
    models.save_checkpoint(ckpt, models.build_model(FAMILIES["unet"]), FAMILIES["unet"], train={"size": SIZE})
    with pytest.raises(DataError, match="segmenter differs"):
        read_trained(ckpt, ood)


def test_bundle_follows_imports_aliases_and_overrides():
    imports, body = codegen.bundle([OODSegmenter, serve.main], {"SETTINGS": {"x": 1}})
    assert "PIXEL_SCORES = OOD_PIXEL_SCORES" in body and body.index("OOD_PIXEL_SCORES = (") < body.index("PIXEL_SCORES =")
    assert "SETTINGS = {'x': 1}" in body and "def to_labels(" in body and "class DataError(" in body
    assert not any("albumentations" in i or "cityseg" in i for i in imports)
    with pytest.raises(ValueError, match="imports cityseg"):
        codegen.check_standalone("def f():\n    from cityseg import io\n")


def test_params_package_section():
    params = load_params(ROOT / "params.yaml")
    assert set(params["package"]["refusal"]) <= set(params["models"])
    with pytest.raises(ConfigError, match="package.refusal"):
        check_params({**params, "package": {**params["package"], "refusal": ["nope"]}})


def _docker_daemon() -> bool:
    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.skipif(not _docker_daemon(), reason="no Docker daemon")
def test_docker_image_reproduces_the_local_predictions(unet_package, tmp_path):
    from cityseg.submit import check_image

    out, _, prepared, _ = unet_package
    r = check_image(out, "cityseg-test-b", prepared, "test", CFG, None, tmp_path)
    assert r["identical"] == r["images"] > 0


def test_the_submission_uses_the_min_class_area_evaluation_chose(tmp_path):
    ckpt = trained_checkpoint(tmp_path, FAMILIES["unet"], min_area=0.02)  # train.min_class_area: validation only
    chosen = selected_min_area({"selection": {"min_class_area": 0.005}}, "metrics/b.json")
    trained = read_trained(ckpt, None, chosen)
    assert trained.predictor.min_area == trained.settings["min_area"] == 0.005
    assert "'min_area': 0.005" in predict_source(trained)  # SETTINGS pinned in predict.py
    for metrics in ({"dice": 0.5}, {"selection": {"min_class_area": None}}, {"selection": {"min_class_area": 1.5}}):
        with pytest.raises(DataError, match=r"metrics/b\.json: selection\.min_class_area .* re-run evaluate"):
            selected_min_area(metrics, "metrics/b.json")
