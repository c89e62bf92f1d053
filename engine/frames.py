"""What to process: the input's frames, the requested range, and where each result goes.

Inputs:
- one image file (its frame number is the number at the end of its name, else 1);
- a folder of images (frame numbers from the names when every file has a distinct
  trailing number, else 1..N in name order);
- a frame pattern: ``#`` stands for one digit (``plate.####.exr`` matches plate.1001.exr;
  longer numbers also match), ``%04d`` works too;
- a video file (frames numbered from 1).

Outputs: a folder (files ``OUT/<input stem>.####.exr``) or a pattern with ``#`` / ``%0Nd``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engine.errors import InputFileError, UserError
from engine.io.images import IMAGE_SUFFIXES, Frame, frame_from_array, read_image
from engine.io.video import VIDEO_SUFFIXES, VideoReader

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%0?(\d*)d")
_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


# --- patterns ---------------------------------------------------------------------------------

def is_pattern(text: str) -> bool:
    name = os.path.basename(str(text))
    return bool(_HASHES.search(name) or _PRINTF.search(name))


def _split_pattern(pattern: str) -> tuple[str, int, str]:
    """'dir/plate.####.exr' -> ('dir/plate.', 4, '.exr'); the last run of # (or %0Nd) in the name."""
    folder, name = os.path.split(str(pattern))
    matches = list(_HASHES.finditer(name))
    if matches:
        m = matches[-1]
        pad = len(m.group(0))
    else:
        found = list(_PRINTF.finditer(name))
        if not found:
            raise UserError(f"{pattern}: not a frame pattern (use # for each digit, e.g. plate.####.exr)")
        m = found[-1]
        pad = int(m.group(1) or 1)
    return os.path.join(folder, name[:m.start()]), pad, name[m.end():]


def format_pattern(pattern: str, frame: int) -> str:
    head, pad, tail = _split_pattern(pattern)
    sign = "-" if frame < 0 else ""
    return f"{head}{sign}{abs(frame):0{pad}d}{tail}"


def match_pattern(pattern: str) -> dict[int, Path]:
    """Existing files that fit the pattern: {frame number: path}."""
    head, pad, tail = _split_pattern(pattern)
    folder = Path(os.path.dirname(head) or ".")
    prefix = os.path.basename(head)
    regex = re.compile(re.escape(prefix) + r"(-?\d{%d,})" % pad + re.escape(tail) + "$")
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        m = regex.match(entry.name)
        if m and entry.is_file():
            found.setdefault(int(m.group(1)), entry)
    return found


def pattern_stem(pattern: str) -> str:
    head, _, _ = _split_pattern(pattern)
    return os.path.basename(head).rstrip("._-") or "frame"


# --- frame ranges -----------------------------------------------------------------------------

def parse_frames(spec) -> list[tuple[int, int]] | None:
    """"1001-1100", "1001", "1-10,20-30", [first, last] or None -> list of inclusive ranges."""
    if spec is None or spec == "" or spec == []:
        return None
    if isinstance(spec, (list, tuple)):
        if len(spec) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in spec):
            first, last = int(spec[0]), int(spec[1])
        else:
            raise UserError(f"frames must be [first, last] integers, got {spec!r}")
        ranges = [(first, last)]
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        ranges = [(int(spec), int(spec))]
    elif isinstance(spec, str):
        ranges = []
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(-?\d+)(?:(?:-|:|\.\.)(-?\d+))?", part)
            if not m:
                raise UserError(f"frames: cannot read {spec!r} (use FIRST-LAST, e.g. 1001-1100)")
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) is not None else first
            ranges.append((first, last))
    else:
        raise UserError(f"frames: cannot read {spec!r} (use FIRST-LAST, e.g. 1001-1100)")
    for first, last in ranges:
        if last < first:
            raise UserError(f"frames: {first}-{last} ends before it starts")
    return ranges


def select_frames(available: list[int], spec, where: str) -> list[int]:
    ranges = parse_frames(spec)
    if ranges is None:
        return list(available)
    chosen = [f for f in available if any(a <= f <= b for a, b in ranges)]
    if not chosen:
        have = f"{available[0]}-{available[-1]}" if available else "none"
        wanted = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)
        raise UserError(f"{where}: no frames in {wanted} (the input has frames {have})")
    return chosen


# --- sources ---------------------------------------------------------------------------------

class FrameSource:
    """The frames of one input; ``read(frame)`` returns a Frame or raises InputFileError."""

    kind = "frames"

    def __init__(self, path: str, stem: str, frames: list[int]):
        self.path = str(path)
        self.stem = stem
        self.frames = frames

    def file_for(self, frame: int) -> str | None:
        return None

    def read(self, frame: int) -> Frame:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileSequence(FrameSource):
    def __init__(self, path: str, stem: str, files: dict[int, Path], kind: str):
        super().__init__(path, stem, sorted(files))
        self.kind = kind
        self.files = files

    def file_for(self, frame: int) -> str | None:
        return str(self.files[frame])

    def read(self, frame: int) -> Frame:
        return read_image(self.files[frame])


class VideoSource(FrameSource):
    kind = "video"

    def __init__(self, path: str):
        self.reader = VideoReader(path)
        super().__init__(path, Path(path).stem, list(range(1, self.reader.frame_count + 1)))

    def read(self, frame: int) -> Frame:
        return self.reader.read(frame)

    def close(self) -> None:
        self.reader.close()


class ArraySource(FrameSource):
    """In-memory frames (the demo, tests): (T, H, W, 3) arrays numbered from ``first``."""

    kind = "arrays"

    def __init__(self, frames: np.ndarray, stem: str = "frame", first: int = 1, path: str = "<memory>"):
        self.arrays = frames
        super().__init__(path, stem, list(range(first, first + len(frames))))
        self.first = first

    def read(self, frame: int) -> Frame:
        return frame_from_array(self.arrays[frame - self.first], path=f"{self.path}#{frame}")


def _frame_number(name_stem: str) -> tuple[str, int | None]:
    m = _TRAILING_NUMBER.match(name_stem)
    if not m:
        return name_stem, None
    return m.group(1), int(m.group(2))


def open_source(path: str | os.PathLike) -> FrameSource:
    """An image, folder, frame pattern or video -> FrameSource. Raises UserError if unusable."""
    text = str(path)
    if is_pattern(text) and not Path(text).exists():
        files = match_pattern(text)
        if not files:
            raise InputFileError(text, "no files match this frame pattern")
        return FileSequence(text, pattern_stem(text), files, "pattern")
    p = Path(text)
    if not p.exists():
        raise InputFileError(p, "input not found")
    if p.is_dir():
        images = sorted(e for e in p.iterdir() if e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES
                        and not e.name.startswith("."))
        if not images:
            raise InputFileError(p, f"folder holds no images ({', '.join(IMAGE_SUFFIXES)})")
        numbers = [_frame_number(e.stem)[1] for e in images]
        if all(n is not None for n in numbers) and len(set(numbers)) == len(numbers):
            files = dict(zip(numbers, images))
        else:
            files = {i + 1: e for i, e in enumerate(images)}
        return FileSequence(text, p.resolve().name or "frame", files, "folder")
    suffix = p.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return VideoSource(text)
    if suffix in IMAGE_SUFFIXES:
        stem, number = _frame_number(p.stem)
        stem = stem.rstrip("._-") or p.stem
        return FileSequence(text, stem, {1 if number is None else number: p}, "image")
    raise InputFileError(p, f"unsupported input type '{p.suffix}' (images: {', '.join(IMAGE_SUFFIXES)}; "
                            f"videos: {', '.join(VIDEO_SUFFIXES)})")


# --- outputs ---------------------------------------------------------------------------------

def output_pattern(out: str | os.PathLike, stem: str) -> str:
    """The EXR frame pattern for OUT: itself when it is a pattern, else OUT/<stem>.####.exr."""
    text = str(out)
    if is_pattern(text):
        if not text.lower().endswith(".exr"):
            raise UserError(f"{text}: the output pattern must end in .exr (e.g. out/shot.####.exr)")
        return text
    if text.lower().endswith(".exr"):
        raise UserError(f"{text}: an output file needs a frame number: use a pattern such as "
                        f"{text[:-4]}.####.exr, or give a folder")
    return os.path.join(text, f"{stem}.####.exr")


def extra_pattern(exr_pattern: str, what: str, pid: str, suffix: str = ".png") -> str:
    """Side outputs next to the EXRs: <dir>/<what>/<person>/<name>.####<suffix>."""
    head, pad, _ = _split_pattern(exr_pattern)
    folder, name = os.path.split(head)
    return os.path.join(folder, what, pid, name + "#" * pad + suffix)
