"""``instmatt eval`` on a tiny generated HIM2K folder, and the baseline predictions."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.commands import main as instmatt
from engine.errors import InputFileError
from engine.evaluation import baselines, evaluate

H, W = 32, 48


def person(cx, softness=3.0, h=H, w=W):
    yy, xx = np.mgrid[0:h, 0:w]
    d = np.sqrt(((yy - h / 2) / (h * 0.4)) ** 2 + ((xx - cx) / 8.0) ** 2)
    return np.clip((1.0 - d) * softness + 0.5, 0, 1).astype(np.float32)


def write_png(path: Path, alpha: np.ndarray, bits: int = 8) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    scale, dtype = (255, np.uint8) if bits == 8 else (65535, np.uint16)
    assert cv2.imwrite(str(path), np.round(alpha * scale).astype(dtype))


@pytest.fixture
def him2k(tmp_path):
    """GT with two subsets; PRED perfect except: comp/c3 has no folder (missed)."""
    gt, pred = tmp_path / "HIM2K", tmp_path / "PRED"
    people = {"comp": {"c1": [12, 34], "c2": [24], "c3": [10, 30]}, "natural": {"n1": [16, 32]}}
    for subset, images in people.items():
        for name, centres in images.items():
            for k, cx in enumerate(centres):
                alpha = person(cx)
                bits = 16 if name == "c2" else 8  # one 16-bit ground truth
                write_png(gt / "alphas" / subset / name / f"{k:02d}.png", alpha, bits)
                if name != "c3":
                    # predictions in reverse order, the natural one as 16-bit
                    write_png(pred / subset / name / f"{len(centres) - 1 - k:02d}.png", alpha, 16 if subset == "natural" else 8)
    return gt, pred


def test_eval_cli_counts_missed_images_and_writes_json(him2k, tmp_path, capsys):
    gt, pred = him2k
    out = tmp_path / "res" / "imq.json"
    assert instmatt(["eval", "--pred", str(pred), "--gt", str(gt), "--json", str(out)]) == 0
    captured = capsys.readouterr()
    assert "IMQ_mad" in captured.out and "comp" in captured.out and "natural" in captured.out
    assert "1 with no prediction" in captured.out and "counted as missed" in captured.out
    assert "eval comp" in captured.err  # the progress bar

    data = json.loads(out.read_text())
    assert set(data) == {"comp", "natural"}
    for subset in data.values():
        assert {"0.5", "0.75", "missed_images"} <= set(subset)
        for t in ("0.5", "0.75"):
            assert {"IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "MQ_mad", "RQ", "TP", "FP", "FN"} <= set(subset[t])
    comp = data["comp"]
    assert comp["missed_images"] == 1 and comp["missed_people"] == 2
    assert (comp["0.5"]["TP"], comp["0.5"]["FP"], comp["0.5"]["FN"]) == (3, 0, 2)
    # c2 compares a 16-bit ground truth with an 8-bit prediction: only rounding differs
    assert comp["0.5"]["IMQ_mad"] == pytest.approx(100 * 3 / 4, abs=0.5)
    assert comp["0.5"]["MQ_conn"] == pytest.approx(100.0, abs=0.5)
    assert data["natural"]["0.75"]["IMQ_grad"] == pytest.approx(100.0, abs=0.5)
    assert data["natural"]["missed_images"] == 0


def test_skip_missing_behaves_like_the_reference(him2k):
    gt, pred = him2k
    results = evaluate.evaluate(pred, gt, skip_missing=True, progress=False)
    comp = results["comp"]
    assert comp["skipped_images"] == 1 and comp["missed_images"] == 0
    assert comp["0.5"]["IMQ_mad"] == pytest.approx(100.0, abs=0.5)


def test_missing_subset_counts_every_image_missed(him2k, capsys):
    gt, pred = him2k
    import shutil

    shutil.rmtree(pred / "natural")
    results = evaluate.evaluate(pred, gt, subsets=["natural"], progress=False)
    assert results["natural"]["missed_images"] == 1
    assert results["natural"]["0.5"]["FN"] == 2
    assert "natural" in capsys.readouterr().err


def test_size_mismatch_names_the_file(him2k, capsys):
    gt, pred = him2k
    bad = pred / "comp" / "c1" / "00.png"
    write_png(bad, np.zeros((H + 2, W), np.float32))
    assert instmatt(["eval", "--pred", str(pred), "--gt", str(gt), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(bad) in err[0] and "48x34" in err[0] and "does not match" in err[0]


def test_unreadable_file_names_the_file(him2k, capsys):
    gt, pred = him2k
    bad = gt / "alphas" / "natural" / "n1" / "01.png"
    bad.write_bytes(b"not a png")
    assert instmatt(["eval", "--pred", str(pred), "--gt", str(gt), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "cannot be read" in err


def test_missing_folders_are_clear(tmp_path, capsys):
    assert instmatt(["eval", "--pred", str(tmp_path), "--gt", str(tmp_path / "nope"), "--quiet"]) == 2
    assert "nope: ground-truth folder not found" in capsys.readouterr().err
    with pytest.raises(InputFileError, match="file not found"):
        evaluate.read_alpha(tmp_path / "none.png")


def test_read_alpha_scales_8_and_16_bit(tmp_path):
    values = np.array([[0.0, 0.5, 1.0]], np.float32)
    write_png(tmp_path / "a8.png", values, 8)
    write_png(tmp_path / "a16.png", values, 16)
    np.testing.assert_allclose(evaluate.read_alpha(tmp_path / "a8.png"), [[0, 128 / 255, 1]], rtol=1e-6)
    np.testing.assert_allclose(evaluate.read_alpha(tmp_path / "a16.png"), [[0, 32768 / 65535, 1]], rtol=1e-6)
    assert evaluate.read_alpha(tmp_path / "a16.png").dtype == np.float32


# ---------------------------------------------------------------- baselines


def scene(h=192, w=256):
    """Two soft-edged people composited over a smooth background, and coarse masks."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:h, 0:w]
    alphas = []
    for cx in (70, 186):
        d = np.sqrt(((yy - 100) / 80.0) ** 2 + ((xx - cx) / 50.0) ** 2)
        alphas.append(np.clip((1.0 - d) * 25, 0, 1).astype(np.float32))
    bg = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 6) * 0.5
    image = bg.copy()
    for a, colour in zip(alphas, ([0.9, 0.6, 0.3], [0.2, 0.8, 0.7])):
        image = a[..., None] * np.array(colour, np.float32) + (1 - a[..., None]) * image
    image = np.round(image * 255).astype(np.uint8)
    # detector-like masks: binary and a pixel too large
    masks = np.stack([cv2.dilate((a > 0.5).astype(np.uint8), np.ones((3, 3), np.uint8)) * 255 for a in alphas])
    return image, masks, np.stack(alphas)


def test_masks_as_alpha_is_the_mask():
    image, masks, _ = scene()
    alpha = baselines.masks_as_alpha(image, masks)
    assert alpha.shape == masks.shape and alpha.dtype == np.float32
    np.testing.assert_array_equal(alpha, masks / 255.0)


def test_guided_filter_beats_the_mask():
    from engine.evaluation.metrics import IMQAccumulator

    image, masks, gt = scene()
    guided = baselines.guided_filter_alpha(image, masks)  # default radius: 4 here
    assert guided.shape == masks.shape and guided.dtype == np.float32
    assert guided.min() >= 0 and guided.max() <= 1
    # far from the edge the trimask keeps the mask's answer
    assert guided[0, 100, 70] == 1.0 and guided[0, 2, 2] == 0.0
    scores = {}
    for name, pred in (("mask", baselines.masks_as_alpha(image, masks)), ("guided", guided)):
        acc = IMQAccumulator()
        acc.add(pred, gt)
        scores[name] = acc.result()["0.5"]
    for key in ("IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn"):
        assert scores["guided"][key] > scores["mask"][key], key


def test_baseline_cli_feeds_eval(tmp_path, capsys):
    image, masks, gt = scene()
    root, mask_root, out = tmp_path / "HIM2K", tmp_path / "masks", tmp_path / "PRED"
    (root / "images" / "natural").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "natural" / "img.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    for k in range(2):
        write_png(root / "alphas" / "natural" / "img" / f"{k:02d}.png", gt[k])
        write_png(mask_root / "natural" / "img" / f"{k:02d}.png", masks[k] / 255.0)
    for method in ("mask", "guided"):
        target = out / method
        args = ["--gt", str(root), "--masks", str(mask_root), "--method", method, "--out", str(target), "--quiet"]
        assert baselines.main(args) == 0
        assert sorted(p.name for p in (target / "natural" / "img").iterdir()) == ["00.png", "01.png"]
        assert instmatt(["eval", "--pred", str(target), "--gt", str(root), "--quiet"]) == 0
    assert "natural" in capsys.readouterr().out

    assert baselines.main(["--gt", str(tmp_path / "x"), "--masks", str(mask_root), "--out", str(out), "--quiet"]) == 2
    assert "image folder not found" in capsys.readouterr().err
