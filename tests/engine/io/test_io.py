"""engine.io and engine.io.sources: EXR layout for Blender, atomic writes, every input flavour."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.errors import InputFileError, UserError
from engine.io import (
    MANIFEST_KEY,
    atomic_path,
    linear_to_srgb,
    person_id,
    read_image,
    read_index,
    read_manifest,
    read_mask,
    read_person_exr,
    srgb_to_linear,
    write_person_exr,
    write_png,
)
from engine.io.patterns import (
    extra_pattern,
    format_pattern,
    match_pattern,
    output_pattern,
    parse_frames,
    select_frames,
)
from engine.io.sources import ArraySource, open_source


def _write_exr(path, channels: dict, header: dict | None = None):
    OpenEXR.File(dict(header or {}, compression=OpenEXR.ZIP_COMPRESSION),
                 {k: OpenEXR.Channel(np.ascontiguousarray(v)) for k, v in channels.items()}).write(str(path))


# --- EXR written for Blender --------------------------------------------------------------

def test_person_exr_layout(tmp_path):
    alphas = np.random.default_rng(0).random((2, 6, 9)).astype(np.float32)
    path = write_person_exr(tmp_path / "f.0001.exr", alphas, ["person_01", "person_03"], {"people": ["person_01", "person_03"], "frame": 1})
    exr = OpenEXR.File(str(path), separate_channels=True)
    header = exr.header()
    channels = exr.channels()
    people = [name for name in channels if name.startswith("person_")]
    assert sorted(people) == ["person_01.A", "person_03.A"]
    assert {"all_people.A", "background.A", "CryptoPerson00.R", "CryptoPerson00.A"} <= set(channels)
    for name in people:
        assert channels[name].type() == OpenEXR.HALF
        assert channels[name].pixels.shape == (6, 9)
    assert header["compression"] == OpenEXR.ZIP_COMPRESSION
    assert header["type"] == OpenEXR.scanlineimage
    assert json.loads(header[MANIFEST_KEY])["people"] == ["person_01", "person_03"]
    ids, back, manifest = read_person_exr(path)
    assert ids == ["person_01", "person_03"]
    assert np.abs(back - alphas).max() < 1e-3  # half precision
    assert read_manifest(path)["frame"] == 1
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


def test_exr_without_people_has_empty_passes(tmp_path):
    path = write_person_exr(tmp_path / "empty.exr", np.zeros((0, 5, 7), np.float32), [], {"people": []}, shape=(5, 7))
    channels = OpenEXR.File(str(path), separate_channels=True).channels()
    assert not [name for name in channels if name.startswith("person_")]
    assert channels["all_people.A"].pixels.shape == (5, 7) and not channels["all_people.A"].pixels.any()
    assert channels["background.A"].pixels.min() == 1.0
    assert read_manifest(path)["people"] == []
    ids, alphas, _ = read_person_exr(path)
    assert ids == [] and alphas.shape == (0, 5, 7)


def test_person_ids_must_be_blender_safe(tmp_path):
    assert person_id(3) == "person_03" and person_id(123) == "person_123"
    with pytest.raises(ValueError, match="letters, digits"):
        write_person_exr(tmp_path / "x.exr", np.zeros((1, 2, 2)), ["person.1"])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.exr"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half a file")
            raise RuntimeError("writer died")
    assert os.listdir(tmp_path) == []
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while writing: no partial file either
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.suffix == ".exr"
        tmp.write_bytes(b"done")
    assert target.read_bytes() == b"done" and os.listdir(tmp_path) == ["out.exr"]


# --- reading frames ---------------------------------------------------------------------

def test_read_8bit_16bit_grey_rgba(tmp_path):
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), rgb[..., ::-1])
    frame = read_image(tmp_path / "a.png")
    assert np.array_equal(frame.rgb8, rgb) and frame.pixels.dtype == np.uint8 and not frame.linear

    deep = rgb.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "b.png"), deep[..., ::-1])
    frame = read_image(tmp_path / "b.png")
    assert frame.pixels.dtype == np.uint16 and np.array_equal(frame.rgb8, rgb)

    grey = rgb[..., 0]
    cv2.imwrite(str(tmp_path / "g.png"), grey)
    frame = read_image(tmp_path / "g.png")
    assert frame.rgb8.shape == (5, 7, 3) and np.array_equal(frame.rgb8[..., 2], grey)

    rgba = np.concatenate([rgb, np.full((5, 7, 1), 9, np.uint8)], axis=-1)
    cv2.imwrite(str(tmp_path / "r.png"), rgba[..., [2, 1, 0, 3]])
    frame = read_image(tmp_path / "r.png")
    assert np.array_equal(frame.rgb8, rgb)


def test_read_linear_exr_to_srgb(tmp_path):
    linear = np.array([[0.0, 0.002, 0.18, 1.0, 4.0]], np.float32)
    _write_exr(tmp_path / "lin.exr", {"R": linear, "G": linear, "B": linear})
    frame = read_image(tmp_path / "lin.exr")
    assert frame.linear and frame.pixels.shape == (1, 5, 3)
    expected = np.round(linear_to_srgb(linear) * 255).astype(np.uint8)
    assert np.array_equal(frame.rgb8[..., 0], expected)
    assert frame.rgb8[0, 2, 0] in (117, 118)  # 18 % grey is about 118 in sRGB
    assert frame.rgb8[0, 4, 0] == 255  # over-range clips
    assert np.allclose(srgb_to_linear(linear_to_srgb(linear[:, :4])), linear[:, :4], atol=1e-5)


def test_read_multilayer_exr_uses_combined_layer(tmp_path):
    plane = np.full((3, 4), 0.5, np.float32)
    _write_exr(tmp_path / "render.exr", {"ViewLayer.Combined.R": plane, "ViewLayer.Combined.G": plane,
                                        "ViewLayer.Combined.B": plane, "ViewLayer.Depth.Z": plane * 9})
    assert read_image(tmp_path / "render.exr").rgb8.shape == (3, 4, 3)


def test_exr_data_window_is_placed_in_display_window(tmp_path):
    data = np.ones((2, 2), np.float32)
    header = {"dataWindow": (np.array([1, 1], np.int32), np.array([2, 2], np.int32)),
              "displayWindow": (np.array([0, 0], np.int32), np.array([4, 3], np.int32))}
    _write_exr(tmp_path / "crop.exr", {"R": data, "G": data, "B": data}, header)
    frame = read_image(tmp_path / "crop.exr")
    assert frame.rgb8.shape == (4, 5, 3)
    assert frame.rgb8[1, 1, 0] == 255 and frame.rgb8[0, 0, 0] == 0


@pytest.mark.parametrize("content, problem", [(b"", "empty file"), (b"not an image at all", "cannot be decoded")])
def test_unreadable_images_name_the_file(tmp_path, content, problem):
    path = tmp_path / "broken.png"
    path.write_bytes(content)
    with pytest.raises(InputFileError, match=problem) as info:
        read_image(path)
    assert str(path) in str(info.value)


def test_truncated_exr(tmp_path):
    plane = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    _write_exr(tmp_path / "full.exr", {"R": plane, "G": plane, "B": plane})
    data = (tmp_path / "full.exr").read_bytes()
    (tmp_path / "cut.exr").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputFileError, match="cut.exr"):
        read_image(tmp_path / "cut.exr")


# --- guidance images ---------------------------------------------------------------------

def test_read_mask_variants(tmp_path):
    mask = np.zeros((4, 6), np.uint8)
    mask[1:3, 2:5] = 255
    cv2.imwrite(str(tmp_path / "m8.png"), mask)
    cv2.imwrite(str(tmp_path / "m16.png"), mask.astype(np.uint16) * 257)
    colour = np.zeros((4, 6, 3), np.uint8)
    colour[..., 2] = mask  # a red mask
    cv2.imwrite(str(tmp_path / "red.png"), colour)
    _write_exr(tmp_path / "m.exr", {"Y": (mask / 255).astype(np.float32)})
    for name in ("m8.png", "m16.png", "red.png", "m.exr"):
        got = read_mask(tmp_path / name)
        assert got.dtype == np.float32 and np.array_equal(got, mask / 255.0), name


def test_read_index_variants(tmp_path):
    index = np.zeros((4, 6), np.uint16)
    index[0, :3] = 1
    index[2:, 3:] = 300
    cv2.imwrite(str(tmp_path / "i16.png"), index)
    _write_exr(tmp_path / "i.exr", {"R": index.astype(np.float32) + 0.01, "G": np.zeros((4, 6), np.float32),
                                   "B": np.zeros((4, 6), np.float32)})
    for name in ("i16.png", "i.exr"):
        assert np.array_equal(read_index(tmp_path / name), index), name
    colour = np.zeros((4, 6, 3), np.uint8)
    colour[0, 0] = (1, 2, 3)
    cv2.imwrite(str(tmp_path / "colour.png"), colour)
    with pytest.raises(InputFileError, match="must be grey"):
        read_index(tmp_path / "colour.png")


def test_write_png_rgb_order(tmp_path):
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[..., 0] = 200
    write_png(tmp_path / "p.png", rgb)
    assert cv2.imread(str(tmp_path / "p.png"))[0, 0, 2] == 200


# --- frames, patterns, ranges ---------------------------------------------------------------

def test_patterns_and_ranges(tmp_path):
    assert format_pattern("/a/plate.####.exr", 7) == "/a/plate.0007.exr"
    assert format_pattern("/a/plate.####.exr", 12345) == "/a/plate.12345.exr"
    assert format_pattern("/a/plate.%04d.exr", 12) == "/a/plate.0012.exr"
    for frame in (1001, 1002, 1010):
        (tmp_path / f"plate.{frame}.exr").write_bytes(b"x")
    (tmp_path / "other.1001.exr").write_bytes(b"x")
    assert sorted(match_pattern(str(tmp_path / "plate.####.exr"))) == [1001, 1002, 1010]
    assert parse_frames("1001-1100") == [(1001, 1100)]
    assert parse_frames([3, 5]) == [(3, 5)]
    assert parse_frames("1-2,7") == [(1, 2), (7, 7)]
    assert parse_frames(None) is None
    assert select_frames([1001, 1002, 1010], "1002-1100", "x") == [1002, 1010]
    with pytest.raises(UserError, match="no frames in 5-9"):
        select_frames([1, 2], "5-9", "shot")
    with pytest.raises(UserError, match="ends before"):
        parse_frames("9-5")
    with pytest.raises(UserError):
        parse_frames("first to last")


def test_output_patterns():
    assert output_pattern("out", "plate") == os.path.join("out", "plate.####.exr")
    assert output_pattern("out/x.####.exr", "plate") == "out/x.####.exr"
    with pytest.raises(UserError, match="must end in .exr"):
        output_pattern("out/x.####.png", "plate")
    with pytest.raises(UserError, match="frame number"):
        output_pattern("out/x.exr", "plate")
    assert extra_pattern("out/x.####.exr", "png", "person_01") == os.path.join("out", "png", "person_01", "x.####.png")


def test_open_source_kinds(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint8)
    folder = tmp_path / "shot"
    folder.mkdir()
    for frame in (10, 11, 13):
        cv2.imwrite(str(folder / f"shot_{frame:04d}.png"), rgb)
    source = open_source(folder)
    assert source.kind == "folder" and source.frames == [10, 11, 13] and source.stem == "shot"
    source = open_source(str(folder / "shot_####.png"))
    assert source.kind == "pattern" and source.frames == [10, 11, 13] and source.stem == "shot"
    single = open_source(folder / "shot_0011.png")  # a still: not frame 11 of "shot"
    assert single.kind == "image" and single.still and single.frames == [1] and single.stem == "shot_0011"
    cv2.imwrite(str(tmp_path / "photo.jpg"), rgb)
    assert open_source(tmp_path / "photo.jpg").frames == [1]
    assert not source.still
    with pytest.raises(InputFileError, match="input not found"):
        open_source(tmp_path / "missing.png")
    with pytest.raises(InputFileError, match="no files match"):
        open_source(str(tmp_path / "none.####.png"))
    with pytest.raises(InputFileError, match="unsupported input"):
        (tmp_path / "notes.txt").write_text("hi")
        open_source(tmp_path / "notes.txt")
    memory = ArraySource(np.zeros((2, 4, 5, 3), np.uint8), first=5)
    assert memory.frames == [5, 6] and memory.read(6).rgb8.shape == (4, 5, 3)


def test_video_source(tmp_path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 24))
    if not writer.isOpened():
        pytest.skip("OpenCV here cannot write an MJPG test video")
    for i in range(5):
        writer.write(np.full((24, 32, 3), (i * 50, 0, 0), np.uint8))  # BGR: blue grows
    writer.release()
    source = open_source(path)
    assert source.kind == "video" and source.frames == [1, 2, 3, 4, 5] and source.stem == "clip"
    third = source.read(3).rgb8
    assert third.shape == (24, 32, 3) and abs(int(third[..., 2].mean()) - 100) < 12  # RGB order
    assert abs(int(source.read(1).rgb8[..., 2].mean())) < 12  # going back reopens
    with pytest.raises(InputFileError, match="has no frame 9"):
        source.read(9)
    source.close()


def test_real_video_reads(shared_data):
    video = shared_data / "footage" / "maggie_video_test2.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not present")
    source = open_source(video)
    assert source.frames[0] == 1 and len(source.frames) == 96
    assert source.read(96).rgb8.shape == (720, 1280, 3)
