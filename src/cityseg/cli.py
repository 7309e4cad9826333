"""Shared entry point for stage scripts: readable errors and a non-zero exit, never a traceback for bad input."""

from __future__ import annotations

import logging
import sys
from typing import Callable

from cityseg.config import ConfigError
from cityseg.io import DataError


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
