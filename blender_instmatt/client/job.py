"""The state machine of one ``matte`` request, fed by the engine's events.

The Blender operator drives a :class:`MatteJob` from a timer (modal, UI) or in a loop
(``execute``, scripts and ``blender -b``); tests drive it directly.  Nothing here raises
into Blender's event loop: failures end up as ``job.error`` (one readable line, with the
engine's last stderr lines where they help).
"""

from __future__ import annotations

import time

from .models import error_text, remember
from .process import EngineClient
from .protocol import EXIT_EVENT, NOISE_EVENT, EngineError, check_hello, new_request_id
from .request import EngineRequest


class MatteJob(EngineRequest):
    """One ``matte`` request, as a state machine fed by the engine's events.

    ``poll(timeout)`` handles whatever arrived and returns True once the job is over;
    then ``state`` is DONE, CANCELLED or FAILED and ``error`` says why it failed.
    """

    STARTING = "STARTING"  # waiting for the engine's hello
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    DONE = "DONE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    FINAL = (DONE, CANCELLED, FAILED)

    def __init__(self, client: EngineClient, request: dict, start_timeout: float = 180.0,
                 cancel_timeout: float = 120.0, clock=time.monotonic):
        self.client = client
        self.request = dict(request)
        self.request.setdefault("type", "matte")
        self.request.setdefault("id", new_request_id())
        self.id = self.request["id"]
        self.start_timeout = start_timeout
        self.cancel_timeout = cancel_timeout
        self.clock = clock
        self.state = self.STARTING
        self.error = ""
        self.warnings: list[str] = []
        self.notes: list[str] = []  # the engine's lines for the artist ("14 frames recomputed: ...")
        self.frames: dict[int, str] = {}  # frame number -> EXR path, in arrival order
        self.frame_people: dict[int, list[str]] = {}  # frame number -> the people in its EXR
        self.people: list[str] = []
        self.done_count = 0
        self.total = 0
        self.fps = 0.0
        self.eta_s: float | None = None
        self.current_frame: int | None = None
        self.downloading: tuple[str, int, int | None] | None = None  # a model the engine fetches first
        self.started_at = clock()
        self.sent_at: float | None = None
        self.cancel_at: float | None = None
        self.finished_at: float | None = None
        self.result: dict | None = None
        self._dead_since: float | None = None
        self._retry_at: float | None = None
        if client.hello is not None:
            self._send_request()

    # -- public

    def run(self, on_progress=None, poll_interval: float = 0.25) -> str:
        """Block until the job is over (the ``execute`` path); the last progress shows the end."""
        state = super().run(on_progress, poll_interval)
        if on_progress is not None:
            on_progress(self)
        return state

    def cancel(self, force: bool = False) -> None:
        """Ask the engine to stop after the frame in hand; ``force`` kills it at once."""
        if self.finished:
            return
        if self.state == self.STARTING:
            self._finish(self.CANCELLED)  # nothing was sent; the engine keeps warming up
            return
        if self._retry_at is not None:  # the engine has not taken the request yet
            self._retry_at = None
            self._finish(self.CANCELLED)
            return
        if force or self.state == self.CANCELLING:
            self.client.kill()
            self._finish(self.CANCELLED)
            return
        try:
            self.client.send({"type": "cancel", "id": self.id})
        except EngineError as exc:
            self._fail(str(exc))
            return
        self.state = self.CANCELLING
        self.cancel_at = self.clock()

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 0.0
        return min(1.0, self.done_count / self.total)

    def status_text(self) -> str:
        if self.state == self.STARTING:
            return f"InstMatt: starting the engine ({self.clock() - self.started_at:.0f} s)"
        if self.state == self.CANCELLING:
            return "InstMatt: cancelling after the frame in hand..."
        if self.downloading is not None and not self.done_count:
            model, done, total = self.downloading
            size = f" of {total / 1e6:.1f} MB" if total else ""
            return f"InstMatt: downloading {model} {done / 1e6:.1f} MB{size} (first use)  (Esc to cancel)"
        text = f"InstMatt: {self.done_count}/{self.total or '?'} frames"
        if self.fps:
            text += f", {self.fps:.2f} fps"
        if self.eta_s is not None and self.done_count < (self.total or 0):
            text += f", {format_seconds(self.eta_s)} left"
        if self.notes:
            text += f" ({self.notes[-1]})"
        return text + "  (Esc to cancel)"

    # -- internals

    def _send_request(self) -> None:
        hello = self.client.hello or {}
        remember(hello)
        for key in ("warning", "error"):
            if hello.get(key):  # e.g. random weights, a network that failed to load
                self.warnings.append(f"engine: {hello[key]}")
        try:
            check_hello(self.client.hello or {})
            self.client.send(self.request)
        except EngineError as exc:
            self._fail(str(exc))
            return
        self.state = self.RUNNING
        self.sent_at = self.clock()

    def _handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "hello":
            if self.state == self.STARTING:
                self._send_request()
            return
        if kind == EXIT_EVENT:
            self._fail(self.client.death_message())
            return
        if kind == NOISE_EVENT or self.state == self.STARTING:
            return
        event_id = event.get("id")
        if kind == "error" and event_id is None:
            # Not about a job of ours by id: fatal ones can only answer our request (the only
            # one in flight); others (a request it could not read, a start-up problem) warn.
            message = str(event.get("message", "unknown error"))
            if event.get("fatal", False):
                self._fail(f"Engine: {message}")
            elif f"engine: {message}" not in self.warnings:
                self.warnings.append(f"engine: {message}")
            return
        if event_id != self.id:
            return  # a late event of an earlier job
        if kind == "note":
            message = str(event.get("message") or "").strip()
            if message and message not in self.notes:
                self.notes.append(message)
        elif kind == "download":
            self.downloading = (str(event.get("model")), int(event.get("done") or 0), event.get("total"))
        elif kind == "progress":
            self.done_count = int(event.get("done", self.done_count))
            self.total = int(event.get("total", self.total) or self.total)
            self.fps = float(event.get("fps") or 0.0)
            eta = event.get("eta_s")
            self.eta_s = float(eta) if eta is not None else None
            self.current_frame = event.get("frame", self.current_frame)
        elif kind == "frame":
            frame = int(event["frame"])
            self.frames[frame] = event["path"]
            self.frame_people[frame] = list(event.get("people") or [])
            for person in event.get("people") or []:
                if person not in self.people:
                    self.people.append(person)
            self.current_frame = frame
        elif kind == "done":
            self.result = event
            for person in event.get("people") or []:
                if person not in self.people:
                    self.people.append(person)
            self._finish(self.CANCELLED if event.get("cancelled") else self.DONE)
        elif kind == "error":
            message = str(event.get("message", "unknown error"))
            if self.state == self.CANCELLING and message.startswith("cancel:"):
                self._finish(self.CANCELLED)  # the engine was not running it (any more)
            elif message.startswith("busy") and not self.frames and self.state == self.RUNNING \
                    and self.clock() - (self.sent_at or self.started_at) < self.cancel_timeout:
                # An earlier job (e.g. one Blender abandoned) is finishing its frame: try again.
                self._retry_at = self.clock() + 0.5
            elif event.get("fatal", True):
                self._fail(error_text(event))
            else:
                self.warnings.append(message)

    def _check_timeouts(self) -> None:
        if self.finished:
            return
        now = self.clock()
        if self._retry_at is not None and now >= self._retry_at and self.state == self.RUNNING:
            self._retry_at = None
            try:
                self.client.send(self.request)
            except EngineError as exc:
                self._fail(str(exc))
                return
        if self.state == self.STARTING and now - self.started_at > self.start_timeout:
            tail = self.client.tail_suffix()
            self.client.kill()
            self._fail(f"The engine did not start within {self.start_timeout:.0f} s{tail}")
        elif self.state == self.CANCELLING and self.cancel_at is not None \
                and now - self.cancel_at > self.cancel_timeout:
            self.client.kill()
            self._finish(self.CANCELLED)
        elif self.state in (self.RUNNING, self.CANCELLING):
            # The reader thread reports the exit; if something else keeps the engine's stdout
            # open (a grandchild), notice the death ourselves after a grace period.
            proc = self.client.proc
            if proc is not None and proc.poll() is not None:
                if self._dead_since is None:
                    self._dead_since = now
                elif now - self._dead_since > 5.0:
                    self._fail(self.client.death_message())

    def _fail(self, message: str) -> None:
        self.error = message
        self._finish(self.FAILED)

    def _finish(self, state: str) -> None:
        self.state = state
        self.finished_at = self.clock()


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
