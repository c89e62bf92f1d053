"""Keyframe rules and the dependency planner, on hand-made keyframe sets."""

import numpy as np
import pytest

from engine.errors import InputFileError
from engine.guidance.keyframes import (Keyframe, plan, plan_recompute, propagation_order, read_keyframes)

FRAMES = list(range(1, 11))


def _keys(**people):
    return {int(f[1:]): Keyframe(int(f[1:]), tuple(p), f"hash{f}") for f, p in people.items()}


def test_nearer_keyframe_drives_ties_go_to_the_earlier():
    sources = plan(FRAMES, _keys(k3=(1, 2), k7=(1, 2)))
    assert [sources[f].keyframe for f in FRAMES] == [3, 3, 3, 3, 3, 7, 7, 7, 7, 7]
    assert sources[5].previous == 4 and sources[6].previous == 7  # 5 is a tie: forward from 3
    assert sources[1].previous == 2 and sources[2].previous == 3  # backward before the first
    assert sources[10].previous == 9  # forward after the last
    assert sources[3].previous is None and sources[7].previous is None


def test_person_new_in_a_later_keyframe_starts_there():
    sources = plan(FRAMES, _keys(k2=(1,), k8=(1, 2)))
    assert sources[7].keyframe == 8 and sources[7].people == (1,)  # 2 not carried back from 8
    assert sources[8].people == (1, 2) and sources[9].people == (1, 2)


def test_person_without_mask_leaves_from_that_keyframe_on():
    sources = plan(FRAMES, _keys(k2=(1, 2), k8=(1,)))
    # 2 leaves at 8: the whole gap follows 2, so person 2 stays until 8
    assert [sources[f].keyframe for f in range(3, 8)] == [2] * 5
    assert all(sources[f].people == (1, 2) for f in range(3, 8))
    assert sources[8].people == (1,) and sources[10].people == (1,)


def test_order_carries_from_computed_frames():
    sources = plan(FRAMES, _keys(k4=(1,), k9=(1,)))
    order = propagation_order(sources)
    assert sorted(order) == FRAMES
    for f in order:
        previous = sources[f].previous
        assert previous is None or order.index(previous) < order.index(f)


def _records(sources, keys):
    return {f: s.record(keys) for f, s in sources.items()}


def test_recompute_exactly_the_frames_of_an_edited_keyframe():
    keys = _keys(k2=(1, 2), k8=(1, 2))
    sources = plan(FRAMES, keys)
    first = plan_recompute(sources, keys, {})
    assert sorted(first.frames) == FRAMES and "10 frames to compute" in first.message
    done = _records(sources, keys)
    assert plan_recompute(sources, keys, done).frames == []
    edited = {**keys, 8: Keyframe(8, (1, 2), "edited")}
    again = plan_recompute(plan(FRAMES, edited), edited, done)
    assert sorted(again.frames) == [6, 7, 8, 9, 10]  # 1-5 follow keyframe 2, untouched
    assert again.message == "5 frames recomputed: keyframe 0008 changed"


def test_recompute_after_adding_and_removing_a_keyframe():
    keys = _keys(k2=(1,))
    done = _records(plan(FRAMES, keys), keys)
    added = _keys(k2=(1,), k8=(1,))
    step = plan_recompute(plan(FRAMES, added), added, done)
    assert sorted(step.frames) == [6, 7, 8, 9, 10] and "keyframe 0008 added" in step.message
    done = _records(plan(FRAMES, added), added)
    back = plan_recompute(plan(FRAMES, keys), keys, done)
    assert sorted(back.frames) == [6, 7, 8, 9, 10] and "keyframe 0008 removed" in back.message


def test_missing_output_is_computed_and_what_follows_it_too():
    keys = _keys(k1=(1,))
    sources = plan(FRAMES, keys)
    done = _records(sources, keys)
    done[5] = None
    assert plan_recompute(sources, keys, done).frames == [5, 6, 7, 8, 9, 10]


def test_read_keyframes_hash_follows_content(tmp_path):
    import cv2

    for frame in (1, 5):
        (tmp_path / f"{frame:04d}").mkdir()
        mask = np.zeros((8, 8), np.uint8)
        mask[2:6, 2:6] = 255
        cv2.imwrite(str(tmp_path / f"{frame:04d}" / "01.png"), mask)
    cv2.imwrite(str(tmp_path / "0005" / "02.png"), np.zeros((8, 8), np.uint8))  # empty: not there
    keys, masks = read_keyframes(tmp_path)
    assert sorted(keys) == [1, 5] and keys[5].people == (1,) and list(masks[5]) == [1]
    before = keys[5].digest
    mask = np.zeros((8, 8), np.uint8)
    mask[1:7, 1:7] = 255
    cv2.imwrite(str(tmp_path / "0005" / "01.png"), mask)
    keys, _ = read_keyframes(tmp_path)
    assert keys[5].digest != before
    with pytest.raises(InputFileError, match="no keyframe folders"):
        read_keyframes(tmp_path / "0001")


def test_a_later_keyframe_depends_on_the_one_it_is_completed_from():
    keys = _keys(k2=(1, 2), k8=(1, 2))
    sources = plan(FRAMES, keys)
    assert sources[9].completed_from == (2,) and sources[3].completed_from == ()
    done = _records(sources, keys)
    edited = {**keys, 2: Keyframe(2, (1, 2), "edited")}
    again = plan_recompute(plan(FRAMES, edited), edited, done)
    assert sorted(again.frames) == FRAMES  # 6-10 follow keyframe 8, whose people come from 2
    assert again.message == "10 frames recomputed: keyframe 0002 changed"
