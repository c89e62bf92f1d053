"""Bad input: each case ends in one clear line naming the file (exit status 2), or works."""

from __future__ import annotations

import os

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.commands import main
from engine.io import read_person_exr


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


def one_line_error(err: str, *needles: str) -> str:
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def person_masks(root, frames, shape, people=1):
    for frame in frames:
        folder = root / f"{frame:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(people):
            mask = np.zeros(shape, np.uint8)
            mask[shape[0] // 4: 3 * shape[0] // 4, k * shape[1] // people: (k + 1) * shape[1] // people] = 255
            cv2.imwrite(str(folder / f"{k + 1:02d}.png"), mask)
    return root


def test_truncated_png(matte, tmp_path):
    cv2.imwrite(str(tmp_path / "full.png"), np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "plate.png").write_bytes(data[: len(data) // 2])
    status, err = matte(tmp_path / "plate.png", "-o", tmp_path / "out", "--masks", person_masks(tmp_path / "m", [1], (40, 40)))
    assert status == 2
    one_line_error(err, str(tmp_path / "plate.png"), "cannot be decoded")
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_zero_byte_file(matte, tmp_path):
    (tmp_path / "plate.exr").write_bytes(b"")
    status, err = matte(tmp_path / "plate.exr", "-o", tmp_path / "out", "--masks", person_masks(tmp_path / "m", [1], (4, 4)))
    assert status == 2
    one_line_error(err, str(tmp_path / "plate.exr"), "empty file (0 bytes)")


def test_bad_frame_in_a_sequence_is_reported_and_the_rest_is_done(matte, tmp_path):
    rgb = np.full((24, 32, 3), 90, np.uint8)
    for frame in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"s.{frame:04d}.png"), rgb)
    (tmp_path / "s.0002.png").write_bytes(b"\x89PNG garbage")
    status, err = matte(tmp_path / "s.####.png", "-o", tmp_path / "out", "--masks",
                        person_masks(tmp_path / "m", [1, 2, 3], (24, 32)))
    assert status == 2
    one_line_error(err, "s.0002.png")
    assert sorted(os.listdir(tmp_path / "out")) == ["s.0001.exr", "s.0003.exr"]


def test_wrong_mask_size(matte, tmp_path):
    cv2.imwrite(str(tmp_path / "plate.png"), np.zeros((30, 40, 3), np.uint8))
    masks = person_masks(tmp_path / "m", [1], (20, 40))
    status, err = matte(tmp_path / "plate.png", "-o", tmp_path / "out", "--masks", masks)
    assert status == 2
    one_line_error(err, str(masks / "0001" / "01.png"), "mask is 40x20 but the frame is 40x30")


def test_mask_folder_with_fewer_frames(matte, tmp_path):
    for frame in range(1, 6):
        cv2.imwrite(str(tmp_path / f"p.{frame:04d}.png"), np.zeros((16, 16, 3), np.uint8))
    masks = person_masks(tmp_path / "m", [1, 2, 3], (16, 16))
    status, err = matte(tmp_path / "p.####.png", "-o", tmp_path / "out", "--masks", masks)
    assert status == 2
    one_line_error(err, str(masks), "masks for 3 of 5 frames", "0004, 0005")
    assert not (tmp_path / "out").exists()  # checked before any work


def test_no_people_is_not_an_error(matte, tmp_path):
    cv2.imwrite(str(tmp_path / "empty.png"), np.zeros((20, 30, 3), np.uint8))
    (tmp_path / "m" / "0001").mkdir(parents=True)  # a frame folder with nobody in it
    status, err = matte(tmp_path / "empty.png", "-o", tmp_path / "out", "--masks", tmp_path / "m")
    assert status == 0, err
    exr = OpenEXR.File(str(tmp_path / "out" / "empty.exr"), separate_channels=True)
    assert not [name for name in exr.channels() if name.startswith("person_")]
    assert not exr.channels()["all_people.A"].pixels.any()
    assert '"people": []' in exr.header()["instmatt_manifest"]


def test_no_people_from_the_detector(matte, tmp_path, random_detector_weights):
    cv2.imwrite(str(tmp_path / "street.png"), np.full((40, 56, 3), 128, np.uint8))
    status, err = matte(tmp_path / "street.png", "-o", tmp_path / "out", "--detector-weights",
                        random_detector_weights, "--detector-size", "128")
    assert status == 0, err
    assert "people: none" in err
    ids, alphas, manifest = read_person_exr(tmp_path / "out" / "street.exr")
    assert ids == [] and manifest["guidance"]["kind"] == "detector"


def test_detector_finds_and_tracks_people(matte, tmp_path, person_detector_weights):
    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    for frame in (1, 2):
        cv2.imwrite(str(tmp_path / f"crowd.{frame:04d}.png"), rgb)
    status, err = matte(tmp_path / "crowd.####.png", "-o", tmp_path / "out", "--detector-weights",
                        person_detector_weights, "--detector-size", "128", "--min-area", "0.1", "--refine", "none")
    assert status == 0, err
    first, _, manifest = read_person_exr(tmp_path / "out" / "crowd.0001.exr")
    second, _, _ = read_person_exr(tmp_path / "out" / "crowd.0002.exr")
    assert first and first == second  # the same frame twice: the same people, the same IDs
    assert set(manifest["scores"]) == set(first)


def test_missing_detector_weights_offline(matte, tmp_path, isolated_torch_hub):
    cv2.imwrite(str(tmp_path / "plate.png"), np.zeros((8, 8, 3), np.uint8))
    status, err = matte(tmp_path / "plate.png", "-o", tmp_path / "out")
    assert status == 2
    one_line_error(err, "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", str(isolated_torch_hub), "--masks",
                   "`instmatt models fetch detector`")


def test_thirty_people(matte, tmp_path):
    height, width = 48, 150
    cv2.imwrite(str(tmp_path / "crowd.png"), np.full((height, width, 3), 120, np.uint8))
    index = np.zeros((height, width), np.uint8)
    for k in range(30):
        index[8:40, 5 * k: 5 * k + 4] = k + 1
    cv2.imwrite(str(tmp_path / "ids.png"), index)
    status, err = matte(tmp_path / "crowd.png", "-o", tmp_path / "out", "--index", tmp_path / "ids.png")
    assert status == 0, err
    ids, alphas, _ = read_person_exr(tmp_path / "out" / "crowd.exr")
    assert ids == [f"person_{k:02d}" for k in range(1, 31)] and alphas.shape == (30, height, width)


def test_huge_frame_is_downscaled_by_max_side(matte, tmp_path):
    height, width = 4320, 7680  # 8K UHD
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[1000:3500, 3000:4500] = (200, 150, 120)
    cv2.imwrite(str(tmp_path / "eight_k.jpg"), rgb)
    mask = np.zeros((height, width), np.uint8)
    mask[1000:3500, 3000:4500] = 255
    (tmp_path / "m" / "0001").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "m" / "0001" / "01.png"), mask)
    status, err = matte(tmp_path / "eight_k.jpg", "-o", tmp_path / "out", "--masks", tmp_path / "m",
                        "--max-side", "384", "--refine", "none")
    assert status == 0, err
    ids, alphas, _ = read_person_exr(tmp_path / "out" / "eight_k.exr")
    assert alphas.shape == (1, height, width)  # full resolution out, pixel for pixel


@pytest.mark.parametrize("layout", ["grey", "rgba", "grey16"])
def test_grey_and_rgba_inputs(matte, tmp_path, layout):
    rng = np.random.default_rng(0)
    if layout == "grey":
        image = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    elif layout == "grey16":
        image = rng.integers(0, 65536, (24, 32), dtype=np.uint16)
    else:
        image = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    status, err = matte(tmp_path / "in.png", "-o", tmp_path / "out", "--masks",
                        person_masks(tmp_path / "m", [1], (24, 32)), "--png")
    assert status == 0, err
    png = cv2.imread(str(tmp_path / "out" / "png" / "person_01" / "in.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (24, 32)
    assert png.dtype == (np.uint16 if layout == "grey16" else np.uint8)


def test_colour_index_image_and_unknown_input_type(matte, tmp_path):
    cv2.imwrite(str(tmp_path / "plate.png"), np.zeros((8, 8, 3), np.uint8))
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[0, 0] = (10, 20, 30)
    cv2.imwrite(str(tmp_path / "ids.png"), colour)
    status, err = matte(tmp_path / "plate.png", "-o", tmp_path / "out", "--index", tmp_path / "ids.png")
    assert status == 2
    one_line_error(err, str(tmp_path / "ids.png"), "must be grey")
    (tmp_path / "notes.txt").write_text("hello")
    status, err = matte(tmp_path / "notes.txt", "-o", tmp_path / "out")
    assert status == 2
    one_line_error(err, "notes.txt", "unsupported input type")


def test_bad_weights_file(capsys, tmp_path):
    cv2.imwrite(str(tmp_path / "plate.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "m" / "0001").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "m" / "0001" / "01.png"), np.full((8, 8), 255, np.uint8))
    (tmp_path / "w.safetensors").write_bytes(b"")
    status = main(["matte", str(tmp_path / "plate.png"), "-o", str(tmp_path / "out"), "--masks", str(tmp_path / "m"),
                   "--weights", str(tmp_path / "w.safetensors"), "--backend", "pytorch", "--threads", "1", "-q"])
    assert status == 2
    one_line_error(capsys.readouterr().err, "w.safetensors", "empty")
