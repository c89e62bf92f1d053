"""Nothing lost, nothing silent: foreign files, outputs onto inputs, missing plates, write
errors and the temporary files of killed runs (issue 14, items 3, 4, 5 and 7)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.commands import main
from engine.io import read_manifest, read_person_exr

HEIGHT, WIDTH = 48, 64


@pytest.fixture
def matte(tiny_weights, capsys, monkeypatch):
    """Run ``instmatt matte`` in-process; ``network=False`` makes loading the network an error,
    to show a check happened before it."""

    def run(*args, network=True):
        if not network:
            import engine.backends

            def no_network(*a, **k):
                raise AssertionError("the network was loaded before the output was checked")

            monkeypatch.setattr(engine.backends, "load_backend", no_network)
        status = main(["matte", *map(str, args), "--weights", str(tiny_weights), "--backend", "pytorch",
                       "--threads", "1", "-q", "--refine", "none"])
        monkeypatch.undo()
        return status, capsys.readouterr().err

    return run


def error_line(err: str, *needles: str) -> str:
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def plates(folder, frames):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for frame in frames:
        cv2.imwrite(str(folder / f"plate.{frame:04d}.png"), rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8))
    return folder / "plate.####.png"


def masks(folder, frames):
    for frame in frames:
        (folder / f"{frame:04d}").mkdir(parents=True, exist_ok=True)
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        mask[10:40, 10:50] = 255
        cv2.imwrite(str(folder / f"{frame:04d}" / "01.png"), mask)
    return folder


def exr_frames(folder) -> list[int]:
    return sorted(int(p.name.split(".")[-2]) for p in folder.glob("*.exr"))


# --- 3: silent data loss -------------------------------------------------------------------

def test_a_foreign_exr_at_the_output_name_is_refused(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1, 2])
    out = tmp_path / "out"
    out.mkdir()
    foreign = out / "plate.0002.exr"
    OpenEXR.File({}, {"Y": OpenEXR.Channel(np.full((HEIGHT, WIDTH), 0.5, np.float32))}).write(str(foreign))
    before = foreign.read_bytes()
    status, err = matte(pattern, "-o", out, "--masks", masks(tmp_path / "m", [1, 2]), network=False)
    assert status == 2
    error_line(err, str(foreign), "not written by instmatt", "--overwrite")
    assert foreign.read_bytes() == before and exr_frames(out) == [2]
    status, err = matte(pattern, "-o", out, "--masks", tmp_path / "m", "--overwrite")
    assert status == 0, err
    assert read_manifest(foreign)["frame"] == 2


def test_output_onto_the_index_pass_is_refused(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1, 2])
    ids = tmp_path / "ids"
    ids.mkdir()
    for frame in (1, 2):
        index = np.zeros((HEIGHT, WIDTH), np.float32)
        index[5:30, 5:30] = 1
        OpenEXR.File({}, {"R": OpenEXR.Channel(index)}).write(str(ids / f"ids.{frame:04d}.exr"))
    before = {p.name: p.read_bytes() for p in ids.iterdir()}
    status, err = matte(pattern, "-o", ids / "ids.####.exr", "--index", ids / "ids.####.exr", network=False)
    assert status == 2
    error_line(err, "ids.0001.exr", "overwrite the index guidance")
    assert {p.name: p.read_bytes() for p in ids.iterdir()} == before


def test_output_onto_a_mask_file_is_refused(matte, tmp_path):
    plate = tmp_path / "plate.png"
    cv2.imwrite(str(plate), np.zeros((HEIGHT, WIDTH, 3), np.uint8))
    folder = tmp_path / "m"
    folder.mkdir()
    OpenEXR.File({}, {"Y": OpenEXR.Channel(np.ones((HEIGHT, WIDTH), np.float32))}).write(str(folder / "01.exr"))
    before = (folder / "01.exr").read_bytes()
    status, err = matte(plate, "-o", folder / "0#.exr", "--masks", folder, network=False)
    assert status == 2
    error_line(err, "01.exr", "overwrite the masks guidance")
    assert (folder / "01.exr").read_bytes() == before


# --- 4: frames that are not there ----------------------------------------------------------

def test_a_plate_missing_inside_the_frames_is_a_named_failure(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1, 2, 4, 5])
    status, err = matte(pattern, "-o", tmp_path / "out", "--frames", "1-5", "--masks", masks(tmp_path / "m", [1, 2, 4, 5]))
    assert status == 2
    error_line(err, "frames 3 are missing")
    assert exr_frames(tmp_path / "out") == [1, 2, 4, 5]
    assert "1 failed" in err


def test_a_gap_in_a_sequence_fails_without_frames_too(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1, 2, 5])
    status, err = matte(pattern, "-o", tmp_path / "out", "--masks", masks(tmp_path / "m", [1, 2, 5]))
    assert status == 2
    error_line(err, "frames 3-4 are missing")


def test_a_partly_out_of_range_request_names_the_frames_that_do_not_exist(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1, 2, 3])
    status, err = matte(pattern, "-o", tmp_path / "out", "--frames", "2-6", "--masks", masks(tmp_path / "m", [1, 2, 3]))
    assert status == 2
    error_line(err, "frames 4-6 do not exist", "the input has frames 1-3")
    assert exr_frames(tmp_path / "out") == [2, 3]


# --- 5: write errors -----------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(folder, *options):
    """A tmpfs mounted at ``folder`` (root only); skips the test where mounting is not possible."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_read_only_folder_fails_before_the_network(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1])
    with tmpfs(tmp_path / "ro", "size=1m", "ro") as ro:
        status, err = matte(pattern, "-o", ro / "out", "--masks", masks(tmp_path / "m", [1]), network=False)
        assert status == 2
        error_line(err, str(ro / "out"), "Read-only file system")


def test_a_full_disk_is_one_line_and_leaves_nothing_unreadable(matte, tmp_path):
    frames = list(range(1, 9))
    pattern = plates(tmp_path / "in", frames)
    with tmpfs(tmp_path / "small", "size=24k") as small:
        status, err = matte(pattern, "-o", small, "--masks", masks(tmp_path / "m", frames))
        assert status == 2
        error_line(err, str(small), "No space left on device")
        written = exr_frames(small)
        assert len(written) < len(frames)
        for frame in written:  # whatever is under a final name is complete
            read_person_exr(small / f"plate.{frame:04d}.exr")
        assert [p.name for p in small.iterdir() if p.name.startswith(".instmatt-tmp-")] == []


def test_a_failing_writer_is_one_line_and_leaves_no_file(matte, tmp_path, monkeypatch):
    """The full disk again, in-process (no tmpfs needed): the EXR writer fails half-way."""
    real = OpenEXR.File

    class HalfWriter:
        def __init__(self, *args, **kwargs):
            self.inner = real(*args, **kwargs)

        def write(self, path):
            with open(path, "wb") as half:
                half.write(b"v/1\x01half")
            raise RuntimeError(f'Failed to write pixel data to image file "{path}". No space left on device.')

        def __getattr__(self, name):
            return getattr(self.inner, name)

    pattern = plates(tmp_path / "in", [1, 2])
    monkeypatch.setattr(OpenEXR, "File", HalfWriter)
    status, err = matte(pattern, "-o", tmp_path / "out", "--masks", masks(tmp_path / "m", [1, 2]))
    monkeypatch.setattr(OpenEXR, "File", real)
    assert status == 2
    line = error_line(err, str(tmp_path / "out" / "plate.0001.exr"), "No space left on device")
    assert ".instmatt-tmp-" not in line
    assert os.listdir(tmp_path / "out") == []


def test_a_name_too_long_fails_before_the_network(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1])
    out = tmp_path / "out" / ("n" * 240 + ".####.exr")
    status, err = matte(pattern, "-o", out, "--masks", masks(tmp_path / "m", [1]), network=False)
    assert status == 2
    error_line(err, "File name too long")


def test_an_output_path_through_a_regular_file_fails_before_the_network(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1])
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    status, err = matte(pattern, "-o", tmp_path / "notes.txt" / "out", "--masks", masks(tmp_path / "m", [1]),
                        network=False)
    assert status == 2
    error_line(err, "notes.txt", "cannot be created")


# --- 7: temporary files of killed runs -----------------------------------------------------

def test_temporary_files_of_killed_runs_are_removed_when_a_job_starts(matte, tmp_path):
    from engine.io.atomic import host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    out = tmp_path / "out"
    out.mkdir()
    names = {
        "dead": f".instmatt-tmp-{dead.pid}.{host_tag()}-0badc0de-plate.0001.exr",
        "dead, older naming": f".instmatt-tmp-{dead.pid}-0badc0de-plate.0002.exr",
        "alive": f".instmatt-tmp-{alive.pid}.{host_tag()}-0badc0de-plate.0003.exr",
        "other host": f".instmatt-tmp-{dead.pid}.ffffffff-0badc0de-plate.0004.exr",
    }
    if host_tag() == "ffffffff":
        names.pop("other host")
    for name in names.values():
        (out / name).write_bytes(b"half a file")
    try:
        pattern = plates(tmp_path / "in", [1])
        status, err = matte(pattern, "-o", out, "--masks", masks(tmp_path / "m", [1]))
        assert status == 0, err
        left = {p.name for p in out.iterdir()}
        assert names["dead"] not in left and names["dead, older naming"] not in left
        assert names["alive"] in left
        assert names.get("other host", names["alive"]) in left
    finally:
        alive.kill()
        alive.wait()


def test_a_finished_shot_on_a_read_only_share_is_checked_without_writing(matte, tmp_path):
    pattern = plates(tmp_path / "in", [1, 2])
    with tmpfs(tmp_path / "share", "size=4m") as share:
        status, err = matte(pattern, "-o", share, "--masks", masks(tmp_path / "m", [1, 2]))
        assert status == 0, err
        remount = subprocess.run(["mount", "-o", "remount,ro", str(share)], capture_output=True)
        assert remount.returncode == 0, remount.stderr
        status, err = matte(pattern, "-o", share, "--masks", tmp_path / "m", network=False)
        assert status == 0, err
        assert "0 frames written, 2 already there" in err
