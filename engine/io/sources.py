"""What to process: the input's frames (frame patterns, ranges and output names: :mod:`.patterns`).

Inputs:
- one image file, a still: frame 1 and output ``<its name>.exr``, not numbered from its
  name (``000000196141.jpg`` is a photo, ``hold_02.jpg`` is not frame 2 of "hold");
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

from engine.errors import InputFileError
from engine.io.images import IMAGE_SUFFIXES, Frame, frame_from_array, read_image
from engine.io.patterns import is_pattern, match_pattern, pattern_stem
from engine.io.video import VIDEO_SUFFIXES, VideoReader

_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


class FrameSource:
    """The frames of one input; ``read(frame)`` returns a Frame or raises InputFileError."""

    kind = "frames"

    @property
    def still(self) -> bool:
        """One image file: its output is not numbered."""
        return self.kind == "image"

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
    if suffix in IMAGE_SUFFIXES:  # a still: frame 1, whatever digits its name ends in
        return FileSequence(text, p.stem, {1: p}, "image")
    raise InputFileError(p, f"unsupported input type '{p.suffix}' (images: {', '.join(IMAGE_SUFFIXES)}; "
                            f"videos: {', '.join(VIDEO_SUFFIXES)})")


# --- outputs ---------------------------------------------------------------------------------


