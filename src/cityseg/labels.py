"""The one owner of the Cityscapes label table.

Everything here is derived from ``cityscapesscripts.helpers.labels`` (the official table),
never typed by hand, so the project cannot drift from the benchmark's definition.
"""

from __future__ import annotations

import numpy as np
from cityscapesscripts.helpers.labels import labels as _CS_LABELS

from cityseg.io import DataError

IGNORE_INDEX = 255
NUM_CLASSES = 19

# Official labels with a real id (0..33); "license plate" has id -1 and never appears in PNGs.
LABELS = [lab for lab in _CS_LABELS if lab.id >= 0]
LABEL_IDS = frozenset(lab.id for lab in LABELS)
NAME_TO_ID = {lab.name: lab.id for lab in LABELS}

# The 19 evaluated classes in trainId order.
_TRAIN = sorted((lab for lab in LABELS if 0 <= lab.trainId < IGNORE_INDEX), key=lambda lab: lab.trainId)
assert [lab.trainId for lab in _TRAIN] == list(range(NUM_CLASSES))
CLASS_NAMES: tuple[str, ...] = tuple(lab.name for lab in _TRAIN)
TRAIN_ID_TO_LABEL_ID = np.array([lab.id for lab in _TRAIN], dtype=np.uint8)

# Palette for trainIds 0..18; index 255 (ignore) is black.
PALETTE = np.zeros((256, 3), dtype=np.uint8)
for _lab in _TRAIN:
    PALETTE[_lab.trainId] = _lab.color

# Palette over label ids (for *_gtFine_color.png, which Cityscapes colours by label id).
LABEL_ID_PALETTE = np.zeros((256, 3), dtype=np.uint8)
for _lab in LABELS:
    LABEL_ID_PALETTE[_lab.id] = _lab.color

# id -> trainId lookup over all 256 uint8 values. Ids outside the official table map to
# UNKNOWN_ID so that callers can detect them (see ``label_ids_to_train_ids``).
UNKNOWN_ID = 254
ID_TO_TRAIN_ID = np.full(256, UNKNOWN_ID, dtype=np.uint8)
for _lab in LABELS:
    ID_TO_TRAIN_ID[_lab.id] = IGNORE_INDEX if _lab.trainId in (-1, 255) else _lab.trainId

# Which label ids carry instances (instanceIds = id*1000 + k for these).
HAS_INSTANCES = frozenset(lab.id for lab in LABELS if lab.hasInstances)

# Category groups (trainIds) as the competition servers report them.
CATEGORIES: dict[str, tuple[int, ...]] = {}
for _lab in _TRAIN:
    CATEGORIES.setdefault(_lab.category, ())
    CATEGORIES[_lab.category] += (_lab.trainId,)
GROUPS: dict[str, tuple[int, ...]] = {
    "human": tuple(CLASS_NAMES.index(n) for n in ("person", "rider")),
    "vehicle": tuple(CLASS_NAMES.index(n) for n in ("car", "truck", "bus", "train", "motorcycle", "bicycle")),
}


class UnknownLabelIdError(DataError):
    """A label image holds ids that are not in the Cityscapes table."""


def label_ids_to_train_ids(label_ids: np.ndarray, source: str = "<array>") -> np.ndarray:
    """Map a (H, W) uint8 labelIds array to trainIds (ignored classes -> 255).

    Raises ``UnknownLabelIdError`` naming ``source`` and the offending ids.
    """
    if label_ids.dtype != np.uint8:
        raise UnknownLabelIdError(f"{source}: expected an 8-bit label image, got dtype {label_ids.dtype}")
    train_ids = ID_TO_TRAIN_ID[label_ids]
    if (train_ids == UNKNOWN_ID).any():
        bad = sorted(int(v) for v in np.unique(label_ids[train_ids == UNKNOWN_ID]))
        raise UnknownLabelIdError(f"{source}: label ids {bad} are not in the Cityscapes label table (valid: 0..33)")
    return train_ids


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """(H, W) trainIds -> (H, W, 3) RGB uint8 using the Cityscapes palette."""
    return PALETTE[train_ids]
