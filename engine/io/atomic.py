"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (Blender loading a sequence while the engine still runs, a render-farm node
checking what is done) never sees half a file: the final name appears only once the
content is complete. If the writer fails or is interrupted, the temporary file is removed;
a write that fails (read-only folder, full disk, name too long) is one OutputFileError
naming the final path. Temporary files of runs that were killed (SIGKILL, power loss) are
removed by :func:`remove_stale_temp_files` when the next job starts.

Temporary names: ``.instmatt-tmp-<pid>.<host tag>-<random>-<final name>``; the host tag
(8 hex digits of the host name's hash) keeps a job on one farm node from deleting the
files a live job on another node is writing into a shared folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import socket
import time
from pathlib import Path

from engine.errors import OutputFileError

TEMP_MARK = ".instmatt-tmp-"
_TEMP_NAME = re.compile(re.escape(TEMP_MARK) + r"(\d+)(?:\.([0-9a-f]{8}))?-")
STALE_TEMP_AGE_S = 24 * 3600  # no writer holds a temporary file this long, on any host
PROBE_BYTES = 4096


def host_tag() -> str:
    return hashlib.sha1(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def temp_path_for(path: str | Path) -> Path:
    """A unique hidden sibling of ``path`` that keeps its suffix (writers pick the format by it)."""
    path = Path(path)
    return path.with_name(f"{TEMP_MARK}{os.getpid()}.{host_tag()}-{secrets.token_hex(4)}-{path.name}")


def _reason(exc: BaseException, tmp: Path) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return " ".join(str(exc).replace(str(tmp), "the temporary file").split())


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(folder, f"the output folder cannot be created ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise OutputFileError(folder, "the output folder cannot be created (a file has that name)")


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """``with atomic_path(final) as tmp: write(tmp)`` -> ``final`` appears complete or not at all."""
    path = Path(path)
    _make_folder(path.parent)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise OSError(f"{path}: the writer produced no file")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputFileError(path, f"cannot be written ({_reason(exc, tmp)})") from None
    finally:
        # BaseException too: Ctrl-C while writing discards the temporary file
        with contextlib.suppress(OSError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def probe_writable(path: str | Path) -> None:
    """Create ``path``'s folder and write (then remove) a temporary file as long as the one its
    writer will use: an unwritable output fails here, before any work, as one OutputFileError."""
    path = Path(path)
    _make_folder(path.parent)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "xb") as probe:
            probe.write(b"\0" * PROBE_BYTES)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        raise OutputFileError(path, f"cannot be written ({_reason(exc, tmp)})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _writer_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, someone else's
        return False
    return False


def remove_stale_temp_files(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Remove the temporary files in ``folder`` whose writer is gone (same host, dead pid) or
    that are older than a day. Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    mine, now, removed = host_tag(), time.time(), []
    entries = folder.rglob(f"{TEMP_MARK}*") if recursive else folder.glob(f"{TEMP_MARK}*")
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        if match is None or not entry.is_file():
            continue
        pid, tag = int(match.group(1)), match.group(2)
        try:
            old = now - entry.stat().st_mtime > STALE_TEMP_AGE_S
        except OSError:
            continue
        same_host = tag is None or tag == mine  # names without a tag come from older versions, local
        if (same_host and pid != os.getpid() and _writer_gone(pid)) or old:
            with contextlib.suppress(OSError):
                entry.unlink()
                removed.append(entry)
    return removed
