"""client/roto.py: which frames a Mask is rasterised on, and the rasterising as steps of the
running job (no bpy: a write function that records what it was asked)."""

from __future__ import annotations

import os

import pytest
from blender_helpers import load_client


@pytest.fixture(scope="module")
def roto(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("roto")


SHOT = [(f, f + 1000) for f in range(1, 11)]  # scene frames 1-10 = files 1001-1010


def test_plan_rasterises_the_keyframes_inside_the_shot(roto):
    plan = roto.plan_frames(SHOT, {3, 8, 40}, propagate=True)  # 40 is outside the shot
    assert plan.propagate and plan.frames == [(3, 1003), (8, 1008)] and plan.keyframes == [3, 8]
    assert plan.describe() == "keyframes 3, 8"
    # no keyframe in the shot (an unanimated Mask): the first frame is the one keyframe
    plan = roto.plan_frames(SHOT, set(), propagate=True)
    assert plan.propagate and plan.frames == [(1, 1001)] and plan.describe() == "keyframe 1"


@pytest.mark.parametrize("shot, keys, propagate", [
    (SHOT, {3, 8}, False),  # the artist switched it off
    (SHOT, set(range(1, 11)), True),  # keyed on every frame: nothing to propagate
    ([(1, None)], {1}, True),  # a still image
])
def test_plan_without_propagation_rasterises_every_frame(roto, shot, keys, propagate):
    plan = roto.plan_frames(shot, keys, propagate)
    assert not plan.propagate and plan.frames == shot and plan.describe() == ""


def test_rasterising_steps_one_frame_per_tick_and_cancels(roto):
    written, closed = [], []
    clock = iter(range(1000)).__next__  # every clock reading is a second later
    job = roto.Rasterising(SHOT[:4], lambda s, f: written.append(f), lambda: closed.append(True), clock=clock)
    assert job.status_text() == "InstMatt: rasterising masks 0/4  (Esc to cancel)"
    assert job.step(budget_s=0.5) is False and written == [1001]  # one frame spends the budget
    assert job.status_text().startswith("InstMatt: rasterising masks 1/4, ") and job.fraction == 0.25
    assert "s left" in job.status_text()
    job.step(0.5)
    assert written == [1001, 1002] and not closed
    job.cancel()
    assert job.state == job.CANCELLED and closed == [True]
    assert job.step(0.5) is True and written == [1001, 1002]  # nothing after a cancel
    job.cancel()
    assert closed == [True]  # close runs once


def test_rasterising_within_a_budget_does_several_frames_and_reports_failures(roto):
    written = []

    def write(scene, frame):
        if frame == 1004:
            raise OSError("disk full")
        written.append(frame)

    job = roto.Rasterising(SHOT, write, label="keyframe masks")
    assert "keyframe masks 0/10" in job.status_text()
    assert job.step(budget_s=60.0) is True  # a generous budget: everything up to the failure
    assert written == [1001, 1002, 1003]
    assert job.state == job.FAILED and job.error == "rasterising the masks of frame 1004 failed: disk full"
    assert roto.Rasterising([], write).state == "DONE"


def test_put_file_keeps_identical_bytes_and_stale_keyframes_go(roto, tmp_path):
    path = str(tmp_path / "01.png")
    assert roto.put_file(path, b"abc") is True
    os.utime(path, (1, 1))
    assert roto.put_file(path, b"abc") is False and os.path.getmtime(path) == 1  # untouched
    assert roto.put_file(path, b"abd") is True
    with open(path, "rb") as fh:
        assert fh.read() == b"abd"
    assert sorted(os.listdir(tmp_path)) == ["01.png"]  # no temporary file left
    for name in ("1001", "1005", "1009", "notes"):
        (tmp_path / name).mkdir()
    assert roto.remove_stale_keyframes(str(tmp_path), {1005}) == [1001, 1009]
    assert sorted(os.listdir(tmp_path)) == ["01.png", "1005", "notes"]
    assert roto.remove_stale_keyframes(str(tmp_path / "missing"), set()) == []
