"""IMQ metric: hand-computed cases and a loop-based re-statement of the reference formulas."""

from __future__ import annotations

import itertools
import math
from collections import deque

import numpy as np
import pytest
from scipy import ndimage

from engine.evaluation import metrics as M


def blob(h, w, cy, cx, ry, rx, softness=4.0):
    """A soft ellipse: 1 inside, a linear ramp over the edge, 0 outside."""
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    return np.clip((1.0 - d) * softness + 0.5, 0, 1).astype(np.float32)


def three_people(h=48, w=96):
    return np.stack([blob(h, w, 24, 16 + 32 * k, 18, 12) for k in range(3)])


def row(acc, t="0.5"):
    return acc.result()[t]


def check_all(result_row, value):
    for key in [f"IMQ_{e}" for e in M.ERRORS] + [f"MQ_{e}" for e in M.ERRORS] + ["RQ"]:
        assert result_row[key] == pytest.approx(value, abs=1e-9), key


# ---------------------------------------------------------------- counting cases


def test_perfect_predictions_score_100():
    gt = three_people()
    acc = M.IMQAccumulator()
    acc.add(gt, gt)
    acc.add(gt[:1], gt[:1])
    for t in ("0.5", "0.75"):
        check_all(row(acc, t), 100.0)
        assert (row(acc, t)["TP"], row(acc, t)["FP"], row(acc, t)["FN"]) == (4, 0, 0)
    assert acc.result()["missed_images"] == 0


def test_one_missed_person():
    gt = three_people()
    acc = M.IMQAccumulator()
    acc.add(gt[:2], gt)
    r = row(acc)
    assert (r["TP"], r["FP"], r["FN"]) == (2, 0, 1)
    assert r["IMQ_mad"] == pytest.approx(100 * 2 / 2.5)
    assert r["RQ"] == pytest.approx(80.0)
    assert r["MQ_conn"] == pytest.approx(100.0)
    assert acc.result()["missed_images"] == 0  # the image had predictions


def test_one_extra_person():
    gt = three_people()
    extra = np.zeros_like(gt[:1])
    extra[0, 40:46, 2:8] = 1.0
    acc = M.IMQAccumulator()
    acc.add(np.concatenate([gt, extra]), gt)
    r = row(acc)
    assert (r["TP"], r["FP"], r["FN"]) == (3, 1, 0)
    assert r["IMQ_grad"] == pytest.approx(100 * 3 / 3.5)
    assert r["MQ_grad"] == pytest.approx(100.0)


def test_swapped_order_is_matched():
    gt = three_people()
    acc = M.IMQAccumulator()
    score = acc.add(gt[::-1], gt)
    check_all(row(acc), 100.0)
    assert sorted(zip(score.pred_index.tolist(), score.gt_index.tolist())) == [(0, 2), (1, 1), (2, 0)]


def test_empty_images():
    gt = three_people()
    empty = np.zeros((0,) + gt.shape[1:], dtype=np.float32)
    only_empty = M.IMQAccumulator()
    only_empty.add(empty, empty)
    only_empty.add([], [])
    # nothing to find and nothing found: nothing to penalise
    check_all(row(only_empty), 100.0)
    assert only_empty.result()["missed_images"] == 0

    acc = M.IMQAccumulator()
    acc.add(gt, gt)
    acc.add(empty, empty)  # no effect
    check_all(row(acc), 100.0)

    acc.add(empty, gt[:2])  # people, no predictions: missed, counted as FN
    r = acc.result()
    assert r["missed_images"] == 1 and r["missed_people"] == 2 and r["images"] == 3
    assert (r["0.5"]["TP"], r["0.5"]["FP"], r["0.5"]["FN"]) == (3, 0, 2)
    assert r["0.5"]["IMQ_mse"] == pytest.approx(100 * 3 / 4)
    assert r["0.5"]["MQ_mse"] == pytest.approx(100.0)

    only_missed = M.IMQAccumulator()
    only_missed.add(None, gt)
    r = row(only_missed)
    assert r["IMQ_mad"] == 0.0 and r["MQ_mad"] == 0.0 and r["RQ"] == 0.0


def test_iou_threshold_075():
    gt = np.zeros((1, 10, 10), np.float32)
    gt[0, :, :] = 1.0
    pred = gt.copy()
    pred[0, :, 7:] = 0.0  # IoU 0.7: a TP at 0.5, not at 0.75
    acc = M.IMQAccumulator()
    acc.add(pred, gt)
    r = acc.result()
    assert (r["0.5"]["TP"], r["0.5"]["FP"], r["0.5"]["FN"]) == (1, 0, 0)
    assert (r["0.75"]["TP"], r["0.75"]["FP"], r["0.75"]["FN"]) == (0, 1, 1)
    # MAD over the union: 30 pixels off by 1, union 100 -> 30 / 101 -> s = 0
    assert r["0.5"]["IMQ_mad"] == pytest.approx(0.0)
    assert r["0.75"]["IMQ_mad"] == 0.0 and r["0.75"]["RQ"] == 0.0


def test_integer_inputs_are_scaled():
    gt = three_people()
    acc = M.IMQAccumulator()
    acc.add(np.round(gt * 255).astype(np.uint8), np.round(gt * 65535).astype(np.uint16))
    assert row(acc)["IMQ_mad"] > 99.5


# ---------------------------------------------------------------- hand-computed errors


def ramp(rows=4):
    """g(x) = x / 10 for x = 0..9 in every row."""
    return np.tile(np.arange(10, dtype=np.float32) / 10, (rows, 1))


def test_mad_mse_constant_offset_on_a_ramp():
    g = ramp()
    p = np.where(g > 0, g + 0.02, 0).astype(np.float32)
    mad, mse, _, _ = M.pair_errors(p, g)
    # union: x = 1..9 in 4 rows = 36 pixels, each off by 0.02; denominator 36 + 1
    assert mad == pytest.approx(36 * 0.02 / 37, rel=1e-5)
    assert mse == pytest.approx(36 * 0.02**2 / 37, rel=1e-5)
    acc = M.IMQAccumulator()
    acc.add(p[None], g[None])
    assert row(acc)["IMQ_mad"] == pytest.approx(100 * (1 - 10 * 0.72 / 37), rel=1e-5)
    assert row(acc)["IMQ_mse"] == pytest.approx(100 * (1 - 10 * 0.0144 / 37), rel=1e-5)


def test_mad_mse_union_includes_prediction_only_pixels():
    g = ramp()
    p = g.copy()
    p[:, 0] = 0.1  # pred covers x = 0 where the ground truth is 0: union 40 pixels
    mad, mse, _, _ = M.pair_errors(p, g)
    assert mad == pytest.approx(4 * 0.1 / 41, rel=1e-5)
    assert mse == pytest.approx(4 * 0.01 / 41, rel=1e-5)


def test_mse_of_a_reversed_ramp():
    g = np.tile(np.arange(1, 6, dtype=np.float32) / 5, (2, 1))  # 0.2 .. 1.0
    p = g[:, ::-1].copy()
    mad, mse, _, _ = M.pair_errors(p, g)
    # |diffs| per row: 0.8, 0.4, 0, 0.4, 0.8 -> sum 2.4, squares 1.6; 10 pixels + 1
    assert mad == pytest.approx(2 * 2.4 / 11, rel=1e-5)
    assert mse == pytest.approx(2 * 1.6 / 11, rel=1e-5)


def test_conn_disconnected_island():
    g = np.zeros((30, 30), np.float32)
    g[5:15, 5:15] = 1.0
    p = g.copy()
    p[25:27, 25:27] = 1.0  # an island the ground truth lacks
    mad, _, _, conn = M.pair_errors(p, g)
    # island pixels: level 0 (outside every common component), phi_p = 0, phi_g = 1
    assert conn == pytest.approx(4 / 105, rel=1e-6)
    assert mad == pytest.approx(4 / 105, rel=1e-6)


@pytest.mark.parametrize("touching, expected", [(True, 0.0), (False, 4 * 0.1 / 105)])
def test_conn_depends_on_connection(touching, expected):
    g = np.zeros((30, 30), np.float32)
    g[5:15, 5:15] = 1.0
    y, x = (15, 5) if touching else (20, 20)  # just below the square, or far from it
    g[y : y + 2, x : x + 2] = 0.5
    p = g.copy()
    p[y : y + 2, x : x + 2] = 0.6
    _, _, _, conn = M.pair_errors(p, g)
    # connected: level 0.5, d_p = 0.1 < theta -> no error; apart: level 0,
    # phi_g = 0.5, phi_p = 0.4 -> 0.1 per pixel
    assert conn == pytest.approx(expected, abs=1e-7)


def test_conn_diagonal_neighbours_are_not_connected():
    g = np.zeros((30, 30), np.float32)
    g[5:15, 5:15] = 1.0
    g[15, 15] = 0.5  # touches the square's corner only
    p = g.copy()
    p[15, 15] = 0.6
    _, _, _, conn = M.pair_errors(p, g)
    assert conn == pytest.approx(0.1 / 102, rel=1e-5)


def test_conn_ties_take_the_first_component_in_raster_order():
    g = np.zeros((12, 12), np.float32)
    g[1:4, 1:4] = 0.5  # A, first in raster order
    g[7:10, 7:10] = 0.5  # B, same size
    p = g.copy()
    p[1:4, 1:4] = 0.6
    p[7:10, 7:10] = 0.9
    _, _, _, conn = M.pair_errors(p, g)
    # A is the largest component at 0.1..0.5: level 0.5, d_p = 0.1 -> 0.
    # B has level 0: phi_g = 0.5, phi_p = 0.1 -> 0.4 on 9 pixels; union 18 + 1
    assert conn == pytest.approx(9 * 0.4 / 19, rel=1e-5)


def test_grad_kernel_matches_the_reference_size():
    assert M._GRAD_HALF == 4  # sigma 1.4 -> 9 taps
    k2 = np.outer(M._GAUSS, M._DGAUSS)
    assert np.sum(k2**2) == pytest.approx(1.0, rel=1e-5)


# ---------------------------------------------------------------- degradation


def _errors_over(mattes, gt):
    return np.array([M.pair_errors(p.astype(np.float32), gt) for p in mattes])


def test_identical_mattes_have_zero_error():
    rng = np.random.default_rng(0)
    g = np.clip(ndimage.gaussian_filter(rng.random((40, 60)), 3) * 6 - 2.5, 0, 1).astype(np.float32)
    assert np.all(M.pair_errors(g, g) == 0)
    assert np.all(M.similarity(M.pair_errors(g, g)) == 1)


def test_grad_and_conn_fall_with_noise():
    rng = np.random.default_rng(1)
    g = blob(48, 48, 24, 24, 18, 14, softness=2.0)
    n = rng.random(g.shape).astype(np.float32) * (g > 0)
    # noise only adds alpha where the ground truth has some, so the union stays put
    mattes = [g + s * n * (1 - g) for s in (0.0, 0.1, 0.2, 0.4, 0.8)]
    errors = _errors_over(mattes, g)
    for column in (0, 1, 2, 3):  # MAD, MSE, Grad, Conn
        assert errors[0, column] == 0
        assert np.all(np.diff(errors[:, column]) > 0), (column, errors[:, column])
    assert np.all(np.diff(M.similarity(errors), axis=0) <= 0)


def test_grad_and_mad_fall_with_blur():
    g = np.zeros((48, 48), np.float32)
    g[12:36, 14:34] = 1.0
    g[20:28, 30:40] = 0.7
    mattes = [g] + [ndimage.gaussian_filter(g, s) for s in (0.5, 1.0, 2.0, 3.0)]
    errors = _errors_over(mattes, g)
    assert np.all(errors[0] == 0)
    for column in (0, 2):  # MAD, Grad
        assert np.all(np.diff(errors[:, column]) > 0), (column, errors[:, column])
    assert np.all(errors[1:, 3] > 0)  # Conn sees the blurred edge too


# ---------------------------------------------------------------- loop-based cross-check
# A deliberately slow, literal re-statement of the reference formulas: per-pixel loops,
# brute-force matching, explicit 2-D kernel with replicated borders, flood fill.


def slow_kernel(sigma=1.4):
    half = math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * 0.01)))
    size = 2 * half + 1

    def gauss(x):
        return math.exp(-x * x / (2 * sigma * sigma)) / (sigma * math.sqrt(2 * math.pi))

    kx = np.zeros((size, size))
    for r in range(size):
        for c in range(size):
            kx[r, c] = gauss(r - half) * (-(c - half) * gauss(c - half) / sigma**2)
    kx /= math.sqrt(np.sum(kx**2))
    return kx, kx.T, half


def slow_convolve(image, kernel, half):
    h, w = image.shape
    out = np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            total = 0.0
            for a in range(-half, half + 1):
                for b in range(-half, half + 1):
                    yy = min(max(y - a, 0), h - 1)
                    xx = min(max(x - b, 0), w - 1)
                    total += kernel[a + half, b + half] * image[yy, xx]
            out[y, x] = total
    return out


def slow_largest_component(mask):
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    best = []
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not seen[y, x]:
                seen[y, x] = True
                queue, pixels = deque([(y, x)]), []
                while queue:
                    cy, cx = queue.popleft()
                    pixels.append((cy, cx))
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            queue.append((ny, nx))
                if len(pixels) > len(best):  # strictly larger: the first found wins ties
                    best = pixels
    omega = np.zeros_like(mask, dtype=bool)
    for y, x in best:
        omega[y, x] = True
    return omega


def slow_pair_errors(p, g):
    h, w = p.shape
    union = (p > 0) | (g > 0)
    n = union.sum() + 1.0
    mad = sum(abs(float(p[y, x]) - float(g[y, x])) for y in range(h) for x in range(w) if union[y, x]) / n
    mse = sum((float(p[y, x]) - float(g[y, x])) ** 2 for y in range(h) for x in range(w) if union[y, x]) / n

    kx, ky, half = slow_kernel()
    amp_p = np.hypot(slow_convolve(p, kx, half), slow_convolve(p, ky, half))
    amp_g = np.hypot(slow_convolve(g, kx, half), slow_convolve(g, ky, half))
    grad = sum((amp_p[y, x] - amp_g[y, x]) ** 2 for y in range(h) for x in range(w) if union[y, x]) / n

    steps = [np.float32(i / 10) for i in range(11)]
    level = np.full((h, w), -1.0)
    for i in range(1, 11):
        omega = slow_largest_component((p >= steps[i]) & (g >= steps[i]))
        for y in range(h):
            for x in range(w):
                if level[y, x] == -1 and not omega[y, x]:
                    level[y, x] = steps[i - 1]
    level[level == -1] = 1.0
    conn = 0.0
    for y in range(h):
        for x in range(w):
            if union[y, x]:
                dp = float(p[y, x]) - level[y, x]
                dg = float(g[y, x]) - level[y, x]
                phi_p = 1 - (dp if dp >= 0.15 else 0.0)
                phi_g = 1 - (dg if dg >= 0.15 else 0.0)
                conn += abs(phi_p - phi_g)
    return np.array([mad, mse, grad, conn / n])


def slow_imq(images, thresholds=(0.5, 0.75)):
    out = {}
    for t in thresholds:
        tp = fp = fn = 0
        sims = np.zeros(4)
        for pred, gt in images:
            best, best_pairs = -1.0, []
            if len(pred) and len(gt):
                iou = np.zeros((len(pred), len(gt)))
                for i, j in itertools.product(range(len(pred)), range(len(gt))):
                    a, b = pred[i] > 0, gt[j] > 0
                    iou[i, j] = (a & b).sum() / ((a | b).sum() + 1e-8)
                k = min(len(pred), len(gt))
                for rows in itertools.permutations(range(len(pred)), k):
                    for cols in itertools.permutations(range(len(gt)), k):
                        total = sum(iou[r, c] for r, c in zip(rows, cols))
                        if total > best + 1e-12:
                            best, best_pairs = total, [(r, c, iou[r, c]) for r, c in zip(rows, cols)]
            hits = [(r, c) for r, c, v in best_pairs if v >= t]
            tp += len(hits)
            fp += len(pred) - len(hits)
            fn += len(gt) - len(hits)
            for r, c in hits:
                sims += 1 - np.minimum(10 * slow_pair_errors(pred[r], gt[c]), 1)
        d = tp + fp / 2 + fn / 2
        out[str(t)] = {"IMQ": 100 * sims / d, "MQ": 100 * sims / tp, "RQ": 100 * tp / d, "TP": tp, "FP": fp, "FN": fn}
    return out


def random_matte(rng, h, w, cy, cx):
    base = ndimage.gaussian_filter(rng.random((h, w)), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    shape = blob(h, w, cy, cx, rng.uniform(6, 9), rng.uniform(5, 8), softness=rng.uniform(1.5, 4))
    alpha = np.clip(shape * (0.6 + 0.8 * base) - 0.1, 0, 1)
    return np.round(alpha * 255).astype(np.float32) / 255  # 8-bit values, like PNGs


def degrade(rng, alpha, shift):
    noisy = alpha + rng.normal(0, 0.15, alpha.shape) * (rng.random(alpha.shape) < 0.3) * (alpha > 0)
    shifted = ndimage.shift(noisy, shift, order=1)
    return (np.round(np.clip(shifted, 0, 1) * 255) / 255).astype(np.float32)


def test_vectorised_matches_loop_restatement():
    rng = np.random.default_rng(7)
    h, w = 24, 40
    images = []
    for n_gt, n_pred in ((2, 2), (3, 2), (1, 2)):
        centres = [(12, 8), (12, 20), (12, 32)][:n_gt]
        gt = np.stack([random_matte(rng, h, w, *c) for c in centres])
        # small and large shifts: some pairs pass IoU 0.75, some only 0.5
        pred = [degrade(rng, gt[k], (0.3, 0.4 + 2.5 * k)) for k in range(min(n_gt, n_pred))][::-1]
        if n_pred > n_gt:
            pred.append(random_matte(rng, h, w, 6, 34) * 0.5)
        images.append((np.stack(pred), gt))
    expected = slow_imq(images)
    acc = M.IMQAccumulator()
    for pred, gt in images:
        acc.add(pred, gt)
    got = acc.result()
    for t, want in expected.items():
        assert (got[t]["TP"], got[t]["FP"], got[t]["FN"]) == (want["TP"], want["FP"], want["FN"])
        assert got[t]["RQ"] == pytest.approx(want["RQ"], rel=1e-9)
        for e, name in enumerate(M.ERRORS):
            assert got[t][f"IMQ_{name}"] == pytest.approx(want["IMQ"][e], rel=1e-5, abs=1e-5), (t, name)
            assert got[t][f"MQ_{name}"] == pytest.approx(want["MQ"][e], rel=1e-5, abs=1e-5), (t, name)


def test_pair_errors_match_loop_restatement_including_borders():
    rng = np.random.default_rng(11)
    h, w = 20, 26
    g = random_matte(rng, h, w, 4, 4)  # touches the top-left border: edge replication counts
    g[:, -3:] = np.linspace(0.2, 1.0, 3, dtype=np.float32)  # a second component on the right border
    p = degrade(rng, g, (0.6, -0.8))
    np.testing.assert_allclose(M.pair_errors(p, g), slow_pair_errors(p, g), rtol=1e-5, atol=1e-8)


def test_importable_without_torch():
    import subprocess
    import sys

    code = "import sys, engine.evaluation.metrics, engine.evaluation.evaluate, engine.evaluation.baselines; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
