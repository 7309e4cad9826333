"""The OOD benchmark end to end (tiny prepared data, tiny OOD sets) and the `oodsets` stage."""

from __future__ import annotations

import json
import re
import runpy
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml
from conftest import fake_synthcity, write_root
from torch import nn

from cityseg import ood
from cityseg.dataset import full_res_samples, read_sample
from cityseg.evaluate import iter_predictions
from cityseg.inference import Predictor, to_batch
from cityseg.io import DataError, write_png
from cityseg.metrics import DiceMeter
from cityseg.oodeval import (
    ImageScores,
    choose_method,
    evaluate_ood,
    method_metrics,
    method_names,
    ood_model_from,
    roc_plot,
    save_ood_model,
    score_histogram,
    write_scores_csv,
)
from cityseg.oodlayout import list_ood_images
from cityseg.oodsets import write_oodsets
from cityseg.prepare import prepare
from cityseg.unet import UNet

REPO = Path(__file__).resolve().parents[1]
N_ID = 6  # images per prepared split
REQUIRED = ("auroc_near", "auroc_far", "fpr95_near", "fpr95_far", "aupr_near", "aupr_far", "score",
            "score_accept_all", "score_oracle", "threshold", "accepted_id_frac", "refused_near_frac", "refused_far_frac")
PIXEL_METHODS = [m for m in method_names("energy_p95", 95.0) if m != "mahalanobis"]
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("oodeval")
    root = write_root(tmp / "cs", n=N_ID, disparity=False)  # uniform-noise images, 8x16, fixed label pattern
    prepare(root, tmp / "prepared", "cityscapes", (8, 16), workers=1, progress=False)
    return tmp / "prepared"


@pytest.fixture(scope="module")
def generated_ood(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ood") / "ood"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(sys.modules, "cityseg.synthcity", fake_synthcity([]))
        write_oodsets(out, seed=1, n_val=3, n_test=3, sizes=[[24, 32], [16, 40]], workers=1)
    return out


def _flat_ood(root: Path, n: int = 3, groups=("near", "far")) -> Path:
    """Near-constant colour images (pixel std ~2/255) of varied sizes: nothing like the noisy ID images."""
    rng = np.random.default_rng(5)
    for split in ("val", "test"):
        for group in ("near", "far"):
            (root / split / group).mkdir(parents=True, exist_ok=True)
            for i in range(n if group in groups else 0):
                h, w = [(12, 20), (8, 16), (24, 24)][i % 3]
                img = rng.integers(30, 220, size=3) + rng.normal(0, 2, size=(h, w, 3))
                write_png(root / split / group / f"flat_{i}.png", img.round().clip(0, 255).astype(np.uint8))
    return root


class ConfidentOnNoise(nn.Module):
    """Predicts the (known, fixed) label pattern with confidence proportional to the image's pixel std:
    confident on the noisy ID images, nearly flat logits on flat OOD images."""

    def __init__(self, train_ids: np.ndarray, gain: float = 20.0):
        super().__init__()
        self.encoder = nn.Identity()  # the feature layer: pooled features = mean colour
        ids = torch.as_tensor(np.where(train_ids == 255, 0, train_ids).astype(np.int64))
        self.register_buffer("onehot", nn.functional.one_hot(ids, 19).permute(2, 0, 1).float())
        self.gain = gain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.encoder(x)
        spread = x.flatten(1).std(dim=1)  # (B,)
        return self.onehot[None] * (self.gain * spread)[:, None, None, None]


def _constructed(prepared: Path) -> Predictor:
    label = read_sample(full_res_samples(prepared, "test")[0])[1]
    return Predictor(ConfidentOnNoise(label), (8, 16), 0.0, CPU)


def _pair_auroc(sid: np.ndarray, sood: np.ndarray) -> float:
    """AUROC as the Mann-Whitney pair count: P(OOD score > ID score), ties half."""
    return float(((sood[:, None] > sid[None, :]) + 0.5 * (sood[:, None] == sid[None, :])).mean())


def _include(metrics: dict, scores: np.ndarray) -> np.ndarray:
    t = metrics["threshold"]
    return scores <= (np.inf if t is None else t)


# ------------------------------------------------------------------------------ the evaluation
def test_method_metrics_by_hand():
    def st(scores, dice=None):
        return ImageScores([str(i) for i in range(len(scores))], {"m": np.array(scores, float)},
                           None if dice is None else np.array(dice, float))

    sets = {"id_val": st([0.1, 0.2, 0.3, 0.9], [0.8, 0.6, 0.4, 0.2]), "near_val": st([0.5, 0.25]), "far_val": st([1.0]),
            "id_test": st([0.35, 0.45, 0.1], [0.5, 0.7, 0.9]), "near_test": st([0.39, 0.6]),
            "far_test": st([0.41, 2.0, 0.05])}
    r, t = method_metrics(sets, "m")
    # Validation optimum: accept scores <= 0.3 -> (0.8 + 0.6 + 0.4) / (4 ID + 1 accepted near) = 0.36;
    # the next validation score is 0.5, so the threshold moves to the middle of the gap, 0.4.
    assert t == pytest.approx(0.4) and r["threshold"] == pytest.approx(0.4) and r["threshold_policy"] == "calibrated"
    assert r["score_val"] == pytest.approx(0.36)
    # Test at 0.4: ID 0.35 and 0.1 accepted, near 0.39 and far 0.05 accepted -> (0.5 + 0.9) / (3 + 2).
    assert r["score"] == pytest.approx(0.28)
    assert r["accepted_id_frac"] == pytest.approx(2 / 3)
    assert r["refused_near_frac"] == pytest.approx(0.5) and r["refused_far_frac"] == pytest.approx(2 / 3)
    assert r["auroc_near"] == pytest.approx(5 / 6)  # 0.39 beats 0.35 and 0.1, 0.6 beats all three
    assert r["fpr95_near"] == pytest.approx(0.5)  # 95% of ID accepted needs t = 0.45: near 0.39 accepted, 0.6 not
    assert r["val_auroc_far"] == pytest.approx(1.0)


def test_unet_end_to_end(prepared, generated_ood, tmp_path):
    torch.manual_seed(0)
    model = UNet(width=0.125).eval()
    ev = evaluate_ood(Predictor(model, (16, 32), 0.0, CPU), prepared, generated_ood, eval_split="test",
                      method="energy_p95", temperature=1.0, percentile=95.0, batch_size=4, progress=False)
    m = ev.metrics
    assert all(k in m for k in REQUIRED)
    assert m["images"] == {"id_val": N_ID, "id_test": N_ID, "near_val": 3, "far_val": 3, "near_test": 3, "far_test": 3}
    assert list(m["methods"]) == method_names("energy_p95", 95.0) and len(m["methods"]) == 9
    json.dumps(m, allow_nan=False)  # valid JSON for DVC: no inf/NaN anywhere

    # Per-image Dice is the competition Dice that the evaluate stage computes (same forward, same upsampling).
    meter = DiceMeter()
    for _, _, label, logits in iter_predictions(model, prepared, "test", (16, 32), 4, CPU, False):
        meter.update(logits.argmax(0).numpy().astype(np.uint8), label, batched=False)
    dice = ev.sets["id_test"].dice
    np.testing.assert_allclose(dice, meter.per_image())
    assert m["score_accept_all"] == pytest.approx(dice.sum() / (N_ID + 6), abs=1e-6)
    assert m["score_oracle"] == pytest.approx(dice.mean(), abs=1e-6)

    for name, r in m["methods"].items():
        s = {key: st.scores[name] for key, st in ev.sets.items()}
        # The reported AUROCs are the pair counts of the reported scores.
        for group in ("near", "far"):
            assert r[f"auroc_{group}"] == pytest.approx(_pair_auroc(s["id_test"], s[f"{group}_test"]), abs=1e-6)
            assert r[f"val_auroc_{group}"] == pytest.approx(_pair_auroc(s["id_val"], s[f"{group}_val"]), abs=1e-6)
        # The reported threshold reproduces the reported decisions and scores, on test and on validation.
        inc = {key: _include(r, v) for key, v in s.items()}
        assert r["accepted_id_frac"] == pytest.approx(inc["id_test"].mean(), abs=1e-6)
        assert r["refused_near_frac"] == pytest.approx(1 - inc["near_test"].mean(), abs=1e-6)
        assert r["refused_far_frac"] == pytest.approx(1 - inc["far_test"].mean(), abs=1e-6)
        n_acc = inc["near_test"].sum() + inc["far_test"].sum()
        assert r["score"] == pytest.approx(dice[inc["id_test"]].sum() / (N_ID + n_acc), abs=1e-6)
        dv = ev.sets["id_val"].dice
        n_acc_val = inc["near_val"].sum() + inc["far_val"].sum()
        assert r["score_val"] == pytest.approx(dv[inc["id_val"]].sum() / (N_ID + n_acc_val), abs=1e-6)
        # Calibration is optimal on validation: never below accepting everything there.
        assert r["score_val"] >= dv.sum() / (N_ID + 6) - 1e-9
        assert 0.0 <= r["score"] <= m["score_oracle"] + 1e-9
    for k in ("auroc_near", "fpr95_far", "score", "threshold"):
        assert m[k] == m["methods"]["energy_p95"][k]

    # The packaged model makes the same decisions on the test images, for a logit and a feature method,
    # and survives a strict, weights_only reload.
    for method in ("energy_p95", "mahalanobis"):
        seg = ood_model_from(ev, model, method)
        for key in ("id_test", "near_test", "far_test"):
            if key == "id_test":
                images = [read_sample(s)[0] for s in full_res_samples(prepared, "test")]
            else:
                images = [cv2.cvtColor(cv2.imread(str(generated_ood / n)), cv2.COLOR_BGR2RGB) for n in ev.sets[key].names]
            with torch.no_grad():
                logits, include = seg(to_batch(images, (16, 32), CPU))
            assert logits.shape == (len(images), 19, 16, 32)
            np.testing.assert_array_equal(include.numpy(), ev.include(key, method))
    path = tmp_path / "ood.pt"
    save_ood_model(ood_model_from(ev, model), path)
    fresh = ood.OODSegmenter(UNet(width=0.125), method="msp_mean", temperature=2.0)
    fresh.load_state_dict(torch.load(path, weights_only=True), strict=True)
    assert fresh.method == "energy_p95" and float(fresh.threshold) == pytest.approx(ev.thresholds["energy_p95"])
    assert float(fresh.temperature) == 1.0
    assert fresh.maha_whitening.shape[0] == fresh.maha_mean.shape[0] > 0

    roc_plot(ev, tmp_path / "roc.png", title="tiny")
    score_histogram(ev, tmp_path / "hist.png")
    write_scores_csv(ev, tmp_path / "scores.csv")
    for png in ("roc.png", "hist.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "scores.csv").read_text().strip().splitlines()
    assert len(rows) == 1 + 2 * N_ID + 12 and rows[0].startswith("set,name,dice,include,msp_mean")


def test_separable_model_is_perfect(prepared, tmp_path):
    ood_root = _flat_ood(tmp_path / "ood")
    ev = evaluate_ood(_constructed(prepared), prepared, ood_root, eval_split="test", method="msp_mean",
                      temperature=1.0, percentile=95.0, batch_size=4, progress=False)
    m = ev.metrics
    assert m["score_oracle"] == pytest.approx(1.0)  # the model predicts every labelled pixel right
    assert m["score_accept_all"] == pytest.approx(N_ID / (N_ID + 6))
    for name in PIXEL_METHODS:
        r = m["methods"][name]
        assert r["auroc_near"] == r["auroc_far"] == r["aupr_near"] == r["aupr_far"] == 1.0, name
        assert r["fpr95_near"] == r["fpr95_far"] == 0.0, name
        assert r["accepted_id_frac"] == r["refused_near_frac"] == r["refused_far_frac"] == 1.0, name
        assert r["score"] == pytest.approx(1.0) and r["score"] > m["score_accept_all"], name
        # The threshold sits in the gap between the highest ID and the lowest OOD validation score.
        val_id, val_ood = ev.sets["id_val"].scores[name], np.r_[ev.sets["near_val"].scores[name], ev.sets["far_val"].scores[name]]
        assert val_id.max() < r["threshold"] < val_ood.min(), name
    assert m["score"] == m["methods"]["msp_mean"]["score"] == pytest.approx(1.0)


def test_val_split_is_halved_and_far_only_sets_work(prepared, tmp_path):
    ood_root = _flat_ood(tmp_path / "ood", groups=("far",))
    ev = evaluate_ood(_constructed(prepared), prepared, ood_root, eval_split="val", method="entropy_p95",
                      temperature=1.0, percentile=95.0, batch_size=2, progress=False)
    stems = [s.stem for s in full_res_samples(prepared, "val")]
    assert ev.sets["id_val"].names == stems[0::2] and ev.sets["id_test"].names == stems[1::2]
    m = ev.metrics
    assert m["images"]["near_test"] == 0 and m["auroc_near"] is None and m["refused_near_frac"] is None
    assert m["auroc_far"] == 1.0 and m["score"] == pytest.approx(1.0)
    assert any("odd positions" in note for note in m["notes"])
    json.dumps(m, allow_nan=False)


def test_bad_inputs(prepared, tmp_path):
    with pytest.raises(DataError, match="OOD image root not found"):
        list_ood_images(tmp_path / "nowhere")
    root = _flat_ood(tmp_path / "ood")
    for f in (root / "test" / "near").iterdir():
        f.unlink()
    for f in (root / "test" / "far").iterdir():
        f.unlink()
    with pytest.raises(DataError, match=r"test: no OOD images"):
        list_ood_images(root)
    (root / "test" / "far").rmdir()
    with pytest.raises(DataError, match=r"test/far: OOD folder missing"):
        list_ood_images(root)
    with pytest.raises(ValueError, match="method: unknown"):
        evaluate_ood(_constructed(prepared), prepared, _flat_ood(tmp_path / "ok"), eval_split="test",
                     method="softmax", temperature=1.0, percentile=95.0, batch_size=2, progress=False)


# ------------------------------------------------------------------------------ the oodsets stage
def _run_stage(monkeypatch, tmp_path: Path, ood_params: dict, samples: bool = False) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"workers": 1}, "ood": ood_params}))
    out = tmp_path / "data" / "ood"
    argv = ["oodsets.py", "--out", str(out), "--params", str(params)]
    if samples:
        argv += ["--samples", str(tmp_path / "samples.png")]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "stages" / "oodsets.py"), run_name="__main__")
    return out


def test_stage_generates_the_layout(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cityseg.synthcity", fake_synthcity([]))
    out = _run_stage(monkeypatch, tmp_path, {"seed": 3, "n_val": 2, "n_test": 1, "sizes": [[16, 24]]}, samples=True)
    listed = list_ood_images(out)
    assert {k: len(v) for k, v in listed.items()} == {"near_val": 2, "far_val": 2, "near_test": 1, "far_test": 1}
    img = cv2.imread(str(listed["far_val"][0]))
    assert img.shape == (16, 24, 3)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["counts"]["total"] == 6
    assert (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"


def _user_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for rel in ("val/near/a.png", "val/far/sub/b.jpg", "test/near/c.png", "test/far/d.png", "test/far/e.jpeg"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), rng.integers(0, 256, size=(10, 14, 3), dtype=np.uint8))
    (root / "val/near/notes.txt").write_text("not an image")
    return root


def test_stage_imports_user_images(monkeypatch, tmp_path):
    user = _user_folder(tmp_path / "user")
    out = _run_stage(monkeypatch, tmp_path, {"user_root": str(user)})
    for rel in ("val/near/a.png", "val/far/sub/b.jpg", "test/near/c.png", "test/far/d.png", "test/far/e.jpeg"):
        assert (out / rel).read_bytes() == (user / rel).read_bytes()
    assert not (out / "val/near/notes.txt").exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == "user"
    assert manifest["counts"] == {"val_near": 1, "val_far": 1, "test_near": 1, "test_far": 2, "total": 5}
    assert {r["file"]: (r["height"], r["width"]) for r in manifest["images"]}["val/far/sub/b.jpg"] == (10, 14)
    assert {k: len(v) for k, v in list_ood_images(out).items()}["far_test"] == 2


@pytest.mark.parametrize("damage, message", [
    ("missing_folder", r"test/far: folder missing"),
    ("empty_folder", r"val/near: no \.png/\.jpg/\.jpeg images"),
    ("corrupt_image", r"test/near/c\.png: cannot decode image"),
    ("no_root", r"ood.user_root is not a folder"),
])
def test_stage_user_errors_are_clear(monkeypatch, tmp_path, capsys, damage, message):
    user = _user_folder(tmp_path / "user")
    if damage == "missing_folder":
        for f in (user / "test/far").iterdir():
            f.unlink()
        (user / "test/far").rmdir()
    elif damage == "empty_folder":
        (user / "val/near/a.png").unlink()
    elif damage == "corrupt_image":
        (user / "test/near/c.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    else:
        user = tmp_path / "missing"
    with pytest.raises(SystemExit) as exc:
        _run_stage(monkeypatch, tmp_path, {"user_root": str(user)})
    assert exc.value.code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "data" / "ood").exists()  # nothing half-written


# ------------------------------------------------------------------------------ ood.method: auto
def test_choose_method_takes_the_best_validation_score_and_the_first_on_ties():
    per = {"a": {"score_val": 0.5, "score": 0.1}, "b": {"score_val": 0.7, "score": 0.0}, "c": {"score_val": None, "score": 1.0}}
    assert choose_method(per) == "b"  # not "c", the best on test
    assert choose_method({"b": {"score_val": 0.5}, "a": {"score_val": 0.5}}) == "b"  # ties: the first listed
    assert list(method_names("auto", 95.0)) == method_names("energy_p95", 95.0)  # auto adds no method


def test_auto_method_is_chosen_on_the_validation_sets_only():
    def st(x, y, dice=None):
        return ImageScores([str(i) for i in range(len(x))], {"x": np.array(x, float), "y": np.array(y, float)},
                           None if dice is None else np.array(dice, float))

    # On val, x separates ID (low) from OOD (high) and y reverses them; on test it is the other way round.
    sets = {"id_val": st([0.1, 0.2], [0.9, 1.0], [0.8, 0.6]), "near_val": st([0.9], [0.1]), "far_val": st([1.0], [0.2]),
            "id_test": st([0.9, 1.0], [0.1, 0.2], [0.8, 0.6]), "near_test": st([0.1], [0.9]), "far_test": st([0.2], [1.0])}
    per = {m: method_metrics(sets, m)[0] for m in ("x", "y")}
    assert per["x"]["score_val"] > per["y"]["score_val"] and per["y"]["score"] > per["x"]["score"]
    assert choose_method(per) == "x"
    # Any test scores and labels: the same choice and threshold.
    sets.update(id_test=st([5.0, 0.0], [0.0, 5.0], [0.1, 0.9]), near_test=st([0.0], [0.0]), far_test=st([9.0], [9.0]))
    again = {m: method_metrics(sets, m)[0] for m in ("x", "y")}
    assert choose_method(again) == "x" and again["x"]["threshold"] == per["x"]["threshold"]


def test_auto_method_reports_and_saves_the_chosen_one(prepared, tmp_path):
    ood_root, predictor = _flat_ood(tmp_path / "ood"), _constructed(prepared)
    ev = evaluate_ood(predictor, prepared, ood_root, eval_split="test", method="auto",
                      temperature=1.0, percentile=95.0, batch_size=4, progress=False)
    m = ev.metrics
    assert ev.method == m["method"] == choose_method(m["methods"]) and m["method_config"] == "auto"
    assert m["score"] == m["methods"][ev.method]["score"] and m["threshold"] == ev.thresholds[ev.method]
    assert m["calibration_split"] == "val" and ood_model_from(ev, predictor.model).method == ev.method
