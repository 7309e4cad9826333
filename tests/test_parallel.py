"""cityseg.parallel: the one process-pool map of the data stages."""

from __future__ import annotations

import os

import pytest

from cityseg.parallel import pmap, resolve_workers


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"job {x} failed")
    return x * x


def test_resolve_workers_rules(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert resolve_workers(0) == 6  # 0 = all cores
    assert resolve_workers(0, jobs=4) == 4  # never more processes than jobs
    assert resolve_workers(3, jobs=10) == 3
    assert resolve_workers(2, jobs=0) == 1
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="workers"):
            resolve_workers(bad)


@pytest.mark.parametrize("workers", [1, 2])
def test_pmap_keeps_input_order(workers):
    jobs = list(range(23))
    assert list(pmap(_square_or_fail, jobs, workers, "test", progress=False)) == [x * x for x in jobs]


@pytest.mark.parametrize("workers", [1, 2])
def test_pmap_raises_the_jobs_error(workers):
    with pytest.raises(ValueError, match="job -1 failed"):
        list(pmap(_square_or_fail, [1, 2, -1, 3], workers, "test", progress=False))
