"""Per-scene settings of the InstMatt panel (what the button mattes and where it writes)."""

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from .client import defaults


def _path_options() -> set[str]:
    """Blender 4.5+ warns about '//' paths unless the property says it supports them."""
    if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties:
        return {"PATH_SUPPORTS_BLEND_RELATIVE"}
    return set()


PATH_OPTIONS = _path_options()

SOURCES = [
    ("IMAGE", "Image", "An image, image sequence or movie (the Image editor's image when the button is there)"),
    ("CLIP", "Movie Clip", "A movie clip (the Clip editor's clip when the button is there)"),
    ("RENDER", "Render Result", "The last rendered frame"),
]

GUIDANCE = [
    ("AUTO", "Automatic", "A Mask when the file has one with layers (one layer per person), else the detector"),
    ("DETECTOR", "Detector", "Find people automatically"),
    ("MASK", "Mask", "A Mask datablock: one mask layer per person"),
    ("INDEX", "ID Images", "One integer-ID image per frame (0 = nobody), a frame pattern such as //ids/id.####.png"),
]


PROPAGATE_HELP = ("Mask guidance: rasterise only the Mask's keyframes (shape keys, keyed layers) and let the "
                  "engine carry each person to the other frames; after editing a keyframe a re-run recomputes "
                  "only the frames it affects. Off, or keyed on every frame: the Mask guides every frame")
CARRY_HELP = ("Detector guidance: run the detector only every few frames (and where someone is lost) and carry "
              "the people between detections by optical flow: fewer detector runs, steadier masks. Off: the "
              "detector runs on every frame")
DETECT_EVERY_HELP = "Frames between detector runs when carrying (0: the first frame only)"

# The matte EXRs' options (the engine's choices and defaults, client/defaults.py)
_COMPRESSION_TEXT = {"zip": ("ZIP", "Lossless"), "piz": ("PIZ", "Lossless wavelet compression"),
                     "dwaa": ("DWAA", "Smallest; the alpha passes stay lossless")}
COMPRESSIONS = [(key, *_COMPRESSION_TEXT[key]) for key in defaults.COMPRESSIONS]
_DEPTH_TEXT = {"half": ("Half", "16-bit float alpha passes"), "float": ("Float", "32-bit float alpha passes")}
DEPTHS = [(key, *_DEPTH_TEXT[key]) for key in defaults.DEPTHS]


class InstMattSceneSettings(bpy.types.PropertyGroup):
    source: EnumProperty(name="Source", items=SOURCES, default="IMAGE")
    image: PointerProperty(name="Image", type=bpy.types.Image,
                           description="The image, image sequence or movie to matte")
    clip: PointerProperty(name="Clip", type=bpy.types.MovieClip, description="The movie clip to matte")
    guidance: EnumProperty(name="Guidance", items=GUIDANCE, default="AUTO")
    mask: PointerProperty(name="Mask", type=bpy.types.Mask,
                          description="One mask layer per person, rasterised per frame")
    propagate: BoolProperty(name="Propagate From Keyframes", default=True, description=PROPAGATE_HELP)
    carry_detections: BoolProperty(name="Carry Between Detections", default=False, description=CARRY_HELP)
    detect_every: IntProperty(name="Detect Every", default=defaults.DETECT_EVERY, min=0, description=DETECT_EVERY_HELP)
    index_path: StringProperty(name="ID Images", subtype="FILE_PATH", options=PATH_OPTIONS,
                               description="Frame pattern of integer-ID images (# = one digit)")
    use_scene_range: BoolProperty(name="Scene Range", default=True,
                                  description="Matte the scene's frame range (else the range below)")
    frame_start: IntProperty(name="Start", default=1, min=0)
    frame_end: IntProperty(name="End", default=250, min=0)
    output_dir: StringProperty(
        name="Output", subtype="DIR_PATH", default="//instmatt/", options=PATH_OPTIONS,
        description="Folder of the matte EXR files (one sub-folder per source)",
    )
    overwrite: BoolProperty(
        name="Overwrite", default=False,
        description="Recompute frames that exist already (off: a re-run resumes where it stopped)",
    )
    compression: EnumProperty(name="Compression", items=COMPRESSIONS, default=defaults.COMPRESSION,
                              description="Compression of the matte EXR files")
    depth: EnumProperty(name="Depth", items=DEPTHS, default=defaults.DEPTH, description="Bit depth of the alpha passes")
    union_pass: BoolProperty(name="All People Pass", default=defaults.UNION_PASS,
                             description="Also write the union of everybody (all_people.A) into the EXRs")
    background_pass: BoolProperty(name="Background Pass", default=defaults.BACKGROUND_PASS,
                                  description="Also write 1 - the union (background.A) into the EXRs")
    setup_example: BoolProperty(
        name="Example Set-up", default=True,
        description="Also add an example: the first person over a new background, all people in a Viewer",
    )
    # What the last run produced (read-only in the UI)
    last_output: StringProperty(name="Last Output", default="")
    last_people: StringProperty(name="People", default="")
    last_labels: StringProperty(name="Labels", default="", description="JSON: person ID -> the artist's name")
    status: StringProperty(name="Status", default="")


classes = (InstMattSceneSettings,)


def register():
    bpy.types.Scene.instmatt = PointerProperty(type=InstMattSceneSettings)


def unregister():
    del bpy.types.Scene.instmatt
