"""instmatt serve --stdio, driven as the Blender add-on drives it: a real subprocess."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading

import numpy as np
import pytest

TIMEOUT = 120


class Engine:
    def __init__(self, python, repo_root, *args, stderr_path):
        self.stderr = open(stderr_path, "wb")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([python, "-m", "engine", "serve", "--stdio", *map(str, args)], cwd=repo_root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, env=env)
        self.lines: queue.Queue = queue.Queue()
        self.raw: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.raw.append(line)
            self.lines.put(json.loads(line))  # every stdout line must be JSON
        self.lines.put(None)

    def send(self, obj):
        data = obj if isinstance(obj, (bytes, str)) else json.dumps(obj)
        if isinstance(data, str):
            data = data.encode()
        self.proc.stdin.write(data.rstrip(b"\n") + b"\n")
        self.proc.stdin.flush()

    def next(self, timeout=TIMEOUT):
        event = self.lines.get(timeout=timeout)
        assert event is not None, "the engine closed its stdout"
        return event

    def until(self, predicate, timeout=TIMEOUT):
        """Events up to and including the first one that satisfies ``predicate``."""
        seen = []
        while True:
            event = self.next(timeout)
            seen.append(event)
            if predicate(event):
                return seen

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.stderr.close()


@pytest.fixture
def engine(engine_python, repo_root, tiny_weights, tmp_path):
    started = []

    def start(*extra):
        e = Engine(engine_python, repo_root, "--weights", tiny_weights, "--backend", "pytorch", "--threads", "1",
                   *extra, stderr_path=tmp_path / f"engine{len(started)}.log")
        started.append(e)
        return e

    yield start
    for e in started:
        e.close()


@pytest.fixture
def shot(small_clip, write_sequence):
    frames, alphas = small_clip
    pattern, masks = write_sequence(frames, alphas, first=1001)
    return pattern, str(masks), len(frames)


def test_hello_ping_malformed_and_shutdown(engine, tiny_weights):
    e = engine()
    hello = e.next()
    assert hello["type"] == "hello" and hello["protocol"] == 1
    assert hello["backend"] == "pytorch-cpu" and hello["weights"] == str(tiny_weights)
    assert hello["pid"] == e.proc.pid and isinstance(hello["engine_version"], str)
    e.send({"type": "ping"})
    assert e.next() == {"type": "pong"}
    e.send("this is not json")
    error = e.next()
    assert error["type"] == "error" and "malformed" in error["message"] and "id" not in error
    e.send("[1, 2]")
    assert e.next()["type"] == "error"
    e.send({"type": "dance", "id": "x"})
    error = e.next()
    assert error["type"] == "error" and error["id"] == "x" and "unknown request type" in error["message"]
    e.send({"type": "matte", "input": "a.png"})  # no id
    assert "needs an 'id'" in e.next()["message"]
    e.send({"type": "ping"})  # still alive
    assert e.next()["type"] == "pong"
    e.send({"type": "shutdown"})
    assert e.next() == {"type": "bye"}
    assert e.proc.wait(30) == 0


def test_matte_job_events(engine, shot, tmp_path):
    pattern, masks, count = shot
    e = engine()
    e.next()  # hello
    out = tmp_path / "out" / "instmatt.####.exr"
    request = {"type": "matte", "id": "r1", "input": pattern, "output": str(out), "frames": "1002-1004",
               "guidance": {"kind": "masks", "path": masks}, "options": {"refine": "none", "write_png": True}}
    e.send(request)
    events = e.until(lambda ev: ev["type"] in ("done", "error"))
    done = events[-1]
    assert done["type"] == "done" and done["id"] == "r1" and done["frames"] == 3 and not done["cancelled"]
    frames = [ev for ev in events if ev["type"] == "frame"]
    progress = [ev for ev in events if ev["type"] == "progress"]
    assert [ev["frame"] for ev in frames] == [1002, 1003, 1004]
    assert [ev["done"] for ev in progress] == [0, 1, 2, 3] and all(ev["total"] == 3 for ev in progress)
    assert progress[0]["fps"] is None and progress[0]["eta_s"] is None
    assert progress[-1]["fps"] > 0 and progress[-1]["eta_s"] == 0
    for ev in frames:
        assert ev["id"] == "r1" and os.path.isfile(ev["path"]) and not ev["skipped"]
        assert ev["people"] and all(p.startswith("person_") for p in ev["people"])
    assert done["people"] == sorted({p for ev in frames for p in ev["people"]})
    assert (tmp_path / "out" / "png" / frames[0]["people"][0] / "instmatt.1002.png").is_file()
    # the same request again: everything is there already
    e.send(dict(request, id="r2"))
    events = e.until(lambda ev: ev["type"] in ("done", "error"))
    assert events[-1]["type"] == "done" and events[-1]["skipped"] == 3 and events[-1]["written"] == 0
    assert all(ev["skipped"] for ev in events if ev["type"] == "frame")
    e.send({"type": "shutdown"})
    e.until(lambda ev: ev["type"] == "bye")
    assert e.proc.wait(30) == 0


def test_cancel_and_busy(engine, small_clip, write_sequence, tmp_path):
    frames, alphas = small_clip
    count = 8 * len(frames)  # long enough that the cancel arrives while it runs
    pattern, masks = write_sequence(np.concatenate([frames] * 8), np.concatenate([alphas] * 8))
    masks = str(masks)
    e = engine()
    e.next()
    out = tmp_path / "out" / "c.####.exr"
    e.send({"type": "matte", "id": 7, "input": pattern, "output": str(out), "guidance": {"kind": "masks", "path": masks},
            "options": {"refine": "dense"}})
    e.send({"type": "matte", "id": 8, "input": pattern, "output": str(out)})
    busy = e.until(lambda ev: ev["type"] == "error")[-1]
    assert busy["id"] == 8 and busy["message"] == "busy: job 7 is running"
    e.until(lambda ev: ev["type"] == "frame")  # the first frame is out
    e.send({"type": "cancel", "id": 7})
    events = e.until(lambda ev: ev["type"] == "done")
    done = events[-1]
    assert done["id"] == 7 and done["cancelled"] is True and done["frames"] < count
    written = sorted(p for p in os.listdir(out.parent))
    assert len(written) == done["frames"] and all(p.endswith(".exr") and not p.startswith(".") for p in written)
    e.send({"type": "cancel", "id": 7})  # nothing runs now
    assert e.next()["type"] == "error"
    e.proc.stdin.close()  # EOF = shutdown
    assert e.proc.wait(30) == 0


def test_job_errors_are_messages(engine, shot, tmp_path):
    pattern, masks, _ = shot
    e = engine()
    e.next()
    e.send({"type": "matte", "id": "a", "input": str(tmp_path / "missing.####.png"), "output": str(tmp_path / "o")})
    error = e.until(lambda ev: ev["type"] == "error")[-1]
    assert error["id"] == "a" and error["fatal"] is True and "missing.####.png" in error["message"]
    assert error["file"].endswith("missing.####.png")
    e.send({"type": "matte", "id": "b", "input": pattern, "output": str(tmp_path / "o"),
            "options": {"refine": "sharpest"}})
    error = e.until(lambda ev: ev["type"] == "error")[-1]
    assert error["id"] == "b" and "refine" in error["message"]
    # one unreadable frame: a non-fatal error for it, the job goes on
    bad = pattern.replace("####", "1002")
    with open(bad, "wb") as handle:
        handle.write(b"\x89PNG broken")
    e.send({"type": "matte", "id": "c", "input": pattern, "output": str(tmp_path / "o" / "x.####.exr"),
            "guidance": {"kind": "masks", "path": masks}, "options": {"refine": "none"}})
    events = e.until(lambda ev: ev["type"] == "done" or (ev["type"] == "error" and ev.get("fatal")))
    errors = [ev for ev in events if ev["type"] == "error"]
    assert len(errors) == 1 and errors[0]["fatal"] is False and errors[0]["file"] == bad
    assert events[-1]["type"] == "done" and events[-1]["failed"] == 1
    e.send({"type": "shutdown"})
    e.until(lambda ev: ev["type"] == "bye")
    assert e.proc.wait(30) == 0


def test_stdout_carries_only_protocol_lines(engine, tmp_path):
    e = engine("--verbose")
    e.next()
    e.send({"type": "ping"})
    e.next()
    e.send({"type": "shutdown"})
    e.until(lambda ev: ev["type"] == "bye")
    e.proc.wait(30)
    for line in e.raw:
        assert isinstance(json.loads(line), dict)
    log = (tmp_path / "engine0.log").read_text()
    assert "backend pytorch" in log  # logs went to stderr


def test_bad_weights_still_say_hello(engine_python, repo_root, tmp_path):
    (tmp_path / "broken.safetensors").write_bytes(b"")
    e = Engine(engine_python, repo_root, "--weights", tmp_path / "broken.safetensors", "--backend", "pytorch",
               stderr_path=tmp_path / "log")
    try:
        hello = e.next()
        assert hello["type"] == "hello" and hello["backend"] is None and "broken.safetensors" in hello["error"]
        assert e.next()["type"] == "error"
        e.send({"type": "ping"})
        assert e.next()["type"] == "pong"
    finally:
        e.close()


BAD_LINES = {
    "NaN id": b'{"type":"ping","id":NaN}',
    "Infinity id": b'{"type":"ping","id":Infinity}',
    "5000-digit number": b'{"type":"ping","id":' + b"7" * 5000 + b"}",
    "5000-digit option": b'{"type":"matte","id":"m","input":"a","output":"b","options":{"threads":' + b"9" * 5000
                         + b"}}",
    "100k nested brackets": b"[" * 100_000 + b"]" * 100_000,
    "100k nested objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "not UTF-8": b'{"type":"ping","id":"\xff\xfe"}',
    "2 MiB line": b'{"type":"ping","id":"' + b"x" * (2 << 20) + b'"}',
    "bool id": b'{"type":"ping","id":true}',
    "float id": b'{"type":"ping","id":1.5}',
}


@pytest.mark.parametrize("name", list(BAD_LINES))
def test_a_bad_line_gets_an_answer_and_the_server_lives_on(engine, name):
    e = engine("--no-preload")
    assert e.next()["type"] == "hello"
    e.send(BAD_LINES[name])
    answer = e.next()
    assert answer["type"] in ("error", "pong"), answer
    assert answer.get("id") in (None, "m"), answer  # an id is echoed only when it is a string or an integer
    e.send({"type": "ping", "id": 7})
    assert e.next() == {"type": "pong", "id": 7}
    assert e.proc.poll() is None


def test_bad_lines_while_a_job_runs_leave_the_job_alone(engine, shot, tmp_path):
    pattern, masks, count = shot
    e = engine()
    assert e.next()["type"] == "hello"
    e.send({"type": "matte", "id": "job", "input": pattern, "output": str(tmp_path / "out" / "m.####.exr"),
            "guidance": {"kind": "masks", "path": masks}})
    for line in BAD_LINES.values():
        e.send(line)
    e.send({"type": "ping", "id": "after"})
    events = e.until(lambda ev: ev["type"] == "done" and ev.get("id") == "job")
    assert any(ev == {"type": "pong", "id": "after"} for ev in events) or e.until(lambda ev: ev["type"] == "pong")
    assert events[-1]["written"] == count and events[-1]["failed"] == 0
    assert e.proc.poll() is None


def test_line_cap_is_documented(repo_root):
    from engine.commands.serve import MAX_LINE

    assert MAX_LINE == 1 << 20
    assert "1 MiB" in (repo_root / "docs" / "protocol.md").read_text()


BAD_OPTIONS = {
    "threads": (-3, "threads"), "max_side": (0, "max_side"), "refine": ("sideways", "refine"),
    "backend": ("abacus", "backend"), "score": (2.5, "score"), "min_area": (-1, "min_area"),
    "detector_size": (3, "detector_size"), "device": ("quantum:0", "device"), "weights": ("/no/such.safetensors", "weights"),
    "detector_weights": ("/no/such.pth", "detector"), "write_png": ("yes", "write_png"),
}


@pytest.mark.parametrize("option", list(BAD_OPTIONS))
def test_every_bad_option_has_a_clear_message(engine, shot, tmp_path, option):
    value, needle = BAD_OPTIONS[option]
    pattern, masks, _ = shot
    e = engine("--no-preload")
    assert e.next()["type"] == "hello"
    e.send({"type": "matte", "id": "o", "input": pattern, "output": str(tmp_path / "out" / "m.####.exr"),
            "guidance": {"kind": "detector" if option == "detector_weights" else "masks", "path": masks},
            "options": {option: value}})
    events = e.until(lambda ev: ev.get("id") == "o" and (ev["type"] == "done" or ev.get("fatal")))
    final = events[-1]
    assert final["type"] == "error" and final["fatal"], events
    assert "internal error" not in final["message"] and needle in final["message"], final["message"]
    assert not list((tmp_path / "out").glob("*.exr")) if (tmp_path / "out").exists() else True
    e.send({"type": "ping", "id": 1})
    assert e.next() == {"type": "pong", "id": 1}
