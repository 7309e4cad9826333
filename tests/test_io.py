"""Atomic writes (cityseg.io): an interrupted write leaves the previous file or folder as it was."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from cityseg import io as cio
from cityseg.io import DataError, atomic_dir, atomic_path, read_json, write_json, write_png

OLD = b"the previous, complete file\n"


class Interrupted(RuntimeError):
    """Stands for a crash or Ctrl-C in the middle of a write."""


def _previous(tmp_path: Path, name: str = "out.json") -> Path:
    p = tmp_path / name
    p.write_bytes(OLD)
    return p


def test_atomic_path_writes_beside_the_target_and_renames_on_success(tmp_path):
    p = _previous(tmp_path, "table.csv")
    with atomic_path(p) as tmp:
        assert tmp != p and tmp.parent == p.parent
        assert tmp.suffix == ".csv"  # writers that pick a format by extension (cv2) still work
        tmp.write_text("new")
        assert p.read_bytes() == OLD  # not replaced until the block succeeds
    assert p.read_text() == "new"
    assert sorted(tmp_path.iterdir()) == [p]


def test_interrupted_atomic_path_keeps_the_previous_file(tmp_path):
    p = _previous(tmp_path)
    with pytest.raises(Interrupted):
        with atomic_path(p) as tmp:
            tmp.write_text('{"half": ')
            raise Interrupted
    assert p.read_bytes() == OLD
    assert sorted(tmp_path.iterdir()) == [p]  # no temporary file left behind


def test_interrupted_atomic_path_creates_nothing_new(tmp_path):
    p = tmp_path / "sub" / "new.json"
    with pytest.raises(Interrupted):
        with atomic_path(p) as tmp:
            tmp.write_text("partial")
            raise Interrupted
    assert not p.exists() and list(p.parent.iterdir()) == []


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "prepared"
    out.mkdir()
    (out / "old.txt").write_bytes(OLD)
    with pytest.raises(Interrupted):
        with atomic_dir(out) as tmp:
            assert tmp != out and tmp.parent == out.parent
            (tmp / "half.txt").write_text("partial")
            raise Interrupted
    assert [p.name for p in out.iterdir()] == ["old.txt"] and (out / "old.txt").read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("complete")
        assert (out / "old.txt").exists()
    assert [p.name for p in out.iterdir()] == ["new.txt"]  # the old folder is replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]


def test_write_json_interrupted_mid_write_keeps_the_previous_file(tmp_path, monkeypatch):
    p = _previous(tmp_path)

    def write_half_then_fail(self, text, *args, **kwargs):  # a full disk after half the bytes
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", write_half_then_fail)
    with pytest.raises(OSError, match="No space"):
        write_json(p, {"a": 1, "b": [1, 2, 3]})
    monkeypatch.undo()
    assert p.read_bytes() == OLD
    assert sorted(tmp_path.iterdir()) == [p]


def test_write_json_result_is_sorted_and_readable(tmp_path):
    p = tmp_path / "m.json"
    write_json(p, {"b": 1, "a": [1, 2]})
    assert p.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert read_json(p) == {"a": [1, 2], "b": 1}
    p.write_text("{broken")
    with pytest.raises(DataError, match=r"m\.json: invalid JSON"):
        read_json(p)
    with pytest.raises(DataError, match="not found"):
        read_json(tmp_path / "missing.json")


def test_write_png_failure_keeps_the_previous_file(tmp_path, monkeypatch):
    p = _previous(tmp_path, "label.png")

    def imwrite_garbage(path, arr):  # the encoder dies after writing a few bytes
        Path(path).write_bytes(b"\x89PNG garbage")
        return False

    monkeypatch.setattr(cio.cv2, "imwrite", imwrite_garbage)
    with pytest.raises(OSError, match=r"label\.png: could not write PNG"):
        write_png(p, np.zeros((2, 3), np.uint8))
    monkeypatch.undo()
    assert p.read_bytes() == OLD
    assert sorted(tmp_path.iterdir()) == [p]
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200  # red
    write_png(p, rgb)
    assert cv2.imread(str(p))[0, 0].tolist() == [0, 0, 200]  # stored as BGR on disk: RGB in memory
    assert sorted(tmp_path.iterdir()) == [p]
