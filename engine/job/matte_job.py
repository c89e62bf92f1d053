"""Footage in, one multilayer EXR of per-person alphas per frame out: the job in small steps.

Per frame: skip it when its EXR is already there (resume), else read it (8/16-bit or
linear float) -> guidance (detector, mask folder or ID image) -> stable IDs (the tracker,
for the detector) -> InstMatt on all people -> optional PNG / RGBA side files -> the EXR,
written atomically last, so its presence means the frame is done. The writing runs on a
thread (``writer.py``) while the next frame is matted; the frame's claim is held and its
``frame`` event waits until its file is on disk. The tracker picks up
from the last written frame, so resumed and split jobs keep their IDs where the previous
frame is on disk. The same job runs behind ``instmatt matte`` and ``instmatt serve``; only
the listener differs (a progress bar there, JSON events here).
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from engine.errors import InputFileError
from engine.io import (
    ExrOptions,
    person_id,
    person_number,
    read_manifest,
    read_person_exr,
    write_person_exr,
)
from engine.io.patterns import format_pattern
from engine.settings import MatteSettings

from .claims import FrameClaims
from .listener import JobResult, Listener
from .outputs import SideFiles, add_absent_layers, with_absent_people
from .writer import BackgroundWriter

log = logging.getLogger("instmatt")

STAGES = ("read", "guidance", "network", "write")


def _engine_version() -> str:
    import engine

    return engine.__version__


class MatteJob:
    def __init__(self, source, output_pattern: str, guidance, backend, settings: MatteSettings,
                 frames: list[int] | None = None, listener: Listener | None = None,
                 cancel: threading.Event | None = None, tracker=None, known_failures=(), write_behind: bool = True):
        self.source = source
        self.output_pattern = output_pattern
        self.guidance = guidance
        self._backend = backend  # the network, or a function that loads it (only when a frame needs it)
        self.settings = settings
        self.frames = list(source.frames if frames is None else frames)
        self.listener = listener or Listener()
        self.cancel = cancel or threading.Event()
        self.tracker = tracker
        self.known_failures = list(known_failures)  # (message, frame count): frames asked for, not in the input
        self.side_files = SideFiles(output_pattern, settings.write_png, settings.write_rgba)
        self.claims = FrameClaims(output_pattern)  # other processes on the same folder take other frames
        self.timings = dict.fromkeys(STAGES, 0.0)
        # per frame written: the person IDs and, for each, the index of its guidance mask
        self.assignments: dict[int, tuple[list[str], list[int]]] = {}
        self._computed = 0
        self._computed_seconds = 0.0
        self.stale: set[int] = set()  # propagated guidance: frames whose keyframes changed since written
        self.write_behind = write_behind  # False: each frame written before the next is read (benchmarks)
        self.writer: BackgroundWriter | None = None
        self._chatter = None  # --temporal: engine.inference.temporal.ChatterControl
        self._position = {f: i for i, f in enumerate(source.frames)}

    @property
    def backend(self):
        if callable(self._backend) and not hasattr(self._backend, "matting"):
            self._backend = self._backend()
        return self._backend

    def path(self, frame: int) -> str:
        return format_pattern(self.output_pattern, frame)

    # -- the loop -------------------------------------------------------------------------------
    def run(self) -> JobResult:
        self.settings.check()
        self.guidance.check(self.frames)
        if self.guidance.tracked and self.tracker is None:
            from engine.guidance.tracking import Tracker

            self.tracker = Tracker()
        if getattr(self.guidance, "propagating", False):
            self._plan_propagation()
        if hasattr(self.guidance, "resume"):  # guidance carried frame to frame picks up from the frame before
            self.guidance.resume = self._previous_people
        result = JobResult()
        for message, count in self.known_failures:
            result.failed += count
            self.listener.error(message, self.source.path, False)
        total = len(self.frames)
        start = time.perf_counter()
        if total:
            self.listener.progress(0, total, self.frames[0], None, None)  # the job has started
        self.writer = BackgroundWriter(self.write_behind)
        try:
            elsewhere = []
            for index, frame in enumerate(self.frames):
                if self.cancel.is_set():
                    result.cancelled = True
                    break
                if not self._claimed(frame, result):
                    elsewhere.append(frame)
                self._progress(index + 1, total, frame)
            self.writer.wait()
            # once more for frames others had: done by now, or their process died (a stale claim)
            elsewhere = [f for f in elsewhere if not self.cancel.is_set() and not self._claimed(f, result)]
            result.elsewhere = len(elsewhere)
        finally:
            self.writer.close()  # a cancel or an error still finishes the frame being written
        add_absent_layers([self.path(frame) for frame in self.frames], result.people)
        result.seconds = time.perf_counter() - start
        result.timings = dict(self.timings)
        if self.cancel.is_set() and result.frames + result.failed < total:
            result.cancelled = True
        return result

    def _plan_propagation(self) -> None:
        """Frames in propagation order; those whose keyframe changed since they were written
        are recomputed (the manifests record each frame's keyframe and its hash)."""
        self.guidance.read = lambda f: self.source.read(f).rgb8
        wanted = set(self.frames)
        self.frames = [f for f in self.guidance.order() if f in wanted]
        previous = {f: None if self.settings.overwrite else self._record(f) for f in self.frames}
        plan = self.guidance.recompute(previous)
        self.stale = set(plan.frames)
        self.listener.message(plan.message)
        log.info("%s", plan.message)

    def _record(self, frame: int) -> dict | None:
        """The propagation record of the frame's EXR, None when there is none (or no EXR)."""
        path = self.path(frame)
        if not os.path.exists(path):
            return None
        try:
            manifest = read_manifest(path)
        except InputFileError:
            return None
        return None if manifest is None else manifest.get("propagation")

    def _claimed(self, frame: int, result: JobResult) -> bool:
        """Skip or compute the frame under its claim; False when another process holds it."""
        if not self.side_files.kinds and self._skip_existing(frame, result):
            return True  # done and nothing to add: no claim needed (the folder may be read-only)
        if not self.claims.claim(frame):
            return False
        handed_to_writer = False
        try:
            if not self._skip_existing(frame, result):
                handed_to_writer = self._compute(frame, result)
        finally:
            if not handed_to_writer:  # else the writer releases it once the EXR is in place
                self.claims.release(frame)
        return True

    # -- step 1: a frame already done -----------------------------------------------------------
    def _skip_existing(self, frame: int, result: JobResult) -> bool:
        """True when the frame's EXR is ours and complete (it is then kept, side files added)."""
        path = self.path(frame)
        if not os.path.exists(path) or self.settings.overwrite or frame in self.stale:
            return False
        people = self._existing_people(path)
        if people is None:
            return False
        if self.side_files.kinds:
            try:  # side files asked for now, next to an EXR written before
                ids, alphas, _ = read_person_exr(path)
                self.side_files.write(frame, lambda: self.source.read(frame), alphas, ids, only_missing=True)
            except InputFileError as exc:
                result.failed += 1
                self.listener.error(str(exc), exc.path, False)
        result.add_people(people)
        result.skipped += 1
        result.frames += 1
        self.listener.frame(frame, path, people, True)
        return True

    @staticmethod
    def _existing_people(path: str) -> list[str] | None:
        """The people of an EXR already written (None when it is not one of ours / unreadable)."""
        try:
            manifest = read_manifest(path)
        except InputFileError as exc:
            log.warning("%s; it will be recomputed", exc)
            return None
        return None if manifest is None else list(manifest.get("people", []))

    # -- step 2: compute ------------------------------------------------------------------------
    def _compute(self, frame: int, result: JobResult) -> bool:
        """Matte the frame and hand it to the writer (True), or report why not (False)."""
        frame_start = time.perf_counter()
        try:
            t0 = time.perf_counter()
            image = self.source.read(frame)
            t1 = time.perf_counter()
            guide, masks, numbers, present = self._people(frame, image)
            t2 = time.perf_counter()
        except InputFileError as exc:
            result.failed += 1
            self.listener.error(str(exc), exc.path, False)
            return False
        from engine.inference import matte

        alphas = matte(self.backend, image.rgb8, masks, refine=self.settings.refine, max_side=self.settings.max_side,
                       exact=self.settings.exact)
        t3 = time.perf_counter()
        ids = [person_id(n) for n in numbers]
        if self.settings.temporal:
            alphas = self._stabilised(frame, image.rgb8, ids, alphas)
        result.add_people(ids)
        for key, value in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2)):
            self.timings[key] += value
        write = self._writing(frame, image, alphas, ids, guide, present, result.people)

        def written(seconds: float) -> None:
            self.timings["write"] += seconds
            self.assignments[frame] = (ids, present)
            result.written += 1
            result.frames += 1
            self.listener.frame(frame, self.path(frame), ids, False)

        self.writer.submit(write, written, lambda: self.claims.release(frame))
        self._computed += 1
        self._computed_seconds += time.perf_counter() - frame_start  # includes waiting for the writer
        return True

    def _stabilised(self, frame: int, rgb8, ids: list[str], alphas):
        """--temporal: the band of each matte pulled towards its neighbour frame's, warped."""
        if self._chatter is None:
            from engine.inference.temporal import ChatterControl

            self._chatter = ChatterControl(self.settings.temporal)
        return self._chatter(self._position.get(frame, -2), rgb8, ids, alphas)

    def _people(self, frame: int, image):
        """Guidance for the frame: (guide, masks ordered by person number, numbers, mask indices)."""
        guide = self.guidance.people(frame, image.rgb8)
        masks = np.asarray(guide.masks, np.float32)
        present = [k for k in range(masks.shape[0]) if (masks[k] > 0).any()]
        if guide.numbers is not None:
            numbers = [guide.numbers[k] for k in present]
        else:
            self._seed_tracker(frame)
            numbers = self.tracker.update(masks[present], image.rgb8)
        order = sorted(range(len(numbers)), key=lambda k: numbers[k])
        present = [present[k] for k in order]
        return guide, masks[present], [numbers[k] for k in order], present

    def _seed_tracker(self, frame: int) -> None:
        """Continue the IDs of the frame before, when its EXR is on disk (resume, split shots)."""
        if self.tracker is None or self.tracker.tracks or self.tracker.seen:
            return
        previous = self._previous_people(frame, image=False)
        if previous is not None:
            numbers, alphas, _ = previous
            self.tracker.seed(numbers, alphas)

    def _previous_people(self, frame: int, image: bool = True):
        """(numbers, alphas, RGB) of the people in view in the EXR of the frame before, or None
        when it is not on disk; all-zero layers stand for people out of view and are left out."""
        before = [f for f in self.source.frames if f < frame]
        if not before or not os.path.isfile(self.path(before[-1])):
            return None
        previous = self.path(before[-1])
        try:
            ids, alphas, _ = read_person_exr(previous)
        except InputFileError:
            return None
        numbers = [person_number(pid) for pid in ids]
        keep = [k for k, n in enumerate(numbers) if n is not None and alphas[k].any()]
        log.info("carrying on from the %d people of %s", len(keep), previous)
        return ([numbers[k] for k in keep], alphas[keep] if keep else alphas[:0],
                self.source.read(before[-1]).rgb8 if image else None)

    # -- step 3: write --------------------------------------------------------------------------
    def _writing(self, frame: int, image, alphas, ids: list[str], guide, present: list[int],
                 shot_people: list[str]):
        """The frame's write, ready to run on the writer's thread (everything it needs that
        could change, the manifest and the shot's people so far, is settled here)."""
        layer_ids, layer_alphas = with_absent_people(ids, alphas, shot_people)
        manifest = {
            "people": layer_ids,
            "visible": ids,
            "source": self.source.path,
            "source_file": self.source.file_for(frame),
            "frame": frame,
            "size": [int(image.shape[1]), int(image.shape[0])],
            "weights": self.backend.weights_path,
            "weights_toy": bool(getattr(self.backend, "weights_toy", False)),
            "backend": self.backend.name,
            "engine_version": _engine_version(),
            "guidance": self.guidance.describe(),
            "settings": self.settings.manifest(),
        }
        if hasattr(self.guidance, "record"):  # where the frame's guidance came from
            manifest["propagation"] = self.guidance.record(frame)
        if guide.scores is not None:
            manifest["scores"] = {pid: round(float(guide.scores[k]), 4) for pid, k in zip(ids, present)}
        options, labels, path = ExrOptions.from_settings(self.settings), dict(self.settings.labels or {}), self.path(frame)

        def write() -> None:
            self.side_files.write(frame, image, alphas, ids, only_missing=False)
            write_person_exr(path, layer_alphas, layer_ids, manifest, shape=image.shape,  # last: means done
                             options=options, labels=labels)

        return write

    def _progress(self, done: int, total: int, frame: int) -> None:
        seconds = self._computed_seconds
        fps = self._computed / seconds if self._computed and seconds > 0 else None
        eta = (total - done) / fps if fps else None
        self.listener.progress(done, total, frame, fps, eta)
