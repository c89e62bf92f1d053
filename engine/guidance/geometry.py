"""The image geometry people are carried with: grey frames, affine maps, optical flow, and
aligning a person's keyframe pixels with a frame (ECC), for :mod:`.layered`.

    matrix = compose(after, before)                 # 2x3 maps, applied right to left
    forward, backward = flows(previous, current)    # DIS, at a longest side of FLOW_SIDE
    aligned = ecc(reference, current, keep, start, cv2.MOTION_AFFINE)
"""

from __future__ import annotations

import cv2
import numpy as np

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
FLOW_POINTS = 3000
FLOW_SIDE = 640  # longest side the optical flow runs at: it only feeds a similarity fit per person
ECC_MARGIN = 8  # pixels of context kept around a person's pixels when aligning them
ECC_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 80, 1e-5)


def grey(rgb8: np.ndarray) -> np.ndarray:
    """Lightly blurred float grey image (ECC and the residuals work on it)."""
    g = cv2.cvtColor(np.ascontiguousarray(rgb8), cv2.COLOR_RGB2GRAY)
    return cv2.GaussianBlur(g, (3, 3), 0).astype(np.float32)


def compose(after: np.ndarray, before: np.ndarray) -> np.ndarray:
    """The 2x3 affine map that applies ``before``, then ``after``."""
    return (np.vstack([after, [0, 0, 1]]) @ np.vstack([before, [0, 0, 1]]))[:2].astype(np.float32)


def nearest_similarity(matrix: np.ndarray) -> np.ndarray:
    """The rotation + uniform scale + translation closest to an affine map (no shear)."""
    a = (matrix[0, 0] + matrix[1, 1]) / 2.0
    b = (matrix[1, 0] - matrix[0, 1]) / 2.0
    return np.array([[a, -b, matrix[0, 2]], [b, a, matrix[1, 2]]], np.float32)


def move(plane: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.warpAffine(np.ascontiguousarray(plane, np.float32), matrix, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)


def flows(previous: np.ndarray, current: np.ndarray):
    """DIS flow previous -> current and back, at a longest side of ``FLOW_SIDE``. The DIS
    object is made per call (cheap), so that a tracker holding none can be copied."""
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    scale = min(1.0, FLOW_SIDE / max(previous.shape))
    a, b = (np.clip(g, 0, 255).astype(np.uint8) for g in (previous, current))
    if scale < 1.0:
        size = (max(1, round(a.shape[1] * scale)), max(1, round(a.shape[0] * scale)))
        a, b = (cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in (a, b))
    return flow.calc(a, b, None), flow.calc(b, a, None)


def ecc(reference, current, keep, start, motion) -> np.ndarray | None:
    """ECC of the reference's ``keep`` pixels onto this frame, on the reference cropped to
    those pixels (the cost follows the person's size, not the frame's)."""
    ys, xs = np.nonzero(keep)
    if not len(xs):
        return None
    x0, y0 = max(int(xs.min()) - ECC_MARGIN, 0), max(int(ys.min()) - ECC_MARGIN, 0)
    x1, y1 = int(xs.max()) + ECC_MARGIN + 1, int(ys.max()) + ECC_MARGIN + 1
    offset = start[:, :2] @ np.array([x0, y0], np.float32)  # crop -> frame: x + (x0, y0), then start
    cropped = start.copy()
    cropped[:, 2] += offset
    try:
        _, matrix = cv2.findTransformECCWithMask(
            np.ascontiguousarray(reference[y0:y1, x0:x1]), current, np.ascontiguousarray(keep[y0:y1, x0:x1]) * 255,
            np.full(current.shape, 255, np.uint8), cropped, motion, ECC_CRITERIA, 5)
    except cv2.error:
        return None
    if not np.isfinite(matrix).all():
        return None
    matrix = matrix.astype(np.float32)
    matrix[:, 2] -= matrix[:, :2] @ np.array([x0, y0], np.float32)
    return matrix


def ecc_shift(reference, current, keep, start, min_pixels: int) -> np.ndarray | None:
    """ECC over the shift only, the rotation and scale of ``start`` kept: the reference is
    turned and scaled about the person's centre first, then aligned by translation."""
    pre = about(start[:, :2], centre_of(keep))
    shape = current.shape
    shift = compose(start, cv2.invertAffineTransform(pre))
    shift[:, :2] = np.eye(2, dtype=np.float32)
    turned = move(reference, pre, shape)
    turned_keep = (move(keep.astype(np.float32), pre, shape) >= 0.99).astype(np.uint8)
    if turned_keep.sum() < min_pixels:
        return None
    found = ecc(turned, current, turned_keep, shift, cv2.MOTION_TRANSLATION)
    return None if found is None else compose(found, pre)


def residual(reference, current, transform, region) -> float:
    """Mean grey difference between the reference moved by ``transform`` and this frame over ``region``."""
    moved = move(reference, transform, current.shape)
    return float(np.abs(moved - current)[region].mean()) if region.any() else float("inf")


def shifted(matrix: np.ndarray, dx: float, dy: float) -> np.ndarray:
    out = matrix.copy()
    out[:, 2] += (dx, dy)
    return out


def full_size(flow: np.ndarray, shape) -> np.ndarray:
    """A flow computed at a smaller size (``FLOW_SIDE``), resized and scaled to ``shape``."""
    height, width = flow.shape[:2]
    if (height, width) == tuple(shape):
        return flow
    scale = np.array([shape[1] / width, shape[0] / height], np.float32)
    return cv2.resize(flow, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) * scale


def displacement(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Where ``matrix`` moves each (x, y) of ``points``, less where they are."""
    return points @ matrix[:, :2].T + matrix[:, 2] - points


def fit_flow(forward: np.ndarray, backward: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """Similarity (previous -> current) fitted with RANSAC to the flow over ``region``'s
    forward-backward-consistent pixels; None when too few are. The flow may be at a
    smaller size than the region (``FLOW_SIDE``): it is read there and scaled up."""
    ys, xs = np.nonzero(cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)))
    if len(xs) < 50:
        return None
    pick = np.linspace(0, len(xs) - 1, min(len(xs), FLOW_POINTS)).astype(int)
    ys, xs = ys[pick], xs[pick]
    height, width = forward.shape[:2]
    sx, sy = width / region.shape[1], height / region.shape[0]
    fy = np.clip(((ys + 0.5) * sy).astype(int), 0, height - 1)
    fx = np.clip(((xs + 0.5) * sx).astype(int), 0, width - 1)
    step = forward[fy, fx]
    there = backward[np.clip(np.rint(fy + step[:, 1]).astype(int), 0, height - 1),
                     np.clip(np.rint(fx + step[:, 0]).astype(int), 0, width - 1)]
    consistent = np.abs(step + there).sum(axis=1) < max(sx, sy)  # one full-size pixel
    if consistent.sum() < 30:
        return None
    src = np.stack([xs, ys], 1).astype(np.float32)
    dst = src + step / np.array([sx, sy], np.float32)
    fitted, _ = cv2.estimateAffinePartial2D(src[consistent], dst[consistent], method=cv2.RANSAC,
                                            ransacReprojThreshold=1.5)
    return None if fitted is None else fitted.astype(np.float32)


def continued(mask: np.ndarray, margin: int, reach: int) -> np.ndarray:
    """``mask`` on a canvas ``margin`` wider each way, its edge rows and columns repeated
    ``reach`` pixels out past the frame's edge: a person cut by the frame goes on past it
    (feet below the frame come into view as they bob, a shoulder at the side as they turn)."""
    canvas = np.pad(mask, margin)
    reach = min(margin, reach)
    if reach:
        height, width = mask.shape
        m = margin
        canvas[m + height:m + height + reach, m:m + width] = mask[-1]
        canvas[m - reach:m, m:m + width] = mask[0]
        canvas[m:m + height, m + width:m + width + reach] = mask[:, -1:]
        canvas[m:m + height, m - reach:m] = mask[:, :1]
    return canvas


def eased(motion: np.ndarray, centre: np.ndarray | None, keep: float) -> np.ndarray:
    """A per-frame motion eased towards a level walk: ``keep`` of its vertical shift, turn and
    scale change, about ``centre``; the sideways shift all kept."""
    if centre is None:
        return motion
    eye = np.eye(2, dtype=np.float32)
    linear = eye + keep * (motion[:, :2] - eye)
    shift = motion[:, :2] @ centre + motion[:, 2] - centre  # how the centre moves
    shift[1] *= keep
    return about(linear, centre, shift)


def about(linear: np.ndarray, centre: np.ndarray, shift=(0.0, 0.0)) -> np.ndarray:
    """The 2x3 map that applies ``linear`` (2x2) about ``centre``, then moves by ``shift``."""
    offset = centre + np.asarray(shift, np.float32) - linear @ centre
    return np.concatenate([linear, offset[:, None]], axis=1).astype(np.float32)


def centre_of(extent: np.ndarray) -> np.ndarray | None:
    """The mean (x, y) of a mask's pixels; None for an empty mask."""
    ys, xs = np.nonzero(extent)
    return np.array([xs.mean(), ys.mean()], np.float32) if len(xs) else None
