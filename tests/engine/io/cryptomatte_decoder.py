"""A Cryptomatte decoder written from the specification (v1.2), for the tests: it shares
no code with engine/io/cryptomatte.py, so an encoder bug cannot hide behind itself.

Specification sections used: "Layer naming" ({typename}00, 01, ... as RGBA = (id, coverage)
pairs), "Metadata" (cryptomatte/<key>/name, hash, conversion, manifest) and "Manifest"
(name -> 8 hex digits of the float id's bits).
"""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import OpenEXR

LAYER = "CryptoPerson"


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def crypto_layers(header: dict) -> dict[str, dict]:
    """layer name -> {"key", "hash", "conversion", "manifest" (name -> float id)}."""
    found = {}
    for attr, value in header.items():
        match = re.fullmatch(r"cryptomatte/([0-9a-f]{1,7})/name", attr)
        if not match:
            continue
        key = match.group(1)
        manifest = json.loads(_text(header[f"cryptomatte/{key}/manifest"]))
        found[_text(value)] = {
            "key": key,
            "hash": _text(header[f"cryptomatte/{key}/hash"]),
            "conversion": _text(header[f"cryptomatte/{key}/conversion"]),
            # 8 hex digits of the float's bits
            "manifest": {name: struct.unpack(">f", bytes.fromhex(hexid))[0] for name, hexid in manifest.items()},
        }
    return found


def decode(path, name: str, layer: str = LAYER) -> np.ndarray:
    """The coverage of ``name``: the sum over ranks of coverage where the rank's id is name's."""
    exr = OpenEXR.File(str(path), separate_channels=True)
    header = exr.header()
    # DWA files name the rank channels r, g, b, a (Blender reads either case)
    channels = {name[:-1] + name[-1].upper(): channel for name, channel in exr.channels().items()}
    info = crypto_layers(header)[layer]
    assert info["hash"] == "MurmurHash3_32" and info["conversion"] == "uint32_to_float32"
    target = np.float32(info["manifest"][name])
    numbers = sorted({int(m.group(1)) for c in channels if (m := re.fullmatch(rf"{layer}(\d\d)\.[RGBA]", c))})
    assert numbers == list(range(len(numbers))) and numbers, "rank layers must be 00, 01, ... without gaps"
    matte = None
    for number in numbers:
        for id_channel, coverage_channel in (("R", "G"), ("B", "A")):
            ids = channels[f"{layer}{number:02d}.{id_channel}"]
            coverage = channels[f"{layer}{number:02d}.{coverage_channel}"]
            assert ids.type() == OpenEXR.FLOAT and coverage.type() == OpenEXR.FLOAT
            part = np.where(ids.pixels == target, coverage.pixels, 0.0)
            matte = part if matte is None else matte + part
    return matte
