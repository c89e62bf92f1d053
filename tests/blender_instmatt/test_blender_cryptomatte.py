"""Blender's own Cryptomatte node (source Image) reads the CryptoPerson layer of engine EXRs:
picking a person by name renders that person's alpha."""

from __future__ import annotations

import os
import subprocess
import textwrap

import numpy as np
import pytest
from blender_helpers import ENGINE_PYTHON, REPO, read_exr_channels, render_outputs

SIZE = (96, 64)  # width, height

# Runs in the engine's Python: generated people and their masks; then the real engine
# (CLI, shipped weights, mask guidance) writes the EXR; labels are added by the engine's
# own writer.
ENGINE_SCRIPT = textwrap.dedent("""
    import os, subprocess, sys
    import cv2
    import numpy as np
    from engine.data.figures import make_clip
    from engine.io import read_person_exr, write_person_exr

    folder, labelled = sys.argv[1], sys.argv[2] == "1"
    frames, alphas = make_clip(frames=1, height={h}, width={w}, people=3, seed=7)
    cv2.imwrite(os.path.join(folder, "people.png"), np.ascontiguousarray(frames[0][..., ::-1]))
    os.makedirs(os.path.join(folder, "m", "0001"))
    for k, alpha in enumerate(alphas[0]):
        cv2.imwrite(os.path.join(folder, "m", "0001", f"{{k + 1:02d}}.png"), ((alpha > 0.5) * 255).astype(np.uint8))
    subprocess.run([sys.executable, "-m", "engine", "matte", os.path.join(folder, "people.png"), "-o",
                    os.path.join(folder, "out"), "--masks", os.path.join(folder, "m"), "--device", "cpu",
                    "--threads", "1", "-q"], check=True)
    path = os.path.join(folder, "out", sorted(os.listdir(os.path.join(folder, "out")))[0])
    if labelled:
        ids, mattes, manifest = read_person_exr(path)
        write_person_exr(path, mattes, ids, manifest, labels={{"person_02": "Stunt double", "person_03": "Anna"}})
    print(path)
""").format(w=SIZE[0], h=SIZE[1])


def _engine_exr(folder, labelled: bool) -> str:
    if not os.path.isfile(ENGINE_PYTHON):
        pytest.skip(f"the engine's environment is missing ({ENGINE_PYTHON})")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=REPO)
    done = subprocess.run([ENGINE_PYTHON, "-c", ENGINE_SCRIPT, folder, "1" if labelled else "0"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    if done.returncode != 0 and "No module named" in done.stderr:
        pytest.skip("the engine cannot run here: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def _tree(bpy, scene):
    if hasattr(scene, "compositing_node_group"):  # 5.x
        tree = bpy.data.node_groups.new("Cryptomatte test", "CompositorNodeTree")
        scene.compositing_node_group = tree
        return tree
    scene.use_nodes = True
    return scene.node_tree


def _pick(bpy, scene, tmp_path, path, name):
    scene.frame_start = scene.frame_end = 1
    scene.render.resolution_x, scene.render.resolution_y = SIZE
    image = bpy.data.images.load(path, check_existing=True)
    tree = _tree(bpy, scene)
    node = tree.nodes.new("CompositorNodeCryptomatteV2")
    node.source = "IMAGE"
    node.image = image
    assert node.layer_name == "CryptoPerson"
    node.matte_id = name
    result = render_outputs(bpy, scene, tree, {"matte": node.outputs["Matte"]}, str(tmp_path / f"out_{len(name)}"))
    return result[1]["matte"]


def test_cryptomatte_node_picks_person_02_by_id(bpy, scene, tmp_path):
    path = _engine_exr(str(tmp_path), labelled=False)
    channels = read_exr_channels(path)
    alpha = channels["person_02.A"].astype(np.float32)
    assert alpha.max() > 0.5
    matte = _pick(bpy, scene, tmp_path, path, "person_02")
    assert matte.shape == alpha.shape
    assert float(np.abs(matte - alpha).mean()) <= 0.01
    # and it is person 2, not another person or the union
    assert float(np.abs(matte - channels["person_01.A"]).mean()) > 0.05
    assert float(np.abs(matte - channels["all_people.A"]).mean()) > 0.05


def test_cryptomatte_node_picks_people_by_their_labels(bpy, scene, tmp_path):
    path = _engine_exr(str(tmp_path), labelled=True)
    channels = read_exr_channels(path)
    matte = _pick(bpy, scene, tmp_path, path, "Stunt double")
    assert float(np.abs(matte - channels["person_02.A"]).mean()) <= 0.01
    both = _pick(bpy, scene, tmp_path, path, "Stunt double,Anna")
    expected = np.minimum(channels["person_02.A"].astype(np.float32) + channels["person_03.A"], 1.0)
    assert float(np.abs(both - expected).mean()) <= 0.01
