"""Optical flow and carrying people through a shot: exact where motion is a translation, IDs
kept when one person walks behind another; chatter control only in the uncertain band."""

import cv2
import numpy as np
import pytest

from engine.guidance.layered import LayeredTracker
from engine.guidance.propagation import FlowEstimator
from engine.inference.temporal import stabilise


def _texture(seed, height, width):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur((rng.random((height, width, 3)) * 255).astype(np.uint8), (5, 5), 0)


def _scene(t, scale=1):
    """Two textured squares on a textured background: 0 walks right in front, 1 left behind."""
    height, width = 120 * scale, 240 * scale
    image = _texture(0, height, width).copy()
    alphas = np.zeros((2, height, width), np.float32)
    xs = (scale * (20 + 6 * t), scale * (164 - 6 * t))  # at t = 12 person 0 covers person 1 completely
    top, bottom, side = 40 * scale, 90 * scale, 40 * scale
    for k in (1, 0):  # 1 first, 0 covers it
        patch = _texture(10 + k, bottom - top, side)
        x = xs[k]
        image[top:bottom, x:x + side] = patch
        alphas[:, top:bottom, x:x + side] = 0.0
        alphas[k, top:bottom, x:x + side] = 1.0
    return image, alphas


def _iou(a, b):
    a, b = a >= 0.5, b >= 0.5
    return (a & b).sum() / max((a | b).sum(), 1)


def test_flow_recovers_a_translation():
    base = _texture(3, 120, 200)
    motion = FlowEstimator().between(base, np.roll(base, 4, axis=1))
    assert np.median(motion.backward[..., 0]) == pytest.approx(-4.0, abs=0.2)
    assert motion.occluded.mean() < 0.1


def test_people_keep_their_ids_through_an_occlusion():
    image, alphas = _scene(0, 2)
    tracker = LayeredTracker(image, alphas)
    hidden_seen = False
    for t in range(1, 25):
        image, alphas = _scene(t, 2)
        masks = tracker.step(image)
        assert masks.shape == alphas.shape
        assert not (masks.sum(axis=0) > 1).any()  # masks never overlap
        hidden_seen |= alphas[1].sum() == 0
        for k in range(2):
            if alphas[k].sum() > 1600:
                assert _iou(masks[k], alphas[k]) > 0.9, (t, k)
            if alphas[k].sum() == 0:
                assert masks[k].sum() < 400, (t, k)  # hidden means no guidance, not someone else's pixels
    assert hidden_seen  # person 2 was fully hidden and came back in their own layer


def test_someone_coming_in_over_the_frame_edge_is_grown_whole():
    def scene(t):
        image = _texture(0, 120, 240).copy()
        alpha = np.zeros((1, 120, 240), np.float32)
        left = -36 + 4 * t  # half out of the frame at the keyframe, all in from t = 9
        patch = _texture(11, 50, 72)[:, max(-left, 0):]
        image[40:90, max(left, 0):max(left, 0) + patch.shape[1]] = patch
        alpha[0, 40:90, max(left, 0):max(left, 0) + patch.shape[1]] = 1.0
        return image, alpha

    image, alpha = scene(0)
    tracker = LayeredTracker(image, alpha)
    for t in range(1, 16):
        image, alpha = scene(t)
        mask = tracker.step(image)[0] >= 0.5
    assert _iou(mask, alpha[0]) > 0.85  # the keyframe showed half of them (0.5 if none grew)
    assert (mask & (alpha[0] < 0.5)).sum() < 100  # and the still background did not join them


def test_tracker_rejects_frames_of_another_size():
    image, alphas = _scene(0)
    tracker = LayeredTracker(image, alphas)
    with pytest.raises(ValueError, match="keyframe"):
        tracker.step(image[:60])


def test_temporal_off_band_and_people():
    flow = FlowEstimator()
    image0, alphas0 = _scene(0)
    image1, alphas1 = _scene(1)
    motion = flow.between(image0, image1)
    soft1 = alphas1.copy()
    soft1[0, 40:90, 60:64] = 0.3  # a band of chatter in person 1's matte
    assert np.array_equal(stabilise(soft1, motion, alphas0, 0.0), soft1)
    out = stabilise(soft1, motion, alphas0, 1.0)
    band = out[0, 45:85, 60:64]
    assert band.mean() > 0.6  # pulled towards last frame's solid matte
    solid = (soft1 == 1.0) | (soft1 == 0.0)
    assert np.array_equal(out[solid], soft1[solid])  # certain pixels never move
    assert (out.sum(axis=0) <= 1.0 + 1e-6).all()
    with pytest.raises(ValueError, match="within"):
        stabilise(soft1, motion, alphas0, 1.5)


def test_a_keyframe_that_shows_someone_in_part_is_completed_from_the_one_before():
    """Keyframe 2 sees person 1 as a sliver beside person 0; carried from keyframe 1, they come
    out from behind whole, not as that sliver."""
    first = LayeredTracker(*_scene(0, 2))
    for t in range(1, 12):
        first.step(_scene(t, 2)[0])
    key_image, key_alphas = _scene(11, 2)
    plain, completed = LayeredTracker(key_image, key_alphas), LayeredTracker(key_image, key_alphas)
    assert completed.complete(first, [(0, 0), (1, 1)]) == [1]  # person 0 is whole here: kept
    assert np.array_equal(completed.masks(), plain.masks())  # the keyframe's guidance is its masks
    for t in range(12, 22):
        image, alphas = _scene(t, 2)
        with_shape, sliver = completed.step(image), plain.step(image)
    assert _iou(with_shape[1], alphas[1]) > 0.9
    assert _iou(sliver[1], alphas[1]) < 0.6


def test_a_keyframe_with_someone_partly_out_of_the_frame_is_completed_from_the_one_before():
    """Keyframe 2 shows person 0 half out of the frame; completed from keyframe 1 (where they
    were whole), they come back in whole when carried backward from it."""
    def scene(t):
        image = _texture(0, 120, 240).copy()
        alpha = np.zeros((1, 120, 240), np.float32)
        left = 150 + 4 * t  # all in the frame up to t = 4, 40 % out at t = 12
        patch = _texture(11, 50, 72)[:, :max(240 - left, 0)]
        image[40:90, left:left + patch.shape[1]] = patch
        alpha[0, 40:90, left:left + patch.shape[1]] = 1.0
        return image, alpha

    first = LayeredTracker(*scene(0))
    for t in range(1, 13):
        first.step(scene(t)[0])
    plain, completed = LayeredTracker(*scene(12)), LayeredTracker(*scene(12))
    assert completed.complete(first, [(0, 0)]) == [0]
    assert np.array_equal(completed.masks(), plain.masks())  # the keyframe's guidance is its masks
    completed.reverse()
    plain.reverse()
    for t in range(11, 1, -1):
        image, alpha = scene(t)
        whole, cut = completed.step(image)[0], plain.step(image)[0]
    assert _iou(whole, alpha[0]) > 0.9
    assert _iou(whole, alpha[0]) > _iou(cut, alpha[0]) + 0.05


def test_someone_cut_by_the_bottom_edge_keeps_their_legs_as_they_rise():
    """Feet below the frame at the keyframe: as the person bobs up, the rows that come into
    view below their keyframe edge are theirs (the shape goes on past the frame's edge)."""
    height, width = 120, 200
    back = _texture(0, height, width)
    body = _texture(5, 140, 50)

    def frame(t):
        image, alpha = back.copy(), np.zeros((1, height, width), np.float32)
        top = 30 - t  # rises 1 px a frame; the body reaches below the frame
        image[top:, 70:120] = body[:height - top]
        alpha[0, top:, 70:120] = 1.0
        return image, alpha

    image, alpha = frame(0)
    tracker = LayeredTracker(image, alpha)
    for t in range(1, 4):
        image, alpha = frame(t)
        masks = tracker.step(image)
    assert _iou(masks[0], alpha[0]) > 0.97
    assert masks[0][-3:, 72:118].all()  # the rows that were under the keyframe's edge


def test_a_hidden_person_carried_blind_does_not_drift_up_or_down():
    """Carried blind, a person keeps their walk (sideways), not the vertical bob or the scale
    change of their last measured frames: those ease out."""
    from engine.guidance.geometry import eased

    centre = np.array([100.0, 60.0], np.float32)
    scale, dx, dy = 0.98, 6.0, 3.0
    motion = np.array([[scale, 0, (1 - scale) * centre[0] + dx], [0, scale, (1 - scale) * centre[1] + dy]],
                      np.float32)
    for _ in range(8):
        motion = eased(motion, centre, 0.5)
    moved = motion[:, :2] @ centre + motion[:, 2] - centre
    assert moved[0] == pytest.approx(dx, abs=1e-3)  # the walk goes on
    assert abs(moved[1]) < 0.05 and abs(motion[0, 0] - 1.0) < 1e-3
