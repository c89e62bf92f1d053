"""What must hold on every supported Blender (4.2 LTS and 5.x)."""

from __future__ import annotations

import pytest


def test_building_the_people_group_prints_no_node_errors(bpy, addon, scene, capfd):
    # a refused nodes.new() prints "Error: Cannot add node of type ..." even when caught
    capfd.readouterr()
    group = addon.compositor.people_group(["person_01", "person_02", "person_03"])
    out, err = capfd.readouterr()
    assert "Cannot add node" not in out + err, out + err
    assert [s.name for s in group.nodes["NodeGroupOutput" if "NodeGroupOutput" in group.nodes else "Group Output"]
            .inputs if s.name][:4] == ["person_01", "person_02", "person_03", "All People"]


def test_grow_shrink_feather_and_clip_render_alike(bpy, addon, scene, plate_sequence, tmp_path):
    """The same settings give the same mattes on 4.2 (Blur-based Grow) and 5.x (Dilate/Erode)."""
    import numpy as np
    from blender_helpers import PEOPLE_BOXES, load_plate, render_outputs, write_matte_exrs

    pattern = write_matte_exrs(str(tmp_path / "mattes"), frames=(1,), value=lambda pid, frame: 1.0)
    plate = load_plate(bpy, plate_sequence)
    source = addon.sources.Source("SEQUENCE", "plate", plate_sequence.replace("0001", "####"), (64, 48), image=plate)
    image = addon.compositor.load_mattes({1: pattern.replace("####", "0001")}, "InstMatt plate", single=False)
    nodes = addon.compositor.wire(scene, source, image, 1, 1, 1, ["person_01", "person_02"], example=False)
    tree, group = nodes["tree"], nodes["people"]
    scene.frame_end = 1
    r0, r1, c0, c1 = PEOPLE_BOXES[1]

    def render(name, **values):
        for key, value in values.items():
            group.inputs[key.replace("_", " ").title()].default_value = value
        return render_outputs(bpy, scene, tree, {"p1": group.outputs["person_01"]}, str(tmp_path / name))[1]["p1"]

    plain = render("plain", grow=0.0, feather=0.0, clip_black=0.0, clip_white=1.0)
    expected = np.zeros_like(plain)
    expected[r0:r1, c0:c1] = 1.0
    np.testing.assert_allclose(plain, expected, atol=1e-3)  # no control: the matte itself
    for grow in (1, 5, -4):
        rows, cols = np.nonzero(render(f"grow{grow}", grow=float(grow)) > 0.5)
        assert (rows.min(), rows.max(), cols.min(), cols.max()) == (r0 - grow, r1 - 1 + grow, c0 - grow,
                                                                   c1 - 1 + grow), grow
    soft = render("feather", grow=0.0, feather=3.0)
    edge = soft[(r0 + r1) // 2, c0 - 3: c0 + 3]
    assert 0.0 < edge.min() < 0.5 < edge.max() < 1.0 and np.all(np.diff(edge) >= -1e-4)  # a soft, rising edge
    assert soft[(r0 + r1) // 2, (c0 + c1) // 2] == pytest.approx(1.0, abs=1e-3)
