"""Roto assistance on the Blender side: a Mask's keyframes (shape keys, keyed layers) become
the keyframe folder the engine propagates from, written so that unchanged keyframes keep
their bytes; masks are rasterised frame by frame inside the running job, and Esc stops it.

Against the protocol stand-in (tests/blender_instmatt/fake_engine.py), which mattes every
frame with the nearest keyframe's masks when asked to propagate.
"""

from __future__ import annotations

import glob
import os
import tempfile
import types

import numpy as np
import pytest
from blender_helpers import (
    Event,
    box_mask,
    load_plate,
    make_plate_sequence,
    mask_editor,
    operator_driver,
    read_exr_channels,
    tick_until,
)


def move_corner(layer, dx):
    point = layer.splines[0].points[0]
    point.co = (point.co[0] + dx, point.co[1])
    point.handle_left = point.handle_right = tuple(point.co)


@pytest.fixture
def keyed(bpy, addon, scene, tmp_path):
    """Frames 1-6 of a plate; Anna's layer has shape keys on frames 2 and 5 (her corner
    moves), Ben's Hide in Render is keyed off on 2 and on at 5 (he leaves). The scene and
    the active object have keys of their own on 3 and 4, which are not the Mask's."""
    scene.frame_end = 6
    plate = load_plate(bpy, make_plate_sequence(str(tmp_path / "plate"), frames=range(1, 7)))
    mask = box_mask(bpy, labels=["Anna", "Ben"])
    anna, ben = mask.layers
    scene.frame_set(2)
    mask_editor(bpy, mask, anna, 2)
    scene.frame_set(5)
    move_corner(anna, -0.05)
    mask_editor(bpy, mask, anna, 5)
    ben.hide_render = False
    ben.keyframe_insert("hide_render", frame=2)
    ben.hide_render = True
    ben.keyframe_insert("hide_render", frame=5)
    empty = bpy.data.objects.new("Animated", None)
    scene.collection.objects.link(empty)
    bpy.context.view_layer.objects.active = empty
    empty.keyframe_insert("location", frame=3)
    scene["roto_test"] = 1.0
    scene.keyframe_insert('["roto_test"]', frame=4)
    scene.frame_set(1)
    keys = os.path.join(scene.instmatt.output_dir, "plate", "keyframes")
    return types.SimpleNamespace(plate=plate, mask=mask, anna=anna, ben=ben, keys=keys)


def _tree(folder):
    return {frame: sorted(os.listdir(os.path.join(folder, frame))) for frame in sorted(os.listdir(folder))}


def _bytes_and_times(folder):
    return {path: (open(path, "rb").read(), os.path.getmtime(path))
            for path in sorted(glob.glob(os.path.join(folder, "*", "*.png")))}


def test_shape_keys_and_keyed_layers_are_the_keyframes(bpy, addon, keyed):
    keyed.mask.layers.active = keyed.ben
    actions = len(bpy.data.actions)
    layers = addon.masks.person_layers(keyed.mask)
    assert [layer.name for layer in layers] == ["Anna", "Ben"]  # a keyed Hide in Render is still a person
    assert addon.mask_keys.shape_key_frames(keyed.mask, layers) == {"Anna": {2, 5}, "Ben": set()}
    assert addon.mask_keys.keyframes(keyed.mask, layers) == {2, 5}  # not the scene's 4, not the object's 3
    assert keyed.mask.layers.active == keyed.ben  # the artist's active layer is kept
    assert len(bpy.data.scenes) == 1 and len(bpy.data.actions) == actions  # the throw-away scene is gone
    assert not addon.mask_keys.keyframes(box_mask(bpy, "Still"), addon.masks.person_layers(box_mask(bpy, "S2")))


def test_matte_people_propagates_from_the_keyframe_folders(bpy, addon, fake_engine, scene, keyed):
    assert bpy.ops.instmatt.matte_people(image=keyed.plate.name, mask=keyed.mask.name) == {"FINISHED"}
    assert scene.frame_current == 1
    # two keyframe folders; Ben has left at 5, so only Anna has a file there
    assert _tree(keyed.keys) == {"0002": ["01.png", "02.png"], "0005": ["01.png"]}
    raster = addon.client.raster
    anna = [np.frombuffer(bytes(raster.read_png_gray(os.path.join(keyed.keys, f, "01.png"))[2]), np.uint8)
            for f in ("0002", "0005")]
    assert np.count_nonzero(anna[1]) > np.count_nonzero(anna[0])  # her corner moved out at 5
    # the stand-in mattes each frame from the nearest keyframe: Ben is gone from frame 4 on
    exrs = sorted(glob.glob(os.path.join(scene.instmatt.output_dir, "plate", "instmatt.*.exr")))
    people = [sorted(read_exr_channels(path)) for path in exrs]
    assert people == [["person_01.A", "person_02.A"]] * 3 + [["person_01.A"]] * 3
    assert "Ben" in scene.instmatt.last_labels


def test_unchanged_keyframes_keep_their_bytes_and_an_edit_rewrites_one(bpy, addon, fake_engine, scene, keyed):
    run = {"image": keyed.plate.name, "mask": keyed.mask.name}
    assert bpy.ops.instmatt.matte_people(**run) == {"FINISHED"}
    for path in glob.glob(os.path.join(keyed.keys, "*", "*.png")):
        os.utime(path, (1000, 1000))  # so that a rewrite would show
    before = _bytes_and_times(keyed.keys)
    assert bpy.ops.instmatt.matte_people(**run) == {"FINISHED"}
    assert _bytes_and_times(keyed.keys) == before  # same shapes: the same files, not even rewritten
    # the artist edits keyframe 5 (Anna's corner) and removes Ben's key there
    scene.frame_set(5)
    move_corner(keyed.anna, -0.05)
    mask_editor(bpy, keyed.mask, keyed.anna, 5)
    assert bpy.ops.instmatt.matte_people(**run) == {"FINISHED"}
    after = _bytes_and_times(keyed.keys)
    changed = sorted(os.path.relpath(p, keyed.keys) for p in after if after[p] != before.get(p))
    assert changed == [os.path.join("0005", "01.png")]
    # a keyframe that is no more leaves no folder behind (the engine would propagate from it)
    keyed.ben.keyframe_delete("hide_render", frame=5)
    keyed.ben.keyframe_delete("hide_render", frame=2)
    keyed.ben.hide_render = False  # Ben stays for good (from Python: the evaluated Mask does not see it)
    scene.frame_set(5)
    mask_editor(bpy, keyed.mask, keyed.anna, 5, "shape_key_clear")
    assert bpy.ops.instmatt.matte_people(**run) == {"FINISHED"}
    assert _tree(keyed.keys) == {"0002": ["01.png", "02.png"]}
    # a layer deleted: its file goes too (the engine would still see that person)
    keyed.mask.layers.remove(keyed.ben)
    assert bpy.ops.instmatt.matte_people(**run) == {"FINISHED"}
    assert _tree(keyed.keys) == {"0002": ["01.png"]}


def test_rasterising_runs_one_frame_per_tick_and_esc_stops_it(bpy, addon, fake_engine, scene, keyed, monkeypatch):
    monkeypatch.setattr(addon.run, "RASTER_STEP_S", 0.0)  # one frame per tick, however fast
    temp = os.path.join(tempfile.gettempdir(), "instmatt_masks_*")
    before = set(glob.glob(temp))
    op = operator_driver(addon, image=keyed.plate.name, mask=keyed.mask.name, propagate=False)
    op._run = op._begin(bpy.context)
    run = op._run
    assert run.job is None and run.raster.total == 6  # nothing sent to the engine yet
    folder = run.request["guidance"]["path"]
    assert "propagate" not in run.request["options"]
    for done in (1, 2):
        assert op.modal(bpy.context, Event("TIMER")) == {"PASS_THROUGH"}
        assert run.raster.done == done and len(os.listdir(folder)) == done
        assert scene.instmatt.status.startswith(f"InstMatt: rasterising masks {done}/6")
        assert scene.instmatt.status.endswith("(Esc to cancel)")
    assert op.modal(bpy.context, Event("ESC", "PRESS")) == {"CANCELLED"}
    assert ("WARNING", "InstMatt: cancelled while rasterising masks (2/6); nothing was matted") in op.reports
    assert run.job is None and not os.path.exists(folder)  # the temporary masks are gone
    assert scene.frame_current == 1 and addon.run.active_run() is None
    assert glob.glob(os.path.join(scene.instmatt.output_dir, "plate", "*.exr")) == []
    assert set(glob.glob(temp)) == before


def test_rasterising_then_the_engine_job_in_one_progress_bar(bpy, addon, fake_engine, scene, keyed, monkeypatch):
    monkeypatch.setattr(addon.run, "RASTER_STEP_S", 0.0)
    op = operator_driver(addon, image=keyed.plate.name, mask=keyed.mask.name)  # the panel's default: propagate
    op._run = op._begin(bpy.context)
    assert op._run.raster.total == 2 and op._run.request["options"]["propagate"] is True
    seen = []

    def finished(result):
        seen.append(scene.instmatt.status)
        return result != {"PASS_THROUGH"}

    assert tick_until(bpy, op, finished) == {"FINISHED"}
    assert seen[0].startswith("InstMatt: rasterising keyframe masks 1/2")
    assert any("frames" in s and "(6 frames from keyframes [2, 5])" in s for s in seen), seen
    people = "2 people: person_01 (Anna), person_02 (Ben)"
    assert ("INFO", f"InstMatt: 6 frames matted, {people}; propagated from Mask 'People' keyframes 2, 5") in op.reports


def test_detector_carry_asks_the_engine_for_detector_keyframes(bpy, addon, fake_engine, scene, keyed):
    op = operator_driver(addon, image=keyed.plate.name, guidance="DETECTOR")
    op._run = op._begin(bpy.context)
    assert op._run.request["guidance"] == {"kind": "detector"}
    assert "propagate" not in op._run.request["options"]  # the panel's default: the detector on every frame
    assert tick_until(bpy, op, lambda result: result != {"PASS_THROUGH"}) == {"FINISHED"}
    scene.instmatt.carry_detections, scene.instmatt.detect_every = True, 5
    op = operator_driver(addon, image=keyed.plate.name, guidance="DETECTOR", overwrite=True)
    op._run = op._begin(bpy.context)
    assert op._run.request["options"]["propagate"] is True and op._run.request["options"]["detect_every"] == 5
    assert tick_until(bpy, op, lambda result: result != {"PASS_THROUGH"}) == {"FINISHED"}
    op = operator_driver(addon, image=keyed.plate.name, guidance="DETECTOR", detect_every=0, overwrite=True)
    op._run = op._begin(bpy.context)
    assert op._run.request["options"]["detect_every"] == 0  # the caller's, over the panel's
    assert tick_until(bpy, op, lambda result: result != {"PASS_THROUGH"}) == {"FINISHED"}
