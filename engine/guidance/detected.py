"""The detector as keyframe source (``--propagate`` without ``--masks``).

The detector finds the people on the first frame; :mod:`.layered` carries them from frame
to frame. The detector runs again every ``detect_every`` frames (0: never on a schedule),
on any frame where the carry loses confidence (someone in view no longer looks like
themselves where they are placed, :meth:`LayeredTracker.lost`), and on every frame while
nobody is carried (a shot that starts empty). Each frame it runs on becomes a keyframe:

- its people are matched to the carried ones (Hungarian) by IoU with what shows of them
  and by the colours of their clothes, so the IDs hold: a pair needs an IoU of
  ``MATCH_IOU``, or the same look (``SAME_LOOK``) within ``NEAR`` of the person's carried
  shape (a person coming out from behind someone, where the carry had lost them). A
  matched person takes the detection's mask and this frame's appearance (kept whole from
  the carried shape where the detection shows only part of them);
- a detection that matches nobody is a new person, with the next free number;
- a carried person no detection matches stays while hidden behind someone (the detector
  sees only what shows), and leaves once the detector has missed them in view (enough of
  them showing for it to find) ``MISSES_TO_LEAVE`` times running, or when they have left
  the frame.

Frames go forward in time, one after the other. A frame whose predecessor this object
did not carry (the job resumes, or skips finished frames) starts again from the
predecessor's mattes when the job has them on disk (``resume``), so numbering carries on,
else from a fresh detection.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from .base import Guidance, Guide
from .layered import MIN_PIXELS, LayeredTracker
from .tracking import (
    colour_histograms,
    look_distance,
    mask_boxes,
    mask_iou,
    small_masks,
)

MATCH_IOU = 0.3  # a detection and a carried person overlapping this much are the same person
SAME_LOOK = 0.4  # colour-histogram distance under which two masks look like the same person
NEAR = 1.5  # box diagonals: how far from their carried shape a person matched by look may be
LOOK_MEMORY = 0.7  # weight of the past in a person's colour histogram
BLOCKED = 1e6
MISSES_TO_LEAVE = 2  # detection rounds that miss a person in view before they leave
IN_VIEW = 0.5  # share of a person's carried shape that shows for a miss to count
WORK_SIDE = 256  # masks are matched at this longest side


class DetectedPropagation(Guidance):
    kind = "detector"

    def __init__(self, detector, detect_every: int = 0):
        self.detector = detector
        self.detect_every = int(detect_every)
        self.resume = None  # frame -> (numbers, alphas, rgb8) of the frame before it, or None; set by the job
        self.tracker: LayeredTracker | None = None
        self.numbers: list[int] = []
        self.misses: list[int] = []
        self.looks: list = []  # per person: colour histogram (of their detections)
        self.next_number = 1
        self._detection: int | None = None  # the frame the detector last ran on
        self._keyframe: dict[int, int] = {}  # frame -> the detection it was carried from
        self._before: dict[int, int | None] = {}
        self._at: int | None = None
        self._since = 0

    def check(self, frames: list[int]) -> None:
        self._before = {f: (frames[i - 1] if i else None) for i, f in enumerate(frames)}

    def people(self, frame: int, rgb8: np.ndarray) -> Guide:
        before = self._before.get(frame)
        if self.tracker is not None and before is not None and self._at == before:
            self.tracker.step(rgb8)
            self._since += 1
            self._leave_frame()
            due = self.detect_every and self._since >= self.detect_every
            if due or self.tracker.lost() or not self.numbers:  # nobody carried: look on every frame
                self._detect(frame, rgb8)
        else:
            self._start(frame, rgb8)
        self._at = frame
        self._keyframe[frame] = self._detection
        return Guide(self.tracker.masks(), list(self.numbers))

    def record(self, frame: int) -> dict:
        """For the frame's manifest: the detection its people were carried from (this frame
        itself where the detector ran)."""
        keyframe = self._keyframe.get(frame)
        return {"source": "detector", "keyframe": keyframe, "detected": keyframe == frame}

    def _start(self, frame: int, rgb8: np.ndarray) -> None:
        """Carry on from the mattes of the frame before when they are on disk, else detect afresh."""
        earlier = self.resume(frame) if self.resume is not None else None
        if earlier is not None:
            numbers, alphas, previous_rgb8 = earlier
            keep = [k for k, a in enumerate(alphas) if (a >= 0.5).sum() >= MIN_PIXELS]
            self.tracker = LayeredTracker(previous_rgb8, np.stack([alphas[k] >= 0.5 for k in keep]).astype(np.float32)
                                          if keep else np.zeros((0,) + rgb8.shape[:2], np.float32))
            self.numbers = [int(numbers[k]) for k in keep]
            self.misses = [0] * len(keep)
            self.looks = colour_histograms(previous_rgb8, small_masks(self.tracker.masks(), WORK_SIDE))
            self.next_number = max([self.next_number, *(int(n) + 1 for n in numbers)])
            self.tracker.step(rgb8)
            self._detect(frame, rgb8)
            return
        masks, _, _ = self.detector.detect(rgb8)
        self.tracker = LayeredTracker(rgb8, np.asarray(masks, np.float32).reshape((-1,) + rgb8.shape[:2]))
        self.numbers = list(range(self.next_number, self.next_number + len(masks)))
        self.misses = [0] * len(masks)
        self.looks = colour_histograms(rgb8, small_masks(masks, WORK_SIDE))
        self.next_number += len(masks)
        self._detection, self._since = frame, 0

    def _detect(self, frame: int, rgb8: np.ndarray) -> None:
        """Run the detector here and make this frame a keyframe (the rules in the module's text)."""
        masks, _, _ = self.detector.detect(rgb8)
        masks = np.asarray(masks, np.float32).reshape((-1,) + rgb8.shape[:2])
        carried = self.tracker.masks()
        small = small_masks(masks, WORK_SIDE)
        looks = colour_histograms(rgb8, small)
        matched = self._match(small, looks, carried)  # carried person -> detection
        for k, d in matched.items():
            self.looks[k] = looks[d] if self.looks[k] is None or looks[d] is None else \
                LOOK_MEMORY * self.looks[k] + (1 - LOOK_MEMORY) * looks[d]
        leave = []
        for k in range(len(self.numbers)):
            if k in matched:
                self.misses[k] = 0
                continue
            if carried[k].sum() >= self._findable(k):
                self.misses[k] += 1
            if self.misses[k] >= MISSES_TO_LEAVE:
                leave.append(k)
        taken = set(matched.values())
        fresh = [d for d in range(len(masks)) if d not in taken and not self._covered(masks[d])]
        new = [masks[d] for d in fresh]
        self.tracker.rekey({k: masks[d] for k, d in matched.items()}, new, leave)
        self._drop(leave)
        self.numbers += list(range(self.next_number, self.next_number + len(new)))
        self.misses += [0] * len(new)
        self.looks += [looks[d] for d in fresh]
        self.next_number += len(new)
        self._detection, self._since = frame, 0

    def _findable(self, k: int) -> float:
        """Pixels of person k that must show for the detector to be expected to find them:
        ``IN_VIEW`` of their carried shape and at least the detector's smallest mask."""
        shape = self.tracker.extents[k]
        return max(IN_VIEW * shape.sum(), MIN_PIXELS, getattr(self.detector, "min_area", 0.0) * shape.size)

    def _match(self, small: np.ndarray, looks: list, carried: np.ndarray) -> dict[int, int]:
        """Carried person -> detection, by overlap with what shows of them and by look."""
        if not len(small) or not len(carried):
            return {}
        people = small_masks(carried, WORK_SIDE)
        iou = mask_iou(small, people)
        look = np.array([[look_distance(a, b) for b in self.looks] for a in looks])
        centres, _ = mask_boxes(small)
        shapes = small_masks(np.stack(self.tracker.extents).astype(np.float32), WORK_SIDE)
        places, sizes = mask_boxes(shapes)
        distance = np.linalg.norm(centres[:, None] - places[None], axis=-1) / np.maximum(sizes, 0.05)[None]
        allowed = (iou >= MATCH_IOU) | ((look <= SAME_LOOK) & (np.nan_to_num(distance, nan=np.inf) <= NEAR))
        rows, cols = linear_sum_assignment(np.where(allowed, (1 - iou) + look, BLOCKED))
        return {int(k): int(d) for d, k in zip(rows, cols) if allowed[d, k]}

    def _covered(self, mask: np.ndarray) -> bool:
        """A detection lying mostly on someone already carried (what shows of them, or the whole
        shape of someone mostly hidden: a second mask of one of them) is not a newcomer."""
        area = (mask >= 0.5).sum()
        taken = np.zeros(mask.shape, bool)
        for extent, visible in zip(self.tracker.extents, self.tracker.visible):
            taken |= extent if visible.sum() < IN_VIEW * extent.sum() else visible
        return bool(area) and (mask >= 0.5)[taken].sum() >= 0.5 * area

    def _leave_frame(self) -> None:
        """People carried out of the frame leave the shot (should they come back, the detector
        finds them as a new person)."""
        gone = [k for k, extent in enumerate(self.tracker.extents) if extent.sum() < MIN_PIXELS]
        if gone:
            self.tracker.rekey({}, [], gone)
            self._drop(gone)

    def _drop(self, people: list[int]) -> None:
        """Forget the numbers, misses and looks of ``people`` (the tracker has let them go)."""
        stay = [k for k in range(len(self.numbers)) if k not in set(people)]
        self.numbers = [self.numbers[k] for k in stay]
        self.misses = [self.misses[k] for k in stay]
        self.looks = [self.looks[k] for k in stay]

    def describe(self) -> dict:
        return {**self.detector.describe(), "propagate": True, "detect_every": self.detect_every}
