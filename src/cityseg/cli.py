"""Shared entry point for stage scripts: readable errors and a non-zero exit, never a traceback for bad input."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from cityseg.config import ConfigError
from cityseg.io import DataError


def stage_args(doc: str, required: dict[str, str], optional: dict[str, str] | None = None,
               argv: list[str] | None = None) -> argparse.Namespace:
    """The stage's path arguments: ``--<name> PATH`` for each key (its help as the value), plus
    ``--params`` (default params.yaml). dvc.yaml passes every path, so no stage hard-codes one."""
    ap = argparse.ArgumentParser(description=doc)
    for name, text in required.items():
        ap.add_argument(f"--{name}", required=True, help=text)
    for name, text in (optional or {}).items():
        ap.add_argument(f"--{name}", help=text)
    ap.add_argument("--params", default="params.yaml")
    return ap.parse_args(argv)


def run_stage(main: Callable[[], object]) -> None:
    """Run ``main``; bad data or params print one clear line and exit with status 2."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        main()
    except (DataError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted: no partial output was kept", file=sys.stderr)
        sys.exit(130)
