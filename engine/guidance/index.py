"""ID images: one image per frame whose pixels hold their person's number (0 = nobody)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engine.errors import InputFileError
from engine.io.images import IMAGE_SUFFIXES, read_index
from engine.io.patterns import is_pattern, match_pattern

from .base import Guidance, Guide, frame_list, size_error


class IndexGuidance(Guidance):
    kind = "index"

    def __init__(self, path: str | os.PathLike):
        text = str(path)
        self.path = text
        self.single: Path | None = None
        if is_pattern(text) and not Path(text).exists():
            self.files = match_pattern(text)
            if not self.files:
                raise InputFileError(text, "no ID images match this pattern")
        elif Path(text).is_dir():
            self.files = {}
            for entry in sorted(Path(text).iterdir()):
                m = re.search(r"(\d+)$", entry.stem)
                if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES and m:
                    self.files.setdefault(int(m.group(1)), entry)
            if not self.files:
                raise InputFileError(text, "folder holds no numbered ID images")
        elif Path(text).is_file():
            self.files = {}
            self.single = Path(text)
        else:
            raise InputFileError(text, "ID image not found")

    def check(self, frames: list[int]) -> None:
        if self.single is not None:
            if len(frames) != 1:
                raise InputFileError(self.path, f"is one ID image but the input has {len(frames)} frames; "
                                                f"give a pattern such as ids.####.png")
            return
        missing = [f for f in frames if f not in self.files]
        if missing:
            raise InputFileError(self.path, f"ID images for {len(frames) - len(missing)} of {len(frames)} frames; "
                                            f"missing frames {frame_list(missing)}")

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        file = self.single if self.single is not None else self.files.get(frame)
        if file is None:
            raise InputFileError(self.path, f"no ID image for frame {frame:04d}")
        index = read_index(file)
        if index.shape != rgb8.shape[:2]:
            raise size_error(file, index.shape, rgb8.shape[:2], "ID image")
        values = np.unique(index)
        values = values[values > 0]
        if values.size > MAX_INDEX_IDS:
            raise InputFileError(file, f"ID image has {values.size} different IDs; expected one small integer per "
                                       f"person (is this a photo rather than an ID pass?)")
        masks = np.stack([(index == v) for v in values]).astype(np.float32) if values.size \
            else np.zeros((0,) + index.shape, np.float32)
        return Guide(masks, [int(v) for v in values], None, [str(file)])

    def input_files(self, frames: list[int]) -> list[str]:
        if self.single is not None:
            return [str(self.single)]
        return [str(self.files[f]) for f in frames if f in self.files]

    def describe(self) -> dict:
        return {"kind": "index", "path": self.path}


MAX_INDEX_IDS = 255
