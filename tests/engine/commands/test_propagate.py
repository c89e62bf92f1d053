"""``instmatt matte --masks KEYS --propagate``: keyframes carried to every frame, manifests
that record where each frame's guidance came from, and reruns that recompute exactly the
frames an edited keyframe drives."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from engine.io import read_manifest, read_person_exr


@pytest.fixture
def keyed_shot(tmp_path, write_sequence):
    """Eight frames of two crossing figures; KEYS holds frame 1 only."""
    figures = pytest.importorskip("engine.data.figures", reason="engine.data.figures is not in this build")
    frames, alphas = figures.make_clip(frames=8, height=64, width=96, people=2, seed=1)
    pattern, masks = write_sequence(frames, alphas)
    keys = tmp_path / "keys"
    shutil.copytree(masks / "0001", keys / "0001")
    return pattern, keys, masks, alphas


def _exr(out, frame):
    return out / f"plate.{frame:04d}.exr"


def test_one_keyframe_guides_every_frame(matte, tmp_path, keyed_shot):
    pattern, keys, _, alphas = keyed_shot
    out = tmp_path / "out"
    status, err = matte(pattern, "-o", out, "--masks", keys, "--propagate")
    assert status == 0, err
    assert "8 frames to compute" in err
    for frame in range(1, 9):
        manifest = read_manifest(_exr(out, frame))
        record = manifest["propagation"]
        assert record["keyframe"] == 1
        assert record["carried_from"] == (None if frame == 1 else frame - 1)
        ids, mattes, _ = read_person_exr(_exr(out, frame))
        assert ids[:2] == ["person_01", "person_02"]
        assert mattes.shape[1:] == alphas.shape[2:]
    status, err = matte(pattern, "-o", out, "--masks", keys, "--propagate")
    assert status == 0 and "every frame is up to date" in err


def test_editing_a_keyframe_recomputes_only_the_frames_it_drives(matte, tmp_path, keyed_shot):
    pattern, keys, masks, _ = keyed_shot
    shutil.copytree(masks / "0006", keys / "0006")
    out = tmp_path / "out"
    assert matte(pattern, "-o", out, "--masks", keys, "--propagate")[0] == 0
    # frames 1-3 follow keyframe 1; 4-8 follow keyframe 6 (the nearer one; a tie goes to the earlier)
    assert [read_manifest(_exr(out, f))["propagation"]["keyframe"] for f in range(1, 9)] == [1, 1, 1, 6, 6, 6, 6, 6]
    before = {f: _exr(out, f).stat().st_mtime_ns for f in range(1, 9)}
    edited = keys / "0006" / "01.png"
    cv2.imwrite(str(edited), cv2.dilate(cv2.imread(str(edited), cv2.IMREAD_GRAYSCALE), np.ones((3, 3), np.uint8)))
    status, err = matte(pattern, "-o", out, "--masks", keys, "--propagate")
    assert status == 0, err
    assert "5 frames recomputed: keyframe 0006 changed" in err
    after = {f: _exr(out, f).stat().st_mtime_ns for f in range(1, 9)}
    assert [f for f in range(1, 9) if after[f] != before[f]] == [4, 5, 6, 7, 8]
    # removing it hands its frames back to keyframe 1
    shutil.rmtree(keys / "0006")
    status, err = matte(pattern, "-o", out, "--masks", keys, "--propagate")
    assert status == 0 and "keyframe 0006 removed" in err
    assert {read_manifest(_exr(out, f))["propagation"]["keyframe"] for f in range(1, 9)} == {1}


def test_keyframes_outside_the_frames_asked_for_are_one_line(matte, tmp_path, keyed_shot):
    pattern, keys, _, _ = keyed_shot
    status, err = matte(pattern, "-o", tmp_path / "out", "--masks", keys, "--propagate", "--frames", "3-5")
    assert status == 2
    assert str(keys) in err and "no keyframe among the frames" in err


def test_propagate_takes_no_id_images(matte, tmp_path, keyed_shot):
    pattern, _, _, _ = keyed_shot
    status, err = matte(pattern, "-o", tmp_path / "out", "--propagate", "--index", tmp_path / "ids.####.png")
    assert status == 2 and "not from ID images" in err


def test_the_detector_as_keyframe_source(matte, tmp_path, keyed_shot, person_detector_weights):
    """--propagate without --masks: the real Mask R-CNN code path (random weights that find
    'people'), every frame written, and a resumed run carrying on from the frame before."""
    pattern, _, _, _ = keyed_shot
    out = tmp_path / "out"
    detector = ["--propagate", "--detect-every", "3", "--detector-weights", person_detector_weights,
                "--detector-size", "64", "--min-area", "0"]
    status, err = matte(pattern, "-o", out, *detector)
    assert status == 0, err
    people = {}
    for frame in range(1, 9):
        manifest = read_manifest(_exr(out, frame))
        assert manifest["guidance"]["propagate"] is True and manifest["guidance"]["detect_every"] == 3
        assert manifest["settings"]["detect_every"] == 3
        record = manifest["propagation"]
        assert record["source"] == "detector" and record["keyframe"] <= frame
        assert record["detected"] == (record["keyframe"] == frame)
        people[frame] = set(manifest["visible"])
    assert read_manifest(_exr(out, 1))["propagation"] == {"source": "detector", "keyframe": 1, "detected": True}
    assert people[1]
    for frame in range(5, 9):
        _exr(out, frame).unlink()
    status, err = matte(pattern, "-o", out, *detector)
    assert status == 0, err
    assert "4 frames written, 4 already there" in err
    assert all(_exr(out, frame).is_file() for frame in range(1, 9))
