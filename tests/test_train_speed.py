"""benchmarks/train_speed.py --data on a tiny prepared set: the table's fields (no timing asserted)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import train_speed  # noqa: E402
from latency import cpu_model  # noqa: E402
from test_train import H, W, make_prepared  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_data_mode_times_the_loader_against_the_device_ceiling(tmp_path, capsys):
    make_prepared(tmp_path / "prepared")
    train_speed.main(["--benchmarks", "baseline", "--data", str(tmp_path / "prepared"), "--workers", "2",
                      "--size", str(H), str(W), "--batch", "2", "--steps", "2", "--warmup", "1",
                      "--params", str(REPO / "params.yaml")])
    out = capsys.readouterr().out
    assert f"batch 2, {H}x{W}, 2 steps after 1" in out
    header = next(line for line in out.splitlines() if line.startswith("| model"))
    assert [c.strip() for c in header.strip("|").split("|")][-3:] == ["data", "images/s", "vs on the device"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()
            if line.startswith("| baseline")]
    assert [r[6] for r in rows] == ["on the device (ceiling)", "our loader, 2 workers"]
    hardware = torch.cuda.get_device_name() if torch.cuda.is_available() else cpu_model()
    ceiling, loaded = (float(r[7]) for r in rows)
    assert all(hardware in r[5] for r in rows) and ceiling > 0 and loaded > 0
    assert rows[0][8] == "1.00x" and re.fullmatch(r"\d+\.\d\dx", rows[1][8]) and float(rows[1][8][:-1]) > 0
