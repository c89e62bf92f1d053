"""The multilayer OpenEXR files Blender reads: one ``person_NN.A`` channel per person.

Layout (see docs/protocol.md, "Output files"): half-float channels ``person_01.A``,
``person_02.A``, ... with ZIP compression in scanline order, so one Image node in
Blender shows one socket per person; the header attribute ``instmatt_manifest`` is a JSON
string. A frame with nobody in it holds one all-zero bare ``A`` channel (OpenEXR needs a
channel) and still has its manifest. Optional extra channels (e.g. bare ``R,G,B,A``) can
be added by the caller.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from engine.errors import InputFileError

from .atomic import atomic_path
from .images import read_exr_channels

MANIFEST_KEY = "instmatt_manifest"
PERSON_ID = re.compile(r"^[A-Za-z0-9_]+$")
HALF_MAX = 65504.0


def person_id(number: int) -> str:
    """1 -> "person_01"; 123 -> "person_123"."""
    return f"person_{int(number):02d}"


def person_number(pid: str) -> int | None:
    match = re.fullmatch(r"person_(\d+)", pid)
    return int(match.group(1)) if match else None


def write_person_exr(path: str | Path, alphas: np.ndarray, ids: list[str], manifest: dict | None = None,
                     extra_channels: dict[str, np.ndarray] | None = None, shape: tuple[int, int] | None = None) -> Path:
    """Write K alphas (K, H, W) as ``<id>.A`` half channels, atomically. Returns ``path``.

    ``shape`` gives (H, W) when there are no people (K = 0).
    """
    import OpenEXR

    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.ndim != 3 or alphas.shape[0] != len(ids):
        raise ValueError(f"alphas {alphas.shape} do not match {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate person ids: {ids}")
    for pid in ids:
        if not PERSON_ID.match(pid):
            raise ValueError(f"person id {pid!r} must use only letters, digits and '_' (a dot starts a layer)")
    if alphas.shape[0]:
        height, width = alphas.shape[1:]
    elif shape is not None:
        height, width = shape
    else:
        raise ValueError("shape is needed when there are no people")
    channels: dict[str, OpenEXR.Channel] = {}
    for pid, alpha in zip(ids, alphas):
        plane = np.clip(np.nan_to_num(alpha, nan=0.0), 0.0, 1.0).astype(np.float16)
        channels[f"{pid}.A"] = OpenEXR.Channel(np.ascontiguousarray(plane))
    for name, plane in (extra_channels or {}).items():
        plane = np.clip(np.nan_to_num(np.asarray(plane, np.float32), nan=0.0), -HALF_MAX, HALF_MAX)
        channels[name] = OpenEXR.Channel(np.ascontiguousarray(plane.astype(np.float16)))
    if not channels:
        channels["A"] = OpenEXR.Channel(np.zeros((height, width), np.float16))
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              "lineOrder": OpenEXR.INCREASING_Y}
    if manifest is not None:
        header[MANIFEST_KEY] = json.dumps(manifest, sort_keys=False)
    with atomic_path(path) as tmp:
        OpenEXR.File(header, channels).write(str(tmp))
    return Path(path)


def write_rgba_exr(path: str | Path, rgba: np.ndarray) -> Path:
    """A premultiplied linear RGBA cut-out (H, W, 4) as a half-float EXR, atomically."""
    rgba = np.asarray(rgba, np.float32)
    extra = {name: rgba[..., i] for i, name in enumerate("RGBA")}
    return write_person_exr(path, np.zeros((0,) + rgba.shape[:2], np.float32), [], None, extra, rgba.shape[:2])


def read_manifest(path: str | Path) -> dict | None:
    """The JSON manifest of an engine-written EXR (header only), or None if it has none."""
    import OpenEXR

    path = Path(path)
    try:
        header = OpenEXR.File(str(path), header_only=True).header()
    except Exception as exc:
        raise InputFileError(path, f"not a readable OpenEXR file: {exc}") from None
    text = header.get(MANIFEST_KEY)
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"damaged {MANIFEST_KEY} header ({exc})") from None


def read_person_exr(path: str | Path) -> tuple[list[str], np.ndarray, dict | None]:
    """(ids, alphas (K, H, W) float32, manifest) of an engine-written EXR, people in file order.

    The order is the manifest's when it has one, else sorted by name.
    """
    header, channels = read_exr_channels(path)
    manifest = None
    text = header.get(MANIFEST_KEY)
    if text is not None:
        manifest = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    found = [name[:-2] for name in channels if name.endswith(".A") and name.count(".") == 1]
    ids = [pid for pid in (manifest or {}).get("people", []) if pid in found]
    ids += sorted(pid for pid in found if pid not in ids)
    any_plane = next(iter(channels.values()))
    if ids:
        alphas = np.stack([channels[f"{pid}.A"].astype(np.float32) for pid in ids])
    else:
        alphas = np.zeros((0,) + any_plane.shape, np.float32)
    return ids, alphas, manifest
