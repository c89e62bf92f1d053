"""Mask guidance: our pure-Python rasteriser against Blender's own Mask node."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from blender_helpers import PEOPLE_BOXES, H, W, box_mask, render_outputs


def _blender_mask_render(bpy, addon, scene, mask, width, height, out_dir):
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.frame_start = scene.frame_end = 1
    tree, _ = addon.compositor.scene_tree(scene)
    result = {}
    for index, layer in enumerate(addon.masks.person_layers(mask)):
        # render one layer at a time: hide the others
        for other in mask.layers:
            other.hide_render = other != layer
        node = tree.nodes.new("CompositorNodeMask")
        node.mask = mask
        feather = node.inputs.get("Feather")
        if feather is not None:
            feather.default_value = False
        elif hasattr(node, "use_feather"):
            node.use_feather = False
        rendered = render_outputs(bpy, scene, tree, {"m": node.outputs[0]}, os.path.join(out_dir, str(index)))
        result[index] = rendered[1]["m"]
        tree.nodes.remove(node)
    for other in mask.layers:
        other.hide_render = False
    return result


def _edge_band(mask: np.ndarray) -> np.ndarray:
    """Pixels with a 4-neighbour of the other value."""
    padded = np.pad(mask, 1, mode="edge")
    band = np.zeros_like(mask)
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        band |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]] != mask
    return band


def _circle_mask(bpy, name, cx, cy, r, handle_type="FREE", count=4):
    """A Bezier circle in mask space: FREE handles of length 0.5523 r (4 points), or
    handles that Blender computes (AUTO, VECTOR)."""
    mask = bpy.data.masks.new(name)
    layer = mask.layers.new(name="round")
    spline = layer.splines.new()
    spline.points.add(count - 1)
    k = 0.5523 * r
    for i, point in enumerate(spline.points):
        a = 2 * math.pi * i / count
        x, y = cx + r * math.cos(a), cy + r * math.sin(a)
        tx, ty = -math.sin(a) * k, math.cos(a) * k  # tangent (counter-clockwise)
        point.handle_left_type = point.handle_right_type = handle_type
        point.co = (x, y)
        if handle_type == "FREE":
            point.handle_left = (x - tx, y - ty)
            point.handle_right = (x + tx, y + ty)
    spline.use_cyclic = True
    spline.use_fill = True
    return mask


@pytest.mark.parametrize("size", [(W, H), (48, 64), (40, 40)])
def test_rasteriser_matches_blenders_mask_node(bpy, addon, scene, tmp_path, size):
    width, height = size
    mask = box_mask(bpy)
    circle = _circle_mask(bpy, "Circle", 0.55, 0.5, 0.22)
    auto = _circle_mask(bpy, "Auto", 0.45, 0.55, 0.25, handle_type="AUTO", count=5)
    vector = _circle_mask(bpy, "Vector", 0.5, 0.45, 0.3, handle_type="VECTOR", count=6)
    for m in (mask, circle, auto, vector):
        ours = addon.masks.rasterise(m, width, height)
        theirs = _blender_mask_render(bpy, addon, scene, m, width, height, str(tmp_path / m.name))
        assert len(ours) == len(theirs)
        for index, image in enumerate(ours):
            a = np.frombuffer(bytes(image), np.uint8).reshape(height, width) > 127
            # Blender anti-aliases with a fringe outside the shape (< 0.75); the solid
            # inside must be ours, up to a few pixels along curved edges
            b = theirs[index] > 0.75
            assert b.any()
            disagree = a != b
            if m == mask and size == (W, H):  # edges on pixel boundaries: exact
                assert not disagree.any()
            # elsewhere only pixels within a pixel of an edge may differ (AA and tie-breaking)
            band = _edge_band(a) | _edge_band(b)
            band = band | _edge_band(band)
            where = np.argwhere(disagree & ~band)
            assert not len(where), f"{m.name} layer {index}: pixels off the edge differ: {where[:5].tolist()}"
            assert np.count_nonzero(disagree) <= 0.04 * a.size
    if size == (W, H):  # the box mask lands exactly on the plate's people
        ours = addon.masks.rasterise(mask, W, H)
        for index, (pid, (r0, r1, c0, c1)) in enumerate(PEOPLE_BOXES.items()):
            expected = np.zeros((H, W), bool)
            expected[r0:r1, c0:c1] = True
            np.testing.assert_array_equal(np.frombuffer(bytes(ours[index]), np.uint8).reshape(H, W) > 0, expected)


def test_guidance_layout_and_animation(bpy, addon, scene, tmp_path):
    mask = box_mask(bpy, labels=["person 1", "person 2"])
    # animate the first corner of person 1 (an F-curve on the mask)
    point_path = 'layers["person 1"].splines[0].points[0].co'
    mask.animation_data_create()
    action = bpy.data.actions.new("MaskMove")
    mask.animation_data.action = action
    if hasattr(action, "fcurves") and not hasattr(action, "slots"):  # 4.x
        fcurve = action.fcurves.new(point_path, index=0)
    else:  # 5.x layered actions
        slot = action.slots.new(id_type="MASK", name=mask.name)
        mask.animation_data.action_slot = slot
        strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
        fcurve = strip.channelbag(slot, ensure=True).fcurves.new(point_path, index=0)
    x0 = mask.layers[0].splines[0].points[0].co[0]
    fcurve.keyframe_points.insert(1, x0)
    fcurve.keyframe_points.insert(3, x0 - 0.05)
    scene.frame_set(2)
    folder = str(tmp_path / "masks")
    people = addon.masks.write_guidance(bpy.context, mask, [(1, 1001), (2, 1002), (3, 1003)], (W, H), folder)
    assert people == 2
    assert scene.frame_current == 2  # restored
    assert sorted(os.listdir(folder)) == ["1001", "1002", "1003"]
    images = {}
    for frame in (1001, 1002, 1003):
        assert sorted(os.listdir(os.path.join(folder, str(frame)))) == ["01.png", "02.png"]
        for person in (1, 2):
            w, h, data = addon.client.raster.read_png_gray(os.path.join(folder, str(frame), f"{person:02d}.png"))
            assert (w, h) == (W, H)
            images[frame, person] = np.frombuffer(bytes(data), np.uint8).reshape(H, W)
    sums = [int(images[f, 1].sum()) // 255 for f in (1001, 1002, 1003)]
    assert sums[0] < sums[1] < sums[2], sums  # the corner moves out
    np.testing.assert_array_equal(images[1001, 2], images[1003, 2])  # person 2 is still


def test_hidden_layers_are_not_people_and_holes_cut(bpy, addon):
    mask = box_mask(bpy)
    mask.layers[1].hide_render = True
    assert len(addon.masks.rasterise(mask, W, H)) == 1
    # an inner spline cuts a hole when the layer fills holes
    layer = mask.layers[0]
    inner = layer.splines.new()
    inner.points.add(3)
    for point, (x, y) in zip(inner.points, [(0.15, 0.45), (0.25, 0.45), (0.25, 0.55), (0.15, 0.55)]):
        point.co = (x, y)
        point.handle_left_type = point.handle_right_type = "VECTOR"
        point.handle_left = point.handle_right = (x, y)
    inner.use_cyclic = inner.use_fill = True
    layer.use_fill_holes = True
    holed = np.frombuffer(bytes(addon.masks.rasterise(mask, W, H)[0]), np.uint8).reshape(H, W)
    layer.use_fill_holes = False
    filled = np.frombuffer(bytes(addon.masks.rasterise(mask, W, H)[0]), np.uint8).reshape(H, W)
    assert holed[H // 2, int(0.2 * W)] == 0 and filled[H // 2, int(0.2 * W)] == 255
