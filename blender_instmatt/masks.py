"""Artist guidance: a Mask datablock, one mask layer per person, rasterised per frame.

Written in the layout of the engine's ``masks`` guidance (docs/protocol.md):
``DIR/<source frame, 4 digits>/<NN>.png``, NN = 01, 02, ... in the order of the mask's
layers (layers hidden from rendering are skipped), so person_01 is the first layer.
Every frame gets one file per person, empty where the layer has no shape, so person
numbers never shift.  A keyframe folder (propagation) holds the keyframes only, and a
file only for the people present there.  The running job rasterises frame by frame
(:class:`GuidanceWriter` stepped by ``client.roto.Rasterising``).
"""

from __future__ import annotations

import os
import re

import bpy

from . import mask_keys
from .client import raster, roto

_DEFAULT_LAYER_NAME = re.compile(r"^MaskLayer(\.\d+)?$")
_PERSON_FILE = re.compile(r"^\d+\.png$")


def person_layers(mask) -> list:
    """The layers that are people: not hidden from render, or with a keyed *Hide in Render*
    (a person who enters or leaves), so person numbers never shift from frame to frame."""
    return [layer for layer in mask.layers if not layer.hide_render or mask_keys.animated(layer, "hide_render")]


def layer_labels(mask) -> dict[str, str]:
    """The artist's names of the people: {"person_01": "Anna", ...} from the layer names
    (Blender's own "MaskLayer", "MaskLayer.001" are no names)."""
    return {f"person_{number:02d}": layer.name.strip()
            for number, layer in enumerate(person_layers(mask), start=1)
            if layer.name.strip() and not _DEFAULT_LAYER_NAME.match(layer.name.strip())}


def auto_guidance(settings) -> tuple[str, object, str]:
    """What "Automatic" guidance means now: ``(kind, mask or None, why)``.

    A Mask with person layers (the panel's, else the first in the file) guides; without one,
    the detector finds the people.
    """
    chosen = getattr(settings, "mask", None) if settings is not None else None
    candidates = [chosen] if chosen is not None and person_layers(chosen) else []
    candidates += sorted((m for m in bpy.data.masks if m is not chosen and person_layers(m)), key=lambda m: m.name)
    if not candidates:
        return "DETECTOR", None, "the detector: no Mask with layers in this file"
    mask = candidates[0]
    count = len(person_layers(mask))
    why = f"Mask '{mask.name}': {count} layer{'s' * (count != 1)}, one per person"
    if len(candidates) > 1 and mask is not chosen:
        why += f" (of {len(candidates)} Masks; pick one in the panel)"
    return "MASK", mask, why


def _layer_polygons(layer, width: int, height: int, resolution: int) -> list:
    polygons = []
    for spline in layer.splines:
        if not spline.use_cyclic or not spline.use_fill or len(spline.points) < 2:
            continue
        points = raster.resolve_handles(
            [(tuple(p.co), tuple(p.handle_left), tuple(p.handle_right), p.handle_left_type, p.handle_right_type)
             for p in spline.points], cyclic=True)
        polygon = raster.spline_polygon(points, cyclic=True, resolution=resolution)
        polygons.append(raster.mask_to_pixels(polygon, width, height))
    return polygons


def _layer_image(layer, width: int, height: int, resolution: int = 16) -> bytearray:
    image = raster.fill(_layer_polygons(layer, width, height, resolution), width, height,
                        even_odd=layer.use_fill_holes)
    return raster.invert(image) if layer.invert else image


def rasterise(mask, width: int, height: int, resolution: int = 16) -> list[bytearray]:
    """One 8-bit image (rows top-down, 0/255) per person layer of ``mask`` as it is now."""
    return [_layer_image(layer, width, height, resolution) for layer in person_layers(mask)]


def _signature(pairs: list) -> tuple:
    """The shape of every person layer as it is now, from ``(layer, hidden)`` pairs (to
    reuse identical frames)."""
    return tuple(
        (hide, layer.invert, layer.use_fill_holes,
         tuple((spline.use_cyclic, spline.use_fill,
                tuple(tuple(p.co) + tuple(p.handle_left) + tuple(p.handle_right)
                      + (p.handle_left_type, p.handle_right_type) for p in spline.points))
               for spline in layer.splines))
        for layer, hide in pairs
    )


def _evaluated(mask, context):
    try:
        return mask.evaluated_get(context.evaluated_depsgraph_get())
    except (RuntimeError, ReferenceError, AttributeError):
        return mask


class GuidanceWriter:
    """Rasterises ``mask`` one frame at a time into ``folder``: ``folder/<source frame,
    4 digits>/<NN>.png`` (``folder/<NN>.png`` when the source frame is None, a still).

    The mask is evaluated at each scene frame (shape keys, F-curves); a frame whose shapes
    did not change reuses the previous frame's bytes.  Every frame gets one file per
    person, empty where the layer has no shape or is hidden from render there; with
    ``keyframes`` (a keyframe folder) only the people present get a file, since a missing
    file is how a person leaves, and unchanged files are left as they are (same shape,
    same bytes).  :meth:`close` puts the scene's frame back.
    """

    def __init__(self, context, mask, size: tuple[int, int], folder: str, keyframes: bool = False,
                 moves: bool = True):
        self.width, self.height = int(size[0]), int(size[1])
        if self.width <= 0 or self.height <= 0:
            raise ValueError("the source's size is unknown, so its masks cannot be rasterised")
        self.people = len(person_layers(mask))
        if self.people == 0:
            raise ValueError(f"Mask '{mask.name}' has no layers (one layer per person)")
        self.context, self.mask, self.folder = context, mask, folder
        self.keyframes, self.moves = keyframes, moves
        self.scene = context.scene
        self._previous = (self.scene.frame_current, self.scene.frame_subframe)
        self._signature = None
        self._files: dict[str, bytes] = {}  # file name -> PNG bytes of the current shapes

    def write(self, scene_frame: int, source_frame: int | None) -> None:
        if self.moves:
            self.scene.frame_set(scene_frame)
        # Shapes from the evaluated Mask (shape keys, F-curves); who is a person and who is
        # hidden from the original, whose Hide in Render the animation also sets, and which
        # a change from Python updates without re-evaluating the Mask.
        people = {layer.as_pointer() for layer in person_layers(self.mask)}
        pairs = [(shape, layer.hide_render) for layer, shape in zip(self.mask.layers,
                                                                    _evaluated(self.mask, self.context).layers)
                 if layer.as_pointer() in people]
        signature = _signature(pairs)
        if signature != self._signature:
            empty = bytearray(self.width * self.height)
            images = [None if hide else _layer_image(layer, self.width, self.height)
                      for layer, hide in pairs]
            self._files = {f"{person:02d}.png": raster.png_bytes(empty if image is None else image,
                                                                 self.width, self.height)
                           for person, image in enumerate(images, start=1)
                           if not (self.keyframes and (image is None or image.count(0) == len(image)))}
            self._signature = signature
        target = self.folder if source_frame is None else os.path.join(self.folder, f"{source_frame:04d}")
        os.makedirs(target, exist_ok=True)
        for name, data in self._files.items():
            roto.put_file(os.path.join(target, name), data)
        for name in os.listdir(target):  # people who left this keyframe (or whose layer is gone)
            if _PERSON_FILE.match(name) and name not in self._files:
                os.remove(os.path.join(target, name))

    def close(self) -> None:
        if self.moves:
            self.scene.frame_set(self._previous[0], subframe=self._previous[1])


def write_guidance(context, mask, frames: list[tuple[int, int | None]], size: tuple[int, int], folder: str,
                   keyframes: bool = False) -> int:
    """Rasterise ``mask`` for every ``(scene_frame, source_frame)`` into ``folder`` in one
    go (scripts; the operator steps the same writer from its timer); returns the number
    of people.  The scene's current frame is restored."""
    writer = GuidanceWriter(context, mask, size, folder, keyframes=keyframes, moves=len(frames) > 1)
    job = roto.Rasterising(frames, writer.write, writer.close)
    if job.run() == job.FAILED:
        raise ValueError(job.error)
    return writer.people


def find_mask(name: str):
    if not name:
        return None
    mask = bpy.data.masks.get(name)
    if mask is None:
        raise KeyError(f"No mask named '{name}'")
    return mask
