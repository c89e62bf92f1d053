"""Sidebar panels (category "InstMatt") in the Image, Clip and Compositor editors."""

from __future__ import annotations

import json

import bpy

from . import masks, run
from .client import models


def draw_panel(layout, context, editor: str) -> None:
    settings = context.scene.instmatt
    col = layout.column()
    if editor == "IMAGE_EDITOR":
        image = context.space_data.image
        col.label(text=f"Source: {image.name if image else 'no image shown'}", icon="IMAGE_DATA")
    elif editor == "CLIP_EDITOR":
        clip = context.space_data.clip
        col.label(text=f"Source: {clip.name if clip else 'no clip shown'}", icon="SEQUENCE")
    else:
        col.prop(settings, "source")
        if settings.source == "IMAGE":
            col.template_ID(settings, "image", open="image.open")
        elif settings.source == "CLIP":
            col.template_ID(settings, "clip", open="clip.open")
    col.separator()
    col.prop(settings, "guidance")
    if settings.guidance == "AUTO":
        kind, _, why = masks.auto_guidance(settings)
        col.label(text=f"Uses {why}", icon="MOD_MASK" if kind == "MASK" else "VIEWZOOM")
        col.template_ID(settings, "mask", new="mask.new")
        if kind == "MASK":
            col.prop(settings, "propagate")
        else:
            _carry(col, settings)
    elif settings.guidance == "MASK":
        col.template_ID(settings, "mask", new="mask.new")
        col.prop(settings, "propagate")
    elif settings.guidance == "DETECTOR":
        _carry(col, settings)
    elif settings.guidance == "INDEX":
        col.prop(settings, "index_path", text="")
    col.separator()
    col.prop(settings, "use_scene_range")
    if not settings.use_scene_range:
        row = col.row(align=True)
        row.prop(settings, "frame_start")
        row.prop(settings, "frame_end")
    col.prop(settings, "output_dir")
    row = col.row(align=True)
    row.prop(settings, "compression", text="")
    row.prop(settings, "depth", text="")
    row = col.row()
    row.prop(settings, "union_pass")
    row.prop(settings, "background_pass")
    row = col.row()
    row.prop(settings, "overwrite")
    row.prop(settings, "setup_example")
    col.separator()
    running = run.active_run() is not None
    row = col.row()
    row.scale_y = 1.5
    row.enabled = not running
    op = row.operator("instmatt.matte_people", icon="USER")
    if editor == "NODE_EDITOR":
        op.source = settings.source
    if settings.status:
        col.label(text=settings.status, icon="TIME" if running else "INFO")
    if models.last_models.get("toy"):
        col.label(text=models.TOY_TEXT, icon="ERROR")
    col.operator("instmatt.open_engine_log", icon="TEXT")
    if settings.last_people:
        box = col.box()
        box.label(text="Alpha outputs of 'InstMatt People':")
        flow = box.grid_flow(columns=2, even_columns=True)
        labels = _labels(settings)
        for name in settings.last_people.split(", "):
            flow.label(text=f"{name}: {labels[name]}" if name in labels else name, icon="OUTLINER_OB_ARMATURE")
        box.operator("instmatt.load_mattes", icon="NODETREE", text="Re-load Into Compositor")


def _labels(settings) -> dict:
    try:
        labels = json.loads(settings.last_labels or "{}")
    except ValueError:
        return {}
    return labels if isinstance(labels, dict) else {}


class _InstMattPanel:
    bl_region_type = "UI"
    bl_category = "InstMatt"
    bl_label = "InstMatt People"

    def draw(self, context):
        draw_panel(self.layout, context, self.bl_space_type)


class INSTMATT_PT_image(_InstMattPanel, bpy.types.Panel):
    bl_space_type = "IMAGE_EDITOR"
    bl_idname = "INSTMATT_PT_image"


class INSTMATT_PT_clip(_InstMattPanel, bpy.types.Panel):
    bl_space_type = "CLIP_EDITOR"
    bl_idname = "INSTMATT_PT_clip"


class INSTMATT_PT_compositor(_InstMattPanel, bpy.types.Panel):
    bl_space_type = "NODE_EDITOR"
    bl_idname = "INSTMATT_PT_compositor"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", "") == "CompositorNodeTree"


def _image_menu(self, context):
    self.layout.separator()
    self.layout.operator("instmatt.matte_people", icon="USER")


classes = (INSTMATT_PT_image, INSTMATT_PT_clip, INSTMATT_PT_compositor)


def register():
    if hasattr(bpy.types, "IMAGE_MT_image"):
        bpy.types.IMAGE_MT_image.append(_image_menu)


def unregister():
    if hasattr(bpy.types, "IMAGE_MT_image"):
        bpy.types.IMAGE_MT_image.remove(_image_menu)


def _carry(col, settings) -> None:
    """The detector's carry settings: detect every N frames, carried in between."""
    col.prop(settings, "carry_detections")
    if settings.carry_detections:
        col.prop(settings, "detect_every")
