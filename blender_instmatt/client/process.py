"""One engine process: its stdin, a reader thread that turns its stdout into events on a
:class:`queue.Queue`, and a second thread that keeps the tail of its stderr for error
messages (docs/protocol.md)."""

from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess
import threading
import time

from .protocol import EXIT_EVENT, NOISE_EVENT, EngineError, EngineStartError, check_hello


class EngineClient:
    """One engine process, its stdin, and a queue of the events it printed."""

    def __init__(self, argv: list[str], cwd: str | None = None, env: dict | None = None,
                 log_path: str | None = None):
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.events: queue.Queue = queue.Queue()
        self.hello: dict | None = None
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self._stderr = collections.deque(maxlen=200)
        self._write_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    # -- life cycle

    def start(self) -> "EngineClient":
        """Spawn the process (does not wait for ``hello``; see :meth:`wait_hello`)."""
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # Ctrl-C in Blender's terminal is not the engine's
        if self.cwd and not os.path.isdir(self.cwd):
            raise EngineStartError(f"Engine folder does not exist: {self.cwd}")
        try:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                cwd=self.cwd, env=self.env, bufsize=0, **kwargs,
            )
        except FileNotFoundError:
            raise EngineStartError(
                f"Engine Python not found: {self.argv[0]} (set it in the add-on's preferences; "
                "the README's set-up creates <engine checkout>/.venv/bin/python)"
            ) from None
        except PermissionError:
            raise EngineStartError(f"Engine Python is not executable: {self.argv[0]}") from None
        except OSError as exc:
            raise EngineStartError(f"Cannot start the engine ({self.argv[0]}): {exc}") from None
        out = threading.Thread(target=self._read_stdout, name="instmatt-engine-stdout", daemon=True)
        err = threading.Thread(target=self._read_stderr, name="instmatt-engine-stderr", daemon=True)
        self._threads = [out, err]
        out.start()
        err.start()
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and self.returncode is None

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the engine to shut down, then terminate, then kill. Never raises."""
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            try:
                self.send({"type": "shutdown"})
            except EngineError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        for thread in self._threads:
            thread.join(timeout=1.0)
        self.returncode = proc.returncode

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.stop(timeout=1.0)

    # -- I/O

    def send(self, message: dict) -> None:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.poll() is not None:
            raise EngineError(self.death_message())
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8")
        try:
            with self._write_lock:
                proc.stdin.write(data)
                proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise EngineError(self.death_message()) from None

    def next_event(self, timeout: float | None = 0.0) -> dict | None:
        """The next event, or None when none arrived within ``timeout`` seconds."""
        try:
            if timeout is None or timeout > 0:
                event = self.events.get(timeout=timeout)
            else:
                event = self.events.get_nowait()
        except queue.Empty:
            return None
        if event.get("type") == "hello":
            self.hello = event
        return event

    def wait_hello(self, timeout: float = 120.0) -> dict:
        """Block until the engine introduces itself; raise :class:`EngineStartError`."""
        deadline = time.monotonic() + timeout
        while self.hello is None:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise EngineStartError(f"The engine did not start within {timeout:.0f} s{self.tail_suffix()}")
            event = self.next_event(timeout=min(left, 0.5))
            if event is None:
                continue
            if event["type"] == EXIT_EVENT:
                raise EngineStartError(self.death_message())
        check_hello(self.hello)
        return self.hello

    def request(self, message: dict, answer: str, timeout: float = 30.0) -> dict:
        """Send ``message`` and wait for the first event of type ``answer`` (for ping etc.)."""
        self.send(message)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EngineError(f"The engine did not answer {message.get('type')!r} within {timeout:.0f} s")
            event = self.next_event(timeout=min(left, 0.5))
            if event is None:
                continue
            if event["type"] == answer:
                return event
            if event["type"] == EXIT_EVENT:
                raise EngineError(self.death_message())

    # -- diagnostics

    def stderr_tail(self, lines: int = 8) -> str:
        return "\n".join(list(self._stderr)[-lines:])

    def tail_suffix(self) -> str:
        tail = last_meaningful_line(list(self._stderr))
        return f": {tail}" if tail else ""

    def death_message(self) -> str:
        code = self.proc.poll() if self.proc else None
        killed = signal_death(code)
        if killed:  # its last log line (an INFO about the frame in hand) is not why it died
            where = f"; its log: {self.log_path}" if self.log_path else ""
            return f"{killed}{where}"
        what = "The engine stopped" if self.hello else "The engine failed to start"
        if code is not None:
            what += f" (exit code {code})"
        tail = last_meaningful_line(list(self._stderr))
        if tail:
            return f"{what}: {tail}"
        return f"{what}; command: {' '.join(self.argv)}"

    # -- threads

    def _read_stdout(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        try:
            for raw in iter(proc.stdout.readline, b""):
                line = raw.decode("utf-8", "replace").strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                    self._stderr.append(f"[stdout] {line}")
                    self.events.put({"type": NOISE_EVENT, "line": line})
                    continue
                self.events.put(event)
        except (OSError, ValueError):
            pass
        # Let stderr drain first so that the exit event can say why.
        for thread in self._threads[1:]:
            thread.join(timeout=2.0)
        try:
            code = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        self.events.put({"type": EXIT_EVENT, "returncode": code})

    def _read_stderr(self) -> None:
        proc = self.proc
        assert proc is not None and proc.stderr is not None
        log = open_log(self.log_path, self.argv, self.proc.pid)
        try:
            for raw in iter(proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace").rstrip()
                self._stderr.append(line)
                if log:
                    log.write(line + "\n")
                    log.flush()
        except (OSError, ValueError):
            pass
        finally:
            if log:
                log.close()


# Why a signal usually ends an engine: the kernel's out-of-memory killer sends SIGKILL.
SIGNAL_HINTS = {"SIGKILL": "perhaps out of memory", "SIGSEGV": "a crash in native code",
                "SIGBUS": "a crash in native code", "SIGABRT": "a crash in native code",
                "SIGTERM": "stopped from outside"}
LOG_ROTATE_BYTES = 8 << 20


def signal_death(code: int | None) -> str:
    """"The engine was killed (SIGKILL), perhaps out of memory" for an exit by a signal, else ""."""
    if code is None or code >= 0:
        return ""
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    hint = SIGNAL_HINTS.get(name)
    return f"The engine was killed ({name})" + (f", {hint}" if hint else "")


def open_log(path: str | None, argv: list[str], pid: int):
    """The engine log, appended to (a new file once it grows past LOG_ROTATE_BYTES), with a
    line that marks where this engine's output starts; None when it cannot be opened."""
    if not path:
        return None
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        if os.path.isfile(path) and os.path.getsize(path) > LOG_ROTATE_BYTES:
            os.replace(path, path + ".1")
        log = open(path, "a", encoding="utf-8")
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} engine pid {pid}: {' '.join(argv)}\n")
        log.flush()
        return log
    except OSError:
        return None


def last_meaningful_line(lines: list[str]) -> str:
    """The line of a stderr tail that says what went wrong (a traceback's last line)."""
    for line in reversed(lines):
        text = line.strip()
        if text and not text.startswith(("^", "~")):
            return text[:400]
    return ""
