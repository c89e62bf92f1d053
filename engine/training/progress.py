"""Training progress on stderr: a line per ``every`` steps with loss, rate and time left."""

from __future__ import annotations

import sys
import time


class Progress:
    """A text progress bar on stderr; one line per report when stderr is not a terminal."""

    def __init__(self, label: str, total: int, start: int, every: int, stream=None):
        self.label, self.total, self.start, self.every = label, total, start, max(every, 1)
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.began = time.monotonic()

    def update(self, step: int, info: str) -> None:
        done = step + 1
        if not self.tty and done % self.every and done != self.total:
            return
        elapsed = time.monotonic() - self.began
        rate = (done - self.start) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        filled = int(24 * done / max(self.total, 1))
        bar = "=" * filled + (">" if filled < 24 else "") + " " * max(23 - filled, 0)
        line = (f"{self.label} {done}/{self.total} [{bar}] {100 * done / max(self.total, 1):3.0f}% "
                f"{info} {rate:.2f} it/s eta {int(eta) // 60:d}:{int(eta) % 60:02d}")
        self.stream.write(("\r" + line + "\033[K") if self.tty else line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        self.stream.write(("\n" if self.tty else "") + text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
