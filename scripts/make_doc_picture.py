"""Make docs/img/blender_example.png: the add-on's example compositor set-up, rendered.

    .venv-blender/bin/python scripts/make_doc_picture.py [OUT.png]

A generated plate with two figures, a Mask datablock with one layer per person, the
"Matte People" operator against the protocol stand-in (fake_engine.py, whose mattes are
the masks), the group's Feather control, and the compositor rendered headless; the tiles
are the plate, person_01, person_02, All People and the example (person 1 over a new
background). Not a test: a documentation helper.
"""

from __future__ import annotations

import atexit
import math
import os
import shutil
import struct
import sys
import tempfile
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = os.path.join(REPO, "tests", "blender_instmatt")  # the add-on's test helpers and fake_engine.py
os.environ["BLENDER_USER_RESOURCES"] = _USER = tempfile.mkdtemp(prefix="instmatt_doc_user_")

import bpy  # noqa: E402
import numpy as np  # noqa: E402

W, H = 320, 200
FIGURES = [  # (centre x, head y, scale, colour): head + shoulders, in pixels (y down)
    (100, 58, 1.0, (214, 160, 120)),
    (215, 70, 0.9, (120, 170, 220)),
]


def plate_pixels() -> np.ndarray:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    rgb = np.stack([40 + 30 * x / W, 50 + 25 * y / H, 60 + 10 * np.sin(x / 9.0)], axis=-1)
    rgb += 6 * ((x.astype(int) // 16 + y.astype(int) // 16) % 2)[..., None]  # a tiled wall
    for cx, hy, s, colour in FIGURES:
        head = (x - cx) ** 2 / (22 * s) ** 2 + (y - hy) ** 2 / (27 * s) ** 2 <= 1.0
        body = ((x - cx) ** 2 / (48 * s) ** 2 + (y - (hy + 95 * s)) ** 2 / (70 * s) ** 2 <= 1.0) & (y > hy + 22 * s)
        hair = head & (y < hy - 8 * s)
        rgb[head | body] = colour
        rgb[hair] = (70, 45, 30)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_png(path: str, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[row].tobytes() for row in range(h))

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                 + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _ellipse(layer, cx, cy, rx, ry, count=8):
    """A closed Bezier ellipse (pixel centre and radii) with automatic handles."""
    spline = layer.splines.new()
    spline.points.add(count - 1)
    for k, point in enumerate(spline.points):
        a = 2 * math.pi * k / count
        px, py = cx + rx * math.cos(a), cy + ry * math.sin(a)
        point.handle_left_type = point.handle_right_type = "AUTO"
        point.co = (px / W, ((1.0 - py / H) - 0.5) * (H / W) + 0.5)
    spline.use_cyclic = spline.use_fill = True


def figure_mask(mask, name, cx, hy, s):
    """One mask layer per person, roughly as an artist would draw it: head and body."""
    layer = mask.layers.new(name=name)
    _ellipse(layer, cx, hy, 23 * s, 28 * s)
    _ellipse(layer, cx, hy + 95 * s, 49 * s, 71 * s)


def main(out_path: str) -> None:
    sys.path.insert(0, TESTS)
    from blender_helpers import FAKE_ENGINE, enable_extension, render_outputs

    work = tempfile.mkdtemp(prefix="instmatt_doc_")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon, cleanup = enable_extension(bpy, "instmatt_doc", "doc")
    try:
        prefs = bpy.context.preferences.addons[addon.__package__].preferences
        prefs.engine_mode = "COMMAND"
        prefs.engine_command = f'"{sys.executable}" "{FAKE_ENGINE}"'
        scene = bpy.context.scene
        scene.frame_start = scene.frame_end = 1
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.render.filepath = os.path.join(work, "render", "f_")
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        scene.collection.objects.link(camera)
        scene.camera = camera
        scene.instmatt.output_dir = os.path.join(work, "mattes") + os.sep
        os.makedirs(os.path.join(work, "plate"))
        write_png(os.path.join(work, "plate", "plate.0001.png"), plate_pixels())
        plate = bpy.data.images.load(os.path.join(work, "plate", "plate.0001.png"))
        plate.source = "SEQUENCE"
        mask = bpy.data.masks.new("People")
        for index, (cx, hy, s, _) in enumerate(FIGURES, start=1):
            figure_mask(mask, f"person {index}", cx, hy, s)
        assert bpy.ops.instmatt.matte_people(image=plate.name, mask=mask.name) == {"FINISHED"}

        tree, _ = addon.compositor.scene_tree(scene, create=False)
        nodes = {n.name.split(" [")[0]: n for n in tree.nodes if n.name.startswith("InstMatt")}
        group = nodes["InstMatt People"]
        if "Feather" in group.inputs:
            group.inputs["Feather"].default_value = 3.0
        nodes["InstMatt Background"].outputs[0].default_value = (0.9, 0.45, 0.05, 1.0)
        out = render_outputs(bpy, scene, tree, {
            "plate": nodes["InstMatt Plate"].outputs[0], "p1": group.outputs["person_01"],
            "p2": group.outputs["person_02"], "all": group.outputs["All People"],
            "over": nodes["InstMatt Over Background"].outputs[0]}, os.path.join(work, "out"))[1]
    finally:
        cleanup()
        atexit.register(shutil.rmtree, work, True)
        atexit.register(shutil.rmtree, _USER, True)

    def srgb(linear):
        linear = np.clip(linear, 0.0, 1.0)
        return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)

    def colour(rgba):
        return srgb(np.stack([rgba["R"], rgba["G"], rgba["B"]], axis=-1))

    def grey(alpha):
        return np.repeat(np.clip(alpha, 0, 1)[..., None], 3, axis=-1)

    tiles = [colour(out["plate"]), grey(out["p1"]), grey(out["p2"]), grey(out["all"]), colour(out["over"])]
    gap = np.ones((H, 6, 3), np.float32)
    sheet = np.concatenate([t if i == 0 else np.concatenate([gap, t], axis=1) for i, t in enumerate(tiles)],
                           axis=1)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    write_png(out_path, np.round(sheet * 255).astype(np.uint8))
    print(f"wrote {out_path} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "docs", "img", "blender_example.png"))
