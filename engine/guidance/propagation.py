"""Carry each person's matte from one frame to the next with optical flow.

    motion = FlowEstimator().between(previous_rgb8, current_rgb8)
    carried = carry(motion, previous_alphas)      # (K, H, W) mattes of the frame before
    carried.masks                                 # InstMatt guidance for this frame
    carried.confidence                            # per person, 1 = sure, 0 = lost

The flow is OpenCV's DIS (no weights), computed on grey frames scaled down so the longest
side is about ``FLOW_SIDE`` pixels (DIS costs grow with the pixel count; the guidance is a
coarse mask the network refines anyway), then upsampled to the frame. Both directions
are computed: the backward flow (this frame -> the one before) pulls the previous mattes
onto this frame, and its disagreement with the forward flow marks the pixels that were
not visible in the previous frame (occluded or revealed), where a warp carries someone
else's pixels (Sundaram et al. 2010's forward-backward check).

Guidance: each pixel goes to the person whose warped matte is largest there, if that matte
is at least ``THRESHOLD``; so two people's masks never overlap, which keeps IDs apart
where they cross. Revealed pixels keep no guidance: the network fills the person in from
the image and the neighbouring guidance, and the next frame carries the correction on.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLOW_SIDE = 640
THRESHOLD = 0.5
# forward-backward check: |b + f|^2 > RELATIVE (|b|^2 + |f|^2) + ABSOLUTE (flow-image pixels^2)
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5
# a match whose grey levels differ by more than this (of 255, after a light blur) is wrong:
# typically background dragged along with a moving person by the smooth flow
PHOTOMETRIC = 24.0
# below this a person's propagation has lost confidence (a detector pass, when there is one)
LOW_CONFIDENCE = 0.5


def grey_small(rgb8: np.ndarray, side: int = FLOW_SIDE) -> np.ndarray:
    """uint8 grey frame with its longest side at most ``side`` (area-averaged)."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    scale = min(1.0, side / max(height, width))
    if scale < 1.0:
        size = (max(int(round(width * scale)), 8), max(int(round(height * scale)), 8))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    return grey


def _pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


def _sample(field: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, border_value: float = 0.0) -> np.ndarray:
    return cv2.remap(field, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                     borderValue=border_value)


@dataclass
class Motion:
    """How one frame's pixels came from the frame before.

    ``backward[y, x]`` = (dx, dy): this frame's pixel (x, y) was at (x + dx, y + dy) in the
    previous frame. ``occluded`` marks pixels with no reliable match in the previous frame.
    """

    backward: np.ndarray  # (H, W, 2) float32, full-resolution pixels
    occluded: np.ndarray  # (H, W) bool
    previous_grey: np.ndarray | None = None  # (H, W) uint8, for checking a warp against the image
    current_grey: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.backward.shape[:2]

    def maps(self) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = _pixel_grid(*self.shape)
        return xs + self.backward[..., 0], ys + self.backward[..., 1]

    def warp(self, planes: np.ndarray, border_value: float = 0.0) -> np.ndarray:
        """The previous frame's planes ((H,W), (H,W,C) or (K,H,W)) moved onto this frame."""
        planes = np.asarray(planes)
        map_x, map_y = self.maps()
        if planes.ndim == 3 and planes.shape[1:] == self.shape:
            out = np.empty(planes.shape, np.float32)
            for k, plane in enumerate(planes):
                out[k] = _sample(np.ascontiguousarray(plane, np.float32), map_x, map_y, border_value)
            return out
        if planes.shape[:2] != self.shape:
            raise ValueError(f"cannot warp planes of shape {planes.shape} with a {self.shape[1]}x{self.shape[0]} flow")
        return _sample(np.ascontiguousarray(planes, np.float32), map_x, map_y, border_value)


def consistency(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """True where the forward flow, sampled where the backward flow points, brings the pixel back."""
    height, width = backward.shape[:2]
    xs, ys = _pixel_grid(height, width)
    map_x, map_y = xs + backward[..., 0], ys + backward[..., 1]
    inside = (map_x >= 0) & (map_x <= width - 1) & (map_y >= 0) & (map_y <= height - 1)
    there = cv2.remap(forward, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    loop = backward + there
    err = (loop ** 2).sum(-1)
    bound = CONSISTENCY_RELATIVE * ((backward ** 2).sum(-1) + (there ** 2).sum(-1)) + CONSISTENCY_ABSOLUTE
    return inside & (err <= bound)


def photometric(previous_grey: np.ndarray, current_grey: np.ndarray, backward: np.ndarray) -> np.ndarray:
    """True where the pixel the backward flow points at looks like this one."""
    height, width = backward.shape[:2]
    xs, ys = _pixel_grid(height, width)
    prev = cv2.GaussianBlur(previous_grey, (3, 3), 0).astype(np.float32)
    cur = cv2.GaussianBlur(current_grey, (3, 3), 0).astype(np.float32)
    pulled = cv2.remap(prev, xs + backward[..., 0], ys + backward[..., 1], cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE)
    return np.abs(pulled - cur) <= PHOTOMETRIC


class FlowEstimator:
    """DIS optical flow between consecutive frames, on small grey frames, both directions."""

    PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
               "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}

    def __init__(self, side: int = FLOW_SIDE, preset: str = "medium"):
        if preset not in self.PRESETS:
            raise ValueError(f"flow preset must be one of {', '.join(self.PRESETS)}, got {preset!r}")
        if side < 16:
            raise ValueError(f"flow side must be at least 16 pixels, got {side}")
        self.side = int(side)
        self._dis = cv2.DISOpticalFlow_create(self.PRESETS[preset])

    def between(self, previous_rgb8: np.ndarray, current_rgb8: np.ndarray) -> Motion:
        if previous_rgb8.shape != current_rgb8.shape:
            raise ValueError(f"frames differ in size: {previous_rgb8.shape} and {current_rgb8.shape}")
        height, width = current_rgb8.shape[:2]
        prev_small, cur_small = grey_small(previous_rgb8, self.side), grey_small(current_rgb8, self.side)
        backward = self._dis.calc(cur_small, prev_small, None)
        forward = self._dis.calc(prev_small, cur_small, None)
        reliable = consistency(backward, forward) & photometric(prev_small, cur_small, backward)
        small_h, small_w = backward.shape[:2]
        if (small_h, small_w) != (height, width):
            scale = np.array([width / small_w, height / small_h], np.float32)
            backward = cv2.resize(backward, (width, height), interpolation=cv2.INTER_LINEAR) * scale
            reliable = cv2.resize(reliable.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
        return Motion(np.ascontiguousarray(backward, np.float32), ~reliable,
                      cv2.cvtColor(np.ascontiguousarray(previous_rgb8), cv2.COLOR_RGB2GRAY),
                      cv2.cvtColor(np.ascontiguousarray(current_rgb8), cv2.COLOR_RGB2GRAY))


# ------------------------------------------------------------------ people carried over time
#
# Each person moves by their own similarity transform (translation, rotation, scale),
# fitted robustly to the dense flow over their reliably tracked pixels. Warping a matte
# by the person's transform keeps its edges exact (the dense flow is smooth across a
# person's outline and drags the background along); the dense flow only serves to fit it.

IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
MIN_MOTION_PIXELS = 50
TRACKED_SHARE = 0.3  # below this share of a person's whole extent tracked, keep their last motion
ALIGN_PIXELS = 3.0  # an alignment further than this from the median flow has gone wrong
MEMORY = 0.6  # the claim of a hidden part: above THRESHOLD, below a visible person's warped matte


@dataclass
class Person:
    """What is carried of one person from frame to frame.

    ``alpha`` is the network's matte (what is visible). ``shape`` is the person's whole
    extent as far as it is known: the visible part plus what is hidden behind other people,
    moved along with the person, so that someone who walks behind another comes back out
    with their ID when uncovered. ``transform`` is their last motion (2x3, previous ->
    this frame), kept while they are hidden.
    """

    number: int
    alpha: np.ndarray  # (H, W) float32
    shape: np.ndarray  # (H, W) bool
    transform: tuple = IDENTITY

    @classmethod
    def from_mask(cls, number: int, mask: np.ndarray) -> "Person":
        mask = np.asarray(mask, np.float32)
        return cls(number, mask, mask >= THRESHOLD)


@dataclass
class Carried:
    """The people of the frame before, moved onto this frame."""

    numbers: list[int]
    warped: np.ndarray  # (K, H, W) the previous mattes, each moved by its person's transform
    shapes: np.ndarray  # (K, H, W) bool: each person's whole extent, moved with them
    masks: np.ndarray  # (K, H, W) float32 {0, 1}: guidance for the network
    matches: np.ndarray  # (K, H, W) bool: the image agrees with the person's motion here
    transforms: list[tuple]
    confidence: list[float]  # per person, in [0, 1]


def exclusive_masks(scores: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """Binary masks that never overlap: each pixel to its strongest person, if >= threshold."""
    scores = np.asarray(scores, np.float32)
    if scores.shape[0] == 0:
        return scores.copy()
    owner = scores.argmax(axis=0)
    strong = scores.max(axis=0) >= threshold
    return np.stack([(owner == k) & strong for k in range(scores.shape[0])]).astype(np.float32)


def person_transform(motion: Motion, own: np.ndarray, fallback: tuple, extent: float,
                     previous_mask: np.ndarray) -> tuple:
    """The person's similarity transform (previous -> this frame), fitted with RANSAC to the
    flow over their reliably tracked pixels. When most of them are hidden (behind someone,
    whose motion the flow then shows) the person keeps their last motion: people walking
    behind others come out where a steady walk takes them."""
    pick = own & ~motion.occluded
    count = int(pick.sum())
    if count < MIN_MOTION_PIXELS or count < TRACKED_SHARE * extent:
        return fallback
    step = -np.median(motion.backward[pick], axis=0)
    guess = ((1.0, 0.0, float(step[0])), (0.0, 1.0, float(step[1])))
    return _align(motion, previous_mask, guess)


def _align(motion: Motion, previous_mask: np.ndarray, guess: tuple) -> tuple:
    """Refine a translation by aligning the person's pixels of the previous frame with this
    frame (OpenCV's ECC): the median flow is good to a pixel, the alignment to a fraction,
    which matters because the error adds up over every step from the keyframe."""
    if motion.previous_grey is None or motion.current_grey is None:
        return guess
    region = cv2.erode(previous_mask.astype(np.uint8), np.ones((5, 5), np.uint8))
    if int(region.sum()) < MIN_MOTION_PIXELS:
        return guess
    matrix = np.array(guess, np.float32)
    try:
        _, matrix = cv2.findTransformECC(motion.previous_grey.astype(np.float32), motion.current_grey.astype(np.float32),
                                         matrix.copy(), cv2.MOTION_TRANSLATION,
                                         (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-3), region, 5)
    except cv2.error:
        return guess
    if not np.isfinite(matrix).all() or np.abs(matrix[:, 2] - np.array(guess)[:, 2]).max() > ALIGN_PIXELS:
        return guess
    return tuple(tuple(float(v) for v in row) for row in matrix)


def _move(plane: np.ndarray, transform: tuple, border_value: float = 0.0) -> np.ndarray:
    height, width = plane.shape[:2]
    return cv2.warpAffine(np.ascontiguousarray(plane, np.float32), np.array(transform, np.float32), (width, height),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def image_matches(motion: Motion, transform: tuple) -> np.ndarray:
    """Where the previous frame, moved by this transform, looks like the current one: the
    pixels the person's motion explains (not someone passing in front, not the background)."""
    if motion.previous_grey is None or motion.current_grey is None:
        return ~motion.occluded
    moved = _move(cv2.GaussianBlur(motion.previous_grey, (3, 3), 0), transform, -1000.0)
    current = cv2.GaussianBlur(motion.current_grey, (3, 3), 0).astype(np.float32)
    return np.abs(moved - current) <= PHOTOMETRIC


def _explained(motion: Motion, person: Person, transform: tuple) -> float:
    """Share of the person's moved visible pixels that the image confirms."""
    moved = _move(person.alpha, transform) >= THRESHOLD
    return float((moved & image_matches(motion, transform)).sum()) / max(float(moved.sum()), 1.0)


def _better_explained(motion: Motion, person: Person, fitted: tuple) -> tuple:
    """The fitted motion, or the person's last one where that explains the image better
    (the flow can fail on one frame; a steady walk rarely does)."""
    if fitted == person.transform:
        return fitted
    return person.transform if _explained(motion, person, person.transform) > _explained(motion, person, fitted) \
        else fitted


def _confidence(previous: Person, mask: np.ndarray, matches: np.ndarray, warped: np.ndarray) -> float:
    """Area kept (a visible person who halves or doubles in one step is suspect) times the
    share of their moved matte that the image confirms."""
    before = float((previous.alpha >= THRESHOLD).sum())
    after = float(mask.sum())
    if before == 0 or after == 0:
        return 0.0
    kept = min(after / before, before / after)
    support = warped >= THRESHOLD
    confirmed = float((support & matches).sum()) / max(float(support.sum()), 1.0)
    return float(kept * confirmed)


def carry(motion: Motion, people: list[Person]) -> Carried:
    """Move the people of the frame before onto this frame and make their guidance masks.

    A person's claim on a pixel is their moved matte where the image confirms their motion;
    their moved whole extent adds a weaker claim (``MEMORY``), which wins only where no
    confirmed matte is stronger: behind an occluder it loses, once uncovered it wins back."""
    height, width = motion.shape
    numbers = [p.number for p in people]
    if not people:
        empty = np.zeros((0, height, width), np.float32)
        return Carried([], empty, empty.astype(bool), empty, empty.astype(bool), [], [])
    for p in people:
        if p.alpha.shape != motion.shape:
            raise ValueError(f"person {p.number}: matte is {p.alpha.shape[1]}x{p.alpha.shape[0]}, "
                             f"the frame {width}x{height}")
    dense = motion.warp(np.stack([p.alpha for p in people]))  # only to tell whose pixels are whose
    transforms = []
    for k, p in enumerate(people):
        own = dense[k] >= THRESHOLD
        if len(people) > 1:
            own &= dense[k] >= np.delete(dense, k, axis=0).max(axis=0)
        fitted = person_transform(motion, own, p.transform, float(p.shape.sum()), p.alpha >= THRESHOLD)
        transforms.append(_better_explained(motion, p, fitted))
    warped = np.stack([_move(p.alpha, t) for p, t in zip(people, transforms)])
    shapes = np.stack([_move(p.shape.astype(np.float32), t) >= THRESHOLD for p, t in zip(people, transforms)])
    matches = np.stack([image_matches(motion, t) for t in transforms])
    scores = np.maximum(np.where(matches, warped, 0.0), MEMORY * shapes.astype(np.float32))
    masks = exclusive_masks(scores)
    confidence = [_confidence(p, masks[k], matches[k], warped[k]) for k, p in enumerate(people)]
    return Carried(numbers, warped, shapes, masks, matches, transforms, confidence)


def settle(carried: Carried, alphas: np.ndarray) -> list[Person]:
    """The people of this frame once the network has matted them: the visible part from the
    network (where the image confirms it or it was theirs already), plus their moved
    extent where someone else now covers it."""
    alphas = np.asarray(alphas, np.float32)
    visible = alphas >= THRESHOLD
    out = []
    for k, number in enumerate(carried.numbers):
        others = np.delete(visible, k, axis=0).any(axis=0) if len(visible) > 1 else np.zeros_like(visible[k])
        shape = (visible[k] & (carried.matches[k] | carried.shapes[k])) | (carried.shapes[k] & others)
        out.append(Person(number, alphas[k], shape, carried.transforms[k]))
    return out


def agreement(alphas: np.ndarray, masks: np.ndarray) -> list[float]:
    """Per person, IoU of the network's matte (binarised) with the guidance it was given.

    Low agreement means the network moved the person far from where the flow put them:
    drift, an ID jump or a lost person, a place to look again (or to run the detector)."""
    out = []
    for alpha, mask in zip(np.asarray(alphas), np.asarray(masks)):
        a, m = alpha >= THRESHOLD, mask > 0
        union = float((a | m).sum())
        out.append(float((a & m).sum()) / union if union else 0.0)
    return out
