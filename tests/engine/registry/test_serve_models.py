"""The engine process's model requests, as Blender's Download Models button drives them:
``models``, ``fetch_models`` with ``download`` events, cancel and resume, and the error a
detector job gets offline with nothing cached."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading

import pytest

from .conftest import DETECTOR_FILE

TIMEOUT = 180


class Engine:
    """``instmatt serve --stdio`` as a subprocess, every stdout line parsed as JSON."""

    def __init__(self, python, repo_root, tmp_path, **env):
        environment = {key: value for key, value in os.environ.items() if not key.startswith("INSTMATT_")}
        environment.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(repo_root),
                           TORCH_HOME=str(tmp_path / "torch_home"))
        environment.update({key: str(value) for key, value in env.items()})
        self.stderr = open(tmp_path / "engine.log", "wb")
        self.proc = subprocess.Popen([python, "-m", "engine", "serve", "--stdio", "--no-preload"], cwd=repo_root,
                                     env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))
        self.lines.put(None)

    def send(self, message: dict) -> None:
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        self.proc.stdin.flush()

    def until(self, predicate):
        seen = []
        while True:
            event = self.lines.get(timeout=TIMEOUT)
            assert event is not None, "the engine closed its stdout"
            seen.append(event)
            if predicate(event):
                return seen

    def close(self):
        if self.proc.poll() is None:
            self.send({"type": "shutdown"})
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.stderr.close()


@pytest.fixture
def start_engine(engine_python, repo_root, tmp_path):
    engines = []

    def start(**env):
        engine = Engine(engine_python, repo_root, tmp_path, **env)
        engines.append(engine)
        return engine

    yield start
    for engine in engines:
        engine.close()


def _final(rid):
    return lambda event: event.get("id") == rid and event["type"] in ("models", "error")


def test_download_models_with_progress_cancel_and_resume(start_engine, loopback, make_mirror, tmp_path):
    url = make_mirror(loopback, names=("detector",))
    loopback.slow["/mirror/" + DETECTOR_FILE] = 0.05  # slow enough to cancel mid-file
    cache = tmp_path / "cache"
    engine = start_engine(INSTMATT_CACHE=cache, INSTMATT_MODELS_MIRROR=url)
    (hello,) = engine.until(lambda event: event["type"] == "hello")
    assert hello["offline"] is False and hello["models_cache"] == str(cache)
    assert {m["name"]: m["status"] for m in hello["models"]} == {"instmatt": "missing", "detector": "missing"}

    engine.send({"type": "models", "id": "m0"})
    (listed,) = engine.until(_final("m0"))
    assert listed["type"] == "models" and [m["name"] for m in listed["models"]] == ["instmatt", "detector"]

    engine.send({"type": "fetch_models", "id": "f1", "names": ["detector"]})
    engine.until(lambda event: event["type"] == "download" and event["id"] == "f1" and event["done"] > 0)
    engine.send({"type": "cancel", "id": "f1"})
    final = engine.until(_final("f1"))[-1]
    assert final["type"] == "models" and final["cancelled"] is True and final["fetched"] is False
    part = cache / (DETECTOR_FILE + ".part")
    kept = part.stat().st_size
    assert kept > 0 and not (cache / DETECTOR_FILE).exists()

    loopback.slow.clear()
    engine.send({"type": "fetch_models", "id": "f2", "names": ["detector"]})
    events = engine.until(_final("f2"))
    final = events[-1]
    assert final["type"] == "models" and final["fetched"] is True, final
    detector = {m["name"]: m for m in final["models"]}["detector"]
    assert detector["status"] == "verified" and detector["path"] == str(cache / DETECTOR_FILE)
    downloads = [event for event in events if event["type"] == "download"]
    assert downloads[0]["done"] >= kept and downloads[-1]["done"] == downloads[-1]["total"] == detector["size"]
    assert loopback.file_hits()[-1].range == f"bytes={kept}-"  # resumed, not restarted


def test_fetch_request_errors_are_fatal_one_liners(start_engine, tmp_path):
    engine = start_engine(INSTMATT_CACHE=tmp_path / "cache", INSTMATT_OFFLINE=1)
    (hello,) = engine.until(lambda event: event["type"] == "hello")
    assert hello["offline"] is True
    engine.send({"type": "fetch_models", "id": "f1", "names": ["nonsense"]})
    (error,) = engine.until(_final("f1"))
    assert error["fatal"] is True and "unknown model 'nonsense'" in error["message"]
    engine.send({"type": "fetch_models", "id": "f2"})
    (error,) = engine.until(_final("f2"))
    assert error["type"] == "error" and "instmatt models fetch" in error["message"] and "\n" not in error["message"]


def test_detector_job_offline_says_which_model_is_missing(start_engine, tmp_path):
    import cv2
    import numpy as np

    image = tmp_path / "shot.png"
    cv2.imwrite(str(image), np.zeros((32, 48, 3), np.uint8))
    engine = start_engine(INSTMATT_CACHE=tmp_path / "cache", INSTMATT_OFFLINE=1)
    engine.until(lambda event: event["type"] == "hello")
    engine.send({"type": "matte", "id": "j1", "input": str(image), "output": str(tmp_path / "out") + "/"})
    error = engine.until(lambda event: event.get("id") == "j1" and event["type"] in ("done", "error"))[-1]
    assert error["type"] == "error" and error["fatal"] is True
    assert error["code"] == "model_missing" and error["model"] == "detector"
    assert "instmatt models fetch detector" in error["message"]
