"""The artist's masks: one image per person per frame (a folder), or arrays in memory."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engine.errors import InputFileError, UserError
from engine.io.images import IMAGE_SUFFIXES, read_mask

from .base import Guidance, Guide, frame_list, size_error

_PERSON_FILE = re.compile(r"^(?:person_?)?(\d+)$", re.IGNORECASE)


class ArrayGuidance(Guidance):
    """In-memory masks per frame (the demo, tests): {frame: (K, H, W)}; numbers optional."""

    kind = "arrays"

    def __init__(self, masks: dict[int, np.ndarray], numbers: dict[int, list[int]] | None = None):
        self.masks = masks
        self.numbers = numbers
        self.tracked = numbers is None

    def check(self, frames: list[int]) -> None:
        missing = [f for f in frames if f not in self.masks]
        if missing:
            raise UserError(f"guidance: no masks for frames {frame_list(missing)}")

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        masks = np.asarray(self.masks[frame], np.float32)
        if masks.shape[1:] != rgb8.shape[:2]:
            raise size_error(f"<masks of frame {frame}>", masks.shape[1:], rgb8.shape[:2])
        return Guide(masks, None if self.numbers is None else list(self.numbers[frame]))


def _person_files(folder: Path) -> list[tuple[int, Path]]:
    found: dict[int, Path] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_file():
            continue
        if entry.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        m = _PERSON_FILE.match(entry.stem)
        if not m:
            raise InputFileError(entry, "mask files must be named by person number, e.g. 01.png, 02.png")
        number = int(m.group(1))
        if number < 1:
            raise InputFileError(entry, "person numbers start at 1 (0 means nobody)")
        if number in found:
            raise InputFileError(entry, f"two masks for person {number:02d} ({found[number].name} and {entry.name})")
        found[number] = entry
    return sorted(found.items())


class MaskFolderGuidance(Guidance):
    kind = "masks"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise InputFileError(self.path, "mask folder not found (expected DIR/<frame, 4 digits>/<NN>.png)")
        self.frame_dirs: dict[int, Path] = {}
        for entry in self.path.iterdir():
            if entry.is_dir() and entry.name.isdigit():
                self.frame_dirs.setdefault(int(entry.name), entry)
        # a single frame's masks directly in DIR (no frame folders)
        self.flat = not self.frame_dirs and any(
            e.is_file() and e.suffix.lower() in IMAGE_SUFFIXES and _PERSON_FILE.match(e.stem) for e in self.path.iterdir())

    def check(self, frames: list[int]) -> None:
        if len(frames) == 1 and frames[0] not in self.frame_dirs and len(self.frame_dirs) == 1:
            # a still is frame 1 whatever its name says; its one frame folder is its masks
            self.frame_dirs = {frames[0]: next(iter(self.frame_dirs.values()))}
        if self.flat:
            if len(frames) != 1:
                raise InputFileError(self.path, f"holds masks for one frame but the input has {len(frames)} frames; "
                                                f"use one folder per frame: DIR/<frame, 4 digits>/<NN>.png")
            return
        missing = [f for f in frames if f not in self.frame_dirs]
        if missing:
            have = len(frames) - len(missing)
            raise InputFileError(self.path, f"mask folder has masks for {have} of {len(frames)} frames; "
                                            f"missing frame folders {frame_list(missing)} "
                                            f"(expected {self.path}/<frame, 4 digits>/<NN>.png)")

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        folder = self.path if self.flat else self.frame_dirs.get(frame)
        if folder is None:
            raise InputFileError(self.path / f"{frame:04d}", "no masks for this frame (folder missing)")
        masks, numbers, files = [], [], []
        for number, file in _person_files(folder):
            mask = read_mask(file)
            if mask.shape != rgb8.shape[:2]:
                raise size_error(file, mask.shape, rgb8.shape[:2])
            if not (mask > 0).any():
                continue  # this person is not in the frame
            masks.append(mask)
            numbers.append(number)
            files.append(str(file))
        stack = np.stack(masks) if masks else np.zeros((0,) + rgb8.shape[:2], np.float32)
        return Guide(stack, numbers, None, files)

    def input_files(self, frames: list[int]) -> list[str]:
        folders = [self.path] if self.flat else [self.frame_dirs[f] for f in frames if f in self.frame_dirs]
        return [str(entry) for folder in folders for entry in folder.iterdir() if entry.is_file()]

    def describe(self) -> dict:
        return {"kind": "masks", "path": str(self.path)}
