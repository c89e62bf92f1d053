"""IMQ: instance matting quality (Sun et al., CVPR 2022), vectorised numpy/scipy.

Per image: binarise every alpha at > 0, match predictions to ground truths by the
Hungarian method on 1 - mask IoU, and call a matched pair a true positive when its
IoU reaches the threshold (0.5 and 0.75). Each true positive gets four errors over the
union of the two foregrounds, sum(err) / (|union| + 1):

- MAD  |p - g|
- MSE  (p - g)^2
- Grad (|grad p| - |grad g|)^2, Gaussian-derivative gradients, sigma 1.4
- Conn |phi(p) - phi(g)|, connectivity with threshold step 0.1 and theta 0.15

and a similarity s = 1 - min(10 * error, 1). Over the data set:
IMQ = sum(s) / (TP + FP/2 + FN/2), MQ = sum(s) / TP, RQ = TP / (TP + FP/2 + FN/2),
reported x100. See docs/metrics.md for the differences from the authors' script.

Only numpy and scipy are imported, so training validation and the demo can use the
accumulator without torch or a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from engine.io.images import unit_range

THRESHOLDS = (0.5, 0.75)
ERRORS = ("mad", "mse", "grad", "conn")

GRAD_SIGMA = 1.4
CONN_STEP = 0.1
CONN_THETA = 0.15


def _gaussian_derivative_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray, int]:
    """1-D Gaussian and its derivative; their outer product is the reference's 2-D kernel.

    The half width is where the Gaussian falls under 1 % of its peak (sigma 1.4 -> 9 taps).
    The 2-D kernel is scaled to unit L2 norm; for an outer product that is the product of
    the two 1-D norms, so each factor is normalised on its own.
    """
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    gauss = np.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))
    dgauss = -x * gauss / sigma**2
    gauss /= np.linalg.norm(gauss)
    dgauss /= np.linalg.norm(dgauss)
    return gauss.astype(np.float32), dgauss.astype(np.float32), half


_GAUSS, _DGAUSS, _GRAD_HALF = _gaussian_derivative_kernels(GRAD_SIGMA)

# Connectivity thresholds 0, 0.1, ..., 1.0 in float32: the reference compares float32
# alphas (k/255) with float32 thresholds, and alphas such as 51/255 == 0.2 sit exactly on
# a threshold, so the precision decides which side they fall on.
_CONN_STEPS = np.array([i * CONN_STEP for i in range(int(round(1 / CONN_STEP)) + 1)], dtype=np.float32)
_CONN_THETA = np.float32(CONN_THETA)
_FOUR_CONNECTED_IN_SLICE = np.zeros((3, 3, 3), dtype=bool)
_FOUR_CONNECTED_IN_SLICE[1] = ndimage.generate_binary_structure(2, 1)


def _gradient_magnitude(alpha: np.ndarray) -> np.ndarray:
    """|grad alpha| with the separable Gaussian-derivative filter and edge replication."""
    # convolve1d is a true convolution, like the reference's conv2d with a flipped kernel
    gx = ndimage.convolve1d(ndimage.convolve1d(alpha, _GAUSS, axis=0, mode="nearest"), _DGAUSS, axis=1, mode="nearest")
    gy = ndimage.convolve1d(ndimage.convolve1d(alpha, _DGAUSS, axis=0, mode="nearest"), _GAUSS, axis=1, mode="nearest")
    return np.sqrt(gx * gx + gy * gy)


def _connectivity_level(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Per pixel, the last threshold before it leaves the largest common component.

    For each threshold t in 0.1..1.0 the common foreground is pred >= t and gt >= t, i.e.
    min(pred, gt) >= t, and only its largest 4-connected component counts. A pixel's level
    is the threshold before the first one whose largest component misses it (1 if none).
    All thresholds are labelled in one call: the masks are stacked into a volume whose
    structure element connects pixels only inside a slice.
    """
    thresholds = _CONN_STEPS[1:]
    # number of thresholds each pixel passes; mask k is "passes > k"
    passes = np.searchsorted(thresholds, np.minimum(pred, gt), side="right")
    present = np.bincount(passes.ravel(), minlength=len(thresholds) + 1)
    # mask k equals mask k-1 when no pixel passes exactly k thresholds: label it once
    top = int(np.flatnonzero(present)[-1])  # masks at and above this index are empty
    distinct = [k for k in range(top) if k == 0 or present[k] > 0]
    level = np.ones(pred.shape, dtype=np.float32)
    if not distinct:
        # nothing passes the first threshold: every pixel leaves at once
        level[:] = _CONN_STEPS[0]
        return level
    masks = passes[None, :, :] > np.array(distinct)[:, None, None]
    labels, _ = ndimage.label(masks, structure=_FOUR_CONNECTED_IN_SLICE)
    # largest component of each slice; argmax keeps the first label (raster order) on ties
    largest = {}
    for slot, k in enumerate(distinct):
        sizes = np.bincount(labels[slot].ravel())
        sizes[0] = 0
        largest[k] = (slot, int(np.argmax(sizes)))
    # walk the thresholds from the top so the earliest miss wins
    for k in range(len(thresholds) - 1, -1, -1):
        if k >= top:
            outside = np.ones(pred.shape, dtype=bool)  # empty mask: nobody is inside
        else:
            base = max(d for d in distinct if d <= k)  # identical to this slice
            slot, label = largest[base]
            outside = labels[slot] != label
        level[outside] = _CONN_STEPS[k]
    return level


def pair_errors(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MAD, MSE, Grad and Conn errors of one matched pair, over the union of foregrounds.

    pred, gt: (H, W) float32 in [0, 1]. Returns float64 (4,) ordered like ``ERRORS``.
    Everything outside the union's bounding box is zero in both mattes, so the work is done
    on that box plus the gradient filter's half width (clipped to the image, where the
    edge replication is then the same as on the full frame): the numbers are unchanged.
    """
    union = (pred > 0) | (gt > 0)
    rows = np.flatnonzero(union.any(axis=1))
    if rows.size == 0:
        return np.zeros(4)  # empty union: 0 / (0 + 1)
    cols = np.flatnonzero(union.any(axis=0))
    h, w = union.shape
    m = _GRAD_HALF
    box = (slice(max(rows[0] - m, 0), min(rows[-1] + m + 1, h)), slice(max(cols[0] - m, 0), min(cols[-1] + m + 1, w)))
    p, g, u = pred[box], gt[box], union[box]
    denominator = float(np.count_nonzero(u)) + 1.0  # the reference's +1

    diff = p[u] - g[u]
    mad = np.abs(diff).sum(dtype=np.float64) / denominator
    mse = np.square(diff).sum(dtype=np.float64) / denominator

    grad_diff = _gradient_magnitude(p)[u] - _gradient_magnitude(g)[u]
    grad = np.square(grad_diff).sum(dtype=np.float64) / denominator

    level = _connectivity_level(p, g)[u]
    d_pred = p[u] - level
    d_gt = g[u] - level
    phi_pred = 1 - d_pred * (d_pred >= _CONN_THETA)
    phi_gt = 1 - d_gt * (d_gt >= _CONN_THETA)
    conn = np.abs(phi_pred - phi_gt).sum(dtype=np.float64) / denominator
    return np.array([mad, mse, grad, conn])


def similarity(errors: np.ndarray) -> np.ndarray:
    """s = 1 - min(10 * error, 1): an error of 0.1 or more scores zero."""
    return 1.0 - np.minimum(10.0 * np.asarray(errors, dtype=np.float64), 1.0)


def _as_stack(alphas, name: str) -> np.ndarray:
    """(N, H, W) float32 in [0, 1] from an array or a list of (H, W) mattes.

    8- and 16-bit integers are scaled to [0, 1]; floats are clipped (a net's slight
    overshoot must not make an error larger than the matte allows).
    """
    if alphas is None:
        return np.zeros((0, 0, 0), dtype=np.float32)
    if isinstance(alphas, (list, tuple)):
        if len(alphas) == 0:
            return np.zeros((0, 0, 0), dtype=np.float32)
        alphas = np.stack([np.asarray(a) for a in alphas])
    alphas = np.asarray(alphas)
    if alphas.ndim == 2:
        alphas = alphas[None]
    if alphas.ndim != 3:
        raise ValueError(f"{name}: expected (N, H, W) mattes, got shape {alphas.shape}")
    return unit_range(alphas)


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, G) IoU of the > 0 masks; 0 for two empty masks (as the reference's 1e-8)."""
    pred_mask = (pred > 0).reshape(len(pred), -1)
    gt_mask = (gt > 0).reshape(len(gt), -1)
    # a matrix product counts intersections; float32 is exact below 2^24 pixels
    dtype = np.float32 if pred_mask.shape[1] < 2**24 else np.float64
    inter = pred_mask.astype(dtype) @ gt_mask.astype(dtype).T
    area_pred = pred_mask.sum(axis=1)
    area_gt = gt_mask.sum(axis=1)
    union = area_pred[:, None] + area_gt[None, :] - inter.astype(np.float64)
    return inter / (union + 1e-8)


@dataclass(frozen=True)
class ImageScore:
    """One image's matching: Hungarian pairs, their IoU and (for candidates) errors."""

    n_pred: int
    n_gt: int
    pred_index: np.ndarray  # (M,) Hungarian pairs, M = min(n_pred, n_gt)
    gt_index: np.ndarray
    iou: np.ndarray  # (M,)
    errors: np.ndarray  # (M, 4) MAD, MSE, Grad, Conn; NaN where IoU is below every threshold

    @property
    def missed(self) -> bool:
        """People in the ground truth and no prediction at all (a missed image)."""
        return self.n_pred == 0 and self.n_gt > 0

    def tp(self, threshold: float) -> int:
        return int(np.count_nonzero(self.iou >= threshold))

    def fp(self, threshold: float) -> int:
        return self.n_pred - self.tp(threshold)

    def fn(self, threshold: float) -> int:
        return self.n_gt - self.tp(threshold)

    def similarity_sum(self, threshold: float) -> np.ndarray:
        """(4,) summed similarities of the true positives at this threshold."""
        return similarity(self.errors[self.iou >= threshold]).sum(axis=0)


def score_image(pred, gt, thresholds=THRESHOLDS) -> ImageScore:
    """Match one image's predicted mattes (P, H, W) to its ground truth (G, H, W).

    Errors are computed once per matched pair that reaches the lowest threshold; the
    pairs at a higher threshold are a subset (same matching), so nothing is redone.
    """
    pred = _as_stack(pred, "pred")
    gt = _as_stack(gt, "gt")
    n_pred, n_gt = len(pred), len(gt)
    empty_i = np.zeros(0, dtype=np.intp)
    if n_pred == 0 or n_gt == 0:
        return ImageScore(n_pred, n_gt, empty_i, empty_i, np.zeros(0), np.zeros((0, 4)))
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f"prediction size {pred.shape[1:]} differs from ground truth size {gt.shape[1:]}")
    iou = mask_iou(pred, gt)
    pred_index, gt_index = linear_sum_assignment(1.0 - iou)
    matched_iou = iou[pred_index, gt_index]
    errors = np.full((len(pred_index), 4), np.nan)
    lowest = min(thresholds)
    for n, (i, j) in enumerate(zip(pred_index, gt_index)):
        if matched_iou[n] >= lowest:
            errors[n] = pair_errors(pred[i], gt[j])
    return ImageScore(n_pred, n_gt, pred_index, gt_index, matched_iou, errors)


def _ratio(numerator: float, denominator: float, empty: float) -> float:
    return 100.0 * numerator / denominator if denominator > 0 else empty


class IMQAccumulator:
    """Pools per-image scores over a data set; ``result()`` is on the x100 scale.

    acc = IMQAccumulator()
    for pred, gt in data: acc.add(pred, gt)      # (P, H, W), (G, H, W) in [0, 1]
    acc.result()["0.5"]["IMQ_mad"]
    """

    def __init__(self, thresholds=THRESHOLDS):
        self.thresholds = tuple(float(t) for t in thresholds)
        self.images = 0
        self.missed_images = 0
        self.missed_people = 0
        self._tp = np.zeros(len(self.thresholds), dtype=np.int64)
        self._fp = np.zeros(len(self.thresholds), dtype=np.int64)
        self._fn = np.zeros(len(self.thresholds), dtype=np.int64)
        self._sim = np.zeros((len(self.thresholds), 4))

    def add(self, pred, gt) -> ImageScore:
        score = score_image(pred, gt, self.thresholds)
        self.add_score(score)
        return score

    def add_score(self, score: ImageScore) -> None:
        self.images += 1
        if score.missed:
            # the authors' script skips images without predictions; here they count
            self.missed_images += 1
            self.missed_people += score.n_gt
        for k, t in enumerate(self.thresholds):
            self._tp[k] += score.tp(t)
            self._fp[k] += score.fp(t)
            self._fn[k] += score.fn(t)
            self._sim[k] += score.similarity_sum(t)

    def result(self) -> dict:
        """{"0.5": {"IMQ_mad": .., ..., "MQ_conn": .., "RQ": .., "TP": .., "FP": .., "FN": ..},
        "0.75": {...}, "images": n, "missed_images": n, "missed_people": n}.

        With no people and no predictions at all there is nothing to miss or invent, so the
        IMQ and RQ are 100; with no true positive MQ is 0 (see docs/metrics.md).
        """
        out: dict = {}
        for k, t in enumerate(self.thresholds):
            tp, fp, fn = int(self._tp[k]), int(self._fp[k]), int(self._fn[k])
            detections = tp + 0.5 * fp + 0.5 * fn
            nothing = 100.0 if tp + fp + fn == 0 else 0.0
            row: dict = {}
            for e, name in enumerate(ERRORS):
                row[f"IMQ_{name}"] = _ratio(self._sim[k, e], detections, nothing)
            for e, name in enumerate(ERRORS):
                row[f"MQ_{name}"] = _ratio(self._sim[k, e], tp, nothing)
            row["RQ"] = _ratio(tp, detections, nothing)
            row.update(TP=tp, FP=fp, FN=fn)
            out[_threshold_key(t)] = row
        out["images"] = self.images
        out["missed_images"] = self.missed_images
        out["missed_people"] = self.missed_people
        return out


def _threshold_key(threshold: float) -> str:
    """0.5 -> "0.5", 0.75 -> "0.75"."""
    return repr(float(threshold))
