import numpy as np
import pytest
from cityscapesscripts.helpers.labels import labels as cs_labels

from cityseg import labels as L


def test_every_official_id_maps_like_cityscapesscripts():
    for lab in cs_labels:
        if lab.id < 0:
            continue
        expected = 255 if lab.trainId in (-1, 255) else lab.trainId
        assert L.ID_TO_TRAIN_ID[lab.id] == expected, lab.name
        assert tuple(L.LABEL_ID_PALETTE[lab.id]) == lab.color


def test_nineteen_classes_in_trainid_order():
    assert L.NUM_CLASSES == 19
    assert L.CLASS_NAMES[0] == "road" and L.CLASS_NAMES[18] == "bicycle"
    assert list(L.TRAIN_ID_TO_LABEL_ID) == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert tuple(L.PALETTE[0]) == (128, 64, 128) and tuple(L.PALETTE[255]) == (0, 0, 0)
    assert L.GROUPS["human"] == (11, 12)


def test_ids_outside_table_are_rejected_with_file_name():
    ids = np.array([[7, 40], [26, 99]], np.uint8)
    with pytest.raises(L.UnknownLabelIdError, match=r"x\.png: label ids \[40, 99\]"):
        L.label_ids_to_train_ids(ids, "x.png")
    assert L.label_ids_to_train_ids(np.array([[7, 0, 33]], np.uint8)).tolist() == [[0, 255, 18]]
