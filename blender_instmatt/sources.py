"""What to matte: an image, an image sequence, a movie or a movie clip, or the render result.

Each source becomes a :class:`Source`: the engine's ``input`` (a file, a frame pattern
with ``#`` for digits, or a video file), its pixel size, and the linear map from scene
frames to the source's own frame numbers (the numbers in the file names, or video frames
counted from 1), which is also how the output EXR files are numbered.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field

import bpy

from .client.frames import frames_on_disk

_DIGITS = re.compile(r"^(.*?)(\d+)(\D*)$")


class SourceError(Exception):
    """The source cannot be matted; the message is meant for the artist."""


@dataclass
class Source:
    kind: str  # 'IMAGE' (one still), 'SEQUENCE', 'MOVIE', 'CLIP', 'RENDER'
    name: str  # for output folder names and reports
    input: str  # what the engine reads
    size: tuple[int, int]  # (width, height), (0, 0) when unknown
    offset: int = 0  # source frame = scene frame + offset
    single: bool = False  # one still image: no frame range
    image: object = None  # the bpy.types.Image (the plate in the example compositor)
    clip: object = None  # the bpy.types.MovieClip
    available: tuple[int, int] | None = None  # first/last source frame found on disk
    temp_files: list[str] = field(default_factory=list)

    def source_frame(self, scene_frame: int) -> int:
        return scene_frame + self.offset

    def cleanup(self) -> None:
        """Remove the temporary copies made for the engine (and their folders)."""
        for path in self.temp_files:
            try:
                os.remove(path)
            except OSError:
                pass
            folder = os.path.dirname(path)
            if os.path.basename(folder).startswith("instmatt_src_"):
                shutil.rmtree(folder, ignore_errors=True)
        self.temp_files.clear()


def sequence_pattern(path: str) -> tuple[str, int, int]:
    """``/a/plate.1001.png`` -> ``('/a/plate.####.png', 1001, 4)``: the last run of digits
    of the file name (before its extension) is the frame number, as in Blender."""
    folder, filename = os.path.split(path)
    stem, ext = os.path.splitext(filename)
    match = _DIGITS.match(stem)
    if not match:
        raise SourceError(f"{filename}: an image sequence needs a frame number in the file name")
    head, digits, tail = match.groups()
    return os.path.join(folder, f"{head}{'#' * len(digits)}{tail}{ext}"), int(digits), len(digits)


def _image_user_offset(context, image) -> int | None:
    """Scene->image frame offset of the image user that shows ``image``, if any."""
    users = []
    space = getattr(context, "space_data", None)
    if space is not None and getattr(space, "type", "") == "IMAGE_EDITOR" and space.image == image:
        users.append(space.image_user)
    for tree in _node_trees(context.scene):
        for node in tree.nodes:
            if node.bl_idname == "CompositorNodeImage" and node.image == image:
                users.append(node)
    for user in users:
        # Blender: image frame = scene frame - frame_start + 1 + frame_offset
        return 1 - int(user.frame_start) + int(user.frame_offset)
    return None


def _file_size(path: str, fallback=(0, 0)) -> tuple[int, int]:
    """Pixel size of an image or movie file (loads it as a throw-away datablock)."""
    try:
        probe = bpy.data.images.load(path, check_existing=False)
    except RuntimeError:
        return tuple(fallback)
    try:
        size = tuple(probe.size)
    finally:
        bpy.data.images.remove(probe)
    return size if size[0] > 0 else tuple(fallback)


def _image_size(image, path: str) -> tuple[int, int]:
    size = tuple(image.size)
    if size[0] > 0 and size[1] > 0:
        return size
    return _file_size(path, size)


def _node_trees(scene):
    tree = getattr(scene, "compositing_node_group", None) if hasattr(scene, "compositing_node_group") \
        else getattr(scene, "node_tree", None)
    return [tree] if tree is not None else []


def _save_copy(image, scene, stem: str) -> str:
    """Write ``image`` (generated, packed, edited, render result) to a temporary PNG."""
    folder = tempfile.mkdtemp(prefix="instmatt_src_")
    path = os.path.join(folder, f"{bpy.path.clean_name(stem)}.png")
    settings = scene.render.image_settings
    saved = {}
    for key, value in (("media_type", "IMAGE"), ("file_format", "PNG"), ("color_mode", "RGB"),
                       ("color_depth", "8")):
        if hasattr(settings, key):
            saved[key] = getattr(settings, key)
            try:
                setattr(settings, key, value)
            except (TypeError, ValueError):
                pass
    try:
        image.save_render(path, scene=scene)
    except RuntimeError as exc:
        raise SourceError(f"Cannot save '{image.name}' for the engine: {exc}") from None
    finally:
        for key in reversed(list(saved)):
            try:
                setattr(settings, key, saved[key])
            except (TypeError, ValueError):
                pass
    if not os.path.isfile(path):
        raise SourceError(f"Cannot save '{image.name}' for the engine")
    return path


def from_image(context, image) -> Source:
    scene = context.scene
    if image.type in {"RENDER_RESULT", "COMPOSITING"} or image.source == "VIEWER":
        return from_render_result(context, image)
    if image.source == "SEQUENCE":
        path = bpy.path.abspath(image.filepath, library=image.library)
        pattern, number, _ = sequence_pattern(path)
        found = frames_on_disk(pattern)
        if not found:
            raise SourceError(f"No files of the image sequence '{image.name}' found: {pattern}")
        offset = _image_user_offset(context, image)
        if offset is None or (scene.frame_start + offset) not in found:
            # No image user tells: play the first file on disk at the scene's first frame,
            # unless the files are numbered like the scene already.
            offset = 0 if scene.frame_start in found else found[0] - scene.frame_start
        first_file = pattern.replace("#" * pattern.count("#"), f"{found[0]:0{pattern.count('#')}d}")
        return Source("SEQUENCE", image.name, pattern, _image_size(image, first_file), offset=offset, image=image,
                      available=(found[0], found[-1]))
    if image.source == "MOVIE":
        path = bpy.path.abspath(image.filepath, library=image.library)
        if not os.path.isfile(path):
            raise SourceError(f"Movie file of '{image.name}' not found: {path}")
        offset = _image_user_offset(context, image)
        if offset is None:
            offset = 1 - scene.frame_start
        return Source("MOVIE", image.name, path, _image_size(image, path), offset=offset, image=image)
    if image.source == "TILED":
        raise SourceError(f"'{image.name}' is a UDIM image: pick a plate, a sequence or a movie")
    path = bpy.path.abspath(image.filepath, library=image.library) if image.filepath else ""
    if image.source == "FILE" and path and os.path.isfile(path) and not image.is_dirty \
            and image.packed_file is None:
        return Source("IMAGE", image.name, path, _image_size(image, path), single=True, image=image)
    if not image.has_data and image.source == "FILE":
        raise SourceError(f"Image '{image.name}' has no pixels and no file: {path or '(no path)'}")
    copy = _save_copy(image, scene, image.name)
    src = Source("IMAGE", image.name, copy, tuple(image.size), single=True, image=image)
    src.temp_files.append(copy)
    return src


def from_render_result(context, image=None) -> Source:
    scene = context.scene
    if image is None:
        image = next((i for i in bpy.data.images if i.type == "RENDER_RESULT"), None)
    if image is None:
        raise SourceError("There is no render result: render a frame first (F12)")
    try:
        copy = _save_copy(image, scene, f"render_{scene.name}")
    except SourceError:
        raise SourceError("There is no render result: render a frame first (F12)") from None
    percent = scene.render.resolution_percentage / 100.0
    size = (int(scene.render.resolution_x * percent), int(scene.render.resolution_y * percent))
    src = Source("RENDER", "Render Result", copy, size, single=True, image=image)
    src.temp_files.append(copy)
    return src


def from_clip(context, clip) -> Source:
    path = bpy.path.abspath(clip.filepath, library=clip.library)
    # Blender: clip frame = scene frame - clip.frame_start + 1
    clip_offset = 1 - int(clip.frame_start) + int(clip.frame_offset)
    if clip.source == "SEQUENCE":
        pattern, number, _ = sequence_pattern(path)
        found = frames_on_disk(pattern)
        if not found:
            raise SourceError(f"No files of the clip '{clip.name}' found: {pattern}")
        # clip frame 1 shows the file the clip was opened with
        return Source("CLIP", clip.name, pattern, tuple(clip.size), offset=clip_offset + number - 1,
                      clip=clip, available=(found[0], found[-1]))
    if not os.path.isfile(path):
        raise SourceError(f"Movie file of clip '{clip.name}' not found: {path}")
    return Source("CLIP", clip.name, path, tuple(clip.size), offset=clip_offset, clip=clip)


# kind -> (bpy.data collection, editor, attribute of the editor and the settings, Source maker, noun, editor name)
_KINDS = {
    "IMAGE": ("images", "IMAGE_EDITOR", "image", from_image, "image", "Image"),
    "CLIP": ("movieclips", "CLIP_EDITOR", "clip", from_clip, "movie clip", "Clip"),
}


def _named_shown_or_chosen(context, kind: str, name: str, space, settings) -> Source:
    """An image or clip: the one named, else the one its editor shows, else the panel's."""
    collection, editor, attribute, make, noun, editor_name = _KINDS[kind]
    if name:
        block = getattr(bpy.data, collection).get(name)
        if block is None:
            raise SourceError(f"No {noun} named '{name}'")
        return make(context, block)
    shown = getattr(space, attribute, None) if getattr(space, "type", "") == editor else None
    chosen = getattr(settings, attribute, None) if settings is not None else None
    for block in (shown, chosen):
        if block is not None:
            return make(context, block)
    raise SourceError(f"No {noun} to matte: open one in the {editor_name} editor or pick it in the InstMatt panel")


def resolve(context, kind: str = "AUTO", image_name: str = "", clip_name: str = "") -> Source:
    """The source the operator works on.

    AUTO: the named image or clip, else the Image editor's image, else the Clip editor's
    clip, else the scene settings' choice.
    """
    settings = getattr(context.scene, "instmatt", None)
    space = getattr(context, "space_data", None)
    space_type = getattr(space, "type", "")

    if kind == "RENDER":
        return from_render_result(context)
    for wanted, name in (("IMAGE", image_name), ("CLIP", clip_name)):
        if kind == wanted or (kind == "AUTO" and name):
            return _named_shown_or_chosen(context, wanted, name, space, settings)
    # AUTO without names
    if space_type == "IMAGE_EDITOR" and space.image is not None:
        return from_image(context, space.image)
    if space_type == "CLIP_EDITOR" and space.clip is not None:
        return from_clip(context, space.clip)
    if settings is not None:
        if settings.source == "RENDER":
            return from_render_result(context)
        if settings.source == "CLIP" and settings.clip is not None:
            return from_clip(context, settings.clip)
        if settings.source == "IMAGE" and settings.image is not None:
            return from_image(context, settings.image)
        if settings.clip is not None:
            return from_clip(context, settings.clip)
        if settings.image is not None:
            return from_image(context, settings.image)
    raise SourceError(
        "Nothing to matte: show an image or clip in its editor, or pick a source in the InstMatt panel"
    )
