"""A Mask's keyframes: the frames where the artist keyed a person layer.

A layer's keyframes are its shape keys (what *Insert Shape Key*, the I key in the Mask
editor, and auto-keying make; the Dope Sheet's Mask mode shows them) plus the keyframes of
F-curves on the layer (its points, ``hide_render``, ``invert``, ...) in the Mask's action.
Blender's Python API has no access to mask shape keys, so they are read the way the
*Jump to Keyframe* operator sees them: with the Mask as the context's ``edit_mask`` in a
throw-away scene (so the scene's and the active object's keys do not count).
"""

from __future__ import annotations

import bpy

_FIRST_FRAME = -1048574  # Blender's lowest frame number
_END_KEY = 1048000  # beyond any frame worth keying (Blender's last is 1048574)


class NoShapeKeyAccess(Exception):
    """Shape keys cannot be read here (no window: the operator needs a screen)."""


def fcurves(id_block) -> list:
    """The F-curves of ``id_block``'s action (4.x actions and 5.x layered actions)."""
    anim = id_block.animation_data
    action = anim.action if anim is not None else None
    if action is None:
        return []
    slot = getattr(anim, "action_slot", None)
    if hasattr(action, "layers") and slot is not None:
        curves = []
        for layer in action.layers:
            for strip in layer.strips:
                bag = strip.channelbag(slot)
                if bag is not None:
                    curves.extend(bag.fcurves)
        return curves
    return list(getattr(action, "fcurves", ()))


def animated(layer, prop: str) -> bool:
    """Whether ``layer.<prop>`` has an F-curve (e.g. a keyed ``hide_render``)."""
    path = f"{layer.path_from_id()}.{prop}"
    return any(curve.data_path == path for curve in fcurves(layer.id_data))


def fcurve_frames(layer) -> set[int]:
    """Frames of the keyframes on F-curves of ``layer`` (its points and its properties)."""
    prefix = layer.path_from_id()  # 'layers["Anna"]': the closing '"]' keeps "Anna 2" apart
    return {round(point.co[0]) for curve in fcurves(layer.id_data) if curve.data_path.startswith(prefix)
            for point in curve.keyframe_points}


def _jump_context(mask, scene) -> dict:
    override = {"edit_mask": mask, "scene": scene, "view_layer": scene.view_layers[0], "active_object": None}
    if bpy.context.screen is None:  # e.g. a timer or a background job: borrow the first window
        windows = bpy.context.window_manager.windows if bpy.context.window_manager else ()
        if not windows:
            raise NoShapeKeyAccess("no window to read the Mask's shape keys with")
        override.update(window=windows[0], screen=windows[0].screen)
    return override


def _next_key(scene) -> int:
    bpy.ops.screen.keyframe_jump("EXEC_DEFAULT", False, next=True)  # False: no undo step
    return scene.frame_current


def shape_key_frames(mask, layers) -> dict[str, set[int]]:
    """{layer name: frames of its shape keys} for ``layers`` of ``mask``."""
    scratch = bpy.data.scenes.new("InstMatt keyframes")
    # A key of the scratch scene after every frame a Mask can key: each jump then lands on
    # a key (no "No more keyframes" report), and reaching it means the layer is done.
    scratch["instmatt_end"] = 0.0
    scratch.keyframe_insert('["instmatt_end"]', frame=_END_KEY)
    action = scratch.animation_data.action
    active = mask.layers.active
    out: dict[str, set[int]] = {}
    try:
        with bpy.context.temp_override(**_jump_context(mask, scratch)):
            for layer in layers:
                mask.layers.active = layer
                scratch.frame_current = last = _FIRST_FRAME
                frames: set[int] = set()
                while last < (frame := _next_key(scratch)) < _END_KEY:  # a jump that fails stays put
                    frames.add(frame)
                    last = frame
                out[layer.name] = frames
    except RuntimeError as exc:  # the operator's poll failed: no screen in this context
        raise NoShapeKeyAccess(str(exc)) from None
    finally:
        if active is not None:
            mask.layers.active = active
        bpy.data.scenes.remove(scratch)
        bpy.data.actions.remove(action)
    return out


def keyframes(mask, layers) -> set[int]:
    """The Mask's keyframes (scene frames): every frame where one of ``layers`` is keyed,
    by a shape key or an F-curve keyframe."""
    frames: set[int] = set()
    for layer in layers:
        frames |= fcurve_frames(layer)
    for keyed in shape_key_frames(mask, layers).values():
        frames |= keyed
    return frames
