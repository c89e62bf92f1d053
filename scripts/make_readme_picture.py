"""Make docs/img/blender_example.png from the real engine on a real-people composite.

    .venv-blender/bin/python scripts/make_readme_picture.py [OUT.png]

Two real people (../shared/data/people: P3M photos, faces blurred) are composited over a
real background (../shared/data/backgrounds) with engine.data's synthesis; this half runs
in the engine's Python (``--composite DIR``). Then, in Blender: a Mask datablock with one
rough polygon layer per person (named as an artist would), the add-on's "Matte People"
operator against the real engine with the shipped weights, and the compositor rendered
headless. Tiles: the plate, each person's alpha, All People, person 1 over a new
background. Reads the shared data only when run; not a test.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
ENGINE_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
SHARED = os.path.join(REPO, "..", "shared", "data")
W, H = 480, 320
LABELS = ["Anna", "Ben"]


def make_composite(folder: str) -> None:
    """(engine's Python) plate.0001.png and the people's outlines as polygons (pixels)."""
    import cv2
    import numpy as np

    sys.path.insert(0, REPO)
    from engine.data.synth import compose, load_backgrounds, load_people

    rng = np.random.default_rng(11)
    people = load_people(os.path.join(SHARED, "people"), max_side=400)
    background = load_backgrounds(os.path.join(SHARED, "backgrounds"), max_side=560)[1][:H, :W]
    composite = compose(rng, people, background, people=2, scale_range=(0.8, 0.95), spread=0.18,
                        mask_strength=None)
    rgb = (np.clip(composite.image, 0, 1) * 255 + 0.5).astype(np.uint8)
    os.makedirs(os.path.join(folder, "plate"), exist_ok=True)
    cv2.imwrite(os.path.join(folder, "plate", "plate.0001.png"), rgb[..., ::-1])
    outlines = []
    for alpha in composite.alphas:  # a quick roto: the largest outline, simplified
        contours, _ = cv2.findContours((alpha > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contour = max(contours, key=cv2.contourArea)
        outlines.append(cv2.approxPolyDP(contour, 3.0, True)[:, 0].tolist())
    with open(os.path.join(folder, "outlines.json"), "w") as fh:
        json.dump(outlines, fh)


def main(out_path: str) -> None:
    os.environ["BLENDER_USER_RESOURCES"] = user = tempfile.mkdtemp(prefix="instmatt_readme_user_")
    import bpy
    import numpy as np

    sys.path.insert(0, os.path.join(REPO, "tests", "blender_instmatt"))
    from blender_helpers import enable_extension, render_outputs

    work = tempfile.mkdtemp(prefix="instmatt_readme_")
    atexit.register(shutil.rmtree, work, True)
    atexit.register(shutil.rmtree, user, True)
    subprocess.run([ENGINE_PYTHON, os.path.abspath(__file__), "--composite", work], cwd=REPO, check=True)
    with open(os.path.join(work, "outlines.json")) as fh:
        outlines = json.load(fh)

    bpy.ops.wm.read_factory_settings(use_empty=True)
    addon, cleanup = enable_extension(bpy, "instmatt_readme", "readme")
    try:
        prefs = bpy.context.preferences.addons[addon.__name__].preferences
        prefs.engine_mode, prefs.engine_python, prefs.start_timeout = "PYTHON", "", 600.0
        scene = bpy.context.scene
        scene.frame_start = scene.frame_end = 1
        scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage = W, H, 100
        scene.render.engine = "BLENDER_WORKBENCH"
        scene.render.filepath = os.path.join(work, "render", "f_")
        camera = bpy.data.objects.new("Camera", bpy.data.cameras.new("Camera"))
        scene.collection.objects.link(camera)
        scene.camera = camera
        scene.instmatt.output_dir = os.path.join(work, "mattes") + os.sep
        plate = bpy.data.images.load(os.path.join(work, "plate", "plate.0001.png"))
        plate.source = "SEQUENCE"
        mask = bpy.data.masks.new("People")
        for label, outline in zip(LABELS, outlines):
            layer = mask.layers.new(name=label)
            spline = layer.splines.new()
            spline.points.add(len(outline) - 1)
            for point, (px, py) in zip(spline.points, outline):
                point.handle_left_type = point.handle_right_type = "VECTOR"
                point.co = (px / W, ((1.0 - py / H) - 0.5) * (H / W) + 0.5)  # mask space: width-normalised
            spline.use_cyclic = spline.use_fill = True
        assert bpy.ops.instmatt.matte_people(image=plate.name, mask=mask.name) == {"FINISHED"}
        hello = addon.client.shared.current_engine().hello
        print("engine:", hello.get("backend"), hello.get("weights"))
        tree, _ = addon.compositor.scene_tree(scene, create=False)
        nodes = {n.name.split(" [")[0]: n for n in tree.nodes if n.name.startswith("InstMatt")}
        group = nodes["InstMatt People"]
        nodes["InstMatt Background"].outputs[0].default_value = (0.9, 0.45, 0.05, 1.0)
        out = render_outputs(bpy, scene, tree, {
            "plate": nodes["InstMatt Plate"].outputs[0], "p1": group.outputs["person_01"],
            "p2": group.outputs["person_02"], "all": group.outputs["All People"],
            "over": nodes["InstMatt Over Background"].outputs[0]}, os.path.join(work, "out"))[1]
    finally:
        addon.client.shared.stop_shared_engine()
        raster = addon.client.raster
        cleanup()

    def srgb(linear):
        linear = np.clip(linear, 0.0, 1.0)
        return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)

    def colour(rgba):
        return srgb(np.stack([rgba["R"], rgba["G"], rgba["B"]], axis=-1))

    def grey(alpha):
        return np.repeat(np.clip(alpha, 0, 1)[..., None], 3, axis=-1)

    tiles = [colour(out["plate"]), grey(out["p1"]), grey(out["p2"]), grey(out["all"]), colour(out["over"])]
    gap = np.ones((H, 6, 3), np.float32)
    sheet = np.concatenate([t if i == 0 else np.concatenate([gap, t], axis=1) for i, t in enumerate(tiles)], axis=1)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    raster.write_png(out_path, np.round(sheet * 255).astype(np.uint8).tobytes(), sheet.shape[1], sheet.shape[0], 3)
    print(f"wrote {out_path} ({sheet.shape[1]}x{sheet.shape[0]})")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--composite"]:
        make_composite(sys.argv[2])
    else:
        main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "docs", "img", "blender_example.png"))
