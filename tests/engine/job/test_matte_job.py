"""instmatt matte: EXR per frame, IDs, guidance kinds, ranges, resume, side outputs, cancel."""

from __future__ import annotations

import os
import threading

import cv2
import numpy as np
import OpenEXR
import pytest

from engine.commands import main
from engine.guidance import ArrayGuidance
from engine.io import read_manifest, read_person_exr
from engine.io.sources import ArraySource
from engine.job import Listener, MatteJob, build_job
from engine.settings import MatteSettings


@pytest.fixture
def matte(tiny_weights, capsys):
    """matte(*args) -> (exit status, stderr): ``instmatt matte`` in-process on the tiny network."""

    def run(*args):
        status = main(["matte", *map(str, args), "--weights", str(tiny_weights), "--backend", "pytorch",
                       "--threads", "1"])
        return status, capsys.readouterr().err

    return run


def exr_people(path):
    """The person passes of an EXR (beside them: the union, background and Cryptomatte passes)."""
    return [name for name in OpenEXR.File(str(path), separate_channels=True).channels() if name.startswith("person_")]


def test_sequence_with_mask_folder(matte, small_clip, write_sequence, tmp_path):
    frames, alphas = small_clip
    pattern, masks = write_sequence(frames, alphas, first=1001)
    out = tmp_path / "out"
    status, err = matte(pattern, "-o", out, "--masks", masks)
    assert status == 0, err
    files = sorted(os.listdir(out))
    assert files == [f"plate.{f}.exr" for f in range(1001, 1005)]
    shot = [f"person_{k + 1:02d}" for k in range(alphas.shape[1]) if (alphas[:, k] > 0.5).any()]
    for frame in range(1001, 1005):
        ids, back, manifest = read_person_exr(out / f"plate.{frame}.exr")
        present = [f"person_{k + 1:02d}" for k in range(alphas.shape[1]) if (alphas[frame - 1001, k] > 0.5).any()]
        # every frame has a layer for every person of the shot (Blender's sockets come from one frame)
        assert ids == shot
        assert manifest["visible"] == present
        for pid, plane in zip(ids, back):
            assert plane.any() == (pid in present)
        assert back.shape[1:] == frames.shape[1:3]
        assert manifest["frame"] == frame and manifest["people"] == ids
        assert manifest["source_file"].endswith(f"plate.{frame}.png")
        assert manifest["guidance"] == {"kind": "masks", "path": str(masks)}
        assert manifest["settings"]["refine"] == "windowed"
    assert "fps" in err and "left" in err  # the progress bar
    assert "4 frames written" in err


def test_artist_numbering_is_the_id(matte, tmp_path):
    rgb = np.full((40, 56, 3), 100, np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), rgb)
    for number, box in ((2, (5, 20)), (7, (30, 50))):
        mask = np.zeros((40, 56), np.uint8)
        mask[5:35, box[0]:box[1]] = 255
        (tmp_path / "m" / "0001").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "m" / "0001" / f"{number:02d}.png"), mask)
    status, err = matte(tmp_path / "photo.png", "-o", tmp_path / "out", "--masks", tmp_path / "m")
    assert status == 0, err
    assert exr_people(tmp_path / "out" / "photo.exr") == ["person_02.A", "person_07.A"]


def test_index_guidance_16bit_and_exr(matte, tmp_path):
    rgb = np.full((32, 48, 3), 60, np.uint8)
    index = np.zeros((32, 48), np.uint16)
    index[4:28, 4:20] = 3
    index[4:28, 26:44] = 12
    for frame in (1, 2):
        cv2.imwrite(str(tmp_path / f"shot.{frame:04d}.png"), rgb)
    cv2.imwrite(str(tmp_path / "ids.0001.png"), index)
    plane = index.astype(np.float32)
    OpenEXR.File({}, {"R": OpenEXR.Channel(plane), "G": OpenEXR.Channel(plane), "B": OpenEXR.Channel(plane)}
                 ).write(str(tmp_path / "ids.0002.exr"))
    os.makedirs(tmp_path / "idx")
    os.replace(tmp_path / "ids.0001.png", tmp_path / "idx" / "ids.0001.png")
    os.replace(tmp_path / "ids.0002.exr", tmp_path / "idx" / "ids.0002.exr")
    status, err = matte(tmp_path / "shot.####.png", "-o", tmp_path / "out", "--index", tmp_path / "idx")
    assert status == 0, err
    for frame in (1, 2):
        assert exr_people(tmp_path / "out" / f"shot.{frame:04d}.exr") == ["person_03.A", "person_12.A"]


def test_frame_range_resume_and_overwrite(matte, small_clip, write_sequence, tmp_path):
    frames, alphas = small_clip
    pattern, masks = write_sequence(frames, alphas, first=1001)
    out = tmp_path / "out" / "shot.####.exr"
    status, err = matte(pattern, "-o", out, "--masks", masks, "--frames", "1002-1003")
    assert status == 0, err
    assert sorted(os.listdir(out.parent)) == ["shot.1002.exr", "shot.1003.exr"]
    stamp = os.stat(out.parent / "shot.1002.exr").st_mtime_ns
    status, err = matte(pattern, "-o", out, "--masks", masks)  # the rest of the shot
    assert status == 0 and "2 frames written, 2 already there" in err
    assert os.stat(out.parent / "shot.1002.exr").st_mtime_ns == stamp
    status, err = matte(pattern, "-o", out, "--masks", masks, "--frames", "1002", "--overwrite")
    assert status == 0 and "1 frames written" in err
    assert os.stat(out.parent / "shot.1002.exr").st_mtime_ns != stamp


def test_png_and_rgba_side_outputs(matte, small_clip, write_sequence, tmp_path):
    frames, alphas = small_clip
    pattern, masks = write_sequence(frames[:1], alphas[:1])
    out = tmp_path / "out"
    status, err = matte(pattern, "-o", out, "--masks", masks, "--png", "--rgba")
    assert status == 0, err
    ids, exr_alphas, _ = read_person_exr(out / "plate.0001.exr")
    for k, pid in enumerate(ids):
        png = cv2.imread(str(out / "png" / pid / "plate.0001.png"), cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.shape == frames.shape[1:3]
        assert np.abs(png / 255.0 - exr_alphas[k]).max() < 0.01
        rgba = cv2.imread(str(out / "rgba" / pid / "plate.0001.png"), cv2.IMREAD_UNCHANGED)
        assert rgba.shape == frames.shape[1:3] + (4,)
        premultiplied = np.round(frames[0].astype(np.float32) * (png[..., None] / 255.0))
        assert np.abs(rgba[..., 2::-1].astype(np.float32) - premultiplied).max() <= 2
    # a rerun that adds --png to existing EXRs fills in only the missing side files
    os.remove(out / "png" / ids[0] / "plate.0001.png")
    status, err = matte(pattern, "-o", out, "--masks", masks, "--png")
    assert status == 0 and "already there" in err
    assert (out / "png" / ids[0] / "plate.0001.png").is_file()


def test_float_exr_input_stays_aligned_and_gives_exr_cutouts(matte, tmp_path):
    linear = np.zeros((36, 52, 3), np.float32)
    linear[6:30, 10:40] = (0.8, 0.2, 0.05)
    OpenEXR.File({}, {"RGB": OpenEXR.Channel(linear)}).write(str(tmp_path / "plate.0001.exr"))
    mask = np.zeros((36, 52), np.uint8)
    mask[6:30, 10:40] = 255
    (tmp_path / "m" / "0001").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "m" / "0001" / "01.png"), mask)
    status, err = matte(tmp_path / "plate.0001.exr", "-o", tmp_path / "out", "--masks", tmp_path / "m", "--rgba")
    assert status == 0, err
    ids, alphas, manifest = read_person_exr(tmp_path / "out" / "plate.0001.exr")
    assert alphas.shape == (1, 36, 52) and manifest["size"] == [52, 36]
    cutout = OpenEXR.File(str(tmp_path / "out" / "rgba" / "person_01" / "plate.0001.exr"), separate_channels=True)
    assert sorted(cutout.channels()) == ["A", "B", "G", "R"]


def test_video_input(matte, tmp_path):
    path = tmp_path / "take.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (48, 32))
    if not writer.isOpened():
        pytest.skip("OpenCV here cannot write an MJPG test video")
    for i in range(3):
        writer.write(np.full((32, 48, 3), 40 * i, np.uint8))
    writer.release()
    mask = np.zeros((32, 48), np.uint8)
    mask[4:28, 10:30] = 255
    for frame in (2, 3):
        (tmp_path / "m" / f"{frame:04d}").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "m" / f"{frame:04d}" / "01.png"), mask)
    status, err = matte(path, "-o", tmp_path / "out", "--masks", tmp_path / "m", "--frames", "2-3")
    assert status == 0, err
    assert sorted(os.listdir(tmp_path / "out")) == ["take.0002.exr", "take.0003.exr"]


class Recorder(Listener):
    def __init__(self, cancel_after: int | None = None, cancel: threading.Event | None = None):
        self.frames, self.errors, self.progress_events = [], [], []
        self.cancel_after, self.cancel = cancel_after, cancel

    def frame(self, frame, path, people, skipped):
        self.frames.append((frame, people, skipped))
        if self.cancel_after is not None and len(self.frames) >= self.cancel_after:
            self.cancel.set()

    def progress(self, done, total, frame, fps, eta_s):
        self.progress_events.append((done, total, fps, eta_s))

    def error(self, message, file, fatal):
        self.errors.append((message, file, fatal))


def test_detector_style_guidance_is_tracked_and_cancel_stops_cleanly(tiny_model, small_clip, tmp_path):
    frames, alphas = small_clip
    rng = np.random.default_rng(0)
    detections, owners = {}, {}
    for t in range(len(frames)):
        order = rng.permutation(alphas.shape[1])
        keep = [k for k in order if (alphas[t, k] > 0.5).mean() > 0.02]
        detections[t + 1] = (alphas[t, keep] > 0.5).astype(np.float32)
        owners[t + 1] = keep
    cancel = threading.Event()
    recorder = Recorder(cancel_after=2, cancel=cancel)
    pattern = str(tmp_path / "out" / "clip.####.exr")
    job = MatteJob(ArraySource(frames, "clip"), pattern, ArrayGuidance(detections), tiny_model,
                   MatteSettings(refine="dense"), listener=recorder, cancel=cancel)
    result = job.run()
    # frame 2's event comes once its EXR is on disk, while frame 3 (matted meanwhile) is in
    # hand: that one is written whole too, nothing after it
    assert result.cancelled and result.written == 3
    assert sorted(os.listdir(tmp_path / "out")) == ["clip.0001.exr", "clip.0002.exr", "clip.0003.exr"]
    # resume: the tracker continues from the last frame on disk, so IDs stay with their people
    recorder = Recorder()
    job = MatteJob(ArraySource(frames, "clip"), pattern, ArrayGuidance(detections), tiny_model,
                   MatteSettings(refine="none"), listener=recorder)
    result = job.run()
    assert result.skipped == 3 and result.written == len(frames) - 3 and not result.cancelled
    id_of = {}
    for frame, (ids, guide_index) in job.assignments.items():
        for pid, g in zip(ids, guide_index):
            id_of.setdefault(owners[frame][g], set()).add(pid)
    for frame in (1, 2, 3):
        manifest_ids = read_manifest(tmp_path / "out" / f"clip.{frame:04d}.exr")["people"]
        assert manifest_ids == sorted(manifest_ids)
    assert all(len(v) == 1 for v in id_of.values()), id_of
    assert [event[0] for event in recorder.progress_events] == list(range(len(frames) + 1))


def test_cli_ctrl_c_finishes_the_frame_in_hand(tiny_model, small_clip, tmp_path):
    """The first Ctrl-C sets the job's cancel flag: the frame in hand is written whole (here
    frame 2, matted while frame 1 was written; frame 1's event comes once it is on disk)."""
    import signal

    from engine.commands.progress import InterruptGuard

    frames, alphas = small_clip
    cancel = threading.Event()

    class InterruptAfterFirst(Listener):
        def frame(self, frame, path, people, skipped):
            if frame == 1:
                signal.raise_signal(signal.SIGINT)

    masks = {t + 1: (alphas[t] > 0.5).astype(np.float32) for t in range(len(frames))}
    job = MatteJob(ArraySource(frames, "clip"), str(tmp_path / "clip.####.exr"), ArrayGuidance(masks, {
        t + 1: [1, 2] for t in range(len(frames))}), tiny_model, MatteSettings(refine="none"),
        listener=InterruptAfterFirst(), cancel=cancel)
    with InterruptGuard(cancel):
        result = job.run()
    assert result.cancelled and result.written == 2
    assert sorted(os.listdir(tmp_path)) == ["clip.0001.exr", "clip.0002.exr"]


def test_build_job_checks_before_loading(tmp_path, small_clip, write_sequence):
    from engine.errors import InputFileError, UserError

    frames, alphas = small_clip
    pattern, masks = write_sequence(frames, alphas)
    with pytest.raises(UserError, match="refine"):
        build_job(pattern, str(tmp_path / "o"), settings=MatteSettings(refine="sharp"))
    with pytest.raises(InputFileError, match="weights file not found"):
        build_job(pattern, str(tmp_path / "o"), guidance={"kind": "masks", "path": str(masks)},
                  settings=MatteSettings(weights=str(tmp_path / "nope.pth")))
    shot = tmp_path / "shot"
    shot.mkdir()
    plane = np.zeros((8, 8), np.float32)
    OpenEXR.File({}, {"Y": OpenEXR.Channel(plane)}).write(str(shot / "shot.0001.exr"))
    for output in (shot / "shot.####.exr", shot):  # the same files, named two ways
        with pytest.raises(UserError, match="overwrite the input"):
            build_job(str(shot / "shot.####.exr"), str(output))


def test_real_video_two_frames(matte, shared_data, tmp_path):
    video = shared_data / "footage" / "maggie_video_test2.mp4"
    if not video.is_file():
        pytest.skip(f"{video} not present")
    height, width = 720, 1280
    yy, xx = np.mgrid[:height, :width]
    for frame in (95, 96):
        folder = tmp_path / "m" / f"{frame:04d}"
        folder.mkdir(parents=True)
        for k in range(3):  # three dancers: person-shaped ellipses as stand-in guidance
            cx = width * (k + 0.5) / 3
            mask = (((xx - cx) / 110.0) ** 2 + ((yy - 400) / 290.0) ** 2 <= 1).astype(np.uint8) * 255
            cv2.imwrite(str(folder / f"{k + 1:02d}.png"), mask)
    status, err = matte(video, "-o", tmp_path / "out", "--masks", tmp_path / "m", "--frames", "95-96",
                        "--max-side", "320", "--refine", "none")
    assert status == 0, err
    ids, alphas, manifest = read_person_exr(tmp_path / "out" / "maggie_video_test2.0096.exr")
    assert ids == ["person_01", "person_02", "person_03"] and alphas.shape == (3, height, width)
    assert manifest["source_file"] is None and manifest["frame"] == 96


def test_person_entering_late_gets_zero_layers_in_earlier_frames(matte, tmp_path):
    rgb = np.full((40, 56, 3), 90, np.uint8)
    for frame in (1, 2, 3):
        cv2.imwrite(str(tmp_path / f"shot.{frame:04d}.png"), rgb)
        folder = tmp_path / "m" / f"{frame:04d}"
        folder.mkdir(parents=True)
        mask = np.zeros((40, 56), np.uint8)
        mask[5:35, 5:20] = 255
        cv2.imwrite(str(folder / "01.png"), mask)
        if frame == 3:  # person 2 walks in on the last frame
            mask = np.zeros((40, 56), np.uint8)
            mask[5:35, 30:50] = 255
            cv2.imwrite(str(folder / "02.png"), mask)
    status, err = matte(tmp_path / "shot.####.png", "-o", tmp_path / "out", "--masks", tmp_path / "m")
    assert status == 0, err
    for frame in (1, 2, 3):
        ids, back, manifest = read_person_exr(tmp_path / "out" / f"shot.{frame:04d}.exr")
        assert ids == ["person_01", "person_02"]
        assert back[1].any() == (frame == 3)
        assert manifest["visible"] == (["person_01", "person_02"] if frame == 3 else ["person_01"])
    assert not [name for name in os.listdir(tmp_path / "out") if not name.endswith(".exr")]
