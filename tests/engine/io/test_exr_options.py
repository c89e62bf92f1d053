"""Output options of the matte EXRs: compression, half/float, union and background passes."""

from __future__ import annotations

import json

import numpy as np
import OpenEXR
import pytest

from engine.errors import UserError
from engine.io import (
    ExrOptions,
    read_manifest,
    read_person_exr,
    write_person_exr,
    write_rgba_exr,
)

IDS = ["person_01", "person_02"]


def _alphas():
    alphas = np.zeros((2, 6, 8), np.float32)
    alphas[0, :, :4] = 0.75
    alphas[1, :, 3:6] = 0.5   # column 3: both people, sum 1.25
    alphas[0, 0, 0] = 0.123456789
    return alphas


def _open(path):
    exr = OpenEXR.File(str(path), separate_channels=True)
    return exr.header(), exr.channels()


@pytest.mark.parametrize("name, code", [("zip", OpenEXR.ZIP_COMPRESSION), ("piz", OpenEXR.PIZ_COMPRESSION),
                                        ("dwaa", OpenEXR.DWAA_COMPRESSION)])
def test_compression_is_written_and_mattes_stay_exact(tmp_path, name, code):
    path = write_person_exr(tmp_path / f"{name}.exr", _alphas(), IDS, {"people": IDS},
                            options=ExrOptions(compression=name, depth="float"))
    header, _ = _open(path)
    assert header["compression"] == code
    _, back, manifest = read_person_exr(path)
    assert np.array_equal(back, _alphas())  # DWA keeps channels named A lossless too
    assert manifest["exr"] == {"compression": name, "depth": "float", "union": True, "background": True}


@pytest.mark.parametrize("depth, kind", [("half", OpenEXR.HALF), ("float", OpenEXR.FLOAT)])
def test_depth_applies_to_every_matte_pass_but_never_to_cryptomatte(tmp_path, depth, kind):
    path = write_person_exr(tmp_path / "d.exr", _alphas(), IDS, {"people": IDS}, options=ExrOptions(depth=depth))
    _, channels = _open(path)
    for name in ("person_01.A", "person_02.A", "all_people.A", "background.A"):
        assert channels[name].type() == kind, name
    crypto = [c for name, c in channels.items() if name.startswith("CryptoPerson")]
    assert crypto and all(c.type() == OpenEXR.FLOAT for c in crypto)
    value = channels["person_01.A"].pixels[0, 0]
    if depth == "float":
        assert value == np.float32(0.123456789)
    else:
        assert value != np.float32(0.123456789) and abs(float(value) - 0.123456789) < 1e-4


def test_union_and_background_passes(tmp_path):
    path = write_person_exr(tmp_path / "u.exr", _alphas(), IDS, {"people": IDS}, options=ExrOptions(depth="float"))
    _, channels = _open(path)
    union, background = channels["all_people.A"].pixels, channels["background.A"].pixels
    expected = np.minimum(_alphas().sum(axis=0), 1.0)
    np.testing.assert_allclose(union, expected, atol=1e-7)
    np.testing.assert_allclose(background, 1.0 - expected, atol=1e-7)
    assert union[0, 3] == 1.0 and union[0, 5] == 0.5 and union[0, 7] == 0.0 and background[0, 7] == 1.0
    # the extra passes are not people
    ids, alphas, _ = read_person_exr(path)
    assert ids == IDS and alphas.shape == (2, 6, 8)


def test_passes_can_be_left_out(tmp_path):
    path = write_person_exr(tmp_path / "n.exr", _alphas(), IDS, {"people": IDS},
                            options=ExrOptions(union=False, background=False))
    _, channels = _open(path)
    assert "all_people.A" not in channels and "background.A" not in channels
    assert {"person_01.A", "person_02.A", "CryptoPerson00.R"} <= set(channels)


def test_people_are_found_without_a_manifest(tmp_path):
    path = write_person_exr(tmp_path / "m.exr", _alphas(), IDS)  # no manifest: sorted channel names
    ids, _, manifest = read_person_exr(path)
    assert ids == IDS and manifest is None


def test_a_rewrite_keeps_the_options_and_labels(tmp_path):
    path = tmp_path / "r.exr"
    write_person_exr(path, _alphas(), IDS, {"people": IDS}, options=ExrOptions("piz", "float", True, False),
                     labels={"person_02": "Anna"})
    ids, alphas, manifest = read_person_exr(path)
    write_person_exr(path, np.concatenate([alphas, np.zeros((1, 6, 8), np.float32)]), ids + ["person_03"],
                     dict(manifest, people=ids + ["person_03"]))
    header, channels = _open(path)
    assert header["compression"] == OpenEXR.PIZ_COMPRESSION
    assert channels["person_03.A"].type() == OpenEXR.FLOAT and "background.A" not in channels
    manifest = read_manifest(path)
    assert manifest["labels"] == {"person_02": "Anna"}
    assert manifest["cryptomatte"]["names"] == {"person_01": "person_01", "person_02": "Anna",
                                                "person_03": "person_03"}
    crypto = json.loads(header["cryptomatte/5855bc6/manifest"])
    assert set(crypto) == {"person_01", "Anna", "person_03"}


def test_bad_options_and_reserved_ids_are_refused(tmp_path):
    with pytest.raises(UserError, match="compression must be one of zip, piz, dwaa, got 'b44'"):
        write_person_exr(tmp_path / "x.exr", _alphas(), IDS, options=ExrOptions(compression="b44"))
    with pytest.raises(UserError, match="depth .* got 'double'"):
        ExrOptions(depth="double").check()
    with pytest.raises(ValueError, match="name of another pass"):
        write_person_exr(tmp_path / "x.exr", _alphas(), ["person_01", "background"])
    assert not list(tmp_path.iterdir())


def test_rgba_cutout_takes_the_compression(tmp_path):
    rgba = np.random.default_rng(1).random((4, 5, 4)).astype(np.float32)
    path = write_rgba_exr(tmp_path / "c.exr", rgba, compression="piz")
    header, channels = _open(path)
    assert header["compression"] == OpenEXR.PIZ_COMPRESSION and sorted(channels) == ["A", "B", "G", "R"]
    np.testing.assert_allclose(channels["G"].pixels, rgba[..., 1], atol=1e-3)
