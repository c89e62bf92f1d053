"""The add-on's side of the engine protocol (docs/protocol.md): no bpy in here.

The engine is a child process (``<python> -m engine serve --stdio``) that speaks JSON
lines.  :class:`EngineClient` owns the process, a reader thread that turns its stdout
into events on a :class:`queue.Queue`, and a second thread that keeps the tail of its
stderr for error messages.  :class:`MatteJob` is the state machine of one ``matte``
request; the Blender operator drives it from a timer (modal, UI) or in a loop
(``execute``, scripts and ``blender -b``), and tests drive it directly.

Nothing here raises into Blender's event loop: failures end up as ``job.error`` (one
readable line, with the engine's last stderr lines where they help).
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time

PROTOCOL_MAJOR = 1

# Pseudo-events the reader threads put on the queue next to the engine's own.
EXIT_EVENT = "_exit"  # stdout closed: the process ended (returncode in the event)
NOISE_EVENT = "_noise"  # a stdout line that is not JSON (protocol violation; kept for the log)


class EngineError(Exception):
    """The engine cannot be used; the message is one line meant for the artist."""


class EngineStartError(EngineError):
    """The engine process could not be started or did not introduce itself."""


# --------------------------------------------------------------------------- command


def default_python(root: str) -> str:
    """The interpreter that the README's set-up creates: ``<root>/.venv``."""
    if os.name == "nt":
        return os.path.join(root, ".venv", "Scripts", "python.exe")
    return os.path.join(root, ".venv", "bin", "python")


def find_engine_root(*candidates: str) -> str | None:
    """The first folder among ``candidates`` (or their parents) that holds ``engine/``.

    A Python inside ``<root>/.venv/bin`` points at ``<root>``; so does the add-on when it
    lives in the repository (``<root>/blender_instmatt``).
    """
    for start in candidates:
        if not start:
            continue
        path = os.path.realpath(os.path.expanduser(start))
        if os.path.isfile(path):
            path = os.path.dirname(path)
        for _ in range(5):
            if os.path.isfile(os.path.join(path, "engine", "__init__.py")):
                return path
            parent = os.path.dirname(path)
            if parent == path:
                break
            path = parent
    return None


def build_command(
    python: str = "",
    command: str = "",
    engine_root: str = "",
    addon_dir: str = "",
) -> tuple[list[str], str | None, dict[str, str]]:
    """``(argv, cwd, env)`` that start the engine.

    ``command`` (a full command line, e.g. ``ssh gpu /opt/instmatt/.venv/bin/python -m
    engine serve --stdio``) wins when given.  Otherwise ``python -m engine serve --stdio``
    with ``python`` defaulting to ``<repo>/.venv/bin/python`` when the add-on lives in the
    repository.  The folder that holds ``engine/`` becomes the working directory and is
    put first on ``PYTHONPATH``, so the engine imports whether or not it is pip-installed.
    """
    repo = find_engine_root(addon_dir) if addon_dir else None
    if command.strip():
        argv = shlex.split(command, posix=(os.name != "nt"))
    else:
        if not python.strip():
            if repo is None:
                raise EngineStartError(
                    "No engine Python set: name the engine's interpreter "
                    "(<engine checkout>/.venv/bin/python) in the add-on's preferences"
                )
            python = default_python(repo)
        python = os.path.expanduser(python.strip())
        argv = [python, "-m", "engine", "serve", "--stdio"]
    root = engine_root.strip() if engine_root else ""
    if root:
        root = os.path.realpath(os.path.expanduser(root))
    else:
        program = argv[0] if argv and os.path.dirname(argv[0]) else ""  # a path, not a bare "ssh"
        root = (find_engine_root(program) if program else None) or repo or ""
    env = dict(os.environ)
    for key in ("PYTHONHOME", "PYTHONSTARTUP", "PYTHONEXECUTABLE"):
        env.pop(key, None)  # Blender's own Python settings must not leak into the engine's
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONIOENCODING", "utf-8")
    if root:
        paths = [root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return argv, (root or None), env


# --------------------------------------------------------------------------- client


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
                raise EngineStartError(f"The engine did not start within {timeout:.0f} s{self._tail_suffix()}")
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

    def _tail_suffix(self) -> str:
        tail = last_meaningful_line(list(self._stderr))
        return f": {tail}" if tail else ""

    def death_message(self) -> str:
        code = self.proc.poll() if self.proc else None
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
        log = None
        if self.log_path:
            try:
                log = open(self.log_path, "a", encoding="utf-8")
            except OSError:
                log = None
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


def last_meaningful_line(lines: list[str]) -> str:
    """The line of a stderr tail that says what went wrong (a traceback's last line)."""
    for line in reversed(lines):
        text = line.strip()
        if text and not text.startswith(("^", "~")):
            return text[:400]
    return ""


def check_hello(hello: dict) -> None:
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


# --------------------------------------------------------------------------- shared engine

_shared: EngineClient | None = None
_shared_lock = threading.Lock()


def shared_engine(argv: list[str], cwd: str | None, env: dict | None, log_path: str | None = None) -> EngineClient:
    """The warm engine for this Blender session: started once, restarted if it died or
    if the command changed."""
    global _shared
    with _shared_lock:
        client = _shared
        if client is not None and (not client.alive() or client.argv != list(argv) or client.cwd != cwd):
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


# --------------------------------------------------------------------------- one job

_ids = itertools.count(1)


def new_request_id() -> str:
    return f"blender-{os.getpid()}-{next(_ids)}"


class MatteJob:
    """One ``matte`` request, as a state machine fed by the engine's events.

    ``poll(timeout)`` handles whatever arrived and returns True once the job is over;
    then ``state`` is DONE, CANCELLED or FAILED and ``error`` says why it failed.
    """

    STARTING = "STARTING"  # waiting for the engine's hello
    RUNNING = "RUNNING"
    CANCELLING = "CANCELLING"
    DONE = "DONE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    FINAL = (DONE, CANCELLED, FAILED)

    def __init__(self, client: EngineClient, request: dict, start_timeout: float = 180.0,
                 cancel_timeout: float = 120.0, clock=time.monotonic):
        self.client = client
        self.request = dict(request)
        self.request.setdefault("type", "matte")
        self.request.setdefault("id", new_request_id())
        self.id = self.request["id"]
        self.start_timeout = start_timeout
        self.cancel_timeout = cancel_timeout
        self.clock = clock
        self.state = self.STARTING
        self.error = ""
        self.warnings: list[str] = []
        self.frames: dict[int, str] = {}  # frame number -> EXR path, in arrival order
        self.frame_people: dict[int, list[str]] = {}  # frame number -> the people in its EXR
        self.people: list[str] = []
        self.done_count = 0
        self.total = 0
        self.fps = 0.0
        self.eta_s: float | None = None
        self.current_frame: int | None = None
        self.started_at = clock()
        self.sent_at: float | None = None
        self.cancel_at: float | None = None
        self.finished_at: float | None = None
        self.result: dict | None = None
        self._dead_since: float | None = None
        self._retry_at: float | None = None
        if client.hello is not None:
            self._send_request()

    # -- public

    @property
    def finished(self) -> bool:
        return self.state in self.FINAL

    def poll(self, timeout: float = 0.0) -> bool:
        """Handle all queued events (waiting up to ``timeout`` for the first one)."""
        if self.finished:
            return True
        wait = timeout
        while not self.finished:
            event = self.client.next_event(timeout=wait)
            wait = 0.0
            if event is None:
                break
            self._handle(event)
        self._check_timeouts()
        return self.finished

    def run(self, on_progress=None, poll_interval: float = 0.25) -> str:
        """Block until the job is over (the ``execute`` path); returns the final state."""
        while not self.poll(poll_interval):
            if on_progress is not None:
                on_progress(self)
        if on_progress is not None:
            on_progress(self)
        return self.state

    def cancel(self, force: bool = False) -> None:
        """Ask the engine to stop after the frame in hand; ``force`` kills it at once."""
        if self.finished:
            return
        if self.state == self.STARTING:
            self._finish(self.CANCELLED)  # nothing was sent; the engine keeps warming up
            return
        if self._retry_at is not None:  # the engine has not taken the request yet
            self._retry_at = None
            self._finish(self.CANCELLED)
            return
        if force or self.state == self.CANCELLING:
            self.client.kill()
            self._finish(self.CANCELLED)
            return
        try:
            self.client.send({"type": "cancel", "id": self.id})
        except EngineError as exc:
            self._fail(str(exc))
            return
        self.state = self.CANCELLING
        self.cancel_at = self.clock()

    @property
    def fraction(self) -> float:
        if self.total <= 0:
            return 0.0
        return min(1.0, self.done_count / self.total)

    def status_text(self) -> str:
        if self.state == self.STARTING:
            return f"InstMatt: starting the engine ({self.clock() - self.started_at:.0f} s)"
        if self.state == self.CANCELLING:
            return "InstMatt: cancelling after the frame in hand..."
        text = f"InstMatt: {self.done_count}/{self.total or '?'} frames"
        if self.fps:
            text += f", {self.fps:.2f} fps"
        if self.eta_s is not None and self.done_count < (self.total or 0):
            text += f", {format_seconds(self.eta_s)} left"
        return text + "  (Esc to cancel)"

    # -- internals

    def _send_request(self) -> None:
        hello = self.client.hello or {}
        for key in ("warning", "error"):
            if hello.get(key):  # e.g. random weights, a network that failed to load
                self.warnings.append(f"engine: {hello[key]}")
        try:
            check_hello(self.client.hello or {})
            self.client.send(self.request)
        except EngineError as exc:
            self._fail(str(exc))
            return
        self.state = self.RUNNING
        self.sent_at = self.clock()

    def _handle(self, event: dict) -> None:
        kind = event.get("type")
        if kind == "hello":
            if self.state == self.STARTING:
                self._send_request()
            return
        if kind == EXIT_EVENT:
            self._fail(self.client.death_message())
            return
        if kind == NOISE_EVENT or self.state == self.STARTING:
            return
        event_id = event.get("id")
        if kind == "error" and event_id is None:
            # Not about a job of ours by id: fatal ones can only answer our request (the only
            # one in flight); others (a request it could not read, a start-up problem) warn.
            message = str(event.get("message", "unknown error"))
            if event.get("fatal", False):
                self._fail(f"Engine: {message}")
            elif f"engine: {message}" not in self.warnings:
                self.warnings.append(f"engine: {message}")
            return
        if event_id != self.id:
            return  # a late event of an earlier job
        if kind == "progress":
            self.done_count = int(event.get("done", self.done_count))
            self.total = int(event.get("total", self.total) or self.total)
            self.fps = float(event.get("fps") or 0.0)
            eta = event.get("eta_s")
            self.eta_s = float(eta) if eta is not None else None
            self.current_frame = event.get("frame", self.current_frame)
        elif kind == "frame":
            frame = int(event["frame"])
            self.frames[frame] = event["path"]
            self.frame_people[frame] = list(event.get("people") or [])
            for person in event.get("people") or []:
                if person not in self.people:
                    self.people.append(person)
            self.current_frame = frame
        elif kind == "done":
            self.result = event
            for person in event.get("people") or []:
                if person not in self.people:
                    self.people.append(person)
            self._finish(self.CANCELLED if event.get("cancelled") else self.DONE)
        elif kind == "error":
            message = str(event.get("message", "unknown error"))
            if self.state == self.CANCELLING and message.startswith("cancel:"):
                self._finish(self.CANCELLED)  # the engine was not running it (any more)
            elif message.startswith("busy") and not self.frames and self.state == self.RUNNING \
                    and self.clock() - (self.sent_at or self.started_at) < self.cancel_timeout:
                # An earlier job (e.g. one Blender abandoned) is finishing its frame: try again.
                self._retry_at = self.clock() + 0.5
            elif event.get("fatal", True):
                self._fail(f"Engine: {message}")
            else:
                self.warnings.append(message)

    def _check_timeouts(self) -> None:
        if self.finished:
            return
        now = self.clock()
        if self._retry_at is not None and now >= self._retry_at and self.state == self.RUNNING:
            self._retry_at = None
            try:
                self.client.send(self.request)
            except EngineError as exc:
                self._fail(str(exc))
                return
        if self.state == self.STARTING and now - self.started_at > self.start_timeout:
            tail = self.client._tail_suffix()
            self.client.kill()
            self._fail(f"The engine did not start within {self.start_timeout:.0f} s{tail}")
        elif self.state == self.CANCELLING and self.cancel_at is not None \
                and now - self.cancel_at > self.cancel_timeout:
            self.client.kill()
            self._finish(self.CANCELLED)
        elif self.state in (self.RUNNING, self.CANCELLING):
            # The reader thread reports the exit; if something else keeps the engine's stdout
            # open (a grandchild), notice the death ourselves after a grace period.
            proc = self.client.proc
            if proc is not None and proc.poll() is not None:
                if self._dead_since is None:
                    self._dead_since = now
                elif now - self._dead_since > 5.0:
                    self._fail(self.client.death_message())

    def _fail(self, message: str) -> None:
        self.error = message
        self._finish(self.FAILED)

    def _finish(self, state: str) -> None:
        self.state = state
        self.finished_at = self.clock()


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


if __name__ == "__main__":  # pragma: no cover - a manual smoke test: python engine_client.py PYTHON
    argv, cwd, env = build_command(python=sys.argv[1] if len(sys.argv) > 1 else "",
                                   addon_dir=os.path.dirname(os.path.abspath(__file__)))
    engine = EngineClient(argv, cwd, env).start()
    print(engine.wait_hello())
    print(engine.request({"type": "ping"}, "pong"))
    engine.stop()
