"""The warm engine of this Blender session: one process, reused from run to run."""

from __future__ import annotations

import threading

from .launch import OFFLINE_ENV
from .process import EngineClient

_shared: EngineClient | None = None
_shared_lock = threading.Lock()


def shared_engine(argv: list[str], cwd: str | None, env: dict | None, log_path: str | None = None) -> EngineClient:
    """The warm engine for this Blender session: started once, restarted if it died, if
    the command changed or if online access was switched."""
    global _shared
    with _shared_lock:
        client = _shared
        offline = (env or {}).get(OFFLINE_ENV)
        if client is not None and (not client.alive() or client.argv != list(argv) or client.cwd != cwd
                                   or (client.env or {}).get(OFFLINE_ENV) != offline):
            client.stop(timeout=2.0)
            client = None
        if client is None:
            client = EngineClient(argv, cwd=cwd, env=env, log_path=log_path).start()
            _shared = client
        return client


def current_engine() -> EngineClient | None:
    return _shared


def stop_shared_engine() -> None:
    """Shut the warm engine down (add-on disabled, Blender quitting, preferences changed)."""
    global _shared
    with _shared_lock:
        client, _shared = _shared, None
    if client is not None:
        client.stop()
