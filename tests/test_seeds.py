"""The seeds table: runs read from `dvc exp show --json`, mean ± std, and which gaps exceed the spread."""

import pytest

from cityseg.seeds import markdown, mean_std, seed_runs, summarise


def _run(name: str, seed: int, dice: dict[str, float]) -> dict:
    """One entry as `dvc exp show --json` (DVC 3) lists it: params and metrics under data."""
    return {"rev": name, "name": name, "data": {
        "rev": name, "params": {"params.yaml": {"data": {"train": {"seed": seed}}}},
        "metrics": {f"metrics/{m}.json": {"data": {"dice": d, "ood": {"score": d - 0.1}}} for m, d in dice.items()}}}


EXP_JSON = [
    {**_run("workspace", 42, {"baseline": 0.50, "peak": 0.60, "efficient": 0.49}), "experiments": None},
    {**_run("abc1234", 42, {"baseline": 0.0, "peak": 0.0, "efficient": 0.0}), "experiments": [  # HEAD: seed 42 again
        {"name": "seed-1", "revs": [_run("seed-1", 1, {"baseline": 0.52, "peak": 0.61, "efficient": 0.45})]},
        {"name": "seed-2", "revs": [_run("seed-2", 2, {"baseline": 0.48, "peak": 0.59, "efficient": 0.53})]},
        {"name": "failed", "revs": [{"rev": "failed", "name": "failed", "data": {
            "params": {"params.yaml": {"data": {"train": {"seed": 3}}}}, "metrics": {}}}]},
    ]},
]


def test_runs_per_seed_from_exp_show():
    runs = seed_runs(EXP_JSON)
    assert sorted(runs) == [1, 2, 42]  # the failed run (no metrics) is left out
    assert runs[42]["baseline"]["dice"] == 0.50  # the workspace's, listed first, not HEAD's copy


def test_mean_std_and_significance_by_hand():
    assert mean_std([0.5]) == (0.5, 0.0)
    mean, std = mean_std([0.50, 0.52, 0.48])
    assert mean == pytest.approx(0.50) and std == pytest.approx(0.02)  # sqrt((0 + 0.0004 + 0.0004) / 2)
    summary = summarise(seed_runs(EXP_JSON))
    assert list(summary) == ["baseline", "efficient", "peak"]  # the baseline first
    peak, eff = summary["peak"]["dice"], summary["efficient"]["dice"]
    # peak 0.60 ± 0.01 against 0.50 ± 0.02: +0.10 > 0.03, significant. efficient 0.49 ± 0.04: -0.01 < 0.06, not.
    assert peak["diff"] == pytest.approx(0.10) and peak["std"] == pytest.approx(0.01) and peak["significant"]
    assert eff["diff"] == pytest.approx(-0.01) and not eff["significant"]
    assert summary["peak"]["ood.score"]["mean"] == pytest.approx(0.50) and "diff" not in summary["baseline"]["dice"]
    md = markdown(summary, [1, 2, 42])
    assert "| peak | 0.600 ± 0.010 (**+0.100**) |" in md and "| efficient | 0.490 ± 0.040 (-0.010) |" in md
    assert "3 training seeds (1, 2, 42)" in md
