"""The serve protocol's messages: requests checked (options, guidance, ids), events sent as JSON lines."""

from __future__ import annotations

import json
import logging
import os
import threading

from engine.errors import UserError
from engine.settings import GUIDANCE_KINDS, MatteSettings

log = logging.getLogger("instmatt")


# the protocol's matte options: MatteSettings' fields (the same meaning as the command line)
OPTION_TYPES = {
    "max_side": int, "refine": str, "score": (int, float), "min_area": (int, float), "write_png": bool,
    "write_rgba": bool, "backend": str, "overwrite": bool,
    "weights": (str, type(None)), "detector_weights": (str, type(None)), "device": (str, type(None)),
    "threads": (int, type(None)), "detector_size": int,
    "compression": str, "depth": str, "union_pass": bool, "background_pass": bool, "labels": (dict, type(None)),
    "exact": bool, "propagate": bool, "detect_every": int, "temporal": (int, float),
}
assert set(OPTION_TYPES) == set(MatteSettings.names())


class RequestError(Exception):
    """A request the engine cannot accept; sent back as an ``error`` event."""

    def __init__(self, message: str, file: str | None = None):
        super().__init__(message)
        self.file = file


class Channel:
    """Thread-safe writer of JSON lines to the protocol stream."""

    def __init__(self, stream):
        self.stream = stream
        self.lock = threading.Lock()
        self.closed = False

    def send(self, event: dict) -> None:
        try:
            line = json.dumps(event, ensure_ascii=True, allow_nan=False, default=str)
        except ValueError as exc:  # a NaN in an event is our bug: say so rather than break the stream
            log.error("cannot send %r: %s", event, exc)
            line = json.dumps({"type": "error", "message": f"internal error: unsendable event ({exc})",
                               "fatal": False})
        with self.lock:
            if self.closed:
                return
            try:
                self.stream.write(line + "\n")
                self.stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.closed = True  # the client went away; the reader sees EOF and we exit


class EventListener:
    """Job reports -> protocol events."""

    def __init__(self, channel: Channel, job_id):
        self.channel = channel
        self.job_id = job_id

    def progress(self, done, total, frame, fps, eta_s) -> None:
        self.channel.send({"type": "progress", "id": self.job_id, "done": done, "total": total, "frame": frame,
                           "fps": None if fps is None else round(fps, 3),
                           "eta_s": None if eta_s is None else round(eta_s, 1)})

    def frame(self, frame, path, people, skipped) -> None:
        self.channel.send({"type": "frame", "id": self.job_id, "frame": frame, "path": os.path.abspath(path),
                           "people": list(people), "skipped": bool(skipped)})

    def error(self, message, file, fatal) -> None:
        event = {"type": "error", "id": self.job_id, "message": message, "fatal": bool(fatal)}
        if file is not None:
            event["file"] = str(file)
        self.channel.send(event)

    def download(self, model, done, total) -> None:
        from .serve_models import DownloadEvents

        self.downloads = getattr(self, "downloads", None) or DownloadEvents(self.channel, self.job_id)
        self.downloads(model, done, total)

    def message(self, text) -> None:
        log.info("job %s: %s", self.job_id, text)
        self.channel.send({"type": "note", "id": self.job_id, "message": str(text)})


def json_id(value) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool)


def settings_from_options(options: dict, defaults: dict) -> MatteSettings:
    if not isinstance(options, dict):
        raise RequestError("'options' must be an object")
    values = dict(defaults)
    for key, value in options.items():
        if key not in OPTION_TYPES:
            log.warning("ignoring unknown matte option %r", key)
            continue
        kinds = OPTION_TYPES[key]
        if isinstance(value, bool) and kinds in (int, (int, float)) or not isinstance(value, kinds):
            raise RequestError(f"option {key!r} has the wrong type ({type(value).__name__})")
        values[key] = value
    if values.get("backend") in (None, "auto"):
        values["backend"] = defaults.get("backend", "auto")
    settings = MatteSettings(**values)
    try:
        settings.check()
    except UserError as exc:
        raise RequestError(str(exc)) from None
    return settings


def guidance_from(value) -> dict:
    if value is None:
        return {"kind": "detector"}
    if not isinstance(value, dict):
        raise RequestError("'guidance' must be an object such as {\"kind\": \"detector\"}")
    kind = value.get("kind", "detector")
    if kind not in GUIDANCE_KINDS:
        raise RequestError(f"unknown guidance kind {kind!r} ({', '.join(GUIDANCE_KINDS)})")
    if kind != "detector" and not isinstance(value.get("path"), str):
        raise RequestError(f"guidance '{kind}' needs a 'path'")
    return {"kind": kind, "path": value.get("path")}
