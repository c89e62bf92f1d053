"""Compositor wiring on EXR files in the layout of docs/protocol.md, rendered headless."""

from __future__ import annotations

import os

import numpy as np
import pytest
from blender_helpers import (
    NOBODY,
    PEOPLE_BOXES,
    H,
    W,
    load_plate,
    render_outputs,
    write_matte_exrs,
)


def _value(pid, frame):
    # person 1: 1.0, except 0.5 on frame 2; person 2: 0.25 * frame
    return (0.5 if frame == 2 else 1.0) if pid == 1 else 0.25 * frame


def _inside(pid):
    r0, r1, c0, c1 = PEOPLE_BOXES[pid]
    return (r0 + r1) // 2, (c0 + c1) // 2


@pytest.fixture
def wired(bpy, addon, scene, tmp_path, plate_sequence):
    pattern = write_matte_exrs(str(tmp_path / "mattes"), value=_value)
    plate = load_plate(bpy, plate_sequence)
    source = addon.sources.Source("SEQUENCE", "plate", str(plate_sequence).replace("0001", "####"), (W, H),
                                  offset=0, image=plate)
    paths = {f: pattern.replace("####", f"{f:04d}") for f in (1, 2, 3)}
    image = addon.compositor.load_mattes(paths, "InstMatt plate", single=False)
    nodes = addon.compositor.wire(scene, source, image, 1, 1, 3, ["person_01", "person_02"])
    return nodes


def test_tree_api_is_picked_by_feature(bpy, addon, scene):
    tree, created = addon.compositor.scene_tree(scene)
    if hasattr(scene, "compositing_node_group"):
        assert scene.compositing_node_group == tree and created
    else:
        assert scene.node_tree == tree and scene.use_nodes
    again, created = addon.compositor.scene_tree(scene)
    assert again == tree and not created


def test_image_node_has_one_socket_per_person(bpy, addon, wired):
    mattes = wired["mattes"]
    assert mattes.image.source == "SEQUENCE"
    assert addon.compositor.people_sockets(mattes) == ["person_01", "person_02"]
    assert (mattes.frame_start, mattes.frame_offset, mattes.frame_duration) == (1, 0, 3)
    group_node = wired["people"]
    assert group_node.node_tree.name == "InstMatt People"
    outputs = [s.name for s in group_node.outputs]
    assert outputs == ["person_01", "person_02", "All People"]
    inputs = [s.name for s in group_node.inputs]
    assert inputs[:2] == ["person_01", "person_02"]
    assert inputs[2:] == ["Grow", "Feather", "Clip Black", "Clip White"]  # 4.2 too
    for person in ("person_01", "person_02"):
        assert group_node.inputs[person].is_linked
        assert group_node.inputs[person].links[0].from_socket == mattes.outputs[person]


def test_render_gives_each_persons_alpha(bpy, addon, scene, wired, tmp_path):
    tree, group = wired["tree"], wired["people"]
    sockets = {name: group.outputs[name] for name in ("person_01", "person_02")}
    sockets["union"] = group.outputs["All People"]
    result = render_outputs(bpy, scene, tree, sockets, str(tmp_path / "render_out"))
    for frame in (1, 2, 3):
        out = result[frame]
        for pid in (1, 2):
            alpha = out[f"person_{pid:02d}"]
            assert alpha.shape == (H, W)
            r0, r1, c0, c1 = PEOPLE_BOXES[pid]
            expected = np.zeros((H, W), np.float32)
            expected[r0:r1, c0:c1] = _value(pid, frame)
            np.testing.assert_allclose(alpha, expected, atol=1e-3, err_msg=f"frame {frame} person {pid}")
        union = out["union"]
        assert union[_inside(1)] == pytest.approx(_value(1, frame), abs=1e-3)
        assert union[_inside(2)] == pytest.approx(_value(2, frame), abs=1e-3)
        assert union[NOBODY] == pytest.approx(0.0, abs=1e-6)


def test_matte_controls_need_no_rerun(bpy, addon, scene, wired, tmp_path):
    tree, group = wired["tree"], wired["people"]
    group.inputs["Grow"].default_value = 2
    group.inputs["Clip White"].default_value = 0.5
    result = render_outputs(bpy, scene, tree, {"p1": group.outputs["person_01"]}, str(tmp_path / "ctl"))
    alpha = result[2]["p1"]  # frame 2: person 1 has alpha 0.5, clipped to 1
    rows, cols = np.nonzero(alpha > 0.5)
    r0, r1, c0, c1 = PEOPLE_BOXES[1]
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (r0 - 2, r1 - 1 + 2, c0 - 2, c1 - 1 + 2)
    assert alpha[_inside(1)] == pytest.approx(1.0, abs=1e-3)
    group.inputs["Grow"].default_value = -3
    group.inputs["Clip White"].default_value = 1.0
    group.inputs["Feather"].default_value = 2.0
    result = render_outputs(bpy, scene, tree, {"p1": group.outputs["person_01"]}, str(tmp_path / "ctl2"))
    alpha = result[1]["p1"]
    rows, cols = np.nonzero(alpha > 0.5)
    assert rows.min() >= r0 + 2 and cols.max() <= c1 - 1 - 2  # shrunk
    assert 0.0 < alpha[r0 + 3, c0 + 3] < 1.0 or 0.0 < alpha[r0 + 2, (c0 + c1) // 2] < 1.0  # feathered edge


def test_example_puts_person_over_new_background(bpy, addon, scene, wired, tmp_path):
    tree = wired["tree"]
    over = wired["over"]
    # the example feeds the compositor's output
    if hasattr(scene, "compositing_node_group"):
        out = wired["output"]
        assert out.bl_idname == "NodeGroupOutput"
        assert out.inputs[0].is_linked and out.inputs[0].links[0].from_node == over
    result = render_outputs(bpy, scene, tree, {"over": over.outputs[0]}, str(tmp_path / "over"))
    rgba = result[1]["over"]
    bg = wired["background"].outputs[0].default_value
    y, x = _inside(1)
    plate_r = 200 / 255.0
    # sRGB 8-bit plate is linearised by Blender: just check it is the plate, not the background
    assert rgba["R"][y, x] > rgba["B"][y, x]
    assert rgba["R"][NOBODY] == pytest.approx(bg[0], abs=1e-3)
    assert rgba["B"][NOBODY] == pytest.approx(bg[2], abs=1e-3)
    y2, x2 = _inside(2)
    # person 2 is not in the example: background there
    assert rgba["B"][y2, x2] == pytest.approx(bg[2], abs=1e-3)
    assert plate_r > 0


def test_rewiring_keeps_artist_links_and_adds_people(bpy, addon, scene, wired, tmp_path):
    tree, group = wired["tree"], wired["people"]
    viewer = tree.nodes.new("CompositorNodeViewer")
    tree.links.new(group.outputs["person_02"], viewer.inputs[0])
    # a re-run finds a third person
    pattern = write_matte_exrs(str(tmp_path / "mattes3"), people=2)
    import OpenEXR

    # add person_03 to frame files by rewriting with three channels
    for f in (1, 2, 3):
        path = pattern.replace("####", f"{f:04d}")
        exr = OpenEXR.File(path, separate_channels=True)
        channels = {k: v.pixels for k, v in exr.channels().items()}
        channels["person_03.A"] = np.full((H, W), 0.75, np.float16)
        OpenEXR.File(exr.header(), channels).write(path)
    paths = {f: pattern.replace("####", f"{f:04d}") for f in (1, 2, 3)}
    image = addon.compositor.load_mattes(paths, "InstMatt plate", single=False)
    source = addon.sources.Source("SEQUENCE", "plate", "x.####.png", (W, H), image=wired["plate"].image)
    nodes = addon.compositor.wire(scene, source, image, 1, 1, 3, [])
    assert nodes["people"] == group
    assert [s.name for s in group.outputs] == ["person_01", "person_02", "person_03", "All People"]
    assert viewer.inputs[0].is_linked and viewer.inputs[0].links[0].from_socket == group.outputs["person_02"]
    assert group.inputs["person_03"].is_linked
    assert len([n for n in tree.nodes if n.name.startswith("InstMatt Mattes")]) == 1
    assert os.path.basename(nodes["mattes"].image.filepath) == "instmatt.0001.exr"
