"""Frames written on a thread while the next is matted: events after the file is on disk,
claims held until then, a failed write stops the job with its error and leaves nothing half
written or locked."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from engine.errors import OutputFileError
from engine.guidance import ArrayGuidance
from engine.io import read_person_exr
from engine.io.sources import ArraySource
from engine.job import Listener, MatteJob
from engine.job.writer import BackgroundWriter
from engine.settings import MatteSettings


def test_writes_overlap_the_caller_and_finish_in_order():
    writer = BackgroundWriter()
    finished, started = [], threading.Event()

    def slow_write():
        started.set()
        time.sleep(0.2)

    begin = time.perf_counter()
    writer.submit(slow_write, lambda s: finished.append(("first", round(s, 1))))
    assert started.wait(1.0)
    caller_free = time.perf_counter() - begin  # the caller went on while the write ran
    writer.submit(lambda: None, lambda s: finished.append(("second", 0.0)))
    writer.close()
    assert caller_free < 0.15
    assert finished == [("first", 0.2), ("second", 0.0)]


def test_a_failed_write_is_raised_to_the_caller_after_its_cleanup():
    writer = BackgroundWriter()
    cleaned = []

    def broken():
        raise OutputFileError("/out/f.exr", "No space left on device")

    writer.submit(broken, lambda s: cleaned.append("done"), lambda: cleaned.append("released"))
    with pytest.raises(OutputFileError, match="No space left"):
        writer.close()
    assert cleaned == ["released"]  # the claim is released, the frame is not reported as written


def _masks(alphas):
    return {t + 1: (alphas[t] > 0.5).astype(np.float32) for t in range(alphas.shape[0])}


def test_frame_events_come_once_the_file_is_complete(tiny_model, small_clip, tmp_path):
    frames, alphas = small_clip
    pattern = str(tmp_path / "clip.####.exr")
    seen = []

    class Check(Listener):
        def frame(self, frame, path, people, skipped):
            ids, mattes, _ = read_person_exr(path)  # raises if missing or partial
            locks = [n for n in os.listdir(tmp_path) if n.endswith(".instmatt-lock") and f"{frame:04d}" in n]
            seen.append((frame, ids == people, mattes.shape[0], locks))

    job = MatteJob(ArraySource(frames, "clip"), pattern, ArrayGuidance(_masks(alphas)), tiny_model,
                   MatteSettings(refine="none"), listener=Check())
    result = job.run()
    assert result.written == len(frames)
    assert [s[0] for s in seen] == list(range(1, len(frames) + 1))
    assert all(same and locks == [] for _, same, _, locks in seen)  # claim released before the event
    assert result.timings["write"] > 0


def test_a_write_that_fails_stops_the_job_and_keeps_what_was_written(tiny_model, small_clip, tmp_path):
    frames, alphas = small_clip
    pattern = str(tmp_path / "clip.####.exr")
    os.mkdir(tmp_path / "clip.0003.exr")  # a folder where frame 3's file must go: its rename fails
    job = MatteJob(ArraySource(frames, "clip"), pattern, ArrayGuidance(_masks(alphas)), tiny_model,
                   MatteSettings(refine="none"))
    with pytest.raises(OutputFileError) as failure:
        job.run()
    assert "clip.0003.exr" in str(failure.value) and "\n" not in str(failure.value)
    left = sorted(os.listdir(tmp_path))
    # frames 1-2 complete, frame 4 (matted while 3 was written) not reported, no temp or lock files
    assert left[:2] == ["clip.0001.exr", "clip.0002.exr"] and "clip.0003.exr" in left
    assert not [n for n in left if n.startswith(".")], left
    for frame in (1, 2):
        read_person_exr(tmp_path / f"clip.{frame:04d}.exr")
