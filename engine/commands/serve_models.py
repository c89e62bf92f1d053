"""The serve protocol's model requests: ``models`` (what is cached) and ``fetch_models``
(Blender's Download Models button), with ``download`` progress events and cancel.

    -> {"type": "models", "id": "m1"}
    <- {"type": "models", "id": "m1", "cache": "...", "offline": false, "models": [{...}, ...]}
    -> {"type": "fetch_models", "id": "m2", "names": ["detector"]}      (names, mirror optional)
    <- {"type": "download", "id": "m2", "model": "detector", "done": 1048576, "total": 178090079}
    <- {"type": "models", "id": "m2", "fetched": true, "cancelled": false, "models": [...], ...}
"""

from __future__ import annotations

import logging
import threading
import time

from engine.errors import UserError

log = logging.getLogger("instmatt")
DOWNLOAD_EVENT_INTERVAL = 0.25  # seconds between two download events of one model


def models_event(rid=None, **extra) -> dict:
    from engine.registry import ModelStore, offline_from_env

    store = ModelStore()
    event = {"type": "models", "cache": str(store.root), "offline": offline_from_env(),
             "models": [state.as_dict() for state in store.states()]}
    if rid is not None:
        event["id"] = rid
    event.update(extra)
    return event


def check_fetch_request(request: dict) -> tuple[list[str] | None, str | None]:
    from engine.registry.catalog import MODELS

    names, mirror = request.get("names"), request.get("mirror")
    if names is not None and (not isinstance(names, list) or not all(isinstance(n, str) for n in names)):
        raise UserError("'names' must be a list of model names")
    unknown = [name for name in names or () if name not in MODELS]
    if unknown:
        raise UserError(f"unknown model {unknown[0]!r}: the registry knows {', '.join(MODELS)}")
    if mirror is not None and (not isinstance(mirror, str) or not mirror):
        raise UserError("'mirror' must be a folder or an http(s) URL")
    return names or None, mirror


def missing_model_event(rid, exc) -> dict:
    """A fatal error for a needed model that is missing; ``code``/``model`` let the add-on
    say it in Blender's words (press Download Models) instead of the command line's."""
    return {"type": "error", "id": rid, "message": str(exc), "fatal": True, "code": "model_missing",
            "model": exc.model}


class DownloadEvents:
    """``download`` events of one request, at most one per model every quarter second
    (and always the last one)."""

    def __init__(self, channel, rid):
        self.channel = channel
        self.rid = rid
        self.sent: dict[str, float] = {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if done != total and now - self.sent.get(name, 0.0) < DOWNLOAD_EVENT_INTERVAL:
            return
        self.sent[name] = now
        self.channel.send({"type": "download", "id": self.rid, "model": name, "done": done, "total": total})


def fetch_outcome(channel, rid, names, mirror, cancel: threading.Event) -> dict:
    """Run the fetch (in the server's worker thread); returns the final event."""
    from engine.registry import ModelStore
    from engine.registry.download import DownloadCancelled

    try:
        ModelStore().fetch(names, mirror=mirror, progress=DownloadEvents(channel, rid), cancel=cancel,
                           report=lambda text: log.info("fetch %s: %s", rid, text))
    except DownloadCancelled as exc:
        log.info("fetch %s: %s", rid, exc)
        return models_event(rid, fetched=False, cancelled=True)
    except UserError as exc:
        return {"type": "error", "id": rid, "message": str(exc), "fatal": True}
    return models_event(rid, fetched=True, cancelled=False)


def fetch_job(server, rid, request: dict):
    """The worker body for a ``fetch_models`` request (checked here, before it starts)."""
    names, mirror = check_fetch_request(request)

    def outcome(cancel: threading.Event) -> dict:
        final = fetch_outcome(server.channel, rid, names, mirror, cancel)
        server.backend = None  # the next job picks its weights again: the authors' may be cached now
        return final

    return outcome
