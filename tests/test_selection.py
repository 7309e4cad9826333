"""Honest splits: the small-class threshold is chosen on the selection split, never on the reported one.

The stub net of tests/test_evaluate.py predicts a 1-pixel pole in image A. On the reported split (test) the
pole is wrong, so removing it (min_class_area 0.2) would score best there; on the selection split (val) the
pole is real, so keeping it (0.0) scores best. The chosen value therefore tells which split chose it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_evaluate import CPU, GT_A, stub_arch, stub_checkpoint, write_prepared  # noqa: F401 (stub_arch: fixture)

from cityseg import evaluate
from cityseg.config import ConfigError, EvalConfig
from cityseg.evaluate import choose_min_area, select_and_score, selection_split, sweep_min_area
from cityseg.inference import Predictor
from cityseg.io import read_json, write_json

GT_A_VAL = GT_A.copy()
GT_A_VAL[1, 1] = 5  # the pole the net predicts is really there on val
CFG = EvalConfig(split="test", batch_size=2, min_class_area=[0.0, 0.2])


def write_selection_prepared(root: Path) -> Path:
    """write_prepared's test split plus a val split: the same two images, image A's label with the pole."""
    write_prepared(root)
    shutil.copytree(root / "leftImg8bit" / "test", root / "leftImg8bit" / "val")
    shutil.copytree(root / "gtFine" / "test", root / "gtFine" / "val")
    stem_a = sorted((root / "gtFine" / "val" / "tinytown").iterdir())[0]
    cv2.imwrite(str(stem_a), GT_A_VAL)
    manifest = read_json(root / "manifest.json")
    manifest["splits"]["val"] = manifest["splits"]["test"]
    write_json(root / "manifest.json", manifest)
    return root


@pytest.fixture
def predictor(tmp_path, stub_arch) -> Predictor:  # noqa: F811
    # Trained with small-class removal (train.min_class_area > 0), so evaluation chooses its threshold.
    return Predictor.from_checkpoint(stub_checkpoint(tmp_path / "best.pt", 0.001), CPU)


def test_a_recipe_without_small_class_removal_is_scored_without_it(tmp_path, stub_arch, monkeypatch):  # noqa: F811
    prepared = write_selection_prepared(tmp_path / "prepared")
    monkeypatch.setattr(evaluate, "complexity", lambda model: {})
    plain = Predictor.from_checkpoint(stub_checkpoint(tmp_path / "plain.pt", 0.0), CPU)  # the course baseline's case
    m, chosen = select_and_score(plain, prepared, "test", EvalConfig(split="test", batch_size=2,
                                                                     min_class_area=[0.2, 0.5]), tmp_path / "p", "t")
    assert chosen.min_area == m["selection"]["min_class_area"] == 0.0
    assert m["selection"]["min_class_area_dice"] == {"0.0": 0.948148}


def test_choose_min_area_takes_the_best_dice_and_the_smaller_on_ties():
    assert choose_min_area({0.0: 0.50, 0.001: 0.52, 0.002: 0.51}) == 0.001
    assert choose_min_area({0.005: 0.6, 0.0: 0.6, 0.002: 0.6}) == 0.0  # a tie: the smallest, whatever the order
    assert choose_min_area({0.002: 0.6, 0.001: 0.6, 0.0: 0.5}) == 0.001
    assert choose_min_area({0.0: float("nan"), 0.001: 0.1}) == 0.001  # no scorable image never wins


def test_sweep_scores_every_candidate_from_one_forward_pass(predictor, tmp_path):
    prepared = write_prepared(tmp_path / "prepared")
    calls = []
    forward = predictor.model.forward
    predictor.model.forward = lambda x: calls.append(len(x)) or forward(x)
    # The hand-worked Dice of tests/test_evaluate.py: 41/54 without removal, (110/126 + 1) / 2 removing the
    # pole. At 0.5 sidewalk (3/8) goes too: A is all road, road 8/12, sidewalk 0 -> (1/3 + 1) / 2.
    dice = sweep_min_area(predictor, prepared, "test", [0.0, 0.2, 0.5], batch_size=1, progress=False)
    assert dice == {0.0: 0.759259, 0.2: 0.936508, 0.5: 0.666667}
    assert calls == [1, 1]  # one forward per image, not one per candidate


SYNTHCITY, HELD_OUT = ("train", "val", "test"), ("train", "val", "holdout")  # prepared splits


def test_selection_split_is_never_the_reported_one():
    assert selection_split("auto", "test", SYNTHCITY) == "val"
    assert selection_split("auto", "test", SYNTHCITY + ("holdout",)) == "val"  # val is not reported: it stays
    assert selection_split("auto", "val", HELD_OUT) == "holdout"  # real Cityscapes: val is reported
    assert selection_split("train", "val", HELD_OUT) == "train"
    with pytest.raises(ConfigError, match="eval.selection_split: 'test' is the reported split"):
        selection_split("test", "test", SYNTHCITY)


def test_reporting_val_without_a_holdout_split_names_the_key_that_makes_it():
    with pytest.raises(ConfigError, match=r"'holdout', which the prepared data lacks \(have: train, val\): "
                                          r"set data.holdout_cities > 0"):
        selection_split("auto", "val", ("train", "val"))
    with pytest.raises(ConfigError, match="lacks .*set eval.selection_split"):
        selection_split("test", "val", ("train", "val"))


def test_selection_reads_the_holdout_split_when_val_is_reported(predictor, tmp_path, monkeypatch):
    prepared = write_selection_prepared(tmp_path / "prepared")
    cfg = EvalConfig(split="val", batch_size=2, min_class_area=[0.0, 0.2])
    monkeypatch.setattr(evaluate, "score_split", lambda p, root, split, *a, **k: {"reported": split})
    with pytest.raises(ConfigError, match="data.holdout_cities"):
        select_and_score(predictor, prepared, "val", cfg, tmp_path / "plots", "t")
    # The holdout split (prepare's, from data.holdout_cities): test's images and labels under another name.
    for sub in ("leftImg8bit", "gtFine"):
        shutil.copytree(prepared / sub / "test", prepared / sub / "holdout")
    manifest = read_json(prepared / "manifest.json")
    manifest["splits"]["holdout"] = manifest["splits"]["test"]
    write_json(prepared / "manifest.json", manifest)
    m, chosen = select_and_score(predictor, prepared, "val", cfg, tmp_path / "plots", "t")
    assert m["reported"] == "val" and m["selection"]["split"] == "holdout"
    assert chosen.min_area == 0.2  # test's labels (the pole is wrong) chose it, not val's (0.0)


def test_selection_reads_only_the_selection_split(predictor, tmp_path, monkeypatch):
    prepared = write_selection_prepared(tmp_path / "prepared")
    reads = []
    for name in ("full_res_samples", "load_cache"):
        real = getattr(evaluate, name)
        monkeypatch.setattr(evaluate, name, lambda root, split, real=real: reads.append(split) or real(root, split))
    # Scoring the reported split is the only step allowed to read it: stubbed, every read left is the selection's.
    monkeypatch.setattr(evaluate, "score_split", lambda p, root, split, *a, **k: {"reported": split})
    m, chosen = select_and_score(predictor, prepared, "test", CFG, tmp_path / "plots", "t")
    assert reads and set(reads) == {"val"}
    assert m["reported"] == "test" and m["selection"]["split"] == "val"
    assert chosen.min_area == m["selection"]["min_class_area"] == 0.0  # val's best; test's would be 0.2


def test_selection_does_not_depend_on_the_reported_labels(predictor, tmp_path, monkeypatch):
    prepared = write_selection_prepared(tmp_path / "prepared")
    monkeypatch.setattr(evaluate, "complexity", lambda model: {})  # FLOPs at 1024x2048: not this test's subject
    m, chosen = select_and_score(predictor, prepared, "test", CFG, tmp_path / "plots", "t")
    # Val, image A (GT bottom row sidewalk, pole, sidewalk, sidewalk; predicted road, pole, sidewalk, sidewalk):
    # pole kept: road 8/9, sidewalk P2 G3 TP2 4/5, pole 1 -> 0.896296; with B (1): 0.948148. Pole removed:
    # road 8/9, sidewalk P3 G3 TP2 4/6, pole 0 -> 0.518519; with B: 0.759259. So 0.0 is chosen ...
    assert m["selection"] == {"split": "val", "min_class_area": 0.0, "min_class_area_dice": {"0.0": 0.948148, "0.2": 0.759259},
                              "checkpoint_epoch": 1, "checkpoint_split": "val"}
    # ... and the reported test Dice uses it: 41/54 (tests/test_evaluate.py), not the 0.936508 of 0.2.
    assert chosen.min_area == 0.0 and m["dice"] == 0.759259
    for label in (prepared / "gtFine" / "test" / "tinytown").iterdir():  # corrupt every reported label
        cv2.imwrite(str(label), np.full_like(GT_A, 13))
    corrupted, _ = select_and_score(predictor, prepared, "test", CFG, tmp_path / "plots", "t")
    assert corrupted["dice"] != m["dice"] and corrupted["selection"] == m["selection"]
