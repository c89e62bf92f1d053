"""instmatt demo: the whole pipeline offline on a generated clip (small and fast here)."""

from __future__ import annotations

import json

import cv2
import pytest

from engine.commands import main

pytest.importorskip("engine.data.figures", reason="engine.data.figures is not in this build")


def test_demo_writes_exrs_sheet_and_prints_imq(tmp_path, tiny_weights, capsys):
    out = tmp_path / "demo"
    status = main(["demo", "--out", str(out), "--frames", "3", "--people", "2", "--height", "64", "--width", "96",
                   "--weights", str(tiny_weights), "--threads", "1", "--sheet-frames", "2"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert sorted(p.name for p in out.glob("demo.*.exr")) == ["demo.0001.exr", "demo.0002.exr", "demo.0003.exr"]
    assert len(list((out / "plate").glob("plate.*.png"))) == 3
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    assert sheet is not None and sheet.shape[0] >= 2 * 64 and sheet.shape[1] >= 4 * 96
    summary = json.loads((out / "imq.json").read_text())
    assert summary["frames"] == 3 and summary["people"]
    for row in ("instmatt", "masks_as_alpha"):
        assert 0.0 <= summary[row]["0.5"]["IMQ_mad"] <= 100.0
    assert "IMQ_mad" in captured.out and "masks as alpha" in captured.out and "InstMatt" in captured.out
    assert "ID switches:" in captured.out


def test_demo_names_the_shipped_weights_it_used(tmp_path, capsys):
    from engine.weights import SHIPPED

    status = main(["demo", "--out", str(tmp_path / "d"), "--frames", "1", "--people", "1", "--height", "64",
                   "--width", "64", "--threads", "1", "--refine", "none"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert str(SHIPPED) in captured.out
    assert json.loads((tmp_path / "d" / "imq.json").read_text())["weights"] == str(SHIPPED)
