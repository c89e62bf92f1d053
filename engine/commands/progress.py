"""What a command-line job shows: a tqdm progress bar, errors as one line each, the
logging set-up, and the Ctrl-C guard that lets the frame in hand finish."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from tqdm import tqdm

from engine.errors import Interrupted
from engine.job import Listener


class ProgressBar(Listener):
    """Frames done, frames per second and time left on stderr (tqdm); errors above the bar."""

    def __init__(self, program: str = "instmatt matte", quiet: bool = False, stream=None):
        self.program = program
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.bar: tqdm | None = None
        self.errors: list[str] = []
        self.downloads: DownloadBars | None = None

    def progress(self, done, total, frame, fps, eta_s) -> None:
        if self.quiet:
            return
        if self.bar is None:
            # mininterval: a log file gets a line every few seconds, a terminal a live bar
            self.bar = tqdm(total=total, unit="frame", file=self.stream, dynamic_ncols=True,
                            mininterval=0.5 if self.stream.isatty() else 2.0,
                            bar_format="{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} frames  {desc}  {remaining} left")
        rate = f"{fps:.2f} fps" if fps else "-- fps"
        self.bar.set_description_str(f"{rate} (frame {frame})", refresh=False)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def error(self, message, file, fatal) -> None:
        self.errors.append(message)
        line = f"{self.program}: error: {message}"
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def download(self, model, done, total) -> None:
        if not self.quiet:
            if self.downloads is None:
                self.downloads = DownloadBars(self.stream)
            self.downloads(model, done, total)

    def message(self, text) -> None:
        print(f"{self.program}: {text}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.downloads is not None:
            self.downloads.close()
            self.downloads = None


class DownloadBars:
    """One tqdm bar per model fetched (``engine.registry``) on stderr, opened at its first byte."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.bars: dict[str, tqdm] = {}

    def __call__(self, name: str, done: int, total: int | None) -> None:
        bar = self.bars.get(name)
        if bar is None:
            bar = self.bars[name] = tqdm(total=total, initial=done, unit="B", unit_scale=True, unit_divisor=1024,
                                         desc=name, file=self.stream, leave=True, dynamic_ncols=True)
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total is not None and done >= total:
            bar.close()  # one finished bar a line; the next model's starts below it

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()


class InterruptGuard:
    """First Ctrl-C or SIGTERM (what render farms and schedulers send): finish the frame in
    hand, then stop. A second: stop now (the frame is discarded, atomic writes leave nothing
    partial). ``status`` is the shell's exit status for the signal: 130 (SIGINT), 143 (SIGTERM)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, cancel: threading.Event, program: str = "instmatt matte"):
        self.cancel = cancel
        self.program = program
        self.previous: dict = {}
        self.status = 130

    def _handler(self, signum, frame):
        if self.cancel.is_set():
            raise Interrupted(128 + signum)
        self.status = 128 + signum
        self.cancel.set()
        name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        sys.stderr.write(f"\n{self.program}: {name}: stopping after the frame in hand "
                         f"({name} again to stop at once)\n")
        sys.stderr.flush()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self.previous[signum] = signal.signal(signum, self._handler)
        return self

    def __exit__(self, *exc):
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        self.previous = {}


def setup_logging(verbose: bool = False) -> None:
    root = logging.getLogger("instmatt")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("instmatt: %(levelname)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False


def add_offline_argument(parser) -> None:
    parser.add_argument("--offline", action="store_true",
                        help="no network use at all (also INSTMATT_OFFLINE=1): a missing model is an error")


def apply_offline(args) -> None:
    """``--offline`` holds for the whole process, as INSTMATT_OFFLINE=1 does (the registry reads it)."""
    if getattr(args, "offline", False):
        import os

        from engine.registry.store import OFFLINE_ENV

        os.environ[OFFLINE_ENV] = "1"
