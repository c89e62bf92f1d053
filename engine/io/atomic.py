"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

A reader (Blender loading a sequence while the engine still runs, a render-farm node
checking what is done) never sees half a file: the final name appears only once the
content is complete. If the writer fails or is interrupted, the temporary file is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TEMP_MARK = ".instmatt-tmp-"


def temp_path_for(path: str | Path) -> Path:
    """A unique hidden sibling of ``path`` that keeps its suffix (writers pick the format by it)."""
    path = Path(path)
    return path.with_name(f"{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}-{path.name}")


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """``with atomic_path(final) as tmp: write(tmp)`` -> ``final`` appears complete or not at all."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(path)
    try:
        yield tmp
        if not tmp.is_file():
            raise OSError(f"{path}: the writer produced no file")
        os.replace(tmp, path)
    finally:
        # BaseException too: Ctrl-C while writing discards the temporary file
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)
