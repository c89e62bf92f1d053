"""Non-finite values in float masks and ID images are refused, naming the file (issue 14.9)."""

from __future__ import annotations

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.commands import main
from engine.errors import InputFileError
from engine.io import read_index, read_mask


def bad_plane(value):
    plane = np.zeros((24, 32), np.float32)
    plane[4:20, 4:28] = 1.0
    plane[10, 10] = value
    return plane


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_float_mask_with_nan_or_inf_is_refused(tmp_path, value):
    exr = tmp_path / "01.exr"
    OpenEXR.File({}, {"Y": OpenEXR.Channel(bad_plane(value))}).write(str(exr))
    with pytest.raises(InputFileError, match="non-finite") as caught:
        read_mask(exr)
    assert caught.value.path == str(exr)
    tiff = tmp_path / "02.tif"
    assert cv2.imwrite(str(tiff), bad_plane(value))
    with pytest.raises(InputFileError, match="non-finite"):
        read_mask(tiff)
    index = tmp_path / "ids.exr"
    OpenEXR.File({}, {"R": OpenEXR.Channel(bad_plane(value))}).write(str(index))
    with pytest.raises(InputFileError, match="non-finite"):
        read_index(index)


def test_finite_float_masks_still_read(tmp_path):
    exr = tmp_path / "01.exr"
    OpenEXR.File({}, {"Y": OpenEXR.Channel(bad_plane(0.5))}).write(str(exr))
    mask = read_mask(exr)
    assert mask[10, 10] == 0.5 and mask.max() == 1.0


def test_matte_with_a_nan_mask_fails_that_frame_with_one_line(tmp_path, tiny_weights, capsys):
    cv2.imwrite(str(tmp_path / "plate.png"), np.zeros((24, 32, 3), np.uint8))
    masks = tmp_path / "m"
    masks.mkdir()
    OpenEXR.File({}, {"Y": OpenEXR.Channel(bad_plane(np.nan))}).write(str(masks / "01.exr"))
    status = main(["matte", str(tmp_path / "plate.png"), "-o", str(tmp_path / "out"), "--masks", str(masks),
                   "--weights", str(tiny_weights), "--backend", "pytorch", "--threads", "1", "-q"])
    err = capsys.readouterr().err
    assert status == 2
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and str(masks / "01.exr") in lines[0] and "non-finite" in lines[0], err
    assert not list((tmp_path / "out").glob("*.exr"))
