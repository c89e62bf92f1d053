"""Mask splines to pixels, in pure Python (no bpy, no numpy).

Blender gives Python no way to rasterise a Mask datablock outside the compositor, so the
add-on evaluates each spline's cubic Bezier segments into a polygon and fills it with a
scanline rule.  The result is an 8-bit grey image (0 or 255) written as PNG by a tiny
writer (zlib + struct).  Guidance masks need no anti-aliasing: the engine turns them into
tri-masks and finds the soft edge itself.

Coordinates follow Blender's mask space: (0, 0) is the bottom-left corner, x runs over
the frame's width from 0 to 1, and the shorter side is scaled about 0.5 so that the
mask space is square (what the compositor's Mask node does with aspect correction).
"""

from __future__ import annotations

import math
import os
import struct
import zlib

Point = tuple  # (x, y)


def cubic(p0: Point, p1: Point, p2: Point, p3: Point, t: float) -> Point:
    s = 1.0 - t
    a, b, c, d = s * s * s, 3.0 * s * s * t, 3.0 * s * t * t, t * t * t
    return (a * p0[0] + b * p1[0] + c * p2[0] + d * p3[0],
            a * p0[1] + b * p1[1] + c * p2[1] + d * p3[1])


def _sub(a, b):
    return (a[0] - b[0], a[1] - b[1])


def _length(v):
    return math.hypot(v[0], v[1])


def resolve_handles(points: list[tuple], cyclic: bool = True) -> list[tuple[Point, Point, Point]]:
    """``(co, handle_left, handle_right)`` per point, with VECTOR and AUTO handles computed
    from the neighbouring points as Blender does (their stored values may be stale when
    the points are animated).

    ``points``: ``(co, handle_left, handle_right, left_type, right_type)``.
    """
    n = len(points)
    out = []
    for i, (co, left, right, left_type, right_type) in enumerate(points):
        co = (co[0], co[1])
        if cyclic or 0 < i < n - 1:
            prev, nxt = points[(i - 1) % n][0], points[(i + 1) % n][0]
        elif n > 1 and i == 0:
            nxt = points[1][0]
            prev = (2 * co[0] - nxt[0], 2 * co[1] - nxt[1])
        elif n > 1:
            prev = points[i - 1][0]
            nxt = (2 * co[0] - prev[0], 2 * co[1] - prev[1])
        else:
            prev = nxt = co
        auto = {"AUTO", "AUTO_CLAMPED"}
        if left_type in auto or right_type in auto:
            da, db = _sub(co, prev), _sub(nxt, co)
            la, lb = _length(da) or 1.0, _length(db) or 1.0
            tangent = (db[0] / lb + da[0] / la, db[1] / lb + da[1] / la)
            scale = _length(tangent) * 2.5614
            if scale:
                if left_type in auto:
                    left = (co[0] - tangent[0] * la / scale, co[1] - tangent[1] * la / scale)
                if right_type in auto:
                    right = (co[0] + tangent[0] * lb / scale, co[1] + tangent[1] * lb / scale)
        if left_type == "VECTOR":
            left = (co[0] + (prev[0] - co[0]) / 3.0, co[1] + (prev[1] - co[1]) / 3.0)
        if right_type == "VECTOR":
            right = (co[0] + (nxt[0] - co[0]) / 3.0, co[1] + (nxt[1] - co[1]) / 3.0)
        out.append((co, (left[0], left[1]), (right[0], right[1])))
    return out


def spline_polygon(points: list[tuple[Point, Point, Point]], cyclic: bool = True,
                   resolution: int = 16) -> list[Point]:
    """The polygon of a Bezier spline.

    ``points`` is a list of ``(co, handle_left, handle_right)``; segment i runs from
    ``co[i]`` (leaving through ``handle_right[i]``) to ``co[i+1]`` (arriving through
    ``handle_left[i+1]``); a cyclic spline closes back to the first point.
    """
    n = len(points)
    if n == 0:
        return []
    if n == 1:
        return [tuple(points[0][0])]
    steps = max(1, int(resolution))
    polygon: list[Point] = []
    segments = n if cyclic else n - 1
    for i in range(segments):
        co0, _, right0 = points[i]
        co1, left1, _ = points[(i + 1) % n]
        for k in range(steps):
            polygon.append(cubic(co0, right0, left1, co1, k / steps))
    if not cyclic:
        polygon.append(tuple(points[-1][0]))
    return polygon


def mask_to_pixels(polygon: list[Point], width: int, height: int) -> list[Point]:
    """Mask space (aspect-corrected, y up) to pixel space (x right, y down, pixel edges)."""
    out = []
    if width > height:
        aspect = height / width
        for x, y in polygon:
            fy = (y - 0.5) / aspect + 0.5
            out.append((x * width, (1.0 - fy) * height))
    elif height > width:
        aspect = width / height
        for x, y in polygon:
            fx = (x - 0.5) / aspect + 0.5
            out.append((fx * width, (1.0 - y) * height))
    else:
        for x, y in polygon:
            out.append((x * width, (1.0 - y) * height))
    return out


def _edges(polygon: list[Point]) -> list[tuple[float, float, float, float]]:
    """Non-horizontal edges as (y_top, y_bottom, x_at_top, dx/dy)."""
    edges = []
    n = len(polygon)
    for i in range(n):
        x0, y0 = polygon[i]
        x1, y1 = polygon[(i + 1) % n]
        if y0 == y1:
            continue
        if y0 > y1:
            x0, y0, x1, y1 = x1, y1, x0, y0
        edges.append((y0, y1, x0, (x1 - x0) / (y1 - y0)))
    return edges


def _spans(edges, y: float, width: int):
    """Even-odd spans [a, b) of pixel columns whose centres lie inside, on scanline ``y``."""
    xs = [x0 + (y - y0) * slope for (y0, y1, x0, slope) in edges if y0 <= y < y1]
    xs.sort()
    for k in range(0, len(xs) - 1, 2):
        # column c is inside when its centre c + 0.5 lies in [xa, xb)
        a = min(width, max(0, math.ceil(xs[k] - 0.5)))
        b = min(width, max(0, math.ceil(xs[k + 1] - 0.5)))
        if b > a:
            yield a, b


def fill(polygons: list[list[Point]], width: int, height: int, even_odd: bool = True,
         value: int = 255) -> bytearray:
    """Fill pixel-space polygons into a ``width * height`` bytearray (rows top-down).

    ``even_odd``: all polygons share one even-odd rule (an inner spline cuts a hole);
    otherwise each polygon is filled on its own and the fills are united.
    """
    image = bytearray(width * height)
    groups = [polygons] if even_odd else [[p] for p in polygons]
    fill_row = bytes([value]) * width
    for group in groups:
        edges = []
        for polygon in group:
            if len(polygon) >= 3:
                edges.extend(_edges(polygon))
        if not edges:
            continue
        top = max(0, int(min(e[0] for e in edges)))
        bottom = min(height, int(max(e[1] for e in edges)) + 1)
        for row in range(top, bottom):
            base = row * width
            for a, b in _spans(edges, row + 0.5, width):
                image[base + a:base + b] = fill_row[a:b]
    return image


def invert(image: bytearray) -> bytearray:
    table = bytes(255 - i for i in range(256))
    return bytearray(bytes(image).translate(table))


def png_bytes(image: bytes, width: int, height: int, channels: int = 1) -> bytes:
    """An 8-bit PNG of ``image`` (rows top-down): greyscale, or RGB with ``channels=3``."""
    if channels not in (1, 3):
        raise ValueError(f"a PNG here is grey (1 channel) or RGB (3), not {channels} channels")
    stride = width * channels
    if len(image) != stride * height:
        raise ValueError(f"image has {len(image)} bytes, expected {width}x{height}x{channels}")
    raw = bytearray()
    view = memoryview(bytes(image))
    for row in range(height):
        raw.append(0)  # filter: none
        raw += view[row * stride:(row + 1) * stride]

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(raw), 6)) + chunk(b"IEND", b""))


def write_png(path: str, image: bytes, width: int, height: int, channels: int = 1) -> None:
    data = png_bytes(image, width, height, channels)
    tmp = path + ".tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def read_png_gray(path: str) -> tuple[int, int, bytearray]:
    """Read back an 8-bit greyscale, non-interlaced PNG written by :func:`png_bytes`
    (filter type 0 only; enough for tests and for checking our own files)."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG")
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if tag == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            if depth != 8 or colour != 0:
                raise ValueError(f"{path}: only 8-bit grey PNG is supported")
        elif tag == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    out = bytearray()
    stride = width + 1
    for row in range(height):
        if raw[row * stride] != 0:
            raise ValueError(f"{path}: unsupported PNG filter")
        out += raw[row * stride + 1:(row + 1) * stride]
    return width, height, out
