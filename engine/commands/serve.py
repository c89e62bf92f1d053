"""``instmatt serve --stdio``: the engine process the Blender add-on talks to.

JSON lines in both directions, exactly as docs/protocol.md describes: a ``hello`` first,
then requests on stdin (``ping``, ``matte``, ``cancel``, ``shutdown``) and events on stdout
(``pong``, ``progress``, ``frame``, ``done``, ``error``, ``bye``). The main thread reads
stdin, so a ``cancel`` arrives while a job runs; the job runs in a worker thread. The
network stays loaded between requests.

stdout carries protocol lines only: file descriptor 1 is duplicated for the protocol and
then pointed at stderr, so a stray print (ours or a library's, even from C) lands in the
log instead of corrupting the stream. A bad request is answered with an ``error`` event;
the engine never exits because of one.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback

from engine import settings as defaults
from engine.errors import InputFileError, UserError
from engine.registry.resolve import ModelMissing
from engine.settings import MatteSettings

from .progress import add_offline_argument, apply_offline
from .request_lines import MAX_LINE, parse_request, read_line
from .serve_messages import (
    Channel,
    EventListener,
    RequestError,
    guidance_from,
    json_id,
    settings_from_options,
)

PROTOCOL = 1
log = logging.getLogger("instmatt")



class Server:
    def __init__(self, requests, channel: Channel, defaults: dict):
        self.requests = requests  # binary line stream (stdin)
        self.channel = channel
        self.defaults = defaults  # MatteSettings fields from the command line
        self.backend = None
        self.model_error: str | None = None
        self.lock = threading.Lock()
        self.job_id = None
        self.job_cancel: threading.Event | None = None
        self.job_thread: threading.Thread | None = None
        self.job_active = False  # True from the request until just before its final event

    # ..................................................................................
    def load_default_model(self) -> None:
        from engine.backends import load_backend

        try:
            self.backend = load_backend(self.defaults["backend"], self.defaults["weights"],
                                        self.defaults["device"], self.defaults["threads"])
        except UserError as exc:
            self.model_error = str(exc)
        except Exception as exc:  # keep the pipe alive; say what went wrong
            log.error("loading the network failed:\n%s", traceback.format_exc())
            self.model_error = f"loading the network failed: {type(exc).__name__}: {exc}"

    def hello(self) -> dict:
        import engine

        event = {"type": "hello", "protocol": PROTOCOL, "engine_version": engine.__version__,
                 "backend": None, "weights": None, "pid": os.getpid()}
        if self.backend is not None:
            event.update(backend=self.backend.label, weights=self.backend.weights_path,
                         device=str(self.backend.device), backend_reason=self.backend.reason,
                         weights_toy=bool(self.backend.weights_toy))
            if self.backend.weights_toy:
                from engine.registry.resolve import TOY_NOTE

                event["warning"] = TOY_NOTE
        from .serve_models import models_event

        models = models_event()
        event.update(offline=models["offline"], models=models["models"], models_cache=models["cache"])
        if self.model_error is not None:
            event["error"] = self.model_error
        return event

    # ..................................................................................
    def serve(self, load_model: bool = True) -> int:
        if load_model:
            self.load_default_model()
        self.channel.send(self.hello())
        if self.model_error is not None:
            self.channel.send({"type": "error", "message": self.model_error, "fatal": False})
        try:
            while True:
                raw, too_long = read_line(self.requests)
                if too_long:
                    self.channel.send({"type": "error", "fatal": False,
                                       "message": f"malformed request: line longer than {MAX_LINE} bytes (skipped)"})
                    continue
                if not raw:
                    log.info("stdin closed: shutting down")
                    self.stop_job()
                    return 0
                if not raw.strip():
                    continue
                if self.handle_line_safely(raw) == "shutdown":
                    return 0
        except KeyboardInterrupt:
            self.stop_job()
            return 0

    def handle_line_safely(self, raw: bytes) -> str | None:
        """handle_line, and an ``error`` event instead of a dead server if it has a bug."""
        try:
            return self.handle_line(raw)
        except Exception as exc:
            log.error("request failed:\n%s", traceback.format_exc())
            self.channel.send({"type": "error", "message": f"internal error: {type(exc).__name__}: {exc}",
                               "fatal": False})
            return None

    def handle_line(self, raw: bytes) -> str | None:
        try:
            request = parse_request(raw)
        except ValueError as exc:
            self.channel.send({"type": "error", "message": f"malformed request (not a JSON line): {exc}",
                               "fatal": False})
            return None
        if not isinstance(request, dict) or not isinstance(request.get("type"), str):
            self.channel.send({"type": "error", "message": "malformed request: expected an object with a 'type'",
                               "fatal": False})
            return None
        kind = request["type"]
        rid = request.get("id")
        try:
            if kind == "ping":
                event = {"type": "pong"}
                if json_id(rid):
                    event["id"] = rid
                self.channel.send(event)
            elif kind == "matte":
                self.start_matte(request)
            elif kind == "models":
                from .serve_models import models_event

                self.channel.send(models_event(rid if json_id(rid) else None))
            elif kind == "fetch_models":
                self.start_fetch(request)
            elif kind == "cancel":
                self.cancel(rid)
            elif kind == "shutdown":
                self.stop_job()
                self.channel.send({"type": "bye"})
                return "shutdown"
            else:
                raise RequestError(f"unknown request type {kind!r} (ping, matte, models, fetch_models, cancel, shutdown)")
        except RequestError as exc:
            event = {"type": "error", "message": str(exc), "fatal": kind in ("matte", "fetch_models")}
            if json_id(rid):
                event["id"] = rid
            if exc.file:
                event["file"] = exc.file
            self.channel.send(event)
        return None

    # ..................................................................................
    def cancel(self, rid) -> None:
        with self.lock:
            running = self.job_active
            if running and (rid is None or rid == self.job_id):
                log.info("cancelling job %s", self.job_id)
                self.job_cancel.set()
                return
        raise RequestError(f"cancel: no job {rid!r} is running" if rid is not None else "cancel: no job is running")

    def stop_job(self) -> None:
        with self.lock:
            thread, cancel = self.job_thread, self.job_cancel
        if thread is not None and thread.is_alive():
            cancel.set()
            thread.join()

    def start_matte(self, request: dict) -> None:
        rid = request.get("id")
        if not json_id(rid):
            raise RequestError("matte needs an 'id' (a string or an integer) chosen by the client")
        for key in ("input", "output"):
            if not isinstance(request.get(key), str) or not request[key]:
                raise RequestError(f"matte needs '{key}' (a path)")
        frames = request.get("frames")
        if frames is not None and not isinstance(frames, (str, list, int)):
            raise RequestError("'frames' must be \"FIRST-LAST\" or [first, last]")
        guidance = guidance_from(request.get("guidance"))
        settings = settings_from_options(request.get("options") or {}, self.defaults)
        self._start_worker(rid, lambda cancel: self._job_outcome(rid, request, frames, guidance, settings, cancel))

    def start_fetch(self, request: dict) -> None:
        """Blender's Download Models: a job like a matte (one at a time, cancellable)."""
        from .serve_models import fetch_job

        rid = request.get("id")
        if not json_id(rid):
            raise RequestError("fetch_models needs an 'id' (a string or an integer) chosen by the client")
        try:
            self._start_worker(rid, fetch_job(self, rid, request))
        except UserError as exc:
            raise RequestError(str(exc)) from None

    def _start_worker(self, rid, outcome) -> None:
        with self.lock:
            if self.job_active:
                raise RequestError(f"busy: job {self.job_id} is running")
            self.job_active = True
            self.job_id = rid
            self.job_cancel = threading.Event()
            self.job_thread = threading.Thread(target=self._run_job, name=f"job-{rid}", daemon=True,
                                               args=(outcome, self.job_cancel))
            self.job_thread.start()

    def _backend_for(self, settings: MatteSettings):
        from engine.backends import load_backend

        same = (settings.backend == self.defaults["backend"] and settings.weights == self.defaults["weights"]
                and settings.device == self.defaults["device"] and settings.threads == self.defaults["threads"])
        if same and self.backend is not None:
            return self.backend
        backend = load_backend(settings.backend, settings.weights, settings.device, settings.threads)
        if same:
            self.backend = backend
        return backend

    def _run_job(self, outcome, cancel: threading.Event) -> None:
        """The worker: runs one job and ends it with exactly one final event (``done``,
        ``models`` or a fatal ``error``)."""
        final = outcome(cancel)
        with self.lock:  # the job is over before its last event: a new request may follow at once
            self.job_active = False
        self.channel.send(final)

    def _job_outcome(self, rid, request, frames, guidance, settings, cancel: threading.Event) -> dict:
        from engine.job import build_job

        listener = EventListener(self.channel, rid)
        try:
            job = build_job(request["input"], request["output"], frames, guidance, settings, listener, cancel,
                            backend=lambda: self._backend_for(settings))
            log.info("job %s: %d frames of %s -> %s", rid, len(job.frames), job.source.path, job.output_pattern)
            result = job.run()
        except ModelMissing as exc:
            from .serve_models import missing_model_event

            return missing_model_event(rid, exc)
        except InputFileError as exc:
            return {"type": "error", "id": rid, "message": str(exc), "fatal": True, "file": exc.path}
        except UserError as exc:  # an OutputFileError (cannot write) names its file too
            event = {"type": "error", "id": rid, "message": str(exc), "fatal": True}
            if getattr(exc, "path", None):
                event["file"] = exc.path
            return event
        except Exception as exc:
            log.error("job %s failed:\n%s", rid, traceback.format_exc())
            return {"type": "error", "id": rid, "message": f"internal error: {type(exc).__name__}: {exc}",
                    "fatal": True}
        log.info("job %s: %d written, %d already there, %d failed%s", rid, result.written, result.skipped,
                 result.failed, " (cancelled)" if result.cancelled else "")
        return {"type": "done", "id": rid, "frames": result.frames, "people": result.people,
                "cancelled": result.cancelled, "written": result.written, "skipped": result.skipped,
                "failed": result.failed, "elsewhere": result.elsewhere, "seconds": round(result.seconds, 3)}


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stdio", action="store_true", required=True,
                        help="talk JSON lines over stdin/stdout (docs/protocol.md); logs go to stderr")
    parser.add_argument("--weights", metavar="PATH",
                        help="InstMatt weights (default: the authors' checkpoint when cached, else the toy one)")
    parser.add_argument("--backend", default=defaults.BACKEND, choices=defaults.BACKENDS,
                        help="default inference backend")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for the network")
    parser.add_argument("--detector-weights", metavar="PATH", help="Mask R-CNN weights for the person detector")
    parser.add_argument("--detector-size", type=int, default=None, help=f"detector: shorter side it sees (default {defaults.DETECTOR_SIZE})")
    parser.add_argument("--no-preload", action="store_true",
                        help="send hello at once and load the network on the first matte request")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    add_offline_argument(parser)


def _protocol_stream():
    """A private copy of stdout for protocol lines; fd 1 then points at stderr."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", newline="\n", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return protocol


def run(args) -> int:
    from engine.commands.progress import setup_logging

    setup_logging(verbose=args.verbose)
    apply_offline(args)
    logging.getLogger("instmatt").setLevel(logging.INFO)
    defaults = {"backend": args.backend, "weights": args.weights, "device": args.device, "threads": args.threads,
                "detector_weights": args.detector_weights}
    if args.detector_size is not None:
        defaults["detector_size"] = args.detector_size
    MatteSettings(**defaults).check()  # a bad --threads/--device is one line and exit 2, before hello
    server = Server(sys.stdin.buffer, Channel(_protocol_stream()), defaults)
    return server.serve(load_model=not args.no_preload)
