"""client/exrheader.py: EXR headers read without loading pixels, on files OpenEXR wrote."""

from __future__ import annotations

import json

import numpy as np
import OpenEXR
import pytest
from blender_helpers import load_client, write_matte_exrs


def test_exr_header_reader(bpy, tmp_path):
    exrheader = load_client("exrheader")
    pattern = write_matte_exrs(str(tmp_path), frames=(5,), people=2)
    path = pattern.replace("####", "0005")
    (header,) = exrheader.read_headers(path)
    assert header["channels"] == ["person_01.A", "person_02.A"]
    assert json.loads(header["instmatt_manifest"])["frame"] == 5
    assert exrheader.people(path) == ["person_01", "person_02"]
    # a big manifest (past the first read) and a multi-part file, as Blender writes them
    big = str(tmp_path / "big.exr")
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "instmatt_manifest": "x" * 200_000}, {"person_03.A": np.zeros((4, 4), np.float16)}).write(big)
    assert exrheader.people(big) == ["person_03"]
    multi = str(tmp_path / "multi.exr")
    parts = [OpenEXR.Part({"type": OpenEXR.scanlineimage}, {f"person_0{i}.A": np.zeros((4, 4), np.float32)},
                          name=f"person_0{i}") for i in (1, 2)]
    OpenEXR.File(parts).write(multi)
    assert exrheader.people(multi) == ["person_01", "person_02"]
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr at all")
    with pytest.raises(exrheader.ExrHeaderError, match="not an OpenEXR file"):
        exrheader.channels(str(bad))


def test_manifest_and_labels_from_headers(bpy, tmp_path):
    exrheader = load_client("exrheader")
    matte_files = load_client("matte_files")
    pattern = write_matte_exrs(str(tmp_path), frames=(1, 2), people=2,
                               labels={"person_01": "Anna", "person_02": "Stunt double"})
    path = pattern.replace("####", "0001")
    assert exrheader.manifest(path)["labels"] == {"person_01": "Anna", "person_02": "Stunt double"}
    paths = {f: pattern.replace("####", f"{f:04d}") for f in (1, 2)}
    assert matte_files.shot_labels(paths) == {"person_01": "Anna", "person_02": "Stunt double"}
    plain = write_matte_exrs(str(tmp_path / "plain"), frames=(1,), people=1)
    assert matte_files.shot_labels({1: plain.replace("####", "0001")}) == {}
    damaged = str(tmp_path / "damaged.exr")
    OpenEXR.File({"type": OpenEXR.scanlineimage, "instmatt_manifest": "{not json"},
                 {"person_01.A": np.zeros((4, 4), np.float16)}).write(damaged)
    with pytest.raises(exrheader.ExrHeaderError, match="damaged"):
        exrheader.manifest(damaged)
    assert matte_files.shot_labels({1: damaged}) == {}
