"""cityseg: a reproducible Cityscapes semantic-segmentation pipeline (TU/e 5LSM0 challenge)."""

__version__ = "0.1.0"

import os as _os

# albumentations checks PyPI for updates on import: never at run time (offline by default).
_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
