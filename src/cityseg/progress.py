"""Progress reporting, the one place every stage gets it from.

On a terminal (stderr is a TTY) a loop shows a normal tqdm bar. Anywhere else (a SLURM log, ``dvc repro >
log``, a CI job) carriage-return bars would write every refresh as a new line, so a loop writes plain lines
instead: at most one every ``CITYSEG_PROGRESS_SECONDS`` seconds (default 30; 0 = only the final line) and one
when it ends, e.g. ``epoch 3/24: 100/100 batch in 12.3 s (8.1 batch/s), loss=0.4312``. The setting only changes
what is printed, never a result, so it is an environment variable rather than a param.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Iterable, Iterator, Optional, TextIO, Union

from tqdm import tqdm

from cityseg.config import ConfigError

SECONDS_ENV = "CITYSEG_PROGRESS_SECONDS"
DEFAULT_SECONDS = 30.0


def progress_seconds() -> float:
    """``$CITYSEG_PROGRESS_SECONDS`` as seconds between log lines (>= 0), or the default."""
    raw = os.environ.get(SECONDS_ENV, "").strip()
    if not raw:
        return DEFAULT_SECONDS
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also rejects nan
        raise ConfigError(f"{SECONDS_ENV}={raw!r}: expected seconds >= 0 between progress lines (0 = final line only)")
    return seconds


class LineProgress:
    """The part of tqdm's interface the stages use (iterate, ``update``, ``set_postfix[_str]``, ``close``, ``with``),
    printing plain lines for a log file."""

    def __init__(self, iterable: Optional[Iterable], total: Optional[int], desc: str, unit: str, seconds: float,
                 stream: TextIO):
        self.iterable, self.desc, self.unit, self.seconds, self.stream = iterable, desc, unit, seconds, stream
        self.total = total if total is not None or not hasattr(iterable, "__len__") else len(iterable)  # type: ignore[arg-type]
        self.n, self.postfix, self.closed = 0, "", False
        self.start = self.last = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable or ():
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.seconds > 0 and now - self.last >= self.seconds:
            self.last = now
            self._write(now, final=False)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._write(time.monotonic(), final=True)

    def _write(self, now: float, final: bool) -> None:
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        if final:
            text = f"{self.desc}: {count} {self.unit} in {elapsed:.1f} s ({rate:.1f} {self.unit}/s)"
        else:
            eta = f", eta {(self.total - self.n) / rate:.0f} s" if self.total and rate > 0 else ""
            text = f"{self.desc}: {count} {self.unit}, {elapsed:.0f} s ({rate:.1f} {self.unit}/s{eta})"
        self.stream.write(f"{text}, {self.postfix}\n" if self.postfix else f"{text}\n")
        self.stream.flush()


Bar = Union[tqdm, LineProgress]  # what `progress` returns


def progress(iterable: Optional[Iterable] = None, *, total: Optional[int] = None, desc: str = "", unit: str = "it",
             enabled: bool = True, stream: Optional[TextIO] = None) -> Bar:
    """A progress reporter over ``iterable`` (or ``total`` steps, advanced with ``update``): a tqdm bar on a
    terminal, `LineProgress` lines in a log, a silent pass-through when not ``enabled``."""
    stream = sys.stderr if stream is None else stream
    if not enabled or stream.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, disable=not enabled, file=stream)
    return LineProgress(iterable, total, desc, unit, progress_seconds(), stream)
