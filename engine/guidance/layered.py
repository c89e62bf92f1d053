"""Carry a keyframe's people through a shot: one layer per person, each anchored to the keyframe.

    tracker = LayeredTracker(key_rgb8, key_masks)     # (K, H, W) masks of the keyframe
    masks = tracker.step(next_rgb8)                   # (K, H, W) guidance for the next frame
    tracker.step(...)                                 # and so on, one frame at a time

Each person keeps their keyframe appearance (grey image and mask, the *reference*) and
one affine transform from the keyframe to the current frame. Per frame:

1. Predict the transform: the person's motion between the last two frames, fitted
   (RANSAC, similarity) to the forward-backward-consistent DIS flow over their visible
   pixels; while they are mostly hidden, their recent average motion, its bob and scale
   change eased out (people walking behind others come out where a walk takes them).
2. Correct it against the keyframe (ECC, affine, projected onto a similarity): the
   reference pixels that stay visible (not under someone in front, inside the frame)
   are aligned with this frame. Aligning with the keyframe rather than the frame before
   keeps errors from adding up over the shot, and snaps a person back into place when
   they come out from behind someone. Below ``MIN_VISIBLE`` of their reference visible,
   only the shift is aligned. When the result fits the image far worse than the person
   fitted after their keyframe (ECC caught in a wrong optimum a few pixels off), shifts
   around the prediction are tried on a grid and ECC runs again from the best.
3. The person's whole extent is their shape moved by the transform (one resampling, so
   edges do not blur over time), minus everyone in front of them. The shape is the
   keyframe mask, its rows cut by the frame's edge continued a little past it (feet
   below the frame show as a person bobs up), and grown where the keyframe did not show
   them (:mod:`.growth`). Only the keyframe's pixels are used to align and order.
4. Who is in front where two extents overlap: the person whose reference, moved, explains
   the overlap's pixels better; until the image says, the person whose feet are lower.

Guidance masks never overlap, so IDs cannot swap where people cross. The network is not
fed back: each frame's guidance depends only on the keyframe and the images, so a frame
can be recomputed on its own, and a weak model cannot push the masks off over time.
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import (
    IDENTITY,
    centre_of,
    compose,
    continued,
    eased,
    ecc,
    ecc_shift,
    fit_flow,
    flows,
    full_size,
    grey,
    move,
    nearest_similarity,
    residual,
    shifted,
)
from .growth import grow

MIN_VISIBLE = 0.6  # share of the reference visible below which only the shift is measured
MIN_SHIFT_VISIBLE = 0.1  # below this share of the reference visible the motion is predicted
OCCLUDER_BAND = 3  # pixels around someone in front that are not used to align the person behind
FLOW_VISIBLE = 0.35  # share of the extent visible needed to fit the frame's motion to the flow
FLOW_AGREE = 5.5  # pixels: a flow fit further than this from the person's steady motion is not trusted
MIN_PIXELS = 200  # fewer visible reference pixels than this: predicted
MAX_CORRECTION = 20.0  # pixels: an alignment further than this from the prediction has failed
ORDER_PIXELS = 50  # overlap needed to decide who is in front
ORDER_MARGIN = 2.0  # grey levels: how much better one person must explain the overlap
MOTION_MEMORY = 0.5  # weight of the past in the average motion
COMPLETE_BELOW = 0.8  # a keyframe mask under this share of the person's carried shape is partial
COMPLETE_MATCH = 0.5  # IoU the carried shape's visible part needs with that partial mask
COMPLETE_OUTSIDE = 0.1  # or this share of their carried shape out of the frame: partial too
RETRY_RATIO = 2.5  # a residual this many times the person's first one: align from a second start
RETRY_FLOOR = 5.0  # grey levels: never below this
RETRY_SHIFTS = (-8, -4, 0, 4, 8)  # pixels: the grid of shifts tried then, each way
LOST_RATIO = 4.0  # an alignment residual this many times the person's first one means they are lost
LOST_FLOOR = 8.0  # grey levels: a residual below this is never a loss (occlusion edges, lighting)
CONTINUE = 0.03  # of the frame's height: how far a shape cut by the frame's edge goes on past it
BLIND_EASE = 0.5  # how much of the vertical, turning and scaling motion a blind frame keeps
GROW_MARGIN = 0.25  # of the frame's larger side: how far past the keyframe's edge a shape can grow


class _Person:
    def __init__(self, reference: np.ndarray, mask: np.ndarray, known: np.ndarray | None = None):
        self.reference = reference  # grey keyframe
        mask = (np.asarray(mask) >= 0.5).astype(np.uint8)
        # where the reference shows this person (alignment and depth order look only there)
        self.known = mask.copy() if known is None else (np.asarray(known) >= 0.5).astype(np.uint8)
        # their shape: the keyframe mask, continued past the frame's edge and grown where
        # they are revealed, on a canvas larger than the frame
        self.margin = int(GROW_MARGIN * max(mask.shape))
        self.mask = continued(mask, self.margin, _edge_reach(mask.shape))
        self.transform = IDENTITY.copy()  # keyframe -> current frame
        self.motion = IDENTITY.copy()  # average motion per frame (previous -> current)
        self.measured = False
        self.fit = None  # mean grey difference to the reference after the last alignment (None: not aligned)
        self.first_fit = None  # the first one after the keyframe: how well this person can fit at all

    def extent(self, shape, transform: np.ndarray | None = None) -> np.ndarray:
        return move(self.mask, self.canvas(self.transform if transform is None else transform), shape) >= 0.5

    def canvas(self, transform: np.ndarray) -> np.ndarray:
        """``transform`` (keyframe -> frame) for the shape's canvas, which has the margin around the keyframe."""
        out = transform.copy()
        out[:, 2] -= out[:, :2] @ np.array([self.margin, self.margin], np.float32)
        return out


class LayeredTracker:
    """People of a keyframe carried frame by frame; ``step`` goes one frame on (either way in time)."""

    def __init__(self, rgb8: np.ndarray, masks: np.ndarray):
        self._grey = grey(rgb8)
        self.shape = self._grey.shape
        masks = np.asarray(masks)
        if masks.ndim != 3 or masks.shape[1:] != self.shape:
            raise ValueError(f"keyframe masks must be (K, {self.shape[0]}, {self.shape[1]}), got {masks.shape}")
        self.people = [_Person(self._grey, m) for m in masks]
        count = len(self.people)
        self.extents = [p.extent(self.shape) for p in self.people]
        rank = _depth_rank(self.extents)
        self.front = np.array([[j != k and rank[j] > rank[k] for k in range(count)] for j in range(count)],
                              bool).reshape(count, count)
        self.visible = self._visible()
        self.frames = 0

    def complete(self, earlier: LayeredTracker, pairs: list[tuple[int, int]]) -> list[int]:
        """Whole shapes, on a keyframe, for the people it shows only in part.

        ``earlier`` is the tracker of an earlier keyframe carried onto this frame, ``pairs``
        (person here, same person there). A person whose mask here is much smaller than their
        carried shape, or who is partly out of the frame here, and whose carried shape (minus
        the others here) matches that mask,
        takes the earlier reference: their shape and appearance, with this mask added, so
        that they come out whole when they step out from behind someone. The guidance of the
        keyframe itself stays its masks. Returns the people completed."""
        masks = [p.known.astype(bool) for p in self.people]  # on a keyframe: its masks
        completed = []
        for k, j in pairs:
            if not _partial(masks, k, earlier.extents[j], _outside(earlier.people[j], self.shape)):
                continue
            self.people[k] = _completed(earlier.people[j], masks[k], self.shape)
            self.extents[k] = self.people[k].extent(self.shape) | masks[k]
            self._hidden_behind(k, masks)
            completed.append(k)
        return completed

    def rekey(self, masks: dict[int, np.ndarray], new: list[np.ndarray] = (), leave: list[int] = ()) -> None:
        """Make the current frame a keyframe for some people (e.g. where the detector ran):
        the guidance of this frame becomes ``masks[k]`` for person k, and ``new`` people join
        (after the others, in that order); the people in ``leave`` go. A person shown whole
        takes this frame's appearance and shape, their steady motion kept; a person shown
        only in part, where their carried shape agrees, carries on with that shape (it knows
        their hidden part). The people not named carry on unchanged."""
        given = {k: np.asarray(m) >= 0.5 for k, m in masks.items()}
        now = [given.get(k, v) for k, v in enumerate(self.visible)]
        for k, mask in given.items():
            if _partial(now, k, self.extents[k]):
                continue
            person = _Person(self._grey, mask)
            person.motion, person.measured = self.people[k].motion, self.people[k].measured
            self.people[k] = person
            self.extents[k] = mask
        stay = [k for k in range(len(self.people)) if k not in set(leave)]
        count = len(stay) + len(new)
        front = np.zeros((count, count), bool)
        front[:len(stay), :len(stay)] = self.front[np.ix_(stay, stay)]
        self.people = [self.people[k] for k in stay] + [_Person(self._grey, m) for m in new]
        self.extents = [self.extents[k] for k in stay] + [np.asarray(m) >= 0.5 for m in new]
        self.front = front
        rank = _depth_rank(self.extents)
        for k in range(len(stay), count):  # a newcomer: ranked as on a keyframe, until the image says
            for j in range(count):
                if j != k:
                    self.front[k, j], self.front[j, k] = rank[k] > rank[j], rank[j] > rank[k]
        shown = [now[k] for k in stay] + self.extents[len(stay):]  # this frame's guidance, before overlaps
        for i, k in enumerate(stay):
            if k in given:
                self._hidden_behind(i, shown)
        self.visible = self._visible(shown)

    def lost(self) -> bool:
        """True when the carry has lost confidence: someone in view no longer looks like their
        reference where they are placed (residual far above their first one)."""
        return any(p.fit is not None and p.first_fit is not None and p.fit > max(LOST_RATIO * p.first_fit, LOST_FLOOR)
                   for p in self.people)

    def _hidden_behind(self, k: int, masks) -> None:
        """Whoever's mask covers part of person k's whole shape is in front of them."""
        for m in range(len(self.people)):
            if m != k and (self.extents[k] & masks[m]).sum() >= ORDER_PIXELS:
                self.front[m, k], self.front[k, m] = True, False

    def reverse(self) -> None:
        """Turn the people's steady motion around, for carrying them backward in time."""
        for person in self.people:
            person.motion = cv2.invertAffineTransform(person.motion).astype(np.float32)

    def masks(self) -> np.ndarray:
        """(K, H, W) float32 {0, 1}: the guidance of the current frame (never overlapping)."""
        if not self.people:
            return np.zeros((0,) + self.shape, np.float32)
        return np.stack(self.visible).astype(np.float32)

    def step(self, rgb8: np.ndarray) -> np.ndarray:
        current = grey(rgb8)
        if current.shape != self.shape:
            raise ValueError(f"frame is {current.shape[1]}x{current.shape[0]}, the keyframe "
                             f"{self.shape[1]}x{self.shape[0]}")
        forward, backward = flows(self._grey, current)
        count = len(self.people)
        before, shown, placed = [p.transform.copy() for p in self.people], self.visible, self.extents
        predicted = [compose(self._frame_motion(k, forward, backward), p.transform) for k, p in enumerate(self.people)]
        # who is in front is settled on the predicted places first: aligning someone who is
        # going behind another on pixels that are no longer theirs would drag them along
        self.extents = [p.extent(self.shape, t) for p, t in zip(self.people, predicted)]
        self._order(current, predicted)
        moved: dict[int, np.ndarray] = {}
        for k in sorted(range(count), key=lambda k: -int(self.front[k].sum())):  # front first
            person = self.people[k]
            corrected = self._align(k, current, predicted[k], moved)
            start, corrected = self._second_start(k, current, predicted[k], corrected, moved)
            if corrected is not None:
                step = compose(corrected, cv2.invertAffineTransform(person.transform))
                person.motion = step if not person.measured else \
                    (MOTION_MEMORY * person.motion + (1 - MOTION_MEMORY) * step).astype(np.float32)
                person.measured = True
            else:  # carried blind: a bob or a scale change does not go on for ever, a walk does
                person.motion = eased(person.motion, centre_of(self.extents[k]), BLIND_EASE)
            if person.first_fit is None:
                person.first_fit = person.fit
            person.transform = start if corrected is None else corrected
            moved[k] = person.extent(self.shape)
        self.extents = [moved[k] for k in range(count)]
        full = [full_size(f, self.shape) for f in (forward, backward)]  # growth looks pixel by pixel
        for k in grow(self, self._grey, current, *full, before, shown, placed):
            self.extents[k] = self.people[k].extent(self.shape)
        self._order(current, [p.transform for p in self.people])
        self.visible = self._visible()
        self._grey = current
        self.frames += 1
        return self.masks()

    def _second_start(self, k, current, predicted, corrected, moved):
        """(start, corrected) for person k. When the image fits them far worse than it fit
        them after their keyframe, the alignment has slipped into a wrong optimum (a start
        a few pixels off, on a person who bobs as they walk): the shifts around the start
        are tried on a grid, and they are aligned once more from the best; the result that
        fits the image better is kept."""
        person = self.people[k]
        fit, usual = person.fit, person.first_fit
        if fit is None or usual is None or fit <= max(RETRY_RATIO * usual, RETRY_FLOOR):
            return predicted, corrected
        region = move(person.known, predicted, self.shape) >= 0.99
        for j, extent in moved.items():
            if self.front[j, k]:
                region &= ~extent
        if region.sum() < MIN_PIXELS:
            return predicted, corrected
        shifts = [(dx, dy) for dx in RETRY_SHIFTS for dy in RETRY_SHIFTS]
        fits = [residual(person.reference, current, shifted(predicted, dx, dy), region) for dx, dy in shifts]
        start = shifted(predicted, *shifts[int(np.argmin(fits))])
        again = self._align(k, current, start, moved)
        if person.fit is not None and person.fit < fit:
            return start, again
        person.fit = fit
        return predicted, corrected

    # -- motion -------------------------------------------------------------------------------
    def _frame_motion(self, k: int, forward: np.ndarray, backward: np.ndarray) -> np.ndarray:
        """previous -> current for person k: fitted to the flow when enough of them is visible."""
        person, visible = self.people[k], self.visible[k]
        if visible.sum() < FLOW_VISIBLE * max(int(self.extents[k].sum()), 1):
            return person.motion
        band = max(1, _edge_reach(self.shape))  # the flow there has nothing beyond; the shape, a guess
        inner = visible.copy()
        inner[:band], inner[-band:], inner[:, :band], inner[:, -band:] = False, False, False, False
        fitted = fit_flow(forward, backward, inner)
        if fitted is None:
            return person.motion
        # near an occluder the flow follows the occluder: far from a steady walk, the walk wins
        if person.measured and np.abs(fitted[:, 2] - person.motion[:, 2]).max() > FLOW_AGREE:
            return person.motion
        return fitted

    def _align(self, k: int, current: np.ndarray, predicted: np.ndarray, moved: dict) -> np.ndarray | None:
        """The keyframe -> current transform aligned on the reference pixels that stay visible:
        all of a similarity when most of them are, only the shift when few are (a sliver
        next to an occluder pins a position, not a scale); None when too few are or the
        alignment explains the image worse than the prediction."""
        person = self.people[k]
        back = cv2.invertAffineTransform(predicted)
        keep = person.known.copy()
        band = np.ones((2 * OCCLUDER_BAND + 1, 2 * OCCLUDER_BAND + 1), np.uint8)
        for j, extent in moved.items():
            if self.front[j, k]:  # an occluder's edge is only known to a few pixels
                cover = cv2.dilate(extent.astype(np.uint8), band).astype(np.float32)
                keep &= (move(cover, back, self.shape) < 0.5).astype(np.uint8)
        keep &= (move(np.ones(self.shape, np.float32), back, self.shape) >= 0.99).astype(np.uint8)
        keep = cv2.erode(keep, np.ones((3, 3), np.uint8))
        count = int(keep.sum())
        share = count / max(int(person.known.sum()), 1)
        person.fit = None
        if count < MIN_PIXELS or share < MIN_SHIFT_VISIBLE:
            return None
        if share >= MIN_VISIBLE:
            aligned = ecc(person.reference, current, keep, predicted, cv2.MOTION_AFFINE)
            aligned = None if aligned is None else nearest_similarity(aligned)
        else:
            aligned = ecc_shift(person.reference, current, keep, predicted, MIN_PIXELS)
        if aligned is None or np.abs(aligned[:, 2] - predicted[:, 2]).max() > MAX_CORRECTION:
            return None
        region = move(keep.astype(np.float32), predicted, self.shape) >= 0.5
        fit, before = (residual(person.reference, current, t, region) for t in (aligned, predicted))
        person.fit = min(fit, before)
        return None if fit > before else aligned


    # -- who is in front ----------------------------------------------------------------------
    def _order(self, current: np.ndarray, transforms: list[np.ndarray]) -> None:
        count = len(self.people)
        for j in range(count):
            for k in range(j + 1, count):
                overlap = self.extents[j] & self.extents[k]
                for m in range(count):  # pixels under someone in front of both tell nothing
                    if self.front[m, j] and self.front[m, k]:
                        overlap &= ~self.extents[m]
                if overlap.sum() < ORDER_PIXELS:
                    continue
                rj = self._residual(j, current, overlap, transforms[j])
                rk = self._residual(k, current, overlap, transforms[k])
                if abs(rj - rk) > ORDER_MARGIN:
                    self.front[j, k] = rj < rk
                    self.front[k, j] = not self.front[j, k]

    def _residual(self, k: int, current: np.ndarray, region: np.ndarray, transform: np.ndarray) -> float:
        """Mean grey difference between person k's reference, moved, and this frame over ``region``."""
        person = self.people[k]
        inside = region & (move(person.known, transform, self.shape) >= 0.99)
        return residual(person.reference, current, transform, inside) if inside.sum() > 30 else float("inf")

    def _visible(self, shapes: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Each person's ``shapes`` (default: their extents) minus everyone in front of them."""
        shapes = self.extents if shapes is None else shapes
        out = []
        for k, extent in enumerate(shapes):
            visible = extent.copy()
            for j, other in enumerate(shapes):
                if self.front[j, k]:
                    visible &= ~other
            out.append(visible)
        return out


def _partial(masks: list[np.ndarray], k: int, carried: np.ndarray, outside: float = 0.0) -> bool:
    """Person k's mask shows only part of their carried shape: much smaller (or ``outside``,
    the share of that shape out of the frame, is large), and matching what of that shape
    the others' masks leave."""
    others = np.zeros(carried.shape, bool)
    for m, mask in enumerate(masks):
        if m != k:
            others |= mask
    part = masks[k].sum() < COMPLETE_BELOW * carried.sum() or outside >= COMPLETE_OUTSIDE
    return part and _iou(carried & ~others, masks[k]) >= COMPLETE_MATCH


def _outside(person: _Person, shape) -> float:
    """The share of the person's whole shape, where it is carried, that lies out of the frame."""
    whole = float(person.mask.sum()) * abs(float(np.linalg.det(person.transform[:, :2])))
    return max(0.0, 1.0 - float(person.extent(shape).sum()) / whole) if whole else 0.0


def _completed(source: _Person, mask: np.ndarray, shape) -> _Person:
    """``source`` (carried onto this frame) with ``mask`` added to their shape: their
    reference, place and steady motion."""
    here = move(mask.astype(np.float32), cv2.invertAffineTransform(source.transform), shape) >= 0.5
    person = _Person(source.reference, here, source.known.astype(bool) | here)
    person.mask |= source.mask
    person.transform = source.transform.copy()
    person.motion, person.measured = source.motion.copy(), source.measured
    return person


def _edge_reach(shape) -> int:  # pixels a shape cut by the frame's edge goes on past it
    return round(CONTINUE * shape[0])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 0.0


def _depth_rank(extents: list[np.ndarray]) -> list[tuple]:
    """Who is nearer before the image has a say: feet lower; then larger (feet out of the
    frame); then the lower number, so that masks never overlap."""
    return [(_bottom(e), int(e.sum()), -k) for k, e in enumerate(extents)]


def _bottom(extent: np.ndarray) -> int:
    rows = np.nonzero(extent.any(axis=1))[0]
    return int(rows.max()) if len(rows) else -1
