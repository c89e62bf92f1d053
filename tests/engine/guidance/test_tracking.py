"""engine.guidance.tracking: stable IDs in order of first appearance, gaps, entrances, crossings."""

from __future__ import annotations

import numpy as np
import pytest

from engine.guidance.tracking import Tracker, mask_iou

H, W = 60, 120


def blob(cx: float, cy: float = 30, rx: float = 8, ry: float = 18) -> np.ndarray:
    yy, xx = np.mgrid[:H, :W]
    return (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).astype(np.float32)


def image_with(people: list[tuple[float, tuple[int, int, int]]]) -> np.ndarray:
    image = np.full((H, W, 3), 90, np.uint8)
    for cx, colour in people:
        image[blob(cx) > 0] = colour
    return image


def test_iou_matrix():
    a = np.zeros((1, 4, 4), bool)
    a[0, :2] = True
    b = np.zeros((2, 4, 4), bool)
    b[0, :2] = True
    b[1, 1:3] = True
    assert np.allclose(mask_iou(a, b), [[1.0, 1 / 3]])


def test_ids_follow_people_whatever_the_detection_order():
    tracker = Tracker()
    rng = np.random.default_rng(0)
    history = {0: [], 1: [], 2: []}
    for t in range(10):
        centres = [15 + 2 * t, 60, 105 - 2 * t]
        order = rng.permutation(3)
        numbers = tracker.update(np.stack([blob(centres[k]) for k in order]))
        for k, n in zip(order, numbers):
            history[int(k)].append(n)
    # IDs never change, and they are 1, 2, 3 in the order the detector first listed them
    assert all(len(set(v)) == 1 for v in history.values())
    assert sorted(v[0] for v in history.values()) == [1, 2, 3]
    assert tracker.seen == [1, 2, 3]


def test_missed_for_a_few_frames_keeps_its_id_and_newcomers_get_new_ones():
    tracker = Tracker(max_lost=4)
    assert tracker.update(np.stack([blob(20), blob(80)])) == [1, 2]
    for _ in range(3):  # person 2 missed for three frames
        assert tracker.update(np.stack([blob(20)])) == [1]
    assert tracker.update(np.stack([blob(82), blob(20)])) == [2, 1]
    assert tracker.update(np.stack([blob(20), blob(82), blob(50, rx=5)])) == [1, 2, 3]  # someone enters


def test_lost_too_long_gets_a_new_id():
    tracker = Tracker(max_lost=2)
    tracker.update(np.stack([blob(20), blob(80)]))
    for _ in range(3):
        tracker.update(np.stack([blob(20)]))
    assert tracker.update(np.stack([blob(20), blob(80)])) == [1, 3]


def test_far_away_newcomer_is_not_confused_with_a_lost_person():
    tracker = Tracker()
    tracker.update(np.stack([blob(10)]))
    tracker.update(np.zeros((0, H, W), np.float32))  # nobody this frame
    assert tracker.update(np.stack([blob(110)])) == [2]


def test_crossing_people_keep_their_ids_by_motion_and_colour():
    red, blue = (220, 30, 30), (30, 30, 220)
    tracker = Tracker()
    ids = {"red": [], "blue": []}
    for t in range(12):
        red_x, blue_x = 20 + 7 * t, 100 - 7 * t  # they pass through each other around t = 6
        masks = np.stack([blob(red_x), blob(blue_x)])
        overlap = (masks[0] > 0) & (masks[1] > 0)
        masks[1][overlap] = 0  # blue walks behind red
        numbers = tracker.update(masks, image_with([(blue_x, blue), (red_x, red)]))
        ids["red"].append(numbers[0])
        ids["blue"].append(numbers[1])
    assert set(ids["red"]) == {1} and set(ids["blue"]) == {2}


def test_seed_continues_numbering():
    tracker = Tracker()
    tracker.seed([4, 7], np.stack([blob(20), blob(80)]))
    assert tracker.update(np.stack([blob(81), blob(21), blob(50, rx=4)])) == [7, 4, 8]


def test_generated_clip_has_no_id_switches():
    figures = pytest.importorskip("engine.data.figures")
    from engine.commands.demo import id_switches, simulate_detections

    frames, alphas = figures.make_clip(frames=8, height=128, width=192, people=3, seed=0)
    detections, owners = simulate_detections(alphas, seed=0)
    tracker = Tracker()
    ids = {f: [f"person_{n:02d}" for n in tracker.update(detections[f], frames[f - 1])] for f in sorted(detections)}
    switches, _ = id_switches(ids, owners)
    assert switches == 0
