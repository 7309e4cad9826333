import json

from cityseg.report import get, latex_table, table, write_report
from cityseg.pareto import experiment_points


def _metrics(dice, gflops):
    return {"dice": dice, "miou": dice - 0.1, "gflops": gflops, "params_m": 1.0,
            "class_iou": {"road": 0.9, "pole": None}, "efficiency": {"score": dice / gflops * 1000}}


def test_tables_render_values_and_missing_as_dash(tmp_path):
    metrics = {"baseline": _metrics(0.6, 160.0), "efficient": _metrics(0.5, 13.4)}
    write_report(metrics, tmp_path, 0.9, {"baseline": "the course U-Net"})
    md = (tmp_path / "summary.md").read_text()
    assert "| baseline | 0.600 | 0.500 | 160.0 | 1.00 | 3.75 |" in md
    assert "| pole | – | – |" in md and "the course U-Net" in md
    assert "Dice >= 0.9 x baseline 0.600 = 0.540" in md  # efficiency.gate is read, not a hard-coded 0.8
    tex = (tmp_path / "tables.tex").read_text()
    assert r"\begin{tabular}" in tex and "160.0" in tex
    assert (tmp_path / "pareto.png").stat().st_size > 0 and (tmp_path / "per_class.png").stat().st_size > 0


def test_distillation_ablation_rows(tmp_path):
    metrics = {"peak": _metrics(0.57, 175.0), "fastscnn": _metrics(0.46, 7.9), "efficient": _metrics(0.485, 7.9)}
    students = {"efficient": ("peak", "fastscnn"), "ood": ("peak", "peak")}  # ood has no metrics: no row
    write_report(metrics, tmp_path, 0.8, students=students)
    md = (tmp_path / "summary.md").read_text()
    assert "## Distillation" in md and "| efficient | peak (0.570) | fastscnn: 0.460 | 0.485 | +0.025 |" in md
    assert "| ood |" not in md and "Distillation ablation" in (tmp_path / "tables.tex").read_text()
    write_report(metrics, tmp_path, 0.8)
    assert "## Distillation" not in (tmp_path / "summary.md").read_text()


def test_get_and_table_helpers():
    assert get({"a": {"b": 2}}, "a.b") == 2 and get({"a": {}}, "a.b") is None
    assert table([["x", "1"]], ["k", "v"]).splitlines() == ["| k | v |", "|---|---:|", "| x | 1 |"]
    assert "x\\_y" in latex_table([["x_y"]], ["n"], "cap")


def test_experiment_points_from_dvc_exp_show_json():
    exp = json.loads("""[{"rev": "workspace", "name": null, "data": {"rev": "workspace", "metrics": {
        "metrics/baseline.json": {"data": {"dice": 0.6, "gflops": 160.0}}}}},
      {"rev": "abc1234567", "name": "main", "data": {"rev": "abc1234567", "metrics": {
        "metrics/baseline.json": {"data": {"dice": 0.55, "gflops": 40.0}}}},
       "experiments": [{"revs": [{"rev": "def", "name": "exp-1", "data": {"metrics": {
         "metrics/efficient.json": {"data": {"dice": 0.5, "gflops": 13.0}}}}}]}]}]""")
    points = experiment_points(exp)
    assert ("main:baseline", 40.0, 0.55) in points and ("exp-1:efficient", 13.0, 0.5) in points
    assert len(points) == 3
