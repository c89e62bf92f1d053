"""instmatt eval --video: the flicker of a matted shot, with the footage and with the truth."""

from __future__ import annotations

import json

from engine.commands import main

from .test_bad_input import one_line_error


def test_warp_error_and_dtssd_of_a_matted_shot(matte, small_clip, write_sequence, tmp_path, capsys):
    frames, alphas = small_clip
    plate, masks = write_sequence(frames, alphas)
    out = tmp_path / "out"
    for strength, folder in ((0.0, out / "off"), (1.0, out / "on")):
        status, err = matte(plate, "-o", folder, "--masks", masks, "--refine", "none", "--temporal", strength)
        assert status == 0, err
    results = {}
    for name in ("off", "on"):
        report = tmp_path / f"{name}.json"
        status = main(["eval", "--video", str(out / name / "plate.####.exr"), "--footage", plate, "--gt", str(masks),
                       "--json", str(report)])
        printed = capsys.readouterr().out
        assert status == 0 and "warp error" in printed and "dtSSD" in printed
        results[name] = json.loads(report.read_text())
    off, on = results["off"], results["on"]
    assert off["frames"] == len(frames) and off["people"] == ["person_01", "person_02"]
    assert len(off["warp_error_curve"]) == len(frames) - 1 == len(off["dtssd_curve"])
    assert off["warp_error"] > 0 and off["dtssd"] > 0
    assert on["warp_error"] < off["warp_error"]  # --temporal holds the soft edges


def test_video_mode_errors_name_the_input(small_clip, write_sequence, tmp_path, capsys):
    frames, alphas = small_clip
    plate, _ = write_sequence(frames, alphas)
    status = main(["eval", "--video", str(tmp_path / "none.####.exr"), "--footage", plate])
    assert status == 2
    one_line_error(capsys.readouterr().err, "none.####.exr", "no EXR frames")
    status = main(["eval", "--pred", str(tmp_path)])
    assert status == 2
    one_line_error(capsys.readouterr().err, "--video")
