"""Data and render helpers of the add-on's tests (no bpy at import time)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
PACKAGE_DIR = os.path.join(REPO, "blender_instmatt")
FAKE_ENGINE = os.path.join(HERE, "fake_engine.py")
BUILD_SCRIPT = os.path.join(REPO, "scripts", "build_extension.py")
ENGINE_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
REPO_MODULE = "instmatt_test"
ADDON = f"bl_ext.{REPO_MODULE}.blender_instmatt"


def _load(name: str, path: str, package: bool = False):
    """A module (or package) loaded by path under ``name``, outside Blender's package system."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[os.path.dirname(path)] if package else None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_client(submodule: str):
    """``blender_instmatt/client/<submodule>.py`` as ``instmatt_client.<submodule>``: the
    bpy-free half runs in any Python, so its tests import it without registering the add-on
    (and get their own engine singleton)."""
    _load("instmatt_client", os.path.join(PACKAGE_DIR, "client", "__init__.py"), package=True)
    return importlib.import_module(f"instmatt_client.{submodule}")


def build_script():
    """scripts/build_extension.py: stages the extension and runs Blender's extension tool."""
    return _load("instmatt_build_extension", BUILD_SCRIPT)


def enable_extension(bpy, repo_module: str, repo_name: str) -> tuple:
    """Register the add-on the way Blender registers an extension: a local repository
    folder holding the staged package (links to the checkout plus the manifest).
    Returns ``(module, cleanup)``; ``cleanup()`` disables it and removes the repository."""
    import addon_utils

    repo_dir = tempfile.mkdtemp(prefix="instmatt_ext_repo_")
    load_client("staging").stage_extension(repo_dir, PACKAGE_DIR)
    repo = bpy.context.preferences.extensions.repos.new(
        name=repo_name, module=repo_module, custom_directory=repo_dir, source="USER")
    name = f"bl_ext.{repo_module}.blender_instmatt"
    module = addon_utils.enable(name, default_set=True, handle_error=None)

    def cleanup():
        if name in bpy.context.preferences.addons:
            addon_utils.disable(name, default_set=True)
        try:
            bpy.context.preferences.extensions.repos.remove(repo)
        except (RuntimeError, ReferenceError):
            pass
        shutil.rmtree(repo_dir, ignore_errors=True)

    return module, cleanup


def engine_status() -> str | None:
    """None when the real engine can serve; else why not."""
    if not os.path.isfile(ENGINE_PYTHON):
        return f"the engine's environment is missing ({ENGINE_PYTHON})"
    try:
        # the command the add-on runs, not a module path: that may move, the CLI stays
        proc = subprocess.run([ENGINE_PYTHON, "-m", "engine", "serve", "--help"], cwd=REPO, capture_output=True,
                              text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run the engine's Python: {exc}"
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return "'python -m engine serve --help' fails in .venv: " + (lines[-1] if lines else f"exit {proc.returncode}")
    return None


# --------------------------------------------------------------------------- the modal operator


class Event:
    def __init__(self, type, value="NOTHING"):
        self.type, self.value = type, value


def operator_driver(addon, **props):
    """The operator's own methods on a stand-in ``self`` (bpy cannot run modal operators
    headless): exactly what Blender calls, minus the window timer."""
    cls = addon.operators.INSTMATT_OT_matte_people

    class Props:
        def is_property_set(self, name):
            return name in props

    class Driver:
        execute = cls.execute
        modal = cls.modal
        cancel = cls.cancel
        _begin = cls._begin
        _end = cls._end
        _show = cls._show
        _stop_ui = cls._stop_ui
        _timer = None
        _run = None

        def __init__(self):
            self.reports = []
            self.properties = Props()
            for name in ("source", "image", "clip", "guidance", "mask", "index_path", "frame_start",
                         "frame_end", "output", "overwrite", "propagate", "carry_detections", "detect_every",
                         "setup_compositor"):
                default = {"source": "AUTO", "guidance": "AUTO", "frame_start": 0, "frame_end": 0,
                           "overwrite": False, "propagate": False, "carry_detections": False, "detect_every": 0,
                           "setup_compositor": True}.get(name, "")
                setattr(self, name, props.get(name, default))

        def report(self, level, message):
            self.reports.append((set(level).pop(), message))

    return Driver()


def tick_until(bpy, op, condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    result = None
    while time.monotonic() < deadline:
        result = op.modal(bpy.context, Event("TIMER"))
        if condition(result):
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out; last result {result}, state {op._run.stage.state}")


# --------------------------------------------------------------------------- the Mask editor


def mask_editor(bpy, mask, layer, frame, operator="shape_key_insert"):
    """What the Mask editor's I key (Insert Shape Key) or Alt+I (Clear Shape Key) does:
    on the layer whose points are selected, at ``frame`` (the current frame: going there
    would evaluate the animation and undo an edit not keyed yet)."""
    assert bpy.context.scene.frame_current == frame
    window = bpy.context.window
    area = window.screen.areas[0]
    saved = area.type
    area.type = "IMAGE_EDITOR"
    space = area.spaces.active
    space.mode, space.mask = "MASK", mask
    for other in mask.layers:
        for spline in other.splines:
            for point in spline.points:
                point.select = other == layer
    region = next(r for r in area.regions if r.type == "WINDOW")
    try:
        with bpy.context.temp_override(window=window, area=area, region=region):
            assert getattr(bpy.ops.mask, operator)() == {"FINISHED"}
    finally:
        area.type = saved


# --------------------------------------------------------------------------- data


W, H = 64, 48
# Two people as rectangles in pixel rows (top-down) and columns: (row0, row1, col0, col1)
PEOPLE_BOXES = {1: (8, 40, 6, 22), 2: (10, 44, 38, 58)}
NOBODY = (2, 30)  # (row, col): a pixel nobody covers


def write_png_rgb(path: str, width: int, height: int, pixel) -> None:
    """A tiny RGB PNG (pure Python) for plates."""
    import struct
    import zlib

    raw = bytearray()
    for y in range(height):
        raw.append(0)
        for x in range(width):
            raw += bytes(pixel(x, y))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(bytes(raw))) + chunk(b"IEND", b""))


def person_at(x: int, y: int, frame: int = 1) -> int:
    for pid, (r0, r1, c0, c1) in PEOPLE_BOXES.items():
        if r0 <= y < r1 and c0 <= x < c1:
            return pid
    return 0


def make_plate_sequence(folder, frames=(1, 2, 3), start_number=None) -> str:
    """plate.0001.png .. plate.0003.png: two bright 'people' on a dark ground; returns
    the first file's path."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for frame in frames:
        number = frame if start_number is None else start_number + frame - frames[0]

        def pixel(x, y, frame=frame):
            pid = person_at(x, y)
            return (200, 150, 120) if pid == 1 else (120, 160, 210) if pid == 2 else (20, 30 + frame, 25)

        path = os.path.join(folder, f"plate.{number:04d}.png")
        write_png_rgb(path, W, H, pixel)
        paths.append(path)
    return paths[0]


def load_plate(bpy, first_path: str):
    """The plate as a Blender image sequence."""
    image = bpy.data.images.load(first_path)
    image.source = "SEQUENCE"
    return image


def box_mask(bpy, name: str = "People", labels=None):
    """A Mask datablock with one rectangular layer per person of PEOPLE_BOXES (mask space),
    named ``labels`` (else Blender's own "MaskLayer", "MaskLayer.001", which name nobody)."""
    mask = bpy.data.masks.new(name)
    for pid, (r0, r1, c0, c1) in PEOPLE_BOXES.items():
        layer = mask.layers.new(name=labels[pid - 1]) if labels else mask.layers.new()
        spline = layer.splines.new()
        spline.points.add(3)
        # pixel edges -> mask space (x over the width; y up, scaled to the width for W > H)
        corners = [(c0, r0), (c1, r0), (c1, r1), (c0, r1)]
        for point, (px, py) in zip(spline.points, corners):
            fx, fy = px / W, 1.0 - py / H
            mx, my = fx, (fy - 0.5) * (H / W) + 0.5
            point.co = (mx, my)
            point.handle_left_type = point.handle_right_type = "VECTOR"
            point.handle_left = point.handle_right = (mx, my)
        spline.use_cyclic = True
        spline.use_fill = True
    return mask


def read_exr_channels(path: str) -> dict:
    """Every channel of every part of an EXR file: name -> 2-D float32 array."""
    import numpy as np
    import OpenEXR

    out = {}
    f = OpenEXR.File(path, separate_channels=True)
    for part in f.parts:
        for name, channel in part.channels.items():
            out[name] = np.asarray(channel.pixels, dtype=np.float32)
    return out


def read_manifest(path: str) -> dict:
    import OpenEXR

    f = OpenEXR.File(path, header_only=True)
    return json.loads(f.header()["instmatt_manifest"])


def write_matte_exrs(folder, frames=(1, 2, 3), people=2, value=lambda pid, frame: 1.0, labels=None) -> str:
    """EXR files in the layout of docs/protocol.md (``labels``: the manifest's); returns the frame pattern."""
    import numpy as np
    import OpenEXR

    os.makedirs(folder, exist_ok=True)
    for frame in frames:
        channels = {}
        for pid in range(1, people + 1):
            a = np.zeros((H, W), np.float16)
            r0, r1, c0, c1 = PEOPLE_BOXES[pid]
            a[r0:r1, c0:c1] = value(pid, frame)
            channels[f"person_{pid:02d}.A"] = a
        if not channels:
            channels = {"A": np.zeros((H, W), np.float16)}
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "instmatt_manifest": json.dumps({"people": [f"person_{p:02d}" for p in range(1, people + 1)],
                                                   "frame": frame, "source": "test", "weights": None,
                                                   "settings": {}, **({"labels": labels} if labels else {})})}
        OpenEXR.File(header, channels).write(os.path.join(folder, f"instmatt.{frame:04d}.exr"))
    return os.path.join(folder, "instmatt.####.exr")


def render_outputs(bpy, scene, tree, sockets: dict, out_dir: str) -> dict:
    """Render the scene's frame range through a File Output node fed by ``sockets``
    (name -> output socket); returns {frame: {name: array}} for float sockets and
    {frame: {name: {channel: array}}} for colour sockets."""
    fo = tree.nodes.new("CompositorNodeOutputFile")
    fo.name = "Test Output"
    fo.format.file_format = "OPEN_EXR_MULTILAYER"
    fo.format.color_depth = "32"
    kinds = {name: ("RGBA" if socket.type == "RGBA" else "FLOAT") for name, socket in sockets.items()}
    if hasattr(fo, "file_output_items"):  # 5.x
        fo.directory = out_dir + os.sep
        fo.file_name = "out_"
        for name, socket in sockets.items():
            fo.file_output_items.new(kinds[name], name)
            tree.links.new(socket, fo.inputs[name])
    else:  # 4.x
        fo.base_path = os.path.join(out_dir, "out_")
        fo.file_slots.clear()
        for name, socket in sockets.items():
            fo.file_slots.new(name)
            tree.links.new(socket, fo.inputs[name])
    try:
        bpy.ops.render.render(animation=True)
    finally:
        tree.nodes.remove(fo)
    results = {}
    for frame in range(scene.frame_start, scene.frame_end + 1):
        path = os.path.join(out_dir, f"out_{frame:04d}.exr")
        channels = read_exr_channels(path)
        frame_result = {}
        for full, array in channels.items():
            layer, _, channel = full.rpartition(".")
            if kinds.get(layer) == "RGBA":
                frame_result.setdefault(layer, {})[channel] = array
            else:
                frame_result[layer] = array
        results[frame] = frame_result
    return results


def render_movie(bpy, scene, image, path_prefix: str) -> str:
    """Encode ``image`` (a plate sequence, frames 1..3) as an H.264 MP4 through the
    compositor; returns the movie's path. The scene's settings are restored."""
    import glob

    saved = (scene.frame_start, scene.frame_end, scene.render.filepath)
    settings = scene.render.image_settings
    saved_format = (getattr(settings, "media_type", None), settings.file_format)
    tree = bpy.data.node_groups.new("movie", "CompositorNodeTree") if hasattr(scene, "compositing_node_group") \
        else None
    if tree is not None:
        previous_tree = scene.compositing_node_group
        scene.compositing_node_group = tree
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
    else:
        scene.use_nodes = True
        tree = scene.node_tree
        out = next(n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite")
    node = tree.nodes.new("CompositorNodeImage")
    node.image = image
    node.frame_duration, node.frame_start, node.frame_offset = 3, 1, 0
    tree.links.new(node.outputs[0], out.inputs[0])
    scene.frame_start, scene.frame_end = 1, 3
    if hasattr(settings, "media_type"):
        settings.media_type = "VIDEO"
    settings.file_format = "FFMPEG"
    scene.render.ffmpeg.format = "MPEG4"
    scene.render.ffmpeg.codec = "H264"
    scene.render.ffmpeg.constant_rate_factor = "LOSSLESS"
    scene.render.filepath = path_prefix
    try:
        bpy.ops.render.render(animation=True)
    finally:
        scene.frame_start, scene.frame_end, scene.render.filepath = saved
        if saved_format[0] is not None:
            settings.media_type = saved_format[0]
        settings.file_format = saved_format[1]
        if hasattr(scene, "compositing_node_group"):
            scene.compositing_node_group = previous_tree
            bpy.data.node_groups.remove(tree)
        else:
            tree.nodes.remove(node)
    (movie,) = glob.glob(path_prefix + "*.mp4")
    return movie
