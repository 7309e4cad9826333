"""SynthCity: procedurally rendered street scenes written in the exact Cityscapes layout.

The project's embedded default dataset: a fresh clone runs end to end without real Cityscapes.
Every scene is ray-cast/rasterised in perspective from a pinhole camera with height, pitch, yaw
and roll (the Cityscapes camera model), so labelIds, instanceIds, depth, disparity and the camera
JSON are exactly consistent with the pixels of the photo:

* the ground (road, sidewalk, parking, rail track, terrain, ...) is a per-pixel ray/plane
  intersection with two planes (road level and curb level) and lateral bands;
* everything else is a list of planar polygons (faces of boxes, prisms and billboards) rasterised
  with ``cv2.fillPoly`` into a mask, with the exact per-pixel depth of the polygon's plane and a
  z-buffer; label, instance and colour are written from the same mask, so they never disagree;
* lighting (sun, ambient, cast shadows on the ground, street lamps at night), haze, exposure,
  noise and blur are applied to the photo only.

World frame: X right, Y forward (along the street), Z up, metres; the camera is at (0, 0, z).

Modules, in dependency order: ``scene`` (label ids, splits, cities, SceneOptions, Scene),
``helpers`` (noise, colours, rotations, palettes), ``camera``, ``builder`` (polygons and the
scene builder), ``textures``, ``raster`` (polygon rasterisation, shadows, the bonnet), ``ground``,
``objects`` (street furniture, signs, novel objects), ``people``, ``vehicles`` (and lanes),
``buildings``, ``street`` and ``layouts`` (tunnel, off-road, the table of layouts), ``photo``
(light, sky, the camera's image), ``render`` (render_scene, disparity_png) and ``dataset``
(generate).
"""

from cityseg.synthcity.dataset import generate
from cityseg.synthcity.render import disparity_png, render_scene
from cityseg.synthcity.scene import (BICYCLE, BRIDGE, BUILDING, BUS, CAMERAS, CAR, CARAVAN, CITIES, DYNAMIC, EGO,
                                     ENVIRONMENTS, FENCE, GROUND, GUARD_RAIL, MOTORCYCLE, PARKING, PERSON, POLE, RAIL,
                                     RIDER, ROAD, SIDEWALK, SKY, SPLITS, STATIC, TERRAIN, TLIGHT, TRAILER, TRAIN,
                                     TRUCK, TSIGN, TUNNEL, VEGETATION, WALL, Scene, SceneOptions)

__all__ = [
    "generate", "render_scene", "disparity_png", "Scene", "SceneOptions", "SPLITS", "CITIES", "ENVIRONMENTS",
    "CAMERAS", "EGO", "STATIC", "DYNAMIC", "GROUND", "ROAD", "SIDEWALK", "PARKING", "RAIL", "BUILDING", "WALL",
    "FENCE", "GUARD_RAIL", "BRIDGE", "TUNNEL", "POLE", "TLIGHT", "TSIGN", "VEGETATION", "TERRAIN", "SKY", "PERSON",
    "RIDER", "CAR", "TRUCK", "BUS", "CARAVAN", "TRAILER", "TRAIN", "MOTORCYCLE", "BICYCLE",
]
