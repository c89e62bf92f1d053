"""client/raster.py: the PNG writer and reader the mask guidance goes through."""

from __future__ import annotations

import os

import pytest
from blender_helpers import load_client


@pytest.fixture(scope="module")
def raster(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("raster")


def test_png_writer_round_trip(raster, tmp_path):
    data = bytearray((x * 7 + y * 3) % 256 for y in range(5) for x in range(9))
    path = str(tmp_path / "t.png")
    raster.write_png(path, data, 9, 5)
    assert raster.read_png_gray(path) == (9, 5, data)
    assert not os.path.exists(path + ".tmp")


def test_rgb_png_reads_back_in_blender(bpy, raster, tmp_path):
    import numpy as np

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0] = (255, 0, 0)  # top-left red
    rgb[3, 5] = (0, 0, 255)  # bottom-right blue
    path = str(tmp_path / "rgb.png")
    raster.write_png(path, rgb.tobytes(), 6, 4, channels=3)
    image = bpy.data.images.load(path)
    pixels = np.array(image.pixels[:], np.float32).reshape(4, 6, 4)[::-1]  # Blender: rows bottom-up
    assert tuple(np.round(pixels[0, 0, :3], 3)) == (1.0, 0.0, 0.0)
    assert tuple(np.round(pixels[3, 5, :3], 3)) == (0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="expected 6x4x3"):
        raster.png_bytes(b"\x00" * 10, 6, 4, channels=3)
