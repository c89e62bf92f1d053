"""Per-frame claims, so several ``instmatt matte`` processes on one output folder (render-farm
nodes, or two shells) split the shot instead of each computing every frame.

A process works on a frame only while it holds the frame's lock file,
``.<EXR name>.instmatt-lock`` beside the EXR, created with O_CREAT|O_EXCL (atomic, also
on NFS v3+) and holding the writer's pid, host and start time. It is removed once the EXR
is in place (or the frame failed). A lock is stale when its writer is gone (same host,
dead pid) or it is older than STALE_LOCK_AGE_S; a stale lock is taken over under a short
second lock (``...-lock.takeover``, also O_EXCL), so two processes never both take it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from pathlib import Path

from engine.errors import OutputFileError
from engine.io.patterns import format_pattern

LOCK_SUFFIX = ".instmatt-lock"
STALE_LOCK_AGE_S = 6 * 3600  # generous: no frame takes this long; a lock this old is a hung or lost writer
TAKEOVER_AGE_S = 60  # the takeover lock is held for microseconds; one this old was left by a crash


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _create(path: Path, content: bytes) -> bool:
    """Create ``path`` with ``content`` if it does not exist yet (atomically); False if it does."""
    try:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileNotFoundError:  # the output folder is made by the first claim
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise OutputFileError(path, f"cannot claim the frame here ({exc.strerror or exc})") from None
    try:
        os.write(fd, content)
    finally:
        os.close(fd)
    return True


class FrameClaims:
    """``claim(frame)`` -> True when this process may compute the frame; ``release(frame)`` after."""

    def __init__(self, output_pattern: str):
        self.output_pattern = output_pattern
        self.host = socket.gethostname()
        self.held: dict[int, str] = {}  # frame -> our token in its lock

    def lock_path(self, frame: int) -> Path:
        exr = Path(format_pattern(self.output_pattern, frame))
        return exr.with_name(f".{exr.name}{LOCK_SUFFIX}")

    def _content(self, token: str) -> bytes:
        return json.dumps({"pid": os.getpid(), "host": self.host, "time": time.time(), "token": token}).encode()

    def _stale(self, path: Path) -> tuple[bool, bytes | None]:
        """(stale?, the lock's content as read)."""
        try:
            content = path.read_bytes()
            age = time.time() - path.stat().st_mtime
        except FileNotFoundError:
            return True, None
        try:
            owner = json.loads(content)
            pid, host = int(owner["pid"]), str(owner["host"])
        except (ValueError, KeyError, TypeError):
            return age > TAKEOVER_AGE_S, content  # half-written by a writer that died at once
        if age > STALE_LOCK_AGE_S:
            return True, content
        return host == self.host and not _alive(pid), content

    def claim(self, frame: int) -> bool:
        path = self.lock_path(frame)
        token = secrets.token_hex(8)
        if _create(path, self._content(token)):
            self.held[frame] = token
            return True
        stale, seen = self._stale(path)
        if not stale:
            return False
        guard = path.with_name(path.name + ".takeover")
        if not _create(guard, self._content(token)):
            with contextlib.suppress(FileNotFoundError):
                if time.time() - guard.stat().st_mtime > TAKEOVER_AGE_S:
                    guard.unlink()
            return False  # another process is taking it over right now
        try:
            again, now = self._stale(path)
            if not again or now != seen:
                return False  # it changed hands meanwhile
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            if not _create(path, self._content(token)):
                return False
            self.held[frame] = token
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()

    def release(self, frame: int) -> None:
        token = self.held.pop(frame, None)
        if token is None:
            return
        path = self.lock_path(frame)
        try:
            mine = json.loads(path.read_bytes()).get("token") == token
        except (OSError, ValueError, AttributeError):
            return
        if mine:  # never remove a lock another process took over (ours went stale)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def release_all(self) -> None:
        for frame in list(self.held):
            self.release(frame)
