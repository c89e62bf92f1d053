"""Frames written on a thread while the next frame is matted.

Writing a frame (Cryptomatte ranks, union passes, compression, the file itself) costs about
a fifth of a 720p frame's matting; numpy and OpenEXR release the GIL while they work, so
on its own thread the write hides behind the next frame's network passes. At most one
frame is in flight: memory stays bounded and a fault loses nothing that was written
(every file is written atomically, so a file on disk is complete).

``done`` callbacks (release the frame's claim, report it) always run on the caller's
thread, after the file is in place, in the order the frames were submitted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor



class BackgroundWriter:
    def __init__(self, background: bool = True):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="instmatt-writer") if background else None
        self._pending: tuple[Future, Callable[[float], None], Callable[[], None]] | None = None

    def submit(self, write: Callable[[], None], done: Callable[[float], None],
               always: Callable[[], None] = lambda: None) -> None:
        """Write one frame: ``write()`` on the thread, then ``done(seconds)`` here once the
        earlier frame is finished and this one is on disk; ``always()`` runs even if it failed."""
        self.wait()
        if self._pool is None:
            future: Future = Future()
            future.set_result(_timed(write))
        else:
            future = self._pool.submit(_timed, write)
        self._pending = (future, done, always)
        if self._pool is None:
            self.wait()

    def wait(self) -> None:
        """Finish the frame in flight; its write's error (disk full, ...) is raised here."""
        if self._pending is None:
            return
        future, done, always = self._pending
        self._pending = None
        try:
            seconds = future.result()
        finally:
            always()
        done(seconds)

    def close(self) -> None:
        """Finish what is in flight (used on the way out, also after an error)."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)


def _timed(write: Callable[[], None]) -> float:
    start = time.perf_counter()
    write()
    return time.perf_counter() - start
