"""The artist's names and choices: Mask layer names become the people's labels (manifest,
panel, node group), "Automatic" guidance is a Mask with layers else the detector, and shot
folders are named after the shot."""

from __future__ import annotations

import glob
import json
import os

from blender_helpers import box_mask, load_plate, read_manifest


def _group_descriptions(bpy, in_out):
    group = bpy.data.node_groups["InstMatt People"]
    return {item.name: item.description for item in group.interface.items_tree
            if getattr(item, "item_type", "SOCKET") == "SOCKET" and item.in_out == in_out}


def _files(scene):
    return sorted(glob.glob(os.path.join(scene.instmatt.output_dir, "*", "instmatt.*.exr")))


def test_mask_layer_names_become_labels(bpy, addon, fake_engine, scene, plate_sequence):
    plate = load_plate(bpy, plate_sequence)
    mask = box_mask(bpy, labels=["Anna", "MaskLayer.001"])  # Blender's own name: no label
    assert bpy.ops.instmatt.matte_people(image=plate.name, mask=mask.name) == {"FINISHED"}
    assert read_manifest(_files(scene)[0])["labels"] == {"person_01": "Anna"}

    mask.layers[1].name = "Stunt double"
    assert bpy.ops.instmatt.matte_people(image=plate.name, mask=mask.name, overwrite=True) == {"FINISHED"}
    files = _files(scene)
    # the shot folder is the sequence's name, without frame number or extension
    assert {os.path.basename(os.path.dirname(f)) for f in files} == {"plate"}
    assert read_manifest(files[0])["labels"] == {"person_01": "Anna", "person_02": "Stunt double"}
    settings = scene.instmatt
    assert settings.last_people == "person_01, person_02"  # IDs stay the names
    assert json.loads(settings.last_labels) == {"person_01": "Anna", "person_02": "Stunt double"}
    outputs = _group_descriptions(bpy, "OUTPUT")
    assert "Anna" in outputs["person_01"] and "Stunt double" in outputs["person_02"]
    assert "Anna" in _group_descriptions(bpy, "INPUT")["person_01"]
    assert "person_01 (Anna)" in settings.status


def test_automatic_guidance_is_a_mask_with_layers_else_the_detector(bpy, addon, fake_engine, scene,
                                                                     plate_sequence):
    settings = scene.instmatt
    assert settings.guidance == "AUTO"
    kind, mask, why = addon.masks.auto_guidance(settings)
    assert (kind, mask) == ("DETECTOR", None) and "no Mask with layers" in why
    bpy.data.masks.new("Empty")  # a Mask without layers does not count
    assert addon.masks.auto_guidance(settings)[0] == "DETECTOR"
    plate = load_plate(bpy, plate_sequence)
    # the stand-in engine's detector finds nobody; masks give the two boxes
    assert bpy.ops.instmatt.matte_people(image=plate.name) == {"FINISHED"}
    assert settings.last_people == ""
    roto = box_mask(bpy, "Roto")
    kind, mask, why = addon.masks.auto_guidance(settings)
    assert (kind, mask) == ("MASK", roto) and why == "Mask 'Roto': 2 layers, one per person"
    assert bpy.ops.instmatt.matte_people(image=plate.name, overwrite=True) == {"FINISHED"}
    assert settings.last_people == "person_01, person_02"
    box_mask(bpy, "Another")
    assert "pick one in the panel" in addon.masks.auto_guidance(settings)[2]
    settings.mask = roto
    assert addon.masks.auto_guidance(settings)[1] == roto and "pick" not in addon.masks.auto_guidance(settings)[2]
    settings.guidance = "DETECTOR"  # the artist's choice wins
    assert bpy.ops.instmatt.matte_people(image=plate.name, overwrite=True) == {"FINISHED"}
    assert settings.last_people == ""


def test_a_still_gets_a_folder_of_its_own_name(bpy, addon, fake_engine, scene, tmp_path):
    import numpy as np

    image = bpy.data.images.new("hold_02.png", 64, 48)
    image.pixels = np.zeros(64 * 48 * 4, np.float32)
    image.filepath_raw = str(tmp_path / "hold_02.png")
    image.file_format = "PNG"
    image.save()
    assert bpy.ops.instmatt.matte_people(image=image.name, guidance="DETECTOR") == {"FINISHED"}
    folders = {os.path.basename(os.path.dirname(f)) for f in _files(scene)}
    assert folders == {"hold_02"}


def test_output_options_from_the_panel(bpy, addon, fake_engine, scene, plate_sequence):
    engine_settings = addon.client.defaults  # the engine's, kept equal by tests/engine/test_settings.py
    settings = scene.instmatt
    assert (settings.compression, settings.depth) == (engine_settings.COMPRESSION, engine_settings.DEPTH)
    assert (settings.union_pass, settings.background_pass) == (engine_settings.UNION_PASS,
                                                               engine_settings.BACKGROUND_PASS)
    items = {prop: [item.identifier for item in type(settings).bl_rna.properties[prop].enum_items]
             for prop in ("compression", "depth")}
    assert tuple(items["compression"]) == engine_settings.COMPRESSIONS
    assert tuple(items["depth"]) == engine_settings.DEPTHS
    settings.compression, settings.depth, settings.background_pass = "dwaa", "float", False
    plate = load_plate(bpy, plate_sequence)
    mask = box_mask(bpy)
    assert bpy.ops.instmatt.matte_people(image=plate.name, mask=mask.name) == {"FINISHED"}
    options = read_manifest(_files(scene)[0])["settings"]  # the stand-in engine records the options it got
    assert (options["compression"], options["depth"], options["union_pass"], options["background_pass"]) == \
        ("dwaa", "float", True, False)
