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
