"""client/frames.py: frame patterns and the files on disk that match them."""

from __future__ import annotations

import pytest
from blender_helpers import load_client


@pytest.fixture(scope="module")
def frames(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("frames")


def test_frame_path_and_frames_on_disk(frames, tmp_path):
    pattern = str(tmp_path / "instmatt.####.exr")
    assert frames.frame_path(pattern, 7) == str(tmp_path / "instmatt.0007.exr")
    assert frames.frame_path(pattern, 12345) == str(tmp_path / "instmatt.12345.exr")
    for name in ("instmatt.0007.exr", "instmatt.12345.exr", "instmatt.007.exr", "instmatt.0008.exr.tmp", "other.0009.exr"):
        (tmp_path / name).write_bytes(b"")
    assert frames.frames_on_disk(pattern) == [7, 12345]  # 3 digits are too few, other names do not match
    assert frames.frames_on_disk(str(tmp_path / "missing" / "x.##.png")) == []


@pytest.mark.parametrize("name, numbered, folder", [
    ("hold_0001.jpg", True, "hold"),         # a sequence: no frame number, no extension
    ("plate.1001.exr", True, "plate"),
    ("0001.png", True, "0001"),               # nothing but a number: keep it
    ("hold_02.jpg", False, "hold_02"),       # a still keeps its digits
    ("000000196141.jpg", False, "000000196141"),
    ("take 3.mov", False, "take_3"),
    ("Render Result", False, "Render_Result"),
    ("../../etc", False, "etc"),
])
def test_shot_folders_are_clean(frames, name, numbered, folder):
    assert frames.shot_folder(name, numbered) == folder
