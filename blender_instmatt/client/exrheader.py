"""Read an OpenEXR file's header in pure Python (no bpy, no OpenEXR module).

Enough to list a matte file's channels (``person_01.A``, ...) and read its string
attributes (the engine's ``instmatt_manifest``) without loading pixels, so the add-on
can check a whole shot's files quickly.
"""

from __future__ import annotations

import json
import struct

MAGIC = 20000630
_MULTIPART = 0x1000
_FIRST_READ = 1 << 16  # headers are small: the engine's manifest is a few hundred bytes
_MAX_READ = 1 << 22


class _Truncated(Exception):
    pass


class ExrHeaderError(ValueError):
    pass


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\x00", pos)
    return data[pos:end].decode("utf-8", "replace"), end + 1


def _channels(value: bytes) -> list[str]:
    names, pos = [], 0
    while pos < len(value) and value[pos] != 0:
        name, pos = _cstring(value, pos)
        names.append(name)
        pos += 16  # pixel type, pLinear + reserved, x/y sampling
    return names


def read_headers(path: str) -> list[dict]:
    """One dict per part: attribute name -> value (``channels`` as a list of names,
    ``string`` attributes as str, anything else as raw bytes)."""
    with open(path, "rb") as fh:
        data = fh.read(_FIRST_READ)
        try:
            return _parse(data, path)
        except _Truncated:
            data += fh.read(_MAX_READ - len(data))
    try:
        return _parse(data, path)
    except _Truncated:
        raise ExrHeaderError(f"{path}: truncated OpenEXR header") from None


def _parse(data: bytes, path: str) -> list[dict]:
    if len(data) < 8:
        raise ExrHeaderError(f"{path}: not an OpenEXR file (too short)")
    magic, version = struct.unpack("<ii", data[:8])
    if magic != MAGIC:
        raise ExrHeaderError(f"{path}: not an OpenEXR file")
    multipart = bool(version & _MULTIPART)
    pos, parts = 8, []
    try:
        while True:
            header: dict = {}
            while data[pos] != 0:
                name, pos = _cstring(data, pos)
                kind, pos = _cstring(data, pos)
                (size,) = struct.unpack("<i", data[pos:pos + 4])
                pos += 4
                value = data[pos:pos + size]
                if len(value) != size:
                    raise _Truncated
                pos += size
                if kind == "chlist":
                    header[name] = _channels(value)
                elif kind == "string":
                    header[name] = value.decode("utf-8", "replace")
                else:
                    header[name] = value
            pos += 1
            parts.append(header)
            if not multipart or data[pos] == 0:
                break
    except (IndexError, ValueError, struct.error):
        raise _Truncated from None
    return parts


def channels(path: str) -> list[str]:
    """Every channel name of every part."""
    out = []
    for header in read_headers(path):
        out.extend(header.get("channels", []))
    return out


def people(path: str) -> list[str]:
    """The person layers of a matte file: ``person_01.A`` -> ``person_01``."""
    found = []
    for name in channels(path):
        layer, _, channel = name.rpartition(".")
        if layer.startswith("person_") and channel == "A" and layer not in found:
            found.append(layer)
    return found


MANIFEST_KEY = "instmatt_manifest"


def manifest(path: str) -> dict | None:
    """The engine's JSON manifest of a matte file, or None when it has none."""
    for header in read_headers(path):
        text = header.get(MANIFEST_KEY)
        if isinstance(text, str):
            try:
                data = json.loads(text)
            except ValueError:
                raise ExrHeaderError(f"{path}: damaged {MANIFEST_KEY} header") from None
            return data if isinstance(data, dict) else None
    return None
