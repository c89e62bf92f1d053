"""The one interface of every guidance source: ``people(frame, image) -> Guide``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.errors import InputFileError


@dataclass
class Guide:
    masks: np.ndarray  # (K, H, W) float32 in [0, 1]
    numbers: list[int] | None  # the people's numbers, or None: let the tracker decide
    scores: list[float] | None = None
    files: list[str] = field(default_factory=list)


def size_error(path, mask_shape, frame_shape, what: str = "mask") -> InputFileError:
    return InputFileError(path, f"{what} is {mask_shape[1]}x{mask_shape[0]} but the frame is "
                                f"{frame_shape[1]}x{frame_shape[0]} (guidance must match the footage pixel for pixel)")


def frame_list(frames: list[int]) -> str:
    shown = ", ".join(f"{f:04d}" for f in frames[:5])
    return shown + (f" and {len(frames) - 5} more" if len(frames) > 5 else "")


class Guidance:
    kind = "none"
    tracked = False  # True: numbers come from the tracker

    def check(self, frames: list[int]) -> None:
        """Fail before any work when guidance is missing for some of the frames."""

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        raise NotImplementedError

    def input_files(self, frames: list[int]) -> list[str]:
        """The files this guidance reads for ``frames`` (outputs must never overwrite them)."""
        return []

    def describe(self) -> dict:
        return {"kind": self.kind}
