"""Who is in each frame: the guidance masks that tell InstMatt which person is which.

Three sources, one interface (``people(frame, image) -> Guide``):

- ``DetectorGuidance``: Mask R-CNN finds the people; IDs come from the tracker.
- ``MaskFolderGuidance``: the artist's masks, ``DIR/<frame, 4 digits>/<NN>.png`` (one
  image per person, ``NN`` = the person's number, so ``03.png`` is ``person_03``; 8/16-bit,
  float or EXR; ``person_03.png`` works too). A frame folder may be empty (nobody there)
  but must exist. For a single image, ``DIR/<NN>.png`` without a frame folder also works.
- ``IndexGuidance``: one ID image per frame (a pattern such as ``ids.####.png``, a folder,
  or one file for a single frame): each pixel holds its person's number, 0 = nobody;
  8/16-bit grey PNG/TIFF or EXR (e.g. Blender's IndexOB pass).

With artist guidance the artist's numbering is the ID; the tracker is not used.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import InputFileError, UserError
from engine.frames import is_pattern, match_pattern
from engine.io.images import IMAGE_SUFFIXES, read_index, read_mask

_PERSON_FILE = re.compile(r"^(?:person_?)?(\d+)$", re.IGNORECASE)
MAX_INDEX_IDS = 255


@dataclass
class Guide:
    masks: np.ndarray  # (K, H, W) float32 in [0, 1]
    numbers: list[int] | None  # the people's numbers, or None: let the tracker decide
    scores: list[float] | None = None
    files: list[str] = field(default_factory=list)


def _size_error(path, mask_shape, frame_shape, what: str = "mask") -> InputFileError:
    return InputFileError(path, f"{what} is {mask_shape[1]}x{mask_shape[0]} but the frame is "
                                f"{frame_shape[1]}x{frame_shape[0]} (guidance must match the footage pixel for pixel)")


def _frame_list(frames: list[int]) -> str:
    shown = ", ".join(f"{f:04d}" for f in frames[:5])
    return shown + (f" and {len(frames) - 5} more" if len(frames) > 5 else "")


class Guidance:
    kind = "none"
    tracked = False  # True: numbers come from the tracker

    def check(self, frames: list[int]) -> None:
        """Fail before any work when guidance is missing for some of the frames."""

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind}


class DetectorGuidance(Guidance):
    kind = "detector"
    tracked = True

    def __init__(self, detector):
        self.detector = detector

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        masks, scores, _ = self.detector.detect(rgb8)
        return Guide(masks, None, [float(s) for s in scores])

    def describe(self) -> dict:
        return {"kind": "detector", "weights": str(self.detector.weights_path), "score": self.detector.score,
                "min_area": self.detector.min_area, "size": self.detector.size}


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
            raise UserError(f"guidance: no masks for frames {_frame_list(missing)}")

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        masks = np.asarray(self.masks[frame], np.float32)
        if masks.shape[1:] != rgb8.shape[:2]:
            raise _size_error(f"<masks of frame {frame}>", masks.shape[1:], rgb8.shape[:2])
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
        if self.flat:
            if len(frames) != 1:
                raise InputFileError(self.path, f"holds masks for one frame but the input has {len(frames)} frames; "
                                                f"use one folder per frame: DIR/<frame, 4 digits>/<NN>.png")
            return
        missing = [f for f in frames if f not in self.frame_dirs]
        if missing:
            have = len(frames) - len(missing)
            raise InputFileError(self.path, f"mask folder has masks for {have} of {len(frames)} frames; "
                                            f"missing frame folders {_frame_list(missing)} "
                                            f"(expected {self.path}/<frame, 4 digits>/<NN>.png)")

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        folder = self.path if self.flat else self.frame_dirs.get(frame)
        if folder is None:
            raise InputFileError(self.path / f"{frame:04d}", "no masks for this frame (folder missing)")
        masks, numbers, files = [], [], []
        for number, file in _person_files(folder):
            mask = read_mask(file)
            if mask.shape != rgb8.shape[:2]:
                raise _size_error(file, mask.shape, rgb8.shape[:2])
            if not (mask > 0).any():
                continue  # this person is not in the frame
            masks.append(mask)
            numbers.append(number)
            files.append(str(file))
        stack = np.stack(masks) if masks else np.zeros((0,) + rgb8.shape[:2], np.float32)
        return Guide(stack, numbers, None, files)

    def describe(self) -> dict:
        return {"kind": "masks", "path": str(self.path)}


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
                                            f"missing frames {_frame_list(missing)}")

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        file = self.single if self.single is not None else self.files.get(frame)
        if file is None:
            raise InputFileError(self.path, f"no ID image for frame {frame:04d}")
        index = read_index(file)
        if index.shape != rgb8.shape[:2]:
            raise _size_error(file, index.shape, rgb8.shape[:2], "ID image")
        values = np.unique(index)
        values = values[values > 0]
        if values.size > MAX_INDEX_IDS:
            raise InputFileError(file, f"ID image has {values.size} different IDs; expected one small integer per "
                                       f"person (is this a photo rather than an ID pass?)")
        masks = np.stack([(index == v) for v in values]).astype(np.float32) if values.size \
            else np.zeros((0,) + index.shape, np.float32)
        return Guide(masks, [int(v) for v in values], None, [str(file)])

    def describe(self) -> dict:
        return {"kind": "index", "path": self.path}


def make_guidance(kind: str = "detector", path: str | None = None, detector_weights: str | None = None,
                  score: float | None = None, min_area: float | None = None, device: str | None = None,
                  detector_size: int | None = None) -> Guidance:
    """Guidance from the CLI / protocol fields."""
    from engine.detect import DEFAULT_MIN_AREA, DEFAULT_SCORE, DEFAULT_SIZE

    if kind == "masks":
        if not path:
            raise UserError("guidance 'masks' needs a path: DIR/<frame, 4 digits>/<NN>.png")
        return MaskFolderGuidance(path)
    if kind == "index":
        if not path:
            raise UserError("guidance 'index' needs a path: a pattern such as ids.####.png")
        return IndexGuidance(path)
    if kind == "detector":
        from engine.detect import PersonDetector

        return DetectorGuidance(PersonDetector(detector_weights,
                                               DEFAULT_SCORE if score is None else score,
                                               DEFAULT_MIN_AREA if min_area is None else min_area, device,
                                               size=DEFAULT_SIZE if detector_size is None else detector_size))
    raise UserError(f"unknown guidance kind {kind!r} (use detector, masks or index)")
