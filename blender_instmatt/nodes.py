"""Compositor trees and nodes on both APIs: ``scene.node_tree`` (up to 4.x) and the
compositing node group of 5.x, and node types whose names changed between them."""

from __future__ import annotations

import bpy


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


def _accepts(tree, bl_idname: str) -> bool:
    cls = getattr(bpy.types, bl_idname, None)
    try:
        return cls is not None and bool(cls.poll(tree))
    except (TypeError, RuntimeError):
        return False


def new_node(tree, *types):
    """A new node of the first type this Blender knows (old and new node names).

    Types the tree says it accepts are tried first: a refused ``nodes.new`` prints
    "Error: Cannot add node of type ..." even when the exception is caught (4.2 refuses
    ShaderNodeMath in a compositor tree; 5.x accepts it but its poll says False for all).
    """
    error = None
    for bl_idname in sorted(types, key=lambda t: not _accepts(tree, t)):
        try:
            return tree.nodes.new(bl_idname)
        except RuntimeError as exc:
            error = exc
    raise RuntimeError(f"none of {types} exists here: {error}")


def named_node(tree, name, *types):
    """The node called ``name`` (replaced if it has the wrong type), or a new one."""
    node = tree.nodes.get(name)
    if node is not None and node.bl_idname not in types:
        tree.nodes.remove(node)
        node = None
    if node is None:
        node = new_node(tree, *types)
        node.name = name
        node.label = name
    return node


def input_socket(node, *names, index=None):
    for name in names:
        socket = node.inputs.get(name)
        if socket is not None and socket.enabled:
            return socket
    return node.inputs[index] if index is not None else None


def set_menu(socket, value) -> bool:
    """Set a menu socket (5.x node options); False where it does not exist."""
    try:
        socket.default_value = value
        return True
    except (TypeError, ValueError, AttributeError):
        return False
