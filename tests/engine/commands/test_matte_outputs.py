"""What ``instmatt matte`` and ``instmatt serve`` write: output options (compression, depth,
union/background passes), the artist's labels, and how stills and sequences are named."""

from __future__ import annotations

import io
import json
import os
import sys

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.commands.serve import Server
from engine.commands.serve_messages import OPTION_TYPES, Channel
from engine.io import read_manifest, read_person_exr
from engine.settings import MatteSettings

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "io"))
from cryptomatte_decoder import decode  # noqa: E402


def _still(folder, name, people=2, shape=(24, 40), frame_folder="0001"):
    """An image ``name`` and its masks in ``folder/m/<frame_folder>/NN.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / name), np.random.default_rng(1).integers(0, 255, shape + (3,), dtype=np.uint8))
    masks = folder / "m" / frame_folder
    masks.mkdir(parents=True)
    for k in range(people):
        mask = np.zeros(shape, np.uint8)
        mask[4:20, k * shape[1] // people: (k + 1) * shape[1] // people] = 255
        cv2.imwrite(str(masks / f"{k + 1:02d}.png"), mask)
    return folder / name, folder / "m"


def _exr(path):
    return OpenEXR.File(str(path), separate_channels=True)


def test_a_photo_is_not_numbered_from_its_name(matte, tmp_path):
    image, masks = _still(tmp_path, "000000196141.jpg")
    status, err = matte(image, "-o", tmp_path / "out", "--masks", masks, "--png")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["000000196141.exr", "png"]
    assert os.listdir(tmp_path / "out" / "png" / "person_01") == ["000000196141.png"]
    assert read_manifest(tmp_path / "out" / "000000196141.exr")["frame"] == 1


def test_a_still_named_like_a_frame_keeps_its_name(matte, tmp_path):
    # masks made for "frame 2" (the old reading of the name) still guide the still
    image, masks = _still(tmp_path, "hold_02.jpg", frame_folder="0002")
    status, err = matte(image, "-o", tmp_path / "out", "--masks", masks)
    assert status == 0, err
    assert os.listdir(tmp_path / "out") == ["hold_02.exr"]
    ids, _, _ = read_person_exr(tmp_path / "out" / "hold_02.exr")
    assert ids == ["person_01", "person_02"]
    # an output file name is fine for a still
    status, err = matte(image, "-o", tmp_path / "named.exr", "--masks", masks)
    assert status == 0 and (tmp_path / "named.exr").is_file(), err


def test_sequences_keep_their_numbering(matte, tmp_path, small_clip, write_sequence):
    frames, alphas = small_clip
    pattern, masks = write_sequence(frames[:2], alphas[:2], first=1001, name="hold")
    status, err = matte(pattern, "-o", tmp_path / "out", "--masks", masks, "--refine", "none")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["hold.1001.exr", "hold.1002.exr"]
    status, err = matte(os.path.dirname(pattern), "-o", tmp_path / "out2", "--masks", masks, "--refine", "none")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "out2")) == ["hold.1001.exr", "hold.1002.exr"]


def test_output_options_and_labels_from_the_command_line(matte, tmp_path):
    image, masks = _still(tmp_path, "plate.png")
    status, err = matte(image, "-o", tmp_path / "out", "--masks", masks, "--compression", "piz", "--depth", "float",
                        "--no-background", "--label", "person_01=Anna", "--label", "2=Stunt double")
    assert status == 0, err
    path = tmp_path / "out" / "plate.exr"
    exr = _exr(path)
    header, channels = exr.header(), exr.channels()
    assert header["compression"] == OpenEXR.PIZ_COMPRESSION
    assert channels["person_01.A"].pixels.dtype == np.float32
    assert "all_people.A" in channels and "background.A" not in channels
    manifest = read_manifest(path)
    assert manifest["labels"] == {"person_01": "Anna", "person_02": "Stunt double"}
    assert manifest["exr"] == {"compression": "piz", "depth": "float", "union": True, "background": False}
    assert manifest["cryptomatte"]["names"] == {"person_01": "Anna", "person_02": "Stunt double"}
    _, alphas, _ = read_person_exr(path)
    alone = alphas.sum(axis=0) <= 1  # the random test net overlaps people; coverage is normalised there
    for k, name in enumerate(["Anna", "Stunt double"]):
        assert np.abs(decode(path, name) - alphas[k])[alone].max() < 1e-6


@pytest.mark.parametrize("args, needle", [(["--label", "Anna"], "use ID=NAME"),
                                          (["--label", "boss=Anna"], "not a person ID"),
                                          (["--label", "1="], "must be 1-63 characters")])
def test_bad_labels_are_one_line(matte, tmp_path, args, needle):
    image, masks = _still(tmp_path, "plate.png")
    status, err = matte(image, "-o", tmp_path / "out", "--masks", masks, *args)
    assert status == 2
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "out").exists()


def test_serve_takes_the_same_options(tiny_weights, tmp_path):
    assert set(OPTION_TYPES) == set(MatteSettings.names())
    image, masks = _still(tmp_path, "plate.png")
    stream = io.StringIO()
    server = Server(io.BytesIO(), Channel(stream), {"backend": "pytorch", "weights": str(tiny_weights),
                                                    "device": "cpu", "threads": 1, "detector_weights": None})
    request = {"type": "matte", "id": 1, "input": str(image), "output": str(tmp_path / "out"),
               "guidance": {"kind": "masks", "path": str(masks)},
               "options": {"refine": "none", "compression": "dwaa", "depth": "half", "union_pass": False,
                           "labels": {"person_02": "Stunt double"}}}
    server.handle_line(json.dumps(request).encode())
    server.job_thread.join(120)
    server.handle_line(json.dumps(dict(request, id=2, options={"compression": "b44"})).encode())
    events = [json.loads(line) for line in stream.getvalue().splitlines()]
    done = next(event for event in events if event["type"] == "done")
    assert done["written"] == 1, events
    path = tmp_path / "out" / "plate.exr"
    exr = _exr(path)
    assert exr.header()["compression"] == OpenEXR.DWAA_COMPRESSION
    assert "all_people.A" not in exr.channels() and "background.A" in exr.channels()
    manifest = read_manifest(path)
    assert manifest["labels"] == {"person_02": "Stunt double"}
    assert manifest["cryptomatte"]["names"] == {"person_01": "person_01", "person_02": "Stunt double"}
    error = events[-1]
    assert error["type"] == "error" and error["id"] == 2 and "compression" in error["message"]
