"""Growing a carried person where their keyframe did not show them: parts that come out
from behind someone in front, or in over the frame's edge, for :mod:`.layered`.

    grown = grow(tracker, previous, current, forward, backward, before, shown, placed)

New pixels of a person are pixels of the frame before that nobody claimed, that came out
beside someone in front or in over the frame's edge, and that move clearly like this
person and not like the background or anyone else: the flow, checked against the image
(it spills over moving edges), on textured patches only (a flat patch fits any motion).
"""

from __future__ import annotations

import cv2
import numpy as np

from .geometry import compose, displacement, fit_flow, move

GROW_BAND = 24  # pixels: how near someone in front of a person (or the frame's edge) their new pixels appear
GROW_REACH = 0.5  # of the person's height: how far from their extent new pixels may be
GROW_MATCH = 1.5  # pixels: a new pixel's flow is this near the motion of the pixels grown with it
GROW_AGREE = 5.5  # pixels: their motion is this near the person's
GROW_APART = 3.0  # pixels: and this far from the background's
GROW_RIVAL = 2.5  # pixels: and this nearer it than anyone else's
GROW_PIXELS = 40  # fewer new pixels than this in a piece: noise
GROW_TEXTURE = 20.0  # mean grey gradient (Sobel, |x| + |y|) a pixel's 5x5 patch needs to grow on
GROW_EDGE = 3  # pixels next to an extent (the person's, an occluder's) that never grow
GROW_CONTRAST = 6.0  # grey levels: how much better than the background's motion a pixel's flow explains it


def grow(tracker, previous, current, forward, backward, before, shown, placed) -> list[int]:
    """Pixels of the previous frame that nobody claimed, revealed next to someone in front
    of a person (or at the frame's edge), and that move with that person rather than with
    the background: parts of them the keyframe did not show. They join the person's mask
    (not their reference, which has no appearance there). Returns the people grown.

    ``tracker``: the :class:`.layered.LayeredTracker` mid-step (people, front, extents at
    this frame); ``previous`` / ``current``: grey frames; ``forward`` / ``backward``: their
    flow at frame size; ``before``, ``shown``, ``placed``: each person's transform, visible
    mask and extent at the frame before."""
    height, width = tracker.shape
    claimed = np.zeros(tracker.shape, bool)
    for visible in shown:
        claimed |= visible
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    back = cv2.remap(backward, xs + forward[..., 0], ys + forward[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=(1e3, 1e3))
    free = ~claimed & (np.abs(forward + back).sum(axis=2) < 1.0)
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * GROW_BAND + 1, 2 * GROW_BAND + 1))
    near = cv2.dilate(claimed.astype(np.uint8), disk) > 0
    background = fit_flow(forward, backward, free & ~near)
    if background is None:  # nothing to tell the background's motion from a person's
        return []
    # the flow spills a few pixels over a moving person's edge onto the background: a
    # pixel counts as moving only if its flow explains the image better than the
    # background's motion does
    along = cv2.remap(current, xs + forward[..., 0], ys + forward[..., 1], cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_REPLICATE)
    still = cv2.warpAffine(current, background, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                           borderMode=cv2.BORDER_REPLICATE)
    free &= cv2.blur(np.abs(still - previous), (3, 3)) > cv2.blur(np.abs(along - previous), (3, 3)) + GROW_CONTRAST
    # and only where there is texture to tell (a flat patch fits any motion)
    gx, gy = cv2.Sobel(previous, cv2.CV_32F, 1, 0), cv2.Sobel(previous, cv2.CV_32F, 0, 1)
    free &= cv2.blur(np.abs(gx) + np.abs(gy), (5, 5)) > GROW_TEXTURE
    band = np.ones((2 * GROW_EDGE + 1, 2 * GROW_EDGE + 1), np.uint8)
    close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4 * GROW_EDGE + 3, 4 * GROW_EDGE + 3))
    edge = np.ones(tracker.shape, bool)
    edge[GROW_BAND:-GROW_BAND, GROW_BAND:-GROW_BAND] = False
    steps = [compose(p.transform, cv2.invertAffineTransform(b)) for p, b in zip(tracker.people, before)]
    grown = []
    for k, person in enumerate(tracker.people):
        rows, cols = np.nonzero(placed[k].any(axis=1))[0], np.nonzero(placed[k].any(axis=0))[0]
        if not len(rows):
            continue
        front = np.zeros(tracker.shape, np.uint8)
        for j in range(len(tracker.people)):
            if tracker.front[j, k]:
                front |= placed[j].astype(np.uint8)
        # right at an edge (the person's own, or an occluder's) the patch holds the edge,
        # which moves with them
        where = free & (edge | (cv2.dilate(front, disk) > 0)) & ~(cv2.dilate(front | placed[k].astype(np.uint8), band) > 0)
        reach = int(GROW_REACH * (rows[-1] - rows[0] + 1))
        inside = np.zeros(tracker.shape, bool)
        inside[max(rows[0] - reach, 0):rows[-1] + reach + 1, max(cols[0] - reach, 0):cols[-1] + reach + 1] = True
        py, px = np.nonzero(where & inside)
        points = np.stack([px, py], 1).astype(np.float32)
        flow = forward[py, px]
        # a pixel that lands on someone else has gone behind them, not come out; a still
        # one that someone walks over now can't be told from a part of them
        others = np.zeros(tracker.shape, bool)
        for j in range(len(tracker.people)):
            if j != k:
                others |= tracker.extents[j]
        there = np.rint(points + flow).astype(int)
        keep = (there[:, 0] >= 0) & (there[:, 0] < width) & (there[:, 1] >= 0) & (there[:, 1] < height)
        keep[keep] = ~others[there[keep, 1], there[keep, 0]]
        still = np.rint(points + displacement(background, points)).astype(int)
        inside = (still[:, 0] >= 0) & (still[:, 0] < width) & (still[:, 1] >= 0) & (still[:, 1] < height)
        keep[inside] &= ~(others | tracker.extents[k])[still[inside, 1], still[inside, 0]]
        py, px, points, flow = py[keep], px[keep], points[keep], flow[keep]
        if len(px) < GROW_PIXELS:
            continue
        error = [np.linalg.norm(flow - displacement(m, points), axis=1) for m in steps]
        apart = np.linalg.norm(flow - displacement(background, points), axis=1)
        # the pixel goes to whoever it moves clearly most like: beside someone in front
        # who moves alike, it may be their hair or a soft edge as well as who comes out
        rival = np.full(len(px), np.inf, np.float32)
        for j in range(len(tracker.people)):
            if j != k:
                rival = np.minimum(rival, error[j])
        like = (error[k] < GROW_AGREE) & (apart > error[k] + GROW_APART) & (rival > error[k] + GROW_RIVAL)
        if like.sum() < GROW_PIXELS:
            continue
        # the revealed part moves as one: its own motion, fitted, picks its pixels
        fitted, _ = cv2.estimateAffinePartial2D(points[like], points[like] + flow[like],
                                                method=cv2.RANSAC, ransacReprojThreshold=1.0)
        if fitted is None:
            continue
        pick = (np.linalg.norm(flow - displacement(fitted.astype(np.float32), points), axis=1) < GROW_MATCH) & like
        new = np.zeros(tracker.shape, np.uint8)
        new[py[pick], px[pick]] = 1
        new = cv2.morphologyEx(new, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        pieces, labels, stats, _ = cv2.connectedComponentsWithStats(new, connectivity=8)
        new = np.isin(labels, [i for i in range(1, pieces) if stats[i, cv2.CC_STAT_AREA] >= GROW_PIXELS])
        if not new.any():
            continue
        free &= ~new
        mine = move(new.astype(np.float32), cv2.invertAffineTransform(person.canvas(before[k])),
                    person.mask.shape) >= 0.5
        # the gaps left (flat patches, the edge band) are closed, near the new pixels only
        grown_mask = person.mask | mine.astype(np.uint8)
        closed = cv2.morphologyEx(grown_mask, cv2.MORPH_CLOSE, close)
        person.mask = grown_mask | (closed & cv2.dilate(mine.astype(np.uint8), close))
        grown.append(k)
    return grown
