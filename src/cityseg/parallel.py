"""Per-item work over a process pool, in input order, with one progress bar.

Every data-generating stage (synthcity, prepare, weather, oodsets) maps one function over a list of
independent jobs; this is the one place that decides how many processes that takes.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from cityseg.progress import progress as progress_bar

T = TypeVar("T")
R = TypeVar("R")


def resolve_workers(workers: int, jobs: int | None = None) -> int:
    """``data.workers`` as a process count: 0 = all cores; never more than ``jobs`` (when given)."""
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0 (0 = all cores), got {workers!r}")
    n = workers or os.cpu_count() or 1
    return max(1, min(n, jobs)) if jobs is not None else n


def pmap(fn: Callable[[T], R], jobs: Sequence[T], workers: int, desc: str, unit: str = "img",
         progress: bool = True) -> Iterator[R]:
    """Yield ``fn(job)`` for every job, in order, on ``resolve_workers(workers)`` processes.

    One process runs in this one (no pickling, easy to debug). Results come back in input order,
    so the output does not depend on the number of workers. A failure cancels the pending jobs.
    """
    n = resolve_workers(workers, len(jobs))
    with progress_bar(total=len(jobs), desc=desc, unit=unit, enabled=progress) as bar:
        if n == 1:
            results: Iterable[R] = map(fn, jobs)
            pool = None
        else:
            pool = ProcessPoolExecutor(n)
            # A few chunks per worker: big enough to amortise pickling, small enough to balance load.
            results = pool.map(fn, jobs, chunksize=max(1, min(16, len(jobs) // (4 * n))))
        try:
            for res in results:
                yield res
                bar.update()
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
