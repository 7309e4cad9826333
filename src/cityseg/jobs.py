"""Running on a cluster: where resume state lives, and stopping cleanly when the scheduler asks.

A SLURM job ends at its time limit (``--signal=B:USR1@<s>`` warns it first) or is preempted (SIGTERM). Training
asks `StopSignals` after every optimizer step, writes its resume state and exits with `EXIT_PREEMPTED`, so the
job script can requeue itself and the next job continues from that step.

Resume state must outlive the working copy: ``dvc exp run --temp`` and queued experiments run in a throw-away
copy under ``<repo>/.dvc/tmp/exps/`` (a fresh Git repository of its own, deleted afterwards), so a path relative
to the current directory would be lost with it. `resolve_resume_dir` resolves relative paths against the main
project instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Optional

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal after saving resume state; run the same command again
STOP_SIGNALS = (signal.SIGUSR1, signal.SIGTERM)
RESUME_ROOT_ENV = "CITYSEG_RESUME_ROOT"


def project_root(cwd: Optional[Path] = None) -> Path:
    """The main project's root: ``$DVC_ROOT`` (DVC sets it for every stage command, to the parent repository in
    temporary and queued experiment copies), else the parent of Git's common directory (the main checkout, also
    from a ``git worktree``), else ``cwd``."""
    cwd = Path.cwd() if cwd is None else Path(cwd)
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    try:
        common = subprocess.run(["git", "rev-parse", "--git-common-dir"], cwd=cwd, capture_output=True, text=True,
                                check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return cwd.resolve()
    return (cwd / common).resolve().parent


def resolve_resume_dir(path: str | os.PathLike) -> Path:
    """The folder for a run's resume files: an absolute ``path`` as given; a relative one under
    ``$CITYSEG_RESUME_ROOT`` when set (e.g. a scratch file system), else under `project_root`."""
    path = Path(path)
    if path.is_absolute():
        return path
    base = os.environ.get(RESUME_ROOT_ENV)
    return (Path(base) if base else project_root()) / path


class StopSignals:
    """While active (``with``), SIGUSR1 and SIGTERM only record a request to stop; ``requested()`` says whether
    one came and ``name`` which. Outside the main thread (where Python cannot install handlers) it never stops."""

    def __init__(self, signals: tuple = STOP_SIGNALS):
        self.signals, self.name, self._previous = signals, None, {}

    def _handle(self, signum, frame) -> None:
        self.name = self.name or signal.Signals(signum).name

    def requested(self) -> bool:
        return self.name is not None

    def __enter__(self) -> "StopSignals":
        try:
            self._previous = {s: signal.signal(s, self._handle) for s in self.signals}
        except ValueError:  # not the main thread
            self._previous = {}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
