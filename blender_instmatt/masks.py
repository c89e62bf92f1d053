"""Artist guidance: a Mask datablock, one mask layer per person, rasterised per frame.

Written in the layout of the engine's ``masks`` guidance (docs/protocol.md):
``DIR/<source frame, 4 digits>/<NN>.png``, NN = 01, 02, ... in the order of the mask's
layers (layers hidden from rendering are skipped), so person_01 is the first layer.
Every frame gets one file per person, empty where the layer has no shape, so person
numbers never shift.
"""

from __future__ import annotations

import os
import re

import bpy

from .client import raster

_DEFAULT_LAYER_NAME = re.compile(r"^MaskLayer(\.\d+)?$")


def person_layers(mask) -> list:
    return [layer for layer in mask.layers if not layer.hide_render]


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


def rasterise(mask, width: int, height: int, resolution: int = 16) -> list[bytearray]:
    """One 8-bit image (rows top-down, 0/255) per person layer of ``mask`` as it is now."""
    images = []
    for layer in person_layers(mask):
        polygons = _layer_polygons(layer, width, height, resolution)
        image = raster.fill(polygons, width, height, even_odd=layer.use_fill_holes)
        if layer.invert:
            image = raster.invert(image)
        images.append(image)
    return images


def _signature(mask) -> tuple:
    """The shape of every person layer as it is now (to reuse identical frames)."""
    return tuple(
        (layer.invert, layer.use_fill_holes,
         tuple((spline.use_cyclic, spline.use_fill,
                tuple(tuple(p.co) + tuple(p.handle_left) + tuple(p.handle_right)
                      + (p.handle_left_type, p.handle_right_type) for p in spline.points))
               for spline in layer.splines))
        for layer in person_layers(mask)
    )


def _evaluated(mask, context):
    try:
        return mask.evaluated_get(context.evaluated_depsgraph_get())
    except (RuntimeError, ReferenceError, AttributeError):
        return mask


def write_guidance(context, mask, frames: list[tuple[int, int]], size: tuple[int, int], folder: str,
                   progress=None) -> int:
    """Rasterise ``mask`` for every ``(scene_frame, source_frame)`` into ``folder``
    (``folder/<source frame, 4 digits>/<NN>.png``; ``folder/<NN>.png`` when the source
    frame is None, for a still image).

    The mask is evaluated at each scene frame (keyframes, shape keys); frames whose
    shapes did not change reuse the previous frame's files.  Returns the number of
    people (layers).  The scene's current frame is restored.
    """
    width, height = int(size[0]), int(size[1])
    if width <= 0 or height <= 0:
        raise ValueError("the source's size is unknown, so its masks cannot be rasterised")
    people = len(person_layers(mask))
    if people == 0:
        raise ValueError(f"Mask '{mask.name}' has no layers (one layer per person)")
    scene = context.scene
    previous = (scene.frame_current, scene.frame_subframe)
    moves = len(frames) > 1
    last_signature, cached = None, None
    try:
        for index, (scene_frame, source_frame) in enumerate(frames):
            if moves:
                scene.frame_set(scene_frame)
            evaluated = _evaluated(mask, context)
            signature = _signature(evaluated)
            if signature != last_signature:
                images = rasterise(evaluated, width, height)
                cached = [raster.png_bytes(image, width, height) for image in images]
                last_signature = signature
            # a still image takes its masks flat: DIR/<NN>.png
            target = folder if source_frame is None else os.path.join(folder, f"{source_frame:04d}")
            os.makedirs(target, exist_ok=True)
            for person, data in enumerate(cached, start=1):
                with open(os.path.join(target, f"{person:02d}.png"), "wb") as fh:
                    fh.write(data)
            if progress is not None:
                progress(index + 1, len(frames))
    finally:
        if moves:
            scene.frame_set(previous[0], subframe=previous[1])
    return people


def find_mask(name: str):
    if not name:
        return None
    mask = bpy.data.masks.get(name)
    if mask is None:
        raise KeyError(f"No mask named '{name}'")
    return mask
