"""The multilayer OpenEXR files Blender reads: one ``person_NN.A`` channel per person.

Layout (see docs/protocol.md, "Output files", and docs/interchange.md): channels
``person_01.A``, ``person_02.A``, ... (half or float), in scanline order, so one Image node
in Blender shows one socket per person; beside them an ``all_people.A`` pass (the union),
a ``background.A`` pass (1 - union) and a ``CryptoPerson`` Cryptomatte layer (always
32-bit float) for the Cryptomatte node, Nuke and Fusion. The header attribute
``instmatt_manifest`` is a JSON string; it records the output options, so rewriting a file
keeps them. A frame with nobody in it still has its manifest and empty passes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from engine import settings
from engine.errors import InputFileError

from . import cryptomatte
from .atomic import atomic_path
from .images import read_exr_channels

MANIFEST_KEY = "instmatt_manifest"
PERSON_ID = re.compile(r"^[A-Za-z0-9_]+$")
HALF_MAX = 65504.0
UNION_PASS = "all_people"
BACKGROUND_PASS = "background"
COMPRESSIONS = settings.COMPRESSIONS
DEPTHS = settings.DEPTHS
# a pass named like these is never a person
_NOT_PEOPLE = re.compile(rf"^({UNION_PASS}|{BACKGROUND_PASS}|{cryptomatte.LAYER}\d*)$")


@dataclass(frozen=True)
class ExrOptions:
    """How mattes are stored: compression, bit depth, and the union/background passes."""

    compression: str = settings.COMPRESSION
    depth: str = settings.DEPTH
    union: bool = settings.UNION_PASS
    background: bool = settings.BACKGROUND_PASS

    def check(self) -> ExrOptions:
        settings.check_exr(self.compression, self.depth)  # UserError
        return self

    def manifest(self) -> dict:
        return asdict(self)

    @classmethod
    def from_settings(cls, matte_settings) -> ExrOptions:
        """The options of a job's :class:`engine.settings.MatteSettings`."""
        return cls(matte_settings.compression, matte_settings.depth, matte_settings.union_pass,
                   matte_settings.background_pass)

    @classmethod
    def from_manifest(cls, data: dict | None) -> ExrOptions:
        """The options a file was written with (the defaults for files that do not say)."""
        known = {key: value for key, value in (data or {}).items() if key in cls.__dataclass_fields__}
        return cls(**known).check()


def person_id(number: int) -> str:
    """1 -> "person_01"; 123 -> "person_123"."""
    return f"person_{int(number):02d}"


def person_number(pid: str) -> int | None:
    match = re.fullmatch(r"person_(\d+)", pid)
    return int(match.group(1)) if match else None


def _plane(values: np.ndarray, dtype, low: float, high: float) -> np.ndarray:
    plane = np.clip(np.nan_to_num(np.asarray(values, np.float32), nan=0.0), low, high)
    return np.ascontiguousarray(plane.astype(dtype))


def _compression(name: str):
    import OpenEXR

    return {"zip": OpenEXR.ZIP_COMPRESSION, "piz": OpenEXR.PIZ_COMPRESSION,
            "dwaa": OpenEXR.DWAA_COMPRESSION}[name]


def _write(path: str | Path, planes: dict[str, np.ndarray], attributes: dict[str, str], compression: str) -> Path:
    """Write (H, W) planes (float16 -> HALF, float32 -> FLOAT) as one scanline EXR, atomically."""
    import OpenEXR

    header = {"compression": _compression(compression), "type": OpenEXR.scanlineimage,
              "lineOrder": OpenEXR.INCREASING_Y}
    header.update(attributes)
    channels = {name: OpenEXR.Channel(plane) for name, plane in planes.items()}
    with atomic_path(path) as tmp:
        try:
            OpenEXR.File(header, channels).write(str(tmp))
        except RuntimeError as exc:  # how the binding reports a full disk or a failed write
            raise OSError(str(exc)) from None
    return Path(path)


def _check_ids(ids: list[str], alphas: np.ndarray) -> None:
    if alphas.ndim != 3 or alphas.shape[0] != len(ids):
        raise ValueError(f"alphas {alphas.shape} do not match {len(ids)} ids")
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate person ids: {ids}")
    for pid in ids:
        if not PERSON_ID.match(pid):
            raise ValueError(f"person id {pid!r} must use only letters, digits and '_' (a dot starts a layer)")
        if _NOT_PEOPLE.match(pid):
            raise ValueError(f"person id {pid!r} is the name of another pass")


def write_person_exr(path: str | Path, alphas: np.ndarray, ids: list[str], manifest: dict | None = None,
                     extra_channels: dict[str, np.ndarray] | None = None, shape: tuple[int, int] | None = None,
                     options: ExrOptions | None = None, labels: dict[str, str] | None = None) -> Path:
    """Write K alphas (K, H, W) as ``<id>.A`` channels plus the union, background and
    Cryptomatte passes, atomically. Returns ``path``.

    ``shape`` gives (H, W) when there are no people (K = 0). ``options`` default to those
    recorded in ``manifest["exr"]`` (so a rewrite keeps them), else to ``ExrOptions()``;
    ``labels`` (person ID -> the artist's name) default to ``manifest["labels"]``. Labels
    name the people in the Cryptomatte layer; channel names stay the person IDs.
    """
    alphas = np.asarray(alphas, dtype=np.float32)
    _check_ids(ids, alphas)
    if alphas.shape[0]:
        height, width = alphas.shape[1:]
    elif shape is not None:
        height, width = shape[:2]
        alphas = np.zeros((0, height, width), np.float32)
    else:
        raise ValueError("shape is needed when there are no people")
    manifest = dict(manifest) if manifest is not None else None
    if options is None:
        options = ExrOptions.from_manifest((manifest or {}).get("exr"))
    options.check()
    if labels is None:
        labels = (manifest or {}).get("labels") or {}
    labels = {pid: str(label) for pid, label in labels.items() if pid in ids and str(label).strip()}
    depth = np.float16 if options.depth == "half" else np.float32
    alphas = np.clip(np.nan_to_num(alphas, nan=0.0), 0.0, 1.0)

    planes: dict[str, np.ndarray] = {}
    for pid, alpha in zip(ids, alphas):
        planes[f"{pid}.A"] = _plane(alpha, depth, 0.0, 1.0)
    union = np.minimum(alphas.sum(axis=0), 1.0) if ids else np.zeros((height, width), np.float32)
    if options.union:
        planes[f"{UNION_PASS}.A"] = _plane(union, depth, 0.0, 1.0)
    if options.background:
        planes[f"{BACKGROUND_PASS}.A"] = _plane(1.0 - union, depth, 0.0, 1.0)
    for name, plane in (extra_channels or {}).items():
        planes[name] = _plane(plane, depth, -HALF_MAX, HALF_MAX)
    names = cryptomatte.unique_names(ids, labels)
    # float32 always: ids do not survive half; lower-case letters keep DWA from quantising them
    planes.update(cryptomatte.encode(alphas, names, letters="rgba" if options.compression == "dwaa" else "RGBA"))

    attributes = cryptomatte.header_attributes(names)
    if manifest is not None:
        manifest["exr"] = options.manifest()
        if labels:
            manifest["labels"] = labels
        manifest["cryptomatte"] = {"layer": cryptomatte.LAYER, "names": dict(zip(ids, names))}
        attributes[MANIFEST_KEY] = json.dumps(manifest, sort_keys=False)
    return _write(path, planes, attributes, options.compression)


def write_rgba_exr(path: str | Path, rgba: np.ndarray, compression: str = "zip") -> Path:
    """A premultiplied linear RGBA cut-out (H, W, 4) as a half-float EXR, atomically."""
    rgba = np.asarray(rgba, np.float32)
    planes = {name: _plane(rgba[..., i], np.float16, -HALF_MAX, HALF_MAX) for i, name in enumerate("RGBA")}
    return _write(path, planes, {}, compression)


def _manifest_of(path: Path, header: dict) -> dict | None:
    text = header.get(MANIFEST_KEY)
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(path, f"damaged {MANIFEST_KEY} header ({exc})") from None


def read_manifest(path: str | Path) -> dict | None:
    """The JSON manifest of an engine-written EXR (header only), or None if it has none."""
    import OpenEXR

    path = Path(path)
    try:
        header = OpenEXR.File(str(path), header_only=True).header()
    except Exception as exc:
        raise InputFileError(path, f"not a readable OpenEXR file: {exc}") from None
    return _manifest_of(path, header)


def read_person_exr(path: str | Path) -> tuple[list[str], np.ndarray, dict | None]:
    """(ids, alphas (K, H, W) float32, manifest) of an engine-written EXR, people in file order.

    The order is the manifest's when it has one, else sorted by name. The union,
    background and Cryptomatte passes are not people.
    """
    header, channels = read_exr_channels(path)
    manifest = _manifest_of(Path(path), header)
    found = [name[:-2] for name in channels
             if name.endswith(".A") and name.count(".") == 1 and not _NOT_PEOPLE.match(name[:-2])]
    ids = [pid for pid in (manifest or {}).get("people", []) if pid in found]
    ids += sorted(pid for pid in found if pid not in ids)
    any_plane = next(iter(channels.values()))
    if ids:
        alphas = np.stack([channels[f"{pid}.A"].astype(np.float32) for pid in ids])
    else:
        alphas = np.zeros((0,) + any_plane.shape, np.float32)
    return ids, alphas, manifest
