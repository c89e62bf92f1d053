"""engine_client.py on its own (it imports no bpy): commands, start-up errors, the job
state machine fed by hand-made events and by the protocol stand-in."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from blender_helpers import FAKE_ENGINE, PACKAGE_DIR, REPO


@pytest.fixture(scope="module")
def ec(bpy):  # needs the bpy environment only because this folder runs there
    spec = importlib.util.spec_from_file_location("instmatt_engine_client", os.path.join(PACKAGE_DIR,
                                                                                         "engine_client.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake(ec, mode="normal", delay=0.0):
    return ec.EngineClient([sys.executable, FAKE_ENGINE, "--mode", mode, "--delay", str(delay)]).start()


def test_build_command(ec, tmp_path):
    argv, cwd, env = ec.build_command(addon_dir=PACKAGE_DIR)
    assert argv == [os.path.join(REPO, ".venv", "bin", "python"), "-m", "engine", "serve", "--stdio"]
    assert cwd == REPO and env["PYTHONPATH"].split(os.pathsep)[0] == REPO
    assert env["PYTHONUNBUFFERED"] == "1" and "PYTHONHOME" not in env
    argv, cwd, env = ec.build_command(command="ssh gpu '/opt/x y/python' -m engine serve --stdio",
                                      addon_dir=str(tmp_path))
    assert argv == ["ssh", "gpu", "/opt/x y/python", "-m", "engine", "serve", "--stdio"] and cwd is None
    # a python inside <root>/.venv points at <root>
    root = tmp_path / "checkout"
    (root / "engine").mkdir(parents=True)
    (root / "engine" / "__init__.py").write_text("")
    argv, cwd, _ = ec.build_command(python=str(root / ".venv" / "bin" / "python"), addon_dir=str(tmp_path))
    assert cwd == str(root)
    with pytest.raises(ec.EngineStartError, match="No engine Python set"):
        ec.build_command(addon_dir=str(tmp_path))


def test_missing_interpreter(ec):
    client = ec.EngineClient(["/nonexistent/python", "-m", "engine", "serve", "--stdio"])
    with pytest.raises(ec.EngineStartError, match="Engine Python not found: /nonexistent/python"):
        client.start()


def test_engine_that_exits_at_start(ec):
    client = fake(ec, "exit-on-start")
    with pytest.raises(ec.EngineStartError) as info:
        client.wait_hello(timeout=30)
    assert "failed to start (exit code 1)" in str(info.value)
    assert "No module named 'torch'" in str(info.value)


def test_protocol_mismatch(ec):
    client = fake(ec, "bad-protocol")
    try:
        with pytest.raises(ec.EngineStartError, match="speaks protocol 99"):
            client.wait_hello(timeout=30)
    finally:
        client.stop()


def test_ping_and_polite_shutdown(ec):
    client = fake(ec)
    hello = client.wait_hello(timeout=30)
    assert hello["protocol"] == 1 and hello["pid"] == client.pid
    assert client.request({"type": "ping"}, "pong")["type"] == "pong"
    client.stop()
    assert client.returncode == 0 and not client.alive()


def FakeClient(ec, hello=True):
    """Events in, requests out: the job state machine without a process. The real client's
    queue handling (``next_event``) is kept; only the process side is replaced."""

    class Fake(ec.EngineClient):
        def __init__(self):
            super().__init__(["no-process"])
            self.hello = {"type": "hello", "protocol": 1} if hello else None
            self.sent = []
            self.killed = False

        def send(self, message):
            self.sent.append(message)

        def kill(self):
            self.killed = True

        def alive(self):
            return not self.killed

        def death_message(self):
            return "The engine stopped (exit code 3): boom"

        def _tail_suffix(self):
            return ""

    return Fake()


def test_job_state_machine(ec):
    client = FakeClient(ec, hello=False)
    job = ec.MatteJob(client, {"input": "in", "output": "out.####.exr", "id": "j1"})
    assert job.state == "STARTING" and not client.sent
    assert "starting the engine" in job.status_text()
    client.events.put({"type": "hello", "protocol": 1, "warning": "no trained weights"})
    job.poll()
    assert job.state == "RUNNING" and client.sent[0]["type"] == "matte" and client.sent[0]["id"] == "j1"
    assert job.warnings == ["engine: no trained weights"]
    for event in (
        {"type": "done", "id": "old", "frames": 1, "people": [], "cancelled": False},  # a late event of another job
        {"type": "error", "message": "malformed request", "fatal": False},
        {"type": "frame", "id": "j1", "frame": 7, "path": "/o/out.0007.exr", "people": ["person_02"],
         "skipped": False},
        {"type": "progress", "id": "j1", "done": 1, "total": 4, "frame": 7, "fps": 2.0, "eta_s": 90.0},
        {"type": "error", "id": "j1", "message": "frame 8: truncated", "fatal": False},
    ):
        client.events.put(event)
    job.poll()
    assert job.state == "RUNNING"
    assert job.frames == {7: "/o/out.0007.exr"} and job.people == ["person_02"]
    assert job.fraction == 0.25
    assert "1/4 frames, 2.00 fps, 1 min 30 s left" in job.status_text()
    assert job.warnings[1:] == ["engine: malformed request", "frame 8: truncated"]
    client.events.put({"type": "done", "id": "j1", "frames": 4, "people": ["person_02", "person_01"],
                       "cancelled": False})
    assert job.poll() and job.state == "DONE" and job.people == ["person_02", "person_01"]


def test_job_fatal_error_and_engine_death(ec):
    client = FakeClient(ec)
    job = ec.MatteJob(client, {"input": "in", "output": "o", "id": "j2"})
    assert job.state == "RUNNING"  # the engine was warm: the request went at once
    client.events.put({"type": "error", "id": "j2", "message": "in: input not found", "fatal": True})
    assert job.poll() and job.state == "FAILED" and job.error == "Engine: in: input not found"
    client = FakeClient(ec)
    job = ec.MatteJob(client, {"input": "in", "output": "o", "id": "j3"})
    client.events.put({"type": ec.EXIT_EVENT, "returncode": 3})
    assert job.poll() and job.state == "FAILED" and "exit code 3" in job.error


def test_job_cancel_paths(ec):
    clock = [0.0]
    client = FakeClient(ec)
    job = ec.MatteJob(client, {"input": "in", "output": "o", "id": "j4"}, cancel_timeout=10, clock=lambda: clock[0])
    job.cancel()
    assert job.state == "CANCELLING" and client.sent[-1] == {"type": "cancel", "id": "j4"}
    clock[0] = 11.0  # the engine never answers: it is stopped
    assert job.poll() and job.state == "CANCELLED" and client.killed
    # cancelling before the engine said hello sends nothing
    client = FakeClient(ec, hello=False)
    job = ec.MatteJob(client, {"input": "in", "output": "o"})
    job.cancel()
    assert job.state == "CANCELLED" and client.sent == [] and not client.killed
    # a start-up that takes too long fails with a clear message
    client = FakeClient(ec, hello=False)
    job = ec.MatteJob(client, {"input": "in", "output": "o"}, start_timeout=5, clock=lambda: clock[0])
    clock[0] += 6
    assert job.poll() and job.state == "FAILED" and "did not start within 5 s" in job.error


def test_real_process_job_and_cancel(ec, tmp_path):
    client = fake(ec, delay=0.4)
    try:
        folder = tmp_path / "masks"
        for frame in (1, 2, 3, 4):
            (folder / f"{frame:04d}").mkdir(parents=True)
        job = ec.MatteJob(client, {"input": "in.mp4", "output": str(tmp_path / "o.####.exr"), "frames": [1, 4],
                                   "guidance": {"kind": "masks", "path": str(folder)}})
        while not job.poll(0.2) and job.done_count < 1:
            pass
        job.cancel()
        assert job.run() == "CANCELLED"
        assert 1 <= len(job.frames) < 4
        assert sorted(os.listdir(tmp_path)) == ["masks"] + [f"o.{f:04d}.exr" for f in sorted(job.frames)]
        assert client.alive()  # warm for the next job
    finally:
        client.stop()


def test_shared_engine_restarts_when_dead_or_changed(ec):
    argv = [sys.executable, FAKE_ENGINE]
    try:
        first = ec.shared_engine(argv, None, None)
        assert ec.shared_engine(argv, None, None) is first
        first.kill()
        second = ec.shared_engine(argv, None, None)
        assert second is not first and second.alive()
        third = ec.shared_engine(argv + ["--delay", "0"], None, None)
        assert third is not second and not second.alive()
    finally:
        ec.stop_shared_engine()
    assert ec.current_engine() is None


def test_exr_header_reader(bpy, tmp_path):
    import json

    import numpy as np
    import OpenEXR
    from blender_helpers import write_matte_exrs

    spec = importlib.util.spec_from_file_location("instmatt_exrheader", os.path.join(PACKAGE_DIR, "exrheader.py"))
    exrheader = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(exrheader)
    pattern = write_matte_exrs(str(tmp_path), frames=(5,), people=2)
    path = pattern.replace("####", "0005")
    (header,) = exrheader.read_headers(path)
    assert header["channels"] == ["person_01.A", "person_02.A"]
    assert json.loads(header["instmatt_manifest"])["frame"] == 5
    assert exrheader.people(path) == ["person_01", "person_02"]
    # a big manifest (past the first read) and a multi-part file, as Blender writes them
    big = str(tmp_path / "big.exr")
    OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "instmatt_manifest": "x" * 200_000}, {"person_03.A": np.zeros((4, 4), np.float16)}).write(big)
    assert exrheader.people(big) == ["person_03"]
    multi = str(tmp_path / "multi.exr")
    parts = [OpenEXR.Part({"type": OpenEXR.scanlineimage}, {f"person_0{i}.A": np.zeros((4, 4), np.float32)},
                          name=f"person_0{i}") for i in (1, 2)]
    OpenEXR.File(parts).write(multi)
    assert exrheader.people(multi) == ["person_01", "person_02"]
    bad = tmp_path / "bad.exr"
    bad.write_bytes(b"not an exr at all")
    with pytest.raises(exrheader.ExrHeaderError, match="not an OpenEXR file"):
        exrheader.channels(str(bad))


def test_busy_engine_takes_the_job_when_free(ec, tmp_path):
    client = fake(ec, delay=0.5)
    try:
        client.wait_hello(timeout=30)
        out = str(tmp_path / "o.####.exr")
        abandoned = ec.MatteJob(client, {"input": "in.mp4", "output": out, "frames": [1, 2]})
        assert abandoned.state == "RUNNING"  # nobody polls it any more (Blender dropped it)
        job = ec.MatteJob(client, {"input": "in.mp4", "output": out, "frames": [3, 3]})
        assert job.run() == "DONE", job.error
        assert list(job.frames) == [3]
    finally:
        client.stop()
