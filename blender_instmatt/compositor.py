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

import bpy

from .nodes import input_socket, is_v5, named_node, scene_tree
from .people_group import PERSON, UNION, people_group

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
    node = named_node(tree, name, "CompositorNodeImage")
    if node.image != image:
        node.image = image
    else:  # refresh the sockets after a reload with new layers
        node.image = None
        node.image = image
    if first_scene_frame is not None:
        set_sequence_user(node, first_scene_frame, first_image_frame, count)
    return node


# --------------------------------------------------------------------------- the group


# --------------------------------------------------------------------------- wiring


def node_names(source_name: str) -> dict[str, str]:
    tag = source_name[:40]
    return {key: f"InstMatt {label} [{tag}]" for key, label in (
        ("mattes", "Mattes"), ("people", "People"), ("plate", "Plate"), ("background", "Background"),
        ("cutout", "Cutout"), ("over", "Over Background"), ("viewer", "All People"),
    )}


def wire(scene, source, mattes_image, first_scene_frame, first_image_frame, count, people,
         example: bool = True, labels: dict | None = None) -> dict:
    """Put the mattes into the scene's compositor; returns the nodes by role. ``labels``
    (person ID -> the artist's name) describe the group's sockets."""
    tree, created = scene_tree(scene)
    names = node_names(source.name)
    single = source.single
    mattes = image_node(tree, names["mattes"], mattes_image,
                        *((None, None, None) if single else (first_scene_frame, first_image_frame, count)))
    mattes.location = (-600, 300)
    sockets = people_sockets(mattes) or list(people)
    group = people_group(sockets, labels)
    group_node = named_node(tree, names["people"], "CompositorNodeGroup")
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
        node = named_node(tree, names["plate"], "CompositorNodeMovieClip")
        node.clip = source.clip
        return node
    if source.kind == "RENDER":
        return named_node(tree, names["plate"], "CompositorNodeRLayers")
    if source.image is None:
        return None
    node = named_node(tree, names["plate"], "CompositorNodeImage")
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
    background = named_node(tree, names["background"], "CompositorNodeRGB")
    background.location = (-300, -250)
    if fresh:  # keep the artist's colour on re-runs
        background.outputs[0].default_value = (0.05, 0.25, 0.6, 1.0)
    cutout = named_node(tree, names["cutout"], "CompositorNodeSetAlpha")
    cutout.location = (0, -100)
    tree.links.new(plate.outputs[0], input_socket(cutout, "Image", index=0))
    tree.links.new(group_node.outputs[person], input_socket(cutout, "Alpha", index=1))
    over = named_node(tree, names["over"], "CompositorNodeAlphaOver")
    over.location = (250, -100)
    if "Background" in over.inputs:  # 5.x
        tree.links.new(background.outputs[0], over.inputs["Background"])
        tree.links.new(cutout.outputs[0], over.inputs["Foreground"])
    else:  # 4.x: Fac, Image (background), Image (foreground)
        tree.links.new(background.outputs[0], over.inputs[1])
        tree.links.new(cutout.outputs[0], over.inputs[2])
    viewer = named_node(tree, names["viewer"], "CompositorNodeViewer")
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

