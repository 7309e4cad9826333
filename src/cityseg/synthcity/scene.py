"""What a scene is: Cityscapes label ids, splits and cities, the scene options and the rendered Scene."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cityseg import labels


_ID = labels.NAME_TO_ID
EGO, STATIC, DYNAMIC, GROUND = _ID["ego vehicle"], _ID["static"], _ID["dynamic"], _ID["ground"]
ROAD, SIDEWALK, PARKING, RAIL = _ID["road"], _ID["sidewalk"], _ID["parking"], _ID["rail track"]
BUILDING, WALL, FENCE, GUARD_RAIL = _ID["building"], _ID["wall"], _ID["fence"], _ID["guard rail"]
BRIDGE, TUNNEL, POLE = _ID["bridge"], _ID["tunnel"], _ID["pole"]
TLIGHT, TSIGN, VEGETATION, TERRAIN, SKY = (_ID["traffic light"], _ID["traffic sign"], _ID["vegetation"],
                                           _ID["terrain"], _ID["sky"])
PERSON, RIDER, CAR, TRUCK, BUS = _ID["person"], _ID["rider"], _ID["car"], _ID["truck"], _ID["bus"]
CARAVAN, TRAILER, TRAIN, MOTORCYCLE, BICYCLE = (_ID["caravan"], _ID["trailer"], _ID["train"],
                                                _ID["motorcycle"], _ID["bicycle"])


SPLITS = ("train", "val", "test")
# Frames are spread over the cities in blocks; names are sorted, so sorted file names follow the
# generation order (frame i of a split is scene i).
CITIES: dict[str, tuple[str, ...]] = {
    "train": ("synthbergen", "synthdorf", "synthhaven"),
    "val": ("valby", "valstad"),
    "test": ("testburg", "testdal"),
}
ENVIRONMENTS = ("street", "night", "tunnel", "offroad")
CAMERAS = ("default", "wide", "tilted")


@dataclass
class SceneOptions:
    """Knobs for near-out-of-distribution scenes; the defaults give a normal daytime street."""

    environment: str = "street"  # street | night | tunnel | offroad
    novel_objects: bool = False  # objects never seen in training on the road (label static/dynamic)
    camera: str = "default"  # default | wide (much shorter focal length) | tilted (large roll/pitch)

    def __post_init__(self):
        if self.environment not in ENVIRONMENTS:
            raise ValueError(f"environment: expected one of {ENVIRONMENTS}, got {self.environment!r}")
        if self.camera not in CAMERAS:
            raise ValueError(f"camera: expected one of {CAMERAS}, got {self.camera!r}")
        if not isinstance(self.novel_objects, (bool, np.bool_)):
            raise ValueError(f"novel_objects: expected a bool, got {self.novel_objects!r}")


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 RGB
    label_ids: np.ndarray  # (H, W) uint8 Cityscapes label ids
    instance_ids: np.ndarray  # (H, W) int32: id*1000+k for instance classes, plain id otherwise
    depth: np.ndarray  # (H, W) float32 z-depth (m) along the optical axis; inf for sky
    camera: dict  # Cityscapes camera JSON for this image size
