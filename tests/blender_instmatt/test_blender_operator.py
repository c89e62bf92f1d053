"""The "Matte People" operator against the protocol stand-in (tests/blender_instmatt/fake_engine.py).

The stand-in returns each person's mask as its alpha, so these tests know the exact
answer; test_blender_e2e.py runs the same path against the real engine.
"""

from __future__ import annotations

import glob
import os
import time
import types

import numpy as np
import pytest
from blender_helpers import (
    NOBODY,
    PEOPLE_BOXES,
    Event,
    H,
    W,
    box_mask,
    load_plate,
    operator_driver,
    read_exr_channels,
    read_manifest,
    render_outputs,
    tick_until,
)


def _temp_dirs():
    import tempfile

    return set(glob.glob(os.path.join(tempfile.gettempdir(), "instmatt_masks_*"))) | \
        set(glob.glob(os.path.join(tempfile.gettempdir(), "instmatt_src_*")))


@pytest.fixture
def shot(bpy, addon, scene, plate_sequence):
    plate = load_plate(bpy, plate_sequence)
    mask = box_mask(bpy)
    return types.SimpleNamespace(plate=plate, mask=mask, scene=scene)


def _output_files(scene):
    # the matte files (not the keyframes/ folder that propagation keeps beside them)
    return sorted(p for p in glob.glob(os.path.join(scene.instmatt.output_dir, "*", "*")) if os.path.isfile(p))


def test_sync_run_with_masks(bpy, addon, fake_engine, shot, tmp_path):
    before = _temp_dirs()
    result = bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name)
    assert result == {"FINISHED"}
    settings = shot.scene.instmatt
    assert settings.last_people == "person_01, person_02"
    files = _output_files(shot.scene)
    assert [os.path.basename(f) for f in files] == ["instmatt.0001.exr", "instmatt.0002.exr", "instmatt.0003.exr"]
    for frame, path in enumerate(files, start=1):
        channels = read_exr_channels(path)
        assert sorted(channels) == ["person_01.A", "person_02.A"]
        assert read_manifest(path)["frame"] == frame
        for pid, (r0, r1, c0, c1) in PEOPLE_BOXES.items():
            expected = np.zeros((H, W), np.float32)
            expected[r0:r1, c0:c1] = 1.0
            np.testing.assert_array_equal(channels[f"person_{pid:02d}.A"], expected)
    assert _temp_dirs() == before  # mask PNGs removed
    # compositor: one Image node, one socket per person, the group, rendered alpha
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    (mattes,) = [n for n in tree.nodes if n.name.startswith("InstMatt Mattes")]
    assert addon.compositor.people_sockets(mattes) == ["person_01", "person_02"]
    (group,) = [n for n in tree.nodes if n.name.startswith("InstMatt People")]
    out = render_outputs(bpy, shot.scene, tree, {"a": group.outputs["person_01"], "b": group.outputs["person_02"],
                                                 "all": group.outputs["All People"]}, str(tmp_path / "r"))
    for frame in (1, 2, 3):
        for key, pid in (("a", 1), ("b", 2)):
            r0, r1, c0, c1 = PEOPLE_BOXES[pid]
            assert out[frame][key][(r0 + r1) // 2, (c0 + c1) // 2] == pytest.approx(1.0, abs=1e-3)
            assert out[frame][key][NOBODY] == 0.0
        assert out[frame]["all"][NOBODY] == 0.0


def test_warm_engine_is_reused_and_rerun_resumes(bpy, addon, fake_engine, shot):
    assert bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name, frame_end=2) == {"FINISHED"}
    engine = addon.client.shared.current_engine()
    pid = engine.pid
    mtimes = {f: os.path.getmtime(f) for f in _output_files(shot.scene)}
    assert len(mtimes) == 2
    time.sleep(0.05)
    assert bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name) == {"FINISHED"}
    assert addon.client.shared.current_engine().pid == pid
    files = _output_files(shot.scene)
    assert len(files) == 3
    assert all(os.path.getmtime(f) == mtimes[f] for f in mtimes)  # skipped, not recomputed
    # the Image node covers every frame on disk
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    (mattes,) = [n for n in tree.nodes if n.name.startswith("InstMatt Mattes")]
    assert mattes.frame_duration == 3


def test_engine_that_died_is_restarted(bpy, addon, fake_engine, shot):
    fake_engine("crash")
    with pytest.raises(RuntimeError) as info:
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name)
    message = str(info.value)
    assert "engine stopped" in message and "exit code 3" in message and "simulated engine crash" in message
    assert addon.run.active_run() is None
    fake_engine("normal")
    assert bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name) == {"FINISHED"}


def test_an_engine_killed_by_a_signal_is_reported_by_that_signal(bpy, addon, fake_engine, shot):
    fake_engine("oom")
    with pytest.raises(RuntimeError) as info:
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name)
    message = str(info.value)
    assert "The engine was killed (SIGKILL), perhaps out of memory" in message, message
    assert "INFO" not in message and "matting 30 people" not in message
    assert addon.prefs.engine_log_path() in message
    # the log button shows what the engine said before it died
    assert bpy.ops.instmatt.open_engine_log() == {"FINISHED"}
    text = bpy.data.texts["InstMatt Engine Log"].as_string()
    assert "matting 30 people" in text and "=== " in text and "fake_engine.py" in text
    fake_engine("normal")
    assert bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name) == {"FINISHED"}


def test_open_engine_log_without_a_log_says_so(bpy, addon, prefs, monkeypatch, tmp_path):
    monkeypatch.setattr(addon.prefs, "engine_log_path", lambda: str(tmp_path / "none" / "engine.log"))
    assert bpy.ops.instmatt.open_engine_log() == {"CANCELLED"}


@pytest.mark.parametrize("how, expected", [
    ("missing", "Engine Python not found: /nonexistent/instmatt/python"),
    ("exit-on-start", "No module named 'torch'"),
    ("bad-protocol", "protocol 99"),
])
def test_engine_that_cannot_start_gives_a_clear_report(bpy, addon, prefs, fake_engine, shot, how, expected):
    if how == "missing":
        prefs.engine_mode = "PYTHON"
        prefs.engine_python = "/nonexistent/instmatt/python"
    else:
        fake_engine(how)
    before = _temp_dirs()
    with pytest.raises(RuntimeError) as info:
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name)
    assert expected in str(info.value)
    assert addon.run.active_run() is None
    assert _temp_dirs() == before
    assert _output_files(shot.scene) == []
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    assert tree is None or not [n for n in tree.nodes if n.name.startswith("InstMatt")]


def test_engine_start_timeout(bpy, addon, prefs, fake_engine, shot):
    fake_engine("no-hello")
    prefs.start_timeout = 5.0
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start within 5 s"):
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name)
    assert time.monotonic() - t0 < 20
    assert not addon.client.shared.current_engine().alive()


def test_bad_requests_are_reported(bpy, addon, fake_engine, shot):
    with pytest.raises(RuntimeError, match="No mask named 'Nobody'"):
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask="Nobody")
    with pytest.raises(RuntimeError, match="No image named 'nothing'"):
        bpy.ops.instmatt.matte_people(image="nothing")
    with pytest.raises(RuntimeError, match="only 1-3 exist"):
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name, frame_start=2, frame_end=5)


def test_render_result_source_with_nobody(bpy, addon, fake_engine, shot, tmp_path):
    # render something through the compositor first so that Render Result has pixels
    tree, _ = addon.compositor.scene_tree(shot.scene)
    node = tree.nodes.new("CompositorNodeImage")
    node.image = shot.plate
    if hasattr(shot.scene, "compositing_node_group"):
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
        tree.links.new(node.outputs[0], out.inputs[0])
    bpy.ops.render.render()
    before = _temp_dirs()
    assert bpy.ops.instmatt.matte_people(source="RENDER", guidance="DETECTOR") == {"FINISHED"}
    assert _temp_dirs() == before  # the saved render is gone
    (path,) = _output_files(shot.scene)
    assert list(read_exr_channels(path)) == ["A"]  # nobody: one all-zero bare A channel
    assert shot.scene.instmatt.status.endswith("nobody found")


# --------------------------------------------------------------------------- modal


def test_modal_progress_and_finish(bpy, addon, fake_engine, shot):
    fake_engine("normal", delay=0.3)
    op = operator_driver(addon, image=shot.plate.name, mask=shot.mask.name)
    op._run = op._begin(bpy.context)
    assert op._run is not None and addon.run.active_run() is op._run
    # a second run is refused while this one is going
    with pytest.raises(RuntimeError, match="already running"):
        bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name)
    # other events pass through: the UI stays usable
    assert op.modal(bpy.context, Event("MOUSEMOVE")) == {"PASS_THROUGH"}
    seen = []

    def progressed(result):
        seen.append(shot.scene.instmatt.status)
        return op._run.job.done_count >= 1

    tick_until(bpy, op, progressed)
    assert any("1/3 frames" in s and "left" in s and "Esc to cancel" in s for s in seen), seen
    # the engine's note (the stand-in's: which keyframes it propagates from) is in the progress text
    assert any("(3 frames from keyframes [1])" in s for s in seen), seen
    result = tick_until(bpy, op, lambda r: r != {"PASS_THROUGH"})
    assert result == {"FINISHED"}
    done = "InstMatt: 3 frames matted, 2 people: person_01, person_02; propagated from Mask 'People' keyframe 1"
    assert ("INFO", done) in op.reports
    assert ("INFO", "InstMatt: 3 frames from keyframes [1]") in op.reports
    assert addon.run.active_run() is None


def test_modal_cancel_leaves_no_partial_files(bpy, addon, fake_engine, shot):
    fake_engine("normal", delay=0.6)
    before = _temp_dirs()
    op = operator_driver(addon, image=shot.plate.name, mask=shot.mask.name)
    op._run = op._begin(bpy.context)
    tick_until(bpy, op, lambda r: op._run.job.done_count >= 1)
    assert op.modal(bpy.context, Event("ESC", "PRESS")) in ({"RUNNING_MODAL"}, {"CANCELLED"})
    result = tick_until(bpy, op, lambda r: r != {"PASS_THROUGH"}) if not op._run.closed else {"CANCELLED"}
    assert result == {"CANCELLED"}
    assert any(level == "WARNING" and "cancelled after" in msg for level, msg in op.reports), op.reports
    # only whole frames are left (kept so that a re-run resumes), nothing temporary
    files = _output_files(shot.scene)
    assert 1 <= len(files) < 3
    for path in files:
        assert path.endswith(".exr") and ".tmp" not in path
        assert sorted(read_exr_channels(path)) == ["person_01.A", "person_02.A"]
    assert _temp_dirs() == before
    # Blender is clean: no run, no InstMatt nodes, status says so
    assert addon.run.active_run() is None
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    assert tree is None or not [n for n in tree.nodes if n.name.startswith("InstMatt")]
    assert shot.scene.instmatt.status == "Cancelled"
    # the engine stays warm, and a re-run resumes and completes
    engine = addon.client.shared.current_engine()
    assert engine.alive()
    fake_engine("normal", delay=0.0)  # a different command restarts the engine
    assert bpy.ops.instmatt.matte_people(image=shot.plate.name, mask=shot.mask.name) == {"FINISHED"}
    assert len(_output_files(shot.scene)) == 3


def test_modal_second_escape_kills_a_stuck_engine(bpy, addon, fake_engine, shot):
    fake_engine("normal", delay=5.0)
    op = operator_driver(addon, image=shot.plate.name, mask=shot.mask.name)
    op._run = op._begin(bpy.context)
    tick_until(bpy, op, lambda r: op._run.job.state == "RUNNING")
    op.modal(bpy.context, Event("ESC", "PRESS"))
    assert op._run.job.state == "CANCELLING"
    t0 = time.monotonic()
    result = op.modal(bpy.context, Event("ESC", "PRESS"))
    assert result == {"CANCELLED"} and time.monotonic() - t0 < 10
    engine = addon.client.shared.current_engine()
    assert not engine.alive()
    assert addon.run.active_run() is None
    assert [p for p in _output_files(shot.scene) if not p.endswith(".exr")] == []


def test_blender_cancelling_the_modal_stops_the_job(bpy, addon, fake_engine, shot):
    fake_engine("normal", delay=0.5)
    op = operator_driver(addon, image=shot.plate.name, mask=shot.mask.name)
    op._run = op._begin(bpy.context)
    op.cancel(bpy.context)  # e.g. a file was loaded while it ran
    assert op._run.closed and addon.run.active_run() is None


def test_movie_clip_source_follows_the_clip_start(bpy, addon, fake_engine, shot, tmp_path):
    from blender_helpers import render_movie

    movie = render_movie(bpy, shot.scene, shot.plate, str(tmp_path / "movie" / "plate_"))
    clip = bpy.data.movieclips.load(movie)
    assert tuple(clip.size) == (W, H)
    clip.frame_start = 11  # the clip plays from scene frame 11
    shot.scene.frame_start, shot.scene.frame_end = 11, 13
    assert bpy.ops.instmatt.matte_people(clip=clip.name, mask=shot.mask.name) == {"FINISHED"}
    files = _output_files(shot.scene)
    assert [os.path.basename(f) for f in files] == ["instmatt.0001.exr", "instmatt.0002.exr", "instmatt.0003.exr"]
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    nodes = {n.name.split(" [")[0]: n for n in tree.nodes if n.name.startswith("InstMatt")}
    mattes = nodes["InstMatt Mattes"]
    assert (mattes.frame_start, mattes.frame_offset, mattes.frame_duration) == (11, 0, 3)
    assert nodes["InstMatt Plate"].bl_idname == "CompositorNodeMovieClip" and nodes["InstMatt Plate"].clip == clip
    out = render_outputs(bpy, shot.scene, tree, {"a": nodes["InstMatt People"].outputs["person_01"]},
                         str(tmp_path / "r"))
    r0, r1, c0, c1 = PEOPLE_BOXES[1]
    for frame in (11, 12, 13):
        assert out[frame]["a"][(r0 + r1) // 2, (c0 + c1) // 2] == pytest.approx(1.0, abs=1e-3)
        assert out[frame]["a"][NOBODY] == 0.0


def test_load_mattes_wires_existing_files(bpy, addon, shot, tmp_path):
    from blender_helpers import write_matte_exrs

    pattern = write_matte_exrs(str(tmp_path / "farm"))
    assert bpy.ops.instmatt.load_mattes(filepath=pattern, image=shot.plate.name) == {"FINISHED"}
    assert shot.scene.instmatt.last_people == "person_01, person_02"
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    (mattes,) = [n for n in tree.nodes if n.name.startswith("InstMatt Mattes")]
    assert (mattes.frame_start, mattes.frame_offset, mattes.frame_duration) == (1, 0, 3)
    with pytest.raises(RuntimeError, match="no files match"):
        bpy.ops.instmatt.load_mattes(filepath=str(tmp_path / "nothing.####.exr"), image=shot.plate.name)


def test_frames_missing_a_person_are_flagged(bpy, addon, shot, tmp_path):
    """Blender's Image node shows another layer where a frame lacks a person's layer, so
    the image opens the widest frame (all sockets) and the add-on warns."""
    import OpenEXR
    from blender_helpers import write_matte_exrs

    pattern = write_matte_exrs(str(tmp_path / "gappy"))
    path1 = pattern.replace("####", "0001")
    exr = OpenEXR.File(path1, separate_channels=True)
    OpenEXR.File(exr.header(), {"person_01.A": exr.channels()["person_01.A"].pixels}).write(path1)
    paths = {f: pattern.replace("####", f"{f:04d}") for f in (1, 2, 3)}
    widest, people, warning = addon.client.matte_files.inspect_mattes(paths)
    assert widest == 2 and people == ["person_01", "person_02"]
    assert "person_02: 1 frame from 1" in warning and "instead of zero" in warning
    assert bpy.ops.instmatt.load_mattes(filepath=pattern, image=shot.plate.name) == {"FINISHED"}
    tree, _ = addon.compositor.scene_tree(shot.scene, create=False)
    (mattes,) = [n for n in tree.nodes if n.name.startswith("InstMatt Mattes")]
    assert os.path.basename(mattes.image.filepath) == "instmatt.0002.exr"
    assert addon.compositor.people_sockets(mattes) == ["person_01", "person_02"]
    assert (mattes.frame_start, mattes.frame_offset, mattes.frame_duration) == (1, 0, 3)
    _, _, warning = addon.client.matte_files.inspect_mattes({f: p for f, p in paths.items() if f != 1})
    assert warning == ""
