"""Guidance on keyframes only (``--masks KEYS --propagate``), carried to every other frame.

KEYS uses the mask-folder layout but holds folders for some frames only. Which keyframe
drives which frame, and what a keyframe edit makes stale, is :mod:`.keyframes`; how the
people are carried from one frame to the next is :mod:`.layered`. Because the guidance
of a frame depends only on its keyframe and the images in between (not on the network's
output), any frame can be recomputed alone: its chain is replayed from the nearest state
at hand, without the network.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np

from engine.errors import InputFileError

from .base import Guidance, Guide, frame_list, size_error
from .keyframes import (
    Recompute,
    plan,
    plan_recompute,
    propagation_order,
    read_keyframes,
)
from .layered import LayeredTracker


class PropagatedGuidance(Guidance):
    kind = "propagate"
    propagating = True

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.keys, self.key_masks = read_keyframes(self.path)
        self.sources = {}
        self.read = None  # frame -> RGB uint8; the job sets it (chains are replayed from other frames)
        self._trackers: dict[int, LayeredTracker] = {}
        self._frames: list[int] = []

    def check(self, frames: list[int]) -> None:
        self._frames = list(frames)
        self.sources = plan(frames, self.keys)
        if not self.sources:
            raise InputFileError(self.path, f"holds no keyframe among the frames asked for "
                                            f"({frame_list(frames)}); keyframes: {frame_list(sorted(self.keys))}")

    def order(self) -> list[int]:
        """The frames in an order where each comes after the frame it is carried from."""
        return propagation_order(self.sources)

    def record(self, frame: int) -> dict:
        """The dependency record for the frame's manifest: keyframe, its hash, carried from."""
        return self.sources[frame].record(self.keys)

    def recompute(self, previous: dict[int, dict | None]) -> Recompute:
        return plan_recompute(self.sources, self.keys, previous)

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        source = self.sources[frame]
        tracker = self._tracker_at(frame, rgb8)
        numbers = sorted(self.key_masks[source.keyframe])
        pick = [numbers.index(n) for n in source.people]
        masks = tracker.masks()[pick] if pick else np.zeros((0,) + rgb8.shape[:2], np.float32)
        return Guide(masks, list(source.people))

    def _keyframe_tracker(self, key: int, rgb8: np.ndarray) -> LayeredTracker:
        people = self.key_masks[key]
        numbers = sorted(people)
        for n in numbers:
            if people[n].shape != rgb8.shape[:2]:
                raise size_error(self.path / f"{key:04d}" / f"{n:02d}.png", people[n].shape, rgb8.shape[:2])
        masks = np.stack([people[n] for n in numbers]) if numbers else np.zeros((0,) + rgb8.shape[:2], np.float32)
        tracker = LayeredTracker(rgb8, masks)
        earlier = self.sources[key].completed_from
        if earlier:
            self._complete(tracker, key, earlier[0])
        return tracker

    def _complete(self, tracker: LayeredTracker, key: int, earlier: int) -> None:
        """Complete the keyframe's partly hidden people from the earlier keyframe, carried
        forward onto it through the frames between. The earlier keyframe's forward chain
        usually ends in the gap, its last state kept (no frame is carried from it): the carry
        goes on from there rather than stepping those frames again."""
        start, stop = self._frames.index(earlier), self._frames.index(key)
        ends = [i for i in range(start + 1, stop) if self._frames[i] in self._trackers
                and self.sources[self._frames[i]].keyframe == earlier]
        if ends:
            start = ends[-1]
            carried = copy.deepcopy(self._trackers[self._frames[start]])
        else:
            carried = self._keyframe_state(earlier)
        for f in self._frames[start + 1:stop + 1]:
            carried.step(self._image(f))
        here, there = sorted(self.key_masks[key]), sorted(self.key_masks[earlier])
        pairs = [(here.index(n), there.index(n)) for n in here if n in there]
        tracker.complete(carried, pairs)

    def _keyframe_state(self, key: int) -> LayeredTracker:
        """A copy of the keyframe's tracker as it is on the keyframe (made once, then kept)."""
        if key not in self._trackers:
            self._trackers[key] = self._keyframe_tracker(key, self._image(key))
        return copy.deepcopy(self._trackers[key])

    def _tracker_at(self, frame: int, rgb8: np.ndarray) -> LayeredTracker:
        """The tracker moved onto ``frame``, stepping along its chain from the nearest state kept."""
        chain = [frame]
        while chain[-1] not in self._trackers and self.sources[chain[-1]].previous is not None:
            chain.append(self.sources[chain[-1]].previous)
        start = chain[-1]
        if start in self._trackers and start not in self.keys:
            tracker = self._trackers.pop(start)  # any frame but a keyframe is carried from only once
        else:
            if start not in self._trackers:
                self._trackers[start] = self._keyframe_tracker(start, rgb8 if start == frame else self._image(start))
            tracker = copy.deepcopy(self._trackers[start])  # a keyframe is carried both ways
            if len(chain) > 1 and chain[-2] < start:
                tracker.reverse()  # the steady motion a keyframe starts with points forward in time
        for f in reversed(chain[:-1]):
            tracker.step(rgb8 if f == frame else self._image(f))
        self._trackers[frame] = tracker
        return tracker

    def _image(self, frame: int) -> np.ndarray:
        if self.read is None:
            raise RuntimeError("PropagatedGuidance.read is not set: the job gives it the footage")
        return self.read(frame)

    def input_files(self, frames: list[int]) -> list[str]:
        return [str(f) for d in self.path.iterdir() if d.is_dir() for f in d.iterdir() if f.is_file()]

    def describe(self) -> dict:
        return {"kind": "masks", "path": str(self.path), "propagate": True}
