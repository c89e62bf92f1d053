"""The node group "InstMatt People": one alpha output per person (the names of the Image
node's sockets), their union ("All People"), and matte controls that need no re-run:
Grow (pixels, negative shrinks), Feather (pixels), Clip Black and Clip White, on 4.2 as on 5.x."""

from __future__ import annotations

import re

import bpy

from .legacy_controls import LegacyControls
from .nodes import input_socket, new_node, set_menu

GROUP_NAME = "InstMatt People"
UNION = "All People"
CONTROLS = (
    # name, default, min, max, description
    ("Grow", 0.0, -200.0, 200.0, "Grow (positive) or shrink (negative) every matte, in pixels"),
    ("Feather", 0.0, 0.0, 200.0, "Soften every matte's edge, in pixels"),
    ("Clip Black", 0.0, 0.0, 1.0, "Alpha at or below this becomes 0"),
    ("Clip White", 1.0, 0.0, 1.0, "Alpha at or above this becomes 1"),
)
PERSON = re.compile(r"^person_\d+$")


def _interface_items(group, in_out):
    return [item for item in group.interface.items_tree
            if getattr(item, "item_type", "SOCKET") == "SOCKET" and item.in_out == in_out]


def _ensure_socket(group, name, in_out, position=None, default=None, lo=None, hi=None, description=""):
    item = next((i for i in _interface_items(group, in_out) if i.name == name), None)
    if item is None:
        item = group.interface.new_socket(name, description=description, in_out=in_out,
                                          socket_type="NodeSocketFloat")
    elif description and item.description != description:
        item.description = description  # a label given (or changed) since the group was made
    if default is not None and hasattr(item, "default_value"):
        item.default_value = default
    if lo is not None and hasattr(item, "min_value"):
        item.min_value, item.max_value = lo, hi
    if position is not None:
        # positions count inputs and outputs together; outputs come first in 4.x/5.x
        items = _interface_items(group, in_out)
        if items.index(item) != position:
            group.interface.move(item, items[position].position if position < len(items) else position)
    return item


def people_group(people: list[str], labels: dict[str, str] | None = None):
    """The node group "InstMatt People" with sockets for at least ``people``.

    Interface sockets are only ever added (never removed or renamed), so links into and
    out of group nodes that an artist made survive a re-run with more people. Sockets are
    named by person ID; ``labels`` (the artist's names) go into their descriptions.
    """
    labels = labels or {}
    group = bpy.data.node_groups.get(GROUP_NAME)
    if group is None or group.bl_idname != "CompositorNodeTree":
        group = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
    known = [i.name for i in _interface_items(group, "OUTPUT") if PERSON.match(i.name)]
    wanted = sorted(set(known) | set(people), key=_person_key)
    for index, person in enumerate(wanted):
        who = f"{labels[person]} ({person})" if labels.get(person) else person
        _ensure_socket(group, person, "INPUT", position=index,
                       description=f"{who}: alpha from the InstMatt Mattes image")
        _ensure_socket(group, person, "OUTPUT", position=index, description=f"{who}: matte")
    _ensure_socket(group, UNION, "OUTPUT", position=len(wanted), description="Every person's matte together")
    for offset, (name, default, lo, hi, description) in enumerate(CONTROLS):
        _ensure_socket(group, name, "INPUT", position=len(wanted) + offset, default=default, lo=lo, hi=hi,
                       description=description)
    _build_group_nodes(group, wanted)
    return group


def options_are_sockets(group) -> bool:
    """True where Dilate/Erode and Blur take their sizes as sockets (5.x); 4.2 keeps them as
    node properties, and the group then builds Grow and Feather from :mod:`.legacy_controls`."""
    # (node, socket, socket type): 4.2's Blur has a "Size" input too, but it is a 0-1 factor
    for bl_idname, name, kind in (("CompositorNodeDilateErode", "Size", "INT"), ("CompositorNodeBlur", "Size", "VECTOR")):
        node = group.nodes.new(bl_idname)
        socket = node.inputs.get(name)
        ok = socket is not None and socket.type == kind
        group.nodes.remove(node)
        if not ok:
            return False
    return True


def _person_key(name: str):
    digits = re.sub(r"\D", "", name)
    return (int(digits) if digits else 0, name)


def _build_group_nodes(group, people: list[str]) -> None:
    nodes, links = group.nodes, group.links
    nodes.clear()
    gin = nodes.new("NodeGroupInput")
    gin.location = (-900, 0)
    gout = nodes.new("NodeGroupOutput")
    gout.location = (700, 0)
    legacy = None if options_are_sockets(group) else LegacyControls(group, gin.outputs["Grow"], gin.outputs["Feather"])
    union = None
    for row, person in enumerate(people):
        y = -row * 260
        value = gin.outputs[person]
        # Clip: map [Clip Black, Clip White] to [0, 1], clamped
        clip = new_node(group, "ShaderNodeMapRange", "CompositorNodeMapRange")
        clip.name = clip.label = f"{person} Clip"
        clip.location = (-650, y)
        if hasattr(clip, "clamp"):
            clip.clamp = True
        if hasattr(clip, "use_clamp"):
            clip.use_clamp = True
        links.new(value, input_socket(clip, "Value", index=0))
        links.new(gin.outputs["Clip Black"], input_socket(clip, "From Min", index=1))
        links.new(gin.outputs["Clip White"], input_socket(clip, "From Max", index=2))
        value = clip.outputs[0]
        if legacy is not None:  # 4.2: Blur-based Grow and Feather, driven by the group's inputs
            value = legacy.feather(legacy.grow(value, person, (-400, y)), person, (0, y))
        else:
            value = _grow_and_feather(group, gin, value, person, y)
        links.new(value, gout.inputs[person])
        # Union: maximum over people
        if union is None:
            union = value
        else:
            maximum = new_node(group, "ShaderNodeMath", "CompositorNodeMath")
            maximum.operation = "MAXIMUM"
            maximum.name = maximum.label = f"{UNION} {row}"
            maximum.location = (150 + 60 * row, y)
            links.new(union, maximum.inputs[0])
            links.new(value, maximum.inputs[1])
            union = maximum.outputs[0]
    if union is None:
        zero = new_node(group, "ShaderNodeValue", "CompositorNodeValue")
        zero.outputs[0].default_value = 0.0
        union = zero.outputs[0]
    links.new(union, gout.inputs[UNION])


def _grow_and_feather(group, gin, value, person, y):
    """5.x: Dilate/Erode (distance) and Blur whose sizes are the group's Grow and Feather."""
    nodes, links = group.nodes, group.links
    grow = nodes.new("CompositorNodeDilateErode")
    grow.name = grow.label = f"{person} Grow"
    grow.location = (-400, y)
    links.new(value, input_socket(grow, "Mask", index=0))
    set_menu(grow.inputs.get("Type"), "Distance")
    links.new(gin.outputs["Grow"], grow.inputs["Size"])
    blur = nodes.new("CompositorNodeBlur")
    blur.name = blur.label = f"{person} Feather"
    blur.location = (-150, y)
    links.new(grow.outputs[0], input_socket(blur, "Image", index=0))
    links.new(gin.outputs["Feather"], blur.inputs["Size"])
    return blur.outputs[0]
