"""The engine's models as Blender shows them: the status rows, the Download Models
state machine (``fetch_models`` with ``download`` events, cancel), and error text that
speaks Blender instead of the command line. No bpy here.
"""

from __future__ import annotations

import time

from .process import EngineClient
from .protocol import EXIT_EVENT, EngineError, check_hello, new_request_id
from .request import EngineRequest

# What to press instead of `instmatt models fetch`, per model the engine says is missing.
MISSING_MODEL_TEXT = {
    "detector": "no person detector yet: press Download Models in the InstMatt preferences, or set Guidance to Mask",
    "instmatt": "no InstMatt weights yet: press Download Models in the InstMatt preferences",
}
OFFLINE_REASON = ("Allow Online Access is off (Preferences > System > Network): turn it on to download, "
                  "or set Detector Weights / InstMatt Weights to files you have")
TOY_TEXT = "toy weights (the shipped tiny network): press Download Models for the authors' InstMatt"

# The last status the engine reported (a ``models`` event or ``hello``), for the preferences.
last_models: dict = {}


def remember(event: dict) -> None:
    """Keep the models table of a ``hello`` or ``models`` event for the preferences box."""
    models = event.get("models")
    if isinstance(models, list):
        toy = event.get("weights_toy", last_models.get("toy"))  # only hello knows the loaded weights
        if any(m.get("name") == "instmatt" and m.get("status") != "missing" for m in models):
            toy = False if event.get("type") == "models" else toy  # the next job loads the authors'
        last_models.clear()
        last_models.update({"models": models, "cache": event.get("models_cache") or event.get("cache"),
                            "offline": bool(event.get("offline")), "toy": toy})


def error_text(event: dict) -> str:
    """An engine ``error`` event as one line for the artist."""
    if event.get("code") == "model_missing":
        model = str(event.get("model"))
        return MISSING_MODEL_TEXT.get(model, f"the '{model}' model is missing: press Download Models "
                                             f"in the InstMatt preferences")
    return f"Engine: {event.get('message', 'unknown error')}"


def _megabytes(n) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def model_rows(models: list[dict]) -> list[tuple[str, str, str]]:
    """(name, status line, icon) per model, for the preferences."""
    rows = []
    for model in models:
        status = model.get("status", "?")
        size = model.get("size") or model.get("approx_size")
        where = " (torchvision's cache)" if model.get("where") == "torch hub cache" else ""
        text = f"{status}{where}, {_megabytes(size)}" if size else status
        icon = {"verified": "CHECKMARK", "fetched": "FILE_TICK", "missing": "ERROR"}.get(status, "QUESTION")
        rows.append((str(model.get("name")), text, icon))
    return rows


class ModelFetch(EngineRequest):
    """One ``fetch_models`` request, fed by the engine's events like a matte job.

    ``poll(timeout)`` returns True once it is over: ``state`` DONE, CANCELLED or FAILED,
    ``error`` says why it failed, ``models`` holds the final table.
    """

    STARTING, RUNNING, CANCELLING = "STARTING", "RUNNING", "CANCELLING"
    DONE, CANCELLED, FAILED = "DONE", "CANCELLED", "FAILED"
    FINAL = (DONE, CANCELLED, FAILED)

    def __init__(self, client: EngineClient, names: list[str] | None = None, start_timeout: float = 180.0,
                 clock=time.monotonic):
        self.client = client
        self.id = new_request_id()
        self.request = {"type": "fetch_models", "id": self.id}
        if names:
            self.request["names"] = list(names)
        self.start_timeout = start_timeout
        self.clock = clock
        self.started_at = clock()
        self.state = self.STARTING
        self.error = ""
        self.models: list[dict] = []
        self.bytes: dict[str, tuple[int, int | None]] = {}  # model -> (done, total)
        self.current: str | None = None
        if client.hello is not None:
            self._send()

    def _check_timeouts(self) -> None:
        if self.state == self.STARTING and self.clock() - self.started_at > self.start_timeout:
            self._fail(f"The engine did not start within {self.start_timeout:.0f} s{self.client.tail_suffix()}")

    def cancel(self) -> None:
        if self.finished:
            return
        if self.state == self.STARTING:
            self.state = self.CANCELLED
            return
        try:
            self.client.send({"type": "cancel", "id": self.id})
        except EngineError as exc:
            self._fail(str(exc))
            return
        self.state = self.CANCELLING

    @property
    def fraction(self) -> float:
        done = sum(d for d, _ in self.bytes.values())
        total = sum(t or 0 for _, t in self.bytes.values())
        return min(1.0, done / total) if total else 0.0

    def status_text(self) -> str:
        if self.state == self.STARTING:
            return f"InstMatt: starting the engine ({self.clock() - self.started_at:.0f} s)"
        if self.state == self.CANCELLING:
            return "InstMatt: cancelling the download..."
        if self.current is None:
            return "InstMatt: checking the models...  (Esc to cancel)"
        done, total = self.bytes[self.current]
        return f"InstMatt: downloading {self.current} {_megabytes(done)} of {_megabytes(total)}  (Esc to cancel)"

    def _send(self) -> None:
        try:
            check_hello(self.client.hello or {})
            remember(self.client.hello or {})
            self.client.send(self.request)
        except EngineError as exc:
            self._fail(str(exc))
            return
        self.state = self.RUNNING

    def _handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "hello":
            if self.state == self.STARTING:
                self._send()
            return
        if kind == EXIT_EVENT:
            self._fail(self.client.death_message())
            return
        if event.get("id") != self.id:
            return
        if kind == "download":
            self.current = str(event.get("model"))
            self.bytes[self.current] = (int(event.get("done") or 0), event.get("total"))
        elif kind == "models":
            remember(event)
            self.models = list(event.get("models") or [])
            self.state = self.CANCELLED if event.get("cancelled") else self.DONE
        elif kind == "error":
            message = str(event.get("message", "unknown error"))
            if self.state == self.CANCELLING and message.startswith("cancel:"):
                self.state = self.CANCELLED
            else:
                self._fail(error_text(event))

    def _fail(self, message: str) -> None:
        self.error = message
        self.state = self.FAILED
