"""client/job.py: the state machine of one matte request, fed by hand-made events and by
the protocol stand-in."""

from __future__ import annotations

import os

import pytest
from blender_helpers import load_client


@pytest.fixture(scope="module")
def jobs(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("job")


def FakeClient(hello=True):
    """Events in, requests out: the job state machine without a process. The real client's
    queue handling (``next_event``) is kept; only the process side is replaced."""

    class Fake(load_client("process").EngineClient):
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

        def tail_suffix(self):
            return ""

    return Fake()


def test_job_state_machine(jobs):
    client = FakeClient(hello=False)
    job = jobs.MatteJob(client, {"input": "in", "output": "out.####.exr", "id": "j1"})
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


def test_job_fatal_error_and_engine_death(jobs):
    client = FakeClient()
    job = jobs.MatteJob(client, {"input": "in", "output": "o", "id": "j2"})
    assert job.state == "RUNNING"  # the engine was warm: the request went at once
    client.events.put({"type": "error", "id": "j2", "message": "in: input not found", "fatal": True})
    assert job.poll() and job.state == "FAILED" and job.error == "Engine: in: input not found"
    client = FakeClient()
    job = jobs.MatteJob(client, {"input": "in", "output": "o", "id": "j3"})
    client.events.put({"type": jobs.EXIT_EVENT, "returncode": 3})
    assert job.poll() and job.state == "FAILED" and "exit code 3" in job.error


def test_job_cancel_paths(jobs):
    clock = [0.0]
    client = FakeClient()
    job = jobs.MatteJob(client, {"input": "in", "output": "o", "id": "j4"}, cancel_timeout=10, clock=lambda: clock[0])
    job.cancel()
    assert job.state == "CANCELLING" and client.sent[-1] == {"type": "cancel", "id": "j4"}
    clock[0] = 11.0  # the engine never answers: it is stopped
    assert job.poll() and job.state == "CANCELLED" and client.killed
    # cancelling before the engine said hello sends nothing
    client = FakeClient(hello=False)
    job = jobs.MatteJob(client, {"input": "in", "output": "o"})
    job.cancel()
    assert job.state == "CANCELLED" and client.sent == [] and not client.killed
    # a start-up that takes too long fails with a clear message
    client = FakeClient(hello=False)
    job = jobs.MatteJob(client, {"input": "in", "output": "o"}, start_timeout=5, clock=lambda: clock[0])
    clock[0] += 6
    assert job.poll() and job.state == "FAILED" and "did not start within 5 s" in job.error


def test_real_process_job_and_cancel(jobs, start_fake, tmp_path):
    client = start_fake(delay=0.4)
    try:
        folder = tmp_path / "masks"
        for frame in (1, 2, 3, 4):
            (folder / f"{frame:04d}").mkdir(parents=True)
        job = jobs.MatteJob(client, {"input": "in.mp4", "output": str(tmp_path / "o.####.exr"), "frames": [1, 4],
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


def test_busy_engine_takes_the_job_when_free(jobs, start_fake, tmp_path):
    client = start_fake(delay=0.5)
    try:
        client.wait_hello(timeout=30)
        out = str(tmp_path / "o.####.exr")
        abandoned = jobs.MatteJob(client, {"input": "in.mp4", "output": out, "frames": [1, 2]})
        assert abandoned.state == "RUNNING"  # nobody polls it any more (Blender dropped it)
        job = jobs.MatteJob(client, {"input": "in.mp4", "output": out, "frames": [3, 3]})
        assert job.run() == "DONE", job.error
        assert list(job.frames) == [3]
    finally:
        client.stop()


def test_missing_model_error_speaks_blender_and_first_use_download_shows(jobs):
    client = FakeClient()
    job = jobs.MatteJob(client, {"input": "in", "output": "out.####.exr", "id": "j1"})
    client.events.put({"type": "download", "id": "j1", "model": "detector", "done": 52_000_000, "total": 178_000_000})
    job.poll()
    assert job.status_text().startswith("InstMatt: downloading detector 52.0 MB of 178.0 MB (first use)")
    client.events.put({"type": "error", "id": "j1", "fatal": True, "code": "model_missing", "model": "detector",
                       "message": "no weights for the person detector: ... run `instmatt models fetch detector` ..."})
    job.poll()
    assert job.state == "FAILED"
    assert job.error == ("no person detector yet: press Download Models in the InstMatt preferences, "
                         "or set Guidance to Mask")


@pytest.fixture(scope="module")
def model_client(bpy):
    return load_client("models")


def test_model_fetch_state_machine(model_client):
    client = FakeClient(hello=False)
    fetch = model_client.ModelFetch(client, names=["detector"])
    assert fetch.state == "STARTING" and not client.sent
    client.events.put({"type": "hello", "protocol": 1, "weights_toy": True, "offline": False,
                       "models": [{"name": "detector", "status": "missing"}], "models_cache": "/c"})
    fetch.poll()
    assert client.sent == [{"type": "fetch_models", "id": fetch.id, "names": ["detector"]}]
    assert model_client.last_models["toy"] is True and model_client.last_models["cache"] == "/c"
    client.events.put({"type": "download", "id": fetch.id, "model": "detector", "done": 89_000_000,
                       "total": 178_000_000})
    client.events.put({"type": "download", "id": "other", "model": "instmatt", "done": 1, "total": 2})
    fetch.poll()
    assert fetch.fraction == pytest.approx(0.5) and "downloading detector 89.0 MB of 178.0 MB" in fetch.status_text()
    fetch.cancel()
    assert fetch.state == "CANCELLING" and client.sent[-1] == {"type": "cancel", "id": fetch.id}
    client.events.put({"type": "models", "id": fetch.id, "cancelled": True, "fetched": False,
                       "models": [{"name": "detector", "status": "missing"}]})
    assert fetch.poll() and fetch.state == "CANCELLED"

    again = model_client.ModelFetch(client)
    client.events.put({"type": "error", "id": again.id, "fatal": True,
                       "message": "http://m/x.pth: sha256 mismatch for 'detector': ...; nothing of it was kept"})
    assert again.poll() and again.state == "FAILED" and again.error.startswith("Engine: http://m/x.pth: sha256")
    rows = model_client.model_rows([{"name": "detector", "status": "verified", "size": 178_000_000,
                                     "where": "torch hub cache"},
                                    {"name": "instmatt", "status": "missing", "size": None, "approx_size": None}])
    assert rows == [("detector", "verified (torchvision's cache), 178.0 MB", "CHECKMARK"),
                    ("instmatt", "missing", "ERROR")]


def test_notes_reach_the_progress_text(jobs):
    client = FakeClient()
    job = jobs.MatteJob(client, {"input": "in", "output": "out.####.exr", "id": "n1"})
    for event in (
        {"type": "note", "id": "n1", "message": "14 frames recomputed: keyframe 1013 changed"},
        {"type": "note", "id": "other", "message": "not ours"},
        {"type": "progress", "id": "n1", "done": 2, "total": 14, "frame": 1013, "fps": 1.0, "eta_s": 12.0},
    ):
        client.events.put(event)
    job.poll()
    assert job.notes == ["14 frames recomputed: keyframe 1013 changed"]
    assert job.status_text() == ("InstMatt: 2/14 frames, 1.00 fps, 12 s left "
                                 "(14 frames recomputed: keyframe 1013 changed)  (Esc to cancel)")
