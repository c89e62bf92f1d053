"""The mattes in the compositor: one Image node, the "InstMatt People" group, an example.

The engine writes one multilayer EXR per frame with channels ``person_01.A``, ...; an
Image node loading that sequence shows one socket per person.  Those sockets feed the
node group "InstMatt People", which gives one alpha output per person (the same names),
their union ("All People"), and matte controls that need no re-run: Grow (pixels,
negative shrinks), Feather (pixels), Clip Black and Clip White.

Works with both compositor APIs: ``scene.node_tree`` (up to 4.x, output through a
Composite node) and the compositing node group of 5.x (output through the tree's
Group Output).  Only nodes named "InstMatt ..." are ever touched, so an artist's tree is
never rewired, except that an unlinked output is fed the example result.
"""

from __future__ import annotations

import re

import bpy

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


# --------------------------------------------------------------------------- trees


def is_v5(scene) -> bool:
    return hasattr(scene, "compositing_node_group")


def scene_tree(scene, create: bool = True):
    """The scene's compositor tree, and whether it was created just now."""
    if is_v5(scene):
        tree = scene.compositing_node_group
        if tree is None and create:
            tree = bpy.data.node_groups.new(f"{scene.name} Compositing", "CompositorNodeTree")
            scene.compositing_node_group = tree
            return tree, True
        return tree, False
    created = not scene.use_nodes or scene.node_tree is None
    if create:
        scene.use_nodes = True
    return scene.node_tree, created


def _new(tree, *types):
    """A new node of the first type this Blender knows (old and new node names)."""
    error = None
    for bl_idname in types:
        try:
            return tree.nodes.new(bl_idname)
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"none of {types} exists here: {error}")


def _node(tree, name, *types):
    """The node called ``name`` (replaced if it has the wrong type), or a new one."""
    node = tree.nodes.get(name)
    if node is not None and node.bl_idname not in types:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = _new(tree, *types)
        node.name = name
        node.label = name
    return node


def _input(node, *names, index=None):
    for name in names:
        socket = node.inputs.get(name)
        if socket is not None and socket.enabled:
            return socket
    return node.inputs[index] if index is not None else None


def _set_menu(socket, value) -> bool:
    """Set a menu socket (5.x node options); False where it does not exist."""
    try:
        socket.default_value = value
        return True
    except (TypeError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------- mattes image


def load_mattes(paths: dict[int, str], name: str, single: bool, first: int | None = None):
    """The Image datablock of the engine's EXR files (reloaded when it exists).

    ``first``: the frame whose file the image opens (its layers become the Image node's
    sockets); by default the lowest frame.
    """
    first = paths[min(paths) if first is None else first]
    image = bpy.data.images.get(name)
    if image is not None and bpy.path.abspath(image.filepath) != first:
        image.filepath = first
    if image is None:
        image = bpy.data.images.load(first, check_existing=False)
        image.name = name
    image.source = "FILE" if single else "SEQUENCE"
    try:
        image.colorspace_settings.name = "Non-Color"
    except TypeError:
        pass
    image.reload()
    return image


def frames_written(pattern: str) -> list[int]:
    from .sources import frames_on_disk

    return frames_on_disk(pattern)


def set_sequence_user(user, first_scene_frame: int, first_image_frame: int, count: int) -> None:
    """Make an image user (Image node or ImageUser) play image frames
    ``first_image_frame ..`` from scene frame ``first_scene_frame`` on.

    From Python these default to 1, and every scene frame then shows frame 1.
    Blender: image frame = scene frame - frame_start + 1 + frame_offset.
    """
    user.frame_duration = max(1, int(count))
    user.frame_start = int(first_scene_frame)
    user.frame_offset = int(first_image_frame) - 1
    if hasattr(user, "use_cyclic"):
        user.use_cyclic = False
    if hasattr(user, "use_auto_refresh"):
        user.use_auto_refresh = True


def people_sockets(node) -> list[str]:
    return [s.name for s in node.outputs if PERSON.match(s.name) and s.enabled]


def image_node(tree, name: str, image, first_scene_frame=None, first_image_frame=None, count=None):
    node = _node(tree, name, "CompositorNodeImage")
    if node.image != image:
        node.image = image
    else:  # refresh the sockets after a reload with new layers
        node.image = None
        node.image = image
    if first_scene_frame is not None:
        set_sequence_user(node, first_scene_frame, first_image_frame, count)
    return node


# --------------------------------------------------------------------------- the group


def _interface_items(group, in_out):
    return [item for item in group.interface.items_tree
            if getattr(item, "item_type", "SOCKET") == "SOCKET" and item.in_out == in_out]


def _ensure_socket(group, name, in_out, position=None, default=None, lo=None, hi=None, description=""):
    item = next((i for i in _interface_items(group, in_out) if i.name == name), None)
    if item is None:
        item = group.interface.new_socket(name, description=description, in_out=in_out,
                                          socket_type="NodeSocketFloat")
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


def people_group(people: list[str]):
    """The node group "InstMatt People" with sockets for at least ``people``.

    Interface sockets are only ever added (never removed or renamed), so links into and
    out of group nodes that an artist made survive a re-run with more people.
    """
    group = bpy.data.node_groups.get(GROUP_NAME)
    if group is None or group.bl_idname != "CompositorNodeTree":
        group = bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")
    known = [i.name for i in _interface_items(group, "OUTPUT") if PERSON.match(i.name)]
    wanted = sorted(set(known) | set(people), key=_person_key)
    for index, person in enumerate(wanted):
        _ensure_socket(group, person, "INPUT", position=index,
                       description=f"{person}'s alpha from the InstMatt Mattes image")
        _ensure_socket(group, person, "OUTPUT", position=index, description=f"{person}'s matte")
    _ensure_socket(group, UNION, "OUTPUT", position=len(wanted), description="Every person's matte together")
    for offset, (name, default, lo, hi, description) in enumerate(supported_controls(group)):
        _ensure_socket(group, name, "INPUT", position=len(wanted) + offset, default=default, lo=lo, hi=hi,
                       description=description)
    _build_group_nodes(group, wanted)
    return group


def supported_controls(group) -> list[tuple]:
    """The controls this Blender can drive from group sockets: Grow and Feather need the
    Dilate/Erode and Blur options as sockets (5.0 has them, 4.2 does not); Clip works
    everywhere."""
    # (node, socket, socket type): 4.2's Blur has a "Size" input too, but it is a 0-1 factor
    probe_types = {"Grow": ("CompositorNodeDilateErode", "Size", "INT"),
                   "Feather": ("CompositorNodeBlur", "Size", "VECTOR")}
    out = []
    for control in CONTROLS:
        probe = probe_types.get(control[0])
        if probe is not None:
            node = group.nodes.new(probe[0])
            socket = node.inputs.get(probe[1])
            ok = socket is not None and socket.type == probe[2]
            group.nodes.remove(node)
            if not ok:
                continue
        out.append(control)
    return out


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
    union = None
    for row, person in enumerate(people):
        y = -row * 260
        value = gin.outputs[person]
        # Clip: map [Clip Black, Clip White] to [0, 1], clamped
        clip = _new(group, "ShaderNodeMapRange", "CompositorNodeMapRange")
        clip.name = clip.label = f"{person} Clip"
        clip.location = (-650, y)
        if hasattr(clip, "clamp"):
            clip.clamp = True
        if hasattr(clip, "use_clamp"):
            clip.use_clamp = True
        links.new(value, _input(clip, "Value", index=0))
        links.new(gin.outputs["Clip Black"], _input(clip, "From Min", index=1))
        links.new(gin.outputs["Clip White"], _input(clip, "From Max", index=2))
        value = clip.outputs[0]
        # Grow / shrink
        grow = nodes.new("CompositorNodeDilateErode")
        grow.name = grow.label = f"{person} Grow"
        grow.location = (-400, y)
        links.new(value, _input(grow, "Mask", index=0))
        size = grow.inputs.get("Size")
        if size is not None and "Grow" in gin.outputs:  # 5.x: options are sockets
            _set_menu(grow.inputs.get("Type"), "Distance")
            links.new(gin.outputs["Grow"], size)
        else:  # 4.2: options are properties, set on the node inside the group
            grow.mode = "DISTANCE"
            grow.distance = 0
        value = grow.outputs[0]
        # Feather
        blur = nodes.new("CompositorNodeBlur")
        blur.name = blur.label = f"{person} Feather"
        blur.location = (-150, y)
        links.new(value, _input(blur, "Image", index=0))
        size = blur.inputs.get("Size")
        if size is not None and size.type == "VECTOR" and "Feather" in gin.outputs:
            links.new(gin.outputs["Feather"], size)
        else:
            blur.filter_type = "GAUSS"
            blur.size_x = blur.size_y = 0
        value = blur.outputs[0]
        links.new(value, gout.inputs[person])
        # Union: maximum over people
        if union is None:
            union = value
        else:
            maximum = _new(group, "ShaderNodeMath", "CompositorNodeMath")
            maximum.operation = "MAXIMUM"
            maximum.name = maximum.label = f"{UNION} {row}"
            maximum.location = (150 + 60 * row, y)
            links.new(union, maximum.inputs[0])
            links.new(value, maximum.inputs[1])
            union = maximum.outputs[0]
    if union is None:
        zero = _new(group, "ShaderNodeValue", "CompositorNodeValue")
        zero.outputs[0].default_value = 0.0
        union = zero.outputs[0]
    links.new(union, gout.inputs[UNION])


# --------------------------------------------------------------------------- wiring


def node_names(source_name: str) -> dict[str, str]:
    tag = source_name[:40]
    return {key: f"InstMatt {label} [{tag}]" for key, label in (
        ("mattes", "Mattes"), ("people", "People"), ("plate", "Plate"), ("background", "Background"),
        ("cutout", "Cutout"), ("over", "Over Background"), ("viewer", "All People"),
    )}


def wire(scene, source, mattes_image, first_scene_frame, first_image_frame, count, people,
         example: bool = True) -> dict:
    """Put the mattes into the scene's compositor; returns the nodes by role."""
    tree, created = scene_tree(scene)
    names = node_names(source.name)
    single = source.single
    mattes = image_node(tree, names["mattes"], mattes_image,
                        *((None, None, None) if single else (first_scene_frame, first_image_frame, count)))
    mattes.location = (-600, 300)
    sockets = people_sockets(mattes) or list(people)
    group = people_group(sockets)
    group_node = _node(tree, names["people"], "CompositorNodeGroup")
    group_node.node_tree = group
    group_node.location = (-300, 300)
    group_node.width = 180
    for person in sockets:
        out = mattes.outputs.get(person)
        if out is not None:
            tree.links.new(out, group_node.inputs[person])
    nodes = {"tree": tree, "mattes": mattes, "people": group_node}
    if example and sockets:
        nodes.update(_example(scene, tree, created, source, names, group_node, sockets[0],
                              first_scene_frame, first_image_frame, count))
    return nodes


def _plate(tree, source, names, first_scene_frame, count):
    if source.kind == "CLIP" and source.clip is not None:
        node = _node(tree, names["plate"], "CompositorNodeMovieClip")
        node.clip = source.clip
        return node
    if source.kind == "RENDER":
        return _node(tree, names["plate"], "CompositorNodeRLayers")
    if source.image is None:
        return None
    node = _node(tree, names["plate"], "CompositorNodeImage")
    if node.image != source.image:
        node.image = source.image
    if source.kind in {"SEQUENCE", "MOVIE"} and first_scene_frame is not None:
        set_sequence_user(node, first_scene_frame, first_scene_frame + source.offset, count)
    return node


def _example(scene, tree, created, source, names, group_node, person, first_scene_frame, first_image_frame,
             count) -> dict:
    """The first person over a new background (to the output) and every person together
    (to a Viewer)."""
    plate = _plate(tree, source, names, first_scene_frame, count)
    if plate is None:
        return {}
    plate.location = (-600, -100)
    fresh = names["background"] not in tree.nodes
    background = _node(tree, names["background"], "CompositorNodeRGB")
    background.location = (-300, -250)
    if fresh:  # keep the artist's colour on re-runs
        background.outputs[0].default_value = (0.05, 0.25, 0.6, 1.0)
    cutout = _node(tree, names["cutout"], "CompositorNodeSetAlpha")
    cutout.location = (0, -100)
    tree.links.new(plate.outputs[0], _input(cutout, "Image", index=0))
    tree.links.new(group_node.outputs[person], _input(cutout, "Alpha", index=1))
    over = _node(tree, names["over"], "CompositorNodeAlphaOver")
    over.location = (250, -100)
    if "Background" in over.inputs:  # 5.x
        tree.links.new(background.outputs[0], over.inputs["Background"])
        tree.links.new(cutout.outputs[0], over.inputs["Foreground"])
    else:  # 4.x: Fac, Image (background), Image (foreground)
        tree.links.new(background.outputs[0], over.inputs[1])
        tree.links.new(cutout.outputs[0], over.inputs[2])
    viewer = _node(tree, names["viewer"], "CompositorNodeViewer")
    viewer.location = (250, 300)
    tree.links.new(group_node.outputs[UNION], viewer.inputs[0])
    output = _connect_output(scene, tree, created, over.outputs[0])
    return {"plate": plate, "background": background, "cutout": cutout, "over": over, "viewer": viewer,
            "output": output}


def _ours(link) -> bool:
    return link.from_node.name.startswith("InstMatt ")


def _connect_output(scene, tree, created, socket):
    """Feed ``socket`` to the compositor's output if that is free (or ours, or the
    untouched default set-up); never replace an artist's own output link."""
    if is_v5(scene):
        outputs = [n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"]
        if not any(i.in_out == "OUTPUT" and i.socket_type == "NodeSocketColor"
                   for i in tree.interface.items_tree if getattr(i, "item_type", "") == "SOCKET"):
            tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        if not outputs:
            out = tree.nodes.new("NodeGroupOutput")
            out.location = (550, -100)
        else:
            out = next((n for n in outputs if n.is_active_output), outputs[0])
        target = next(s for s in out.inputs if s.type == "RGBA")
    else:
        out = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
        if out is None:
            out = tree.nodes.new("CompositorNodeComposite")
            out.location = (550, -100)
        target = out.inputs[0]
    links = list(target.links)
    # 4.x: turning "Use Nodes" on just now made the default Render Layers -> Composite
    default_setup = created and not is_v5(scene)
    if not links or all(_ours(link) for link in links) or default_setup:
        tree.links.new(socket, target)
    return out


def remove(scene) -> None:
    """Remove every InstMatt node from the scene's compositor (the group stays)."""
    tree, _ = scene_tree(scene, create=False)
    if tree is None:
        return
    for node in [n for n in tree.nodes if n.name.startswith("InstMatt ")]:
        tree.nodes.remove(node)

