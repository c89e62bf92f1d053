"""engine.guidance.detected: the detector as keyframe source, carried between detections.

The detector here reads the clip's true visible masks (shuffled, with people held back or
dropped where a test says), so each test controls exactly what "the detector" sees; the
real Mask R-CNN path runs in tests/engine/commands/test_propagate.py."""

from __future__ import annotations

import numpy as np
import pytest

from engine.guidance.detected import DetectedPropagation
from engine.guidance.tracking import mask_iou


class ClipDetector:
    """``detect(rgb8)`` answers with the true masks of the clip's frame that image is, in a
    shuffled order, those of at least ``min_area`` of the frame (the real detector's 2 %
    rule); ``hidden[person]`` = frames (1-based) where that person is not found."""

    def __init__(self, frames, alphas, hidden=None, seed=0, min_area=0.02):
        self.frames, self.alphas = frames, alphas
        self.min_area = min_area  # a fraction of the frame, as PersonDetector.min_area
        self.min_pixels = min_area * alphas.shape[2] * alphas.shape[3]
        self.hidden = hidden or {}
        self.rng = np.random.default_rng(seed)
        self.calls: list[int] = []

    def detect(self, rgb8):
        t = next(i for i, f in enumerate(self.frames) if np.array_equal(f, rgb8))
        self.calls.append(t + 1)
        people = [k for k in range(self.alphas.shape[1])
                  if (self.alphas[t, k] >= 0.5).sum() >= max(self.min_pixels, 1) and t + 1 not in self.hidden.get(k, ())]
        people = list(self.rng.permutation(people))
        masks = np.stack([self.alphas[t, k] >= 0.5 for k in people]).astype(np.float32) if people else \
            np.zeros((0,) + self.alphas.shape[2:], np.float32)
        return masks, np.ones(len(people)), np.zeros((len(people), 4))

    def describe(self):
        return {"kind": "detector"}


@pytest.fixture(scope="module")
def clip():
    figures = pytest.importorskip("engine.data.figures", reason="engine.data.figures is not in this build")
    return figures.make_clip(frames=14, height=144, width=216, people=3, seed=2)


def _run(guidance, frames):
    numbers = list(range(1, len(frames) + 1))
    guidance.check(numbers)
    return [guidance.people(f, frames[f - 1]) for f in numbers]


def _owners(guides, alphas):
    """Per frame {number: (true person, IoU)} for the guidance masks that match a true person."""
    out = []
    for t, guide in enumerate(guides):
        truth = alphas[t] >= 0.5
        iou = mask_iou(guide.masks >= 0.5, truth) if len(guide.masks) else np.zeros((0, len(truth)))
        out.append({n: (int(iou[i].argmax()), float(iou[i].max())) for i, n in enumerate(guide.numbers)
                    if iou[i].max() > 0.3})
    return out


def test_ids_hold_whatever_order_the_detector_gives(clip):
    frames, alphas = clip
    detector = ClipDetector(frames, alphas)
    guides = _run(DetectedPropagation(detector, detect_every=4), frames)
    assert detector.calls[0] == 1 and max(np.diff(detector.calls)) <= 4 and detector.calls[-1] >= 11
    owners = _owners(guides, alphas)
    truth_of: dict[int, int] = {}
    for frame in owners:
        for number, (truth, _) in frame.items():
            assert truth_of.setdefault(number, truth) == truth, "a number moved to another person"
    assert sorted(truth_of) == [1, 2, 3]
    found = [iou for frame in owners for _, iou in frame.values()]
    held = _owners([guides[0]] * len(frames), alphas)  # the first detection held still, for scale
    assert np.mean(found) > 0.65 and len(found) > 3 * sum(len(frame) for frame in held)
    for guide in guides:  # guidance never overlaps
        assert guide.masks.sum(axis=0).max() <= 1.0


def test_a_person_the_detector_finds_late_gets_the_next_number(clip):
    frames, alphas = clip
    detector = ClipDetector(frames, alphas, hidden={2: range(1, 4)})
    guides = _run(DetectedPropagation(detector, detect_every=4), frames)
    owners = _owners(guides, alphas)
    assert sorted(guides[0].numbers) == [1, 2] and 2 not in {t for t, _ in owners[0].values()}
    assert sorted(guides[4].numbers) == [1, 2, 3]  # found on frame 5, the next detection
    assert {n for n, (t, _) in owners[4].items() if t == 2} == {3}
    assert all(owners[t].get(3, (2, 1))[0] == 2 for t in range(4, len(frames)))


def test_a_person_missed_in_view_twice_leaves(clip):
    frames, alphas = clip
    detector = ClipDetector(frames, alphas, hidden={0: range(4, 15)})
    guides = _run(DetectedPropagation(detector, detect_every=3), frames)
    owners = _owners(guides, alphas)
    first = next(n for n, (t, _) in owners[0].items() if t == 0)
    in_view = [t for t in range(len(frames)) if first in guides[t].numbers]
    assert 0 in in_view and max(in_view) < 9  # missed on frames 4 and 7: gone from frame 7 on
    assert len({n for g in guides for n in g.numbers}) == 3  # nobody else was renumbered


def test_starting_mid_shot_carries_on_from_the_frame_before(clip):
    frames, alphas = clip
    whole = _run(DetectedPropagation(ClipDetector(frames, alphas), detect_every=0), frames)
    guidance = DetectedPropagation(ClipDetector(frames, alphas, seed=5), detect_every=0)
    before = whole[5]
    # what the job gives: the numbers and mattes of the frame before, and its image
    guidance.resume = lambda frame: (before.numbers, before.masks, frames[5])
    guidance.check(list(range(7, len(frames) + 1)))
    resumed = guidance.people(7, frames[6])
    assert sorted(resumed.numbers) == sorted(whole[6].numbers)
    # each number is the same person as in the run that carried them all the way
    here, there = _owners([resumed], alphas[6:7])[0], _owners([whole[6]], alphas[6:7])[0]
    both = here.keys() & there.keys()
    assert len(both) >= 2 and all(here[n][0] == there[n][0] for n in both)


def test_a_shot_that_starts_empty_is_searched_until_someone_comes(clip):
    frames, alphas = clip
    nobody_yet = {k: range(1, 4) for k in range(alphas.shape[1])}
    detector = ClipDetector(frames, alphas, hidden=nobody_yet)
    guides = _run(DetectedPropagation(detector, detect_every=0), frames)
    assert [len(g.numbers) for g in guides[:3]] == [0, 0, 0]
    assert detector.calls[:4] == [1, 2, 3, 4]  # every frame while nobody is carried
    assert sorted(guides[3].numbers) == [1, 2, 3] and sorted(guides[-1].numbers) == [1, 2, 3]
    assert len(detector.calls) < len(frames)  # then only when needed
