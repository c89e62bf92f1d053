"""What the add-on and the engine agree on (docs/protocol.md), besides the messages' fields."""

from __future__ import annotations

import itertools
import os

PROTOCOL_MAJOR = 1

# Pseudo-events the reader threads put on the queue next to the engine's own.
EXIT_EVENT = "_exit"  # stdout closed: the process ended (returncode in the event)
NOISE_EVENT = "_noise"  # a stdout line that is not JSON (protocol violation; kept for the log)


class EngineError(Exception):
    """The engine cannot be used; the message is one line meant for the artist."""


class EngineStartError(EngineError):
    """The engine process could not be started or did not introduce itself."""


def check_hello(hello: dict) -> None:
    """Raise :class:`EngineStartError` unless the engine speaks our protocol's major version."""
    version = hello.get("protocol")
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        major = None
    if major != PROTOCOL_MAJOR:
        raise EngineStartError(
            f"The engine speaks protocol {version!r}; this add-on speaks protocol {PROTOCOL_MAJOR}: "
            "update the add-on or the engine so that they match"
        )


_ids = itertools.count(1)


def new_request_id() -> str:
    return f"blender-{os.getpid()}-{next(_ids)}"
