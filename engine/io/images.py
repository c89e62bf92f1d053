"""Reading frames, masks and ID images; writing PNGs. Every failure names the file.

Frames come in three flavours and are kept as they are for the outputs, while the network
always sees 8-bit sRGB:

- 8-bit (PNG, JPEG, TIFF, ...): used directly;
- 16-bit (PNG, TIFF): rounded to 8 bits for the network;
- float (OpenEXR, float TIFF): scene-linear, converted with the sRGB transfer curve and
  clipped to [0, 1] for the network.

Grey frames become three equal channels; an alpha channel in the input is ignored.
Sizes never change here, so the mattes line up pixel for pixel with the input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputFileError

from .atomic import atomic_path


def _quiet_opencv() -> None:
    """Decoder warnings ("PNG input buffer is incomplete") would duplicate our one-line errors."""
    try:
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass


_quiet_opencv()

EXR_SUFFIXES = (".exr",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp", ".exr", ".dpx", ".hdr", ".jp2")


@dataclass
class Frame:
    """One input frame: ``rgb8`` for the network, ``pixels`` as read (for cut-outs)."""

    rgb8: np.ndarray  # (H, W, 3) uint8, sRGB
    pixels: np.ndarray  # (H, W, 3) uint8 / uint16 / float32 (float = linear)
    path: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb8.shape[:2]

    @property
    def linear(self) -> bool:
        return self.pixels.dtype.kind == "f"


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """The sRGB transfer curve (IEC 61966-2-1) on values clipped to [0, 1]."""
    x = np.clip(np.nan_to_num(np.asarray(x, np.float32), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, np.power((x + 0.055) / 1.055, 2.4)).astype(np.float32)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputFileError(path, "file not found")
    if path.is_dir():
        raise InputFileError(path, "is a folder, expected an image file")
    if path.stat().st_size == 0:
        raise InputFileError(path, "empty file (0 bytes)")


# --- OpenEXR ---------------------------------------------------------------------------

def read_exr_channels(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(header, {channel name: (H, W) array}) of an OpenEXR file, placed in its display window."""
    import OpenEXR

    path = Path(path)
    _check_file(path)
    try:
        exr = OpenEXR.File(str(path), separate_channels=True)
        header = exr.header()
        channels = {name: np.asarray(channel.pixels) for name, channel in exr.channels().items()}
    except Exception as exc:  # the binding raises RuntimeError for every kind of damage
        raise InputFileError(path, f"not a readable OpenEXR file (damaged or truncated?): {exc}") from None
    if not channels:
        raise InputFileError(path, "OpenEXR file has no channels")
    data_window = header.get("dataWindow")
    display_window = header.get("displayWindow")
    if data_window is not None and display_window is not None:
        (dx0, dy0), (dx1, dy1) = (np.asarray(v).tolist() for v in data_window)
        (wx0, wy0), (wx1, wy1) = (np.asarray(v).tolist() for v in display_window)
        if (dx0, dy0, dx1, dy1) != (wx0, wy0, wx1, wy1):
            height, width = wy1 - wy0 + 1, wx1 - wx0 + 1
            placed = {}
            for name, plane in channels.items():
                canvas = np.zeros((height, width), plane.dtype)
                # intersection of the data window with the display window
                x0, y0 = max(dx0, wx0), max(dy0, wy0)
                x1, y1 = min(dx1, wx1), min(dy1, wy1)
                if x1 >= x0 and y1 >= y0:
                    canvas[y0 - wy0:y1 - wy0 + 1, x0 - wx0:x1 - wx0 + 1] = \
                        plane[y0 - dy0:y1 - dy0 + 1, x0 - dx0:x1 - dx0 + 1]
                placed[name] = canvas
            channels = placed
    return header, channels


def _rgb_channel_names(names) -> tuple[str, str, str] | None:
    """The colour channels to use: bare R,G,B, else the first layer with .R/.G/.B (Combined first)."""
    names = list(names)
    if {"R", "G", "B"} <= set(names):
        return "R", "G", "B"
    layers = []
    for name in names:
        if name.endswith(".R"):
            prefix = name[:-2]
            if f"{prefix}.G" in names and f"{prefix}.B" in names:
                layers.append(prefix)
    if not layers:
        return None
    layers.sort(key=lambda p: (not p.lower().endswith(("combined", "rgba", "image")), p))
    p = layers[0]
    return f"{p}.R", f"{p}.G", f"{p}.B"


def _read_exr_rgb(path: Path) -> np.ndarray:
    _, channels = read_exr_channels(path)
    names = _rgb_channel_names(channels)
    if names is not None:
        rgb = np.stack([channels[n] for n in names], axis=-1)
    else:
        grey = _first_present(channels, ("Y", "L", "A")) or next(iter(channels))
        rgb = np.repeat(channels[grey][..., None], 3, axis=-1)
    return np.nan_to_num(rgb.astype(np.float32), nan=0.0, posinf=65504.0, neginf=0.0)


def _first_present(channels: dict, names) -> str | None:
    for name in names:
        if name in channels:
            return name
    return None


# --- other formats -------------------------------------------------------------------------

def _decode(path: Path) -> np.ndarray:
    """cv2 decode (unchanged depth and channels) of a non-EXR image; BGR(A) order."""
    _check_file(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise InputFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None or image.size == 0:
        raise InputFileError(path, "cannot be decoded as an image (damaged, truncated or unsupported format)")
    return image


def _to_three_channels(image: np.ndarray, path: Path) -> np.ndarray:
    """BGR(A)/grey/grey+alpha from cv2 -> (H, W, 3) RGB, same dtype; alpha dropped."""
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3:
        raise InputFileError(path, f"unsupported image layout {image.shape}")
    channels = image.shape[2]
    if channels == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 2:  # grey + alpha
        return np.repeat(image[..., :1], 3, axis=-1)
    if channels in (3, 4):
        return np.ascontiguousarray(image[..., 2::-1])
    raise InputFileError(path, f"unsupported number of channels ({channels})")


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """What the network sees: 8-bit sRGB from 8-bit, 16-bit or linear float pixels."""
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.uint16:
        return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if pixels.dtype.kind == "f":
        return np.round(linear_to_srgb(pixels) * 255.0).astype(np.uint8)
    if pixels.dtype.kind in "iu":  # e.g. 32-bit integer TIFF: scale by the type's range
        info = np.iinfo(pixels.dtype)
        return np.round(np.clip(pixels, 0, None).astype(np.float64) / info.max * 255).astype(np.uint8)
    raise ValueError(f"unsupported pixel type {pixels.dtype}")


def read_image(path: str | Path) -> Frame:
    """Any supported frame file -> Frame; raises InputFileError naming the file."""
    path = Path(path)
    if path.suffix.lower() in EXR_SUFFIXES:
        pixels = _read_exr_rgb(path)
    else:
        pixels = _to_three_channels(_decode(path), path)
        if pixels.dtype.kind == "f":
            pixels = np.nan_to_num(pixels.astype(np.float32), nan=0.0)
    if min(pixels.shape[:2]) < 1:
        raise InputFileError(path, "image has no pixels")
    return Frame(rgb8=np.ascontiguousarray(to_rgb8(pixels)), pixels=pixels, path=str(path))


def frame_from_array(rgb: np.ndarray, path: str | None = None) -> Frame:
    """A Frame from an in-memory (H,W,3) or (H,W) array (uint8, uint16 or linear float)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    rgb = rgb[..., :3]
    return Frame(rgb8=np.ascontiguousarray(to_rgb8(rgb)), pixels=rgb, path=path)


# --- guidance images ----------------------------------------------------------------------

def unit_range(plane: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / bool / float pixels -> float32 in [0, 1] (the one conversion)."""
    if plane.dtype == np.uint8:
        return plane.astype(np.float32) / 255.0
    if plane.dtype == np.uint16:
        return plane.astype(np.float32) / 65535.0
    if plane.dtype == bool:
        return plane.astype(np.float32)
    return np.clip(np.nan_to_num(plane.astype(np.float32), nan=0.0), 0.0, 1.0)


def _finite(plane: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Refuse NaN and infinity: clamping them would silently invent a matte edge."""
    if plane.dtype.kind == "f":
        bad = plane.size - int(np.count_nonzero(np.isfinite(plane)))
        if bad:
            raise InputFileError(path, f"{what} holds {bad} non-finite value(s) (NaN or infinity); "
                                       f"fix the file (values must be finite, a mask's within [0, 1])")
    return plane


def read_mask(path: str | Path) -> np.ndarray:
    """A per-person mask image -> (H, W) float32 in [0, 1].

    Grey images are used as they are; colour images by their brightest channel; an image
    with alpha by its alpha. 8-bit, 16-bit, float and EXR (Y, R/G/B or A) are accepted.
    """
    path = Path(path)
    if path.suffix.lower() in EXR_SUFFIXES:
        _, channels = read_exr_channels(path)
        if len(channels) == 1:
            plane = next(iter(channels.values()))
        elif "Y" in channels:
            plane = channels["Y"]
        elif {"R", "G", "B"} <= set(channels):
            plane = np.maximum(np.maximum(channels["R"], channels["G"]), channels["B"])
        else:
            plane = channels[_first_present(channels, ("A",)) or sorted(channels)[0]]
        return unit_range(_finite(plane, path, "mask"))
    image = _finite(_decode(path), path, "mask")
    if image.ndim == 3:
        if image.shape[2] in (2, 4):
            image = image[..., -1]
        else:
            image = image.max(axis=2)
    return unit_range(image)


def read_index(path: str | Path) -> np.ndarray:
    """An ID/index image (one integer per person, 0 = nobody) -> (H, W) int64.

    8/16-bit grey PNG/TIFF, or a colour image whose channels are equal; EXR: the R, Y or
    single channel (e.g. Blender's IndexOB pass), rounded to the nearest integer.
    """
    path = Path(path)
    if path.suffix.lower() in EXR_SUFFIXES:
        _, channels = read_exr_channels(path)
        name = _first_present(channels, ("R", "Y", "X", "V")) if len(channels) > 1 else next(iter(channels))
        if name is None:
            index_like = [n for n in channels if "index" in n.lower()]
            name = index_like[0] if index_like else sorted(channels)[0]
        plane = _finite(channels[name], path, "ID image").astype(np.float64)
        return np.clip(np.rint(plane), 0, None).astype(np.int64)
    image = _finite(_decode(path), path, "ID image")
    if image.ndim == 3:
        colour = image[..., :3] if image.shape[2] >= 3 else image[..., :1]
        if colour.shape[2] > 1 and not (np.array_equal(colour[..., 0], colour[..., 1])
                                        and np.array_equal(colour[..., 0], colour[..., 2])):
            raise InputFileError(path, "an index image must be grey (one integer ID per pixel); "
                                       "this one has different values in its colour channels")
        image = colour[..., 0]
    if image.dtype.kind == "f":
        return np.clip(np.rint(np.nan_to_num(image.astype(np.float64))), 0, None).astype(np.int64)
    return image.astype(np.int64)


# --- writing ---------------------------------------------------------------------------------

def write_png(path: str | Path, image: np.ndarray, params: list[int] | None = None) -> Path:
    """Atomic write of grey (H,W) or RGB(A) (H,W,3|4) uint8/uint16 (RGB order); the format
    follows the suffix (PNG, or JPEG with e.g. ``[cv2.IMWRITE_JPEG_QUALITY, 95]``)."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] in (3, 4):
        image = image[..., [2, 1, 0, 3][:image.shape[2]]]
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), np.ascontiguousarray(image), params or []):
            raise OSError(f"{path}: could not write {Path(path).suffix.lstrip('.').upper()}")
    return Path(path)


def alpha_to_png(alpha: np.ndarray, bits: int = 8) -> np.ndarray:
    """(H, W) float alpha in [0, 1] -> uint8 or uint16."""
    top = 255 if bits == 8 else 65535
    return np.round(np.clip(alpha, 0.0, 1.0) * top).astype(np.uint8 if bits == 8 else np.uint16)
