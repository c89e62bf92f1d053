"""A video damaged mid-file: every frame is its own picture or a reported failure."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from engine.commands import main
from engine.errors import InputFileError
from engine.io import read_person_exr
from engine.io.video import VideoReader

HEIGHT, WIDTH, FRAMES = 64, 96, 20


def numbered_picture(n: int, rng) -> np.ndarray:
    """Noise (so every frame is a few KB, like real footage) plus the frame number as
    three big grey bars (base 4), so the picture says which frame it is."""
    image = rng.integers(0, 60, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    for i, digit in enumerate((n % 4, (n // 4) % 4, (n // 16) % 4)):
        image[:, i * WIDTH // 3:(i + 1) * WIDTH // 3] += np.uint8(digit * 60)
    return image


def picture_number(rgb: np.ndarray) -> int:
    digits = [int(round((rgb[:, i * WIDTH // 3:(i + 1) * WIDTH // 3].astype(float).mean() - 30) / 60))
              for i in range(3)]
    return digits[0] + 4 * digits[1] + 16 * digits[2]


@pytest.fixture
def videos(tmp_path):
    """(clean.mp4, damaged.mp4): the same clip, the second with 40 bytes overwritten halfway."""
    rng = np.random.default_rng(0)
    clean = tmp_path / "clean.mp4"
    writer = cv2.VideoWriter(str(clean), cv2.VideoWriter_fourcc(*"mp4v"), 24, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for n in range(1, FRAMES + 1):
        writer.write(numbered_picture(n, rng)[..., ::-1].copy())
    writer.release()
    data = bytearray(clean.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = b"\xaa" * 40
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    return clean, damaged


def read_all(path, order):
    reader = VideoReader(path)
    found = {}
    for frame in order:
        try:
            found[frame] = reader.read(frame).rgb8
        except InputFileError as exc:
            assert f"frame {frame}" in str(exc), str(exc)
            found[frame] = None
    reader.close()
    return found


@pytest.mark.parametrize("order", ["in order", "shuffled"])
def test_every_frame_is_its_own_picture_or_an_error(videos, order):
    clean, damaged = videos
    frames = list(range(1, FRAMES + 1))
    if order == "shuffled":
        frames = list(np.random.default_rng(1).permutation(frames)) + frames[::-1]
    good = read_all(clean, range(1, FRAMES + 1))
    assert [picture_number(good[f]) for f in range(1, FRAMES + 1)] == list(range(1, FRAMES + 1))
    bad = read_all(damaged, [int(f) for f in frames])
    failed = [f for f, rgb in bad.items() if rgb is None]
    assert failed, "the damage should make at least one frame unreadable"
    assert len(failed) < FRAMES // 2
    for frame, rgb in bad.items():
        if rgb is not None:
            assert picture_number(rgb) == frame
            assert np.array_equal(rgb, good[frame]), f"frame {frame} is not its own picture"


def test_matte_of_a_damaged_video_names_the_bad_frames_and_writes_the_right_pictures(videos, tmp_path, tiny_weights,
                                                                                     capsys):
    clean, damaged = videos
    masks = tmp_path / "masks"
    for frame in range(1, FRAMES + 1):
        (masks / f"{frame:04d}").mkdir(parents=True)
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        mask[8:56, 20:70] = 255
        cv2.imwrite(str(masks / f"{frame:04d}" / "01.png"), mask)
    common = ["--masks", str(masks), "--weights", str(tiny_weights), "--backend", "pytorch", "--threads", "1", "-q",
              "--refine", "none"]
    assert main(["matte", str(clean), "-o", str(tmp_path / "clean_out"), *common]) == 0
    capsys.readouterr()
    status = main(["matte", str(damaged), "-o", str(tmp_path / "bad_out"), *common])
    err = capsys.readouterr().err
    assert status == 2
    written = sorted(int(p.name.split(".")[1]) for p in (tmp_path / "bad_out").glob("*.exr"))
    missing = sorted(set(range(1, FRAMES + 1)) - set(written))
    assert missing
    for frame in missing:
        assert f"frame {frame} " in err, err
    for frame in written:
        _, mine, _ = read_person_exr(tmp_path / "bad_out" / f"damaged.{frame:04d}.exr")
        _, truth, _ = read_person_exr(tmp_path / "clean_out" / f"clean.{frame:04d}.exr")
        assert np.array_equal(mine, truth), f"EXR {frame} holds another picture's matte"


def test_b_frames_are_numbered_by_presentation_time(tmp_path):
    """H.264 with B-frames decodes out of order: frames are still named by their timestamps."""
    av = pytest.importorskip("av")
    if "libx264" not in av.codecs_available:
        pytest.skip("this FFmpeg build has no libx264 encoder")
    rng = np.random.default_rng(0)
    path = tmp_path / "bframes.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"bf": "3", "g": "8", "crf": "12"}
        for n in range(1, FRAMES + 1):
            picture = av.VideoFrame.from_ndarray(numbered_picture(n, rng), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    order = list(range(1, FRAMES + 1)) + [7, 19, 2, 20, 1, 13]
    found = read_all(path, order)
    assert all(found[f] is not None and picture_number(found[f]) == f for f in order)
