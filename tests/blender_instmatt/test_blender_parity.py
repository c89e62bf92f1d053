"""What must hold on every supported Blender (4.2 LTS and 5.x)."""

from __future__ import annotations


def test_building_the_people_group_prints_no_node_errors(bpy, addon, scene, capfd):
    # a refused nodes.new() prints "Error: Cannot add node of type ..." even when caught
    capfd.readouterr()
    group = addon.compositor.people_group(["person_01", "person_02", "person_03"])
    out, err = capfd.readouterr()
    assert "Cannot add node" not in out + err, out + err
    assert [s.name for s in group.nodes["NodeGroupOutput" if "NodeGroupOutput" in group.nodes else "Group Output"]
            .inputs if s.name][:4] == ["person_01", "person_02", "person_03", "All People"]
