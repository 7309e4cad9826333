"""cityseg.progress: a tqdm bar on a terminal, a few plain lines in a log file."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from cityseg import progress as P
from cityseg.config import ConfigError
from cityseg.parallel import pmap


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_log_lines_every_n_seconds_and_one_at_the_end(monkeypatch):
    clock, out = Clock(), io.StringIO()
    monkeypatch.setattr(P.time, "monotonic", clock)
    monkeypatch.setenv(P.SECONDS_ENV, "30")
    seen = []
    for i in P.progress(range(100), desc="epoch 1/2", unit="batch", stream=out):
        clock.now += 1.0  # one second per batch: lines at 30, 60 and 90 s, then the final one
        seen.append(i)
    lines = out.getvalue().splitlines()
    assert seen == list(range(100)) and "\r" not in out.getvalue()
    assert len(lines) == 4
    assert lines[0] == "epoch 1/2: 30/100 batch, 30 s (1.0 batch/s, eta 70 s)"
    assert lines[-1] == "epoch 1/2: 100/100 batch in 100.0 s (1.0 batch/s)"


def test_manual_updates_postfix_and_final_line_only(monkeypatch):
    monkeypatch.setenv(P.SECONDS_ENV, "0")
    out = io.StringIO()
    with P.progress(total=3, desc="robustness", unit="img", stream=out) as bar:
        for _ in range(3):
            bar.update()
        bar.set_postfix_str("fog_1 0.500")
    assert out.getvalue().count("\n") == 1 and out.getvalue().startswith("robustness: 3/3 img in ")
    assert out.getvalue().rstrip().endswith(", fog_1 0.500")


def test_terminal_gets_tqdm_and_disabled_is_silent(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert isinstance(P.progress(range(2), desc="x", stream=Tty()), tqdm)
    quiet = io.StringIO()
    assert list(P.progress(range(3), desc="x", enabled=False, stream=quiet)) == [0, 1, 2] and quiet.getvalue() == ""


@pytest.mark.parametrize("bad", ["-1", "often", "nan"])
def test_bad_interval_is_a_config_error(monkeypatch, bad):
    monkeypatch.setenv(P.SECONDS_ENV, bad)
    with pytest.raises(ConfigError, match=P.SECONDS_ENV):
        P.progress_seconds()


def test_default_interval_and_pmap_logs_one_line(monkeypatch, capsys):
    monkeypatch.delenv(P.SECONDS_ENV, raising=False)
    assert P.progress_seconds() == P.DEFAULT_SECONDS
    assert list(pmap(abs, [-1, -2, -3], workers=1, desc="prepare train")) == [1, 2, 3]
    err = capsys.readouterr().err  # captured: not a terminal
    assert err.count("\n") == 1 and err.startswith("prepare train: 3/3 img in ")
