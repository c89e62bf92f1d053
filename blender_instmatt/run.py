"""One matte job inside Blender: its source, request and temporary files, the engine job,
and what happens at the end (reports, loading the mattes, wiring the compositor).

Both paths of the operator (modal from the UI, synchronous from scripts) share :class:`Run`;
one runs at a time per Blender session.  A run has up to two phases: rasterising Mask
guidance frame by frame (``client.roto.Rasterising``; the engine starts warming up
meanwhile), then the engine job (``client.job.MatteJob``).  :meth:`Run.poll` advances
whichever is current, one timer tick at a time.
"""

from __future__ import annotations

import json
import shutil
import time

from . import compositor, prefs, sources
from .client.frames import frame_path, frames_on_disk
from .client.job import MatteJob
from .client.matte_files import inspect_mattes, shot_labels
from .client.roto import Rasterising

# One timer tick rasterises at least one frame, more while this budget lasts (seconds).
RASTER_STEP_S = 0.05

# The run in progress (one at a time per Blender session).
_active: "Run | None" = None


def active_run() -> "Run | None":
    return _active if _active is not None and not _active.closed else None


def set_active(run: "Run") -> None:
    global _active
    _active = run


def forget(run: "Run") -> None:
    """The run is over: it is no longer the active one (if it still was)."""
    global _active
    if _active is run:
        _active = None


class Run:
    """Everything about one matte job: source, request, temporary files, the engine job."""

    def __init__(self, context, source: sources.Source, scene_range, output_pattern: str, request: dict,
                 example: bool):
        self.scene = context.scene
        self.source = source
        self.scene_range = scene_range  # (first, last) scene frames, None for a still
        self.output_pattern = output_pattern
        self.request = request
        self.example = example
        self.temp_dirs: list[str] = []
        self.raster: Rasterising | None = None  # Mask guidance still to rasterise
        self.guidance_text = ""  # what guides the job, for the final report
        self.client = None
        self.start_timeout = 180.0
        self.job: MatteJob | None = None
        self.closed = False
        self.started = time.monotonic()
        self.reports: list[tuple[str, str]] = []  # (level, message) to report at the end
        self.result_nodes: dict = {}
        self._last_line = ""

    # -- engine

    def start(self, context) -> None:
        """Start (or reuse) the engine; queue the request unless masks are still to be
        rasterised (the engine warms up meanwhile). Raises EngineError."""
        settings = prefs.get_prefs(context)
        self.client = prefs.get_engine(settings)
        self.start_timeout = float(settings.start_timeout)
        if self.raster is None or self.raster.state == self.raster.DONE:
            self._start_job()

    def _start_job(self) -> None:
        self.job = MatteJob(self.client, self.request, start_timeout=self.start_timeout)

    @property
    def stage(self):
        """What runs now: the rasterising, or the engine job."""
        return self.job if self.job is not None else self.raster

    @property
    def finished(self) -> bool:
        return self.stage.finished

    def poll(self) -> bool:
        """One timer tick: rasterise the next frame(s), or handle the engine's events;
        True once the run is over."""
        if self.job is None:
            if self.raster.step(RASTER_STEP_S) and self.raster.state == self.raster.DONE:
                self._start_job()
            return self.finished
        return self.job.poll(0.0)

    def wait(self, on_progress=None) -> None:
        """Run to the end (scripts, ``blender -b``); Ctrl+C cancels, a second one kills."""
        tick = (lambda _: on_progress()) if on_progress is not None else None
        try:
            if self.job is None:
                if tick is not None:
                    tick(None)  # "rasterising masks 0/N" before the first frame
                if self.raster.run(on_progress=tick) != self.raster.DONE:
                    return
                self._start_job()
            self.job.run(on_progress=tick)
        except KeyboardInterrupt:
            self.cancel()
            try:
                if self.job is not None:
                    self.job.run()
            except KeyboardInterrupt:
                self.cancel(force=True)

    def cancel(self, force: bool = False) -> None:
        """Esc: stop rasterising at once, or ask the engine to stop after the frame in hand
        (``force`` kills it)."""
        if self.job is None:
            self.raster.cancel()
        else:
            self.job.cancel(force=force or self.job.state == self.job.CANCELLING)

    @property
    def fraction(self) -> float:
        return self.stage.fraction

    def status_text(self) -> str:
        return self.stage.status_text()

    def console(self) -> None:
        """Progress lines on stdout for headless runs."""
        if self.stage.finished:
            return
        line = self.status_text().replace("  (Esc to cancel)", "")
        if line != self._last_line:
            print(line, flush=True)
            self._last_line = line

    # -- the end

    def finish(self, context) -> set[str]:
        """Clean up, wire the compositor when the job succeeded, and collect reports."""
        job = self.job
        self.cleanup()
        settings = getattr(self.scene, "instmatt", None)
        if job is None:  # stopped while rasterising the masks: the engine got nothing
            raster = self.raster
            if raster.state == raster.CANCELLED:
                text = f"InstMatt: cancelled while rasterising masks ({raster.done}/{raster.total}); nothing was matted"
                self.reports.append(("WARNING", text))
                self._status(settings, "Cancelled")
            else:
                self.reports.append(("ERROR", f"InstMatt: {raster.error}"))
                self._status(settings, f"Failed: {raster.error}")
            return {"CANCELLED"}
        for note in job.notes:
            self.reports.append(("INFO", f"InstMatt: {note}"))
        for warning in job.warnings[:5]:
            self.reports.append(("WARNING", f"InstMatt: {warning}"))
        if len(job.warnings) > 5:
            self.reports.append(("WARNING", f"InstMatt: {len(job.warnings) - 5} more frame warnings"))
        if job.state == job.DONE:
            try:
                people = self.load_results(context)
            except Exception as exc:  # never a traceback into the artist's face
                self.reports.append(("ERROR", f"InstMatt: the mattes were written but could not be loaded: {exc}"))
                self._status(settings, "Failed to load the mattes")
                return {"CANCELLED"}
            frames = len(job.frames)
            text = f"InstMatt: {frames} frame{'s' * (frames != 1)} matted, " + (
                f"{len(people)} people: {', '.join(people)}" if people else "nobody found")
            if self.guidance_text:
                text += f"; {self.guidance_text}"
            self.reports.append(("INFO", text))
            self._status(settings, text.replace("InstMatt: ", ""))
            return {"FINISHED"}
        if job.state == job.CANCELLED:
            text = (f"InstMatt: cancelled after {len(job.frames)} of {job.total or '?'} frames; "
                    "finished frames are kept and a re-run resumes")
            self.reports.append(("WARNING", text))
            self._status(settings, "Cancelled")
            return {"CANCELLED"}
        self.reports.append(("ERROR", f"InstMatt: {job.error}"))
        self._status(settings, f"Failed: {job.error}")
        return {"CANCELLED"}

    def _status(self, settings, text):
        if settings is not None:
            settings.status = text[:250]

    def load_results(self, context) -> list[str]:
        job = self.job
        paths = dict(job.frames)
        if self.source.single:
            if not paths:
                raise RuntimeError("the engine reported no frame")
        else:  # frames written by earlier runs (resumed jobs skip them) count too
            for frame in frames_on_disk(self.output_pattern):
                paths.setdefault(frame, frame_path(self.output_pattern, frame))
        if not paths:
            raise RuntimeError("the engine wrote no frame")
        first_image = min(paths)
        last_image = max(paths)
        count = last_image - first_image + 1
        first_scene = first_image - self.source.offset
        widest, _, warning = inspect_mattes(paths)
        if warning:
            self.reports.append(("WARNING", f"InstMatt: {warning}"))
        image = compositor.load_mattes(paths, f"InstMatt {self.source.name}", self.source.single, first=widest)
        labels = shot_labels(paths)
        nodes = compositor.wire(self.scene, self.source, image, first_scene, first_image, count, job.people,
                                example=self.example, labels=labels)
        self.result_nodes = nodes
        people = compositor.people_sockets(nodes["mattes"]) or list(job.people)
        settings = getattr(self.scene, "instmatt", None)
        if settings is not None:
            settings.last_output = self.output_pattern
            settings.last_people = ", ".join(people)
            settings.last_labels = json.dumps({pid: labels[pid] for pid in people if pid in labels})
        return [f"{pid} ({labels[pid]})" if pid in labels else pid for pid in people]

    def cleanup(self) -> None:
        if self.raster is not None:
            self.raster.cancel()  # (when still running) puts the scene's frame back
        self.source.cleanup()
        for folder in self.temp_dirs:
            shutil.rmtree(folder, ignore_errors=True)
        self.temp_dirs.clear()
        self.closed = True


def cancel_active() -> None:
    """On unregister: stop a running job and forget it."""
    global _active
    run, _active = _active, None
    if run is not None and not run.closed:
        if run.job is not None:
            run.job.cancel(force=True)
        elif run.raster is not None:
            run.raster.cancel()  # puts the scene's frame back
        run.cleanup()
