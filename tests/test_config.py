"""params.yaml and its typed configs: one source for every default, and clear errors for bad keys."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from cityseg.config import SECTIONS, ConfigError, EvalConfig, OODConfig, benchmark_configs, load_params

PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


def _default(f: dataclasses.Field):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_dataclass_defaults_equal_params_yaml(name):
    """A default that differs from params.yaml is a second, silently different source of truth."""
    section = yaml.safe_load(PARAMS.read_text())[name]
    differ = {f.name: (_default(f), section[f.name]) for f in dataclasses.fields(SECTIONS[name])
              if f.name in section and _default(f) != section[f.name]}
    assert not differ, f"{name}: dataclass default != params.yaml value: {differ}"
    missing = sorted({f.name for f in dataclasses.fields(SECTIONS[name])} - set(section))
    assert not missing, f"{name}: keys with no value in params.yaml: {missing}"


def test_unknown_key_names_the_file_and_dotted_key(tmp_path):
    params = yaml.safe_load(PARAMS.read_text())
    params["model"]["widht"] = 0.5
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"params\.yaml: unknown key 'model\.widht'"):
        load_params(path)


def test_wrong_type_names_the_key(tmp_path):
    params = yaml.safe_load(PARAMS.read_text())
    params["train"]["epochs"] = "ten"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match=r"'train\.epochs' must be int"):
        load_params(path)


@pytest.mark.parametrize("method", ["auto", "mahalanobis", "energy_p95", "max_logit_mean", "msp_p99_5", "entropy_mean"])
def test_ood_method_accepts_every_reported_method(method):
    assert OODConfig(method=method).method == method


@pytest.mark.parametrize("method", ["energy", "maha", "energy_p", "logit_mean", "energy_max"])
def test_ood_method_rejects_unknown_names(method):
    with pytest.raises(ConfigError, match="ood.method"):
        OODConfig(method=method)


@pytest.mark.parametrize("areas, message", [([], "non-empty"), ([0.0, 1.0], "fractions"), ([0.0, "0.1"], "fractions"),
                                             ([True], "fractions"), ([0.001, 0.001], "twice")])
def test_eval_min_class_area_candidates_are_checked(areas, message):
    with pytest.raises(ConfigError, match=f"eval.min_class_area.*{message}"):
        EvalConfig(min_class_area=areas)


def test_eval_selection_split_and_candidates_from_params(tmp_path):
    params = yaml.safe_load(PARAMS.read_text())
    params["eval"]["selection_split"] = "validation"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ConfigError, match="eval.selection_split"):
        load_params(path)
    assert EvalConfig(min_class_area=[0, 0.002]).min_class_area == [0.0, 0.002]


def test_benchmark_entry_overrides_shared_defaults():
    params = load_params(PARAMS)
    model, train = benchmark_configs(params, "efficient")
    assert (model.arch, model.width, train.epochs, train.lr) == ("fastscnn", 0.75, 16, 0.005)
    base_model, base_train = benchmark_configs(params, "baseline")
    assert (base_model.arch, base_model.base_channels, base_train.epochs) == ("unet", 16, 24)
    assert train.batch_size == base_train.batch_size == 2  # not overridden: the shared value
