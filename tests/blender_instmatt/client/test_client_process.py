"""client/process.py: one engine process (the protocol stand-in), start-up errors, ping, shutdown."""

from __future__ import annotations

import pytest
from blender_helpers import load_client


@pytest.fixture(scope="module")
def process(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("process")


def test_missing_interpreter(process):
    client = process.EngineClient(["/nonexistent/python", "-m", "engine", "serve", "--stdio"])
    with pytest.raises(process.EngineStartError, match="Engine Python not found: /nonexistent/python"):
        client.start()


def test_engine_that_exits_at_start(process, start_fake):
    client = start_fake("exit-on-start")
    with pytest.raises(process.EngineStartError) as info:
        client.wait_hello(timeout=30)
    assert "failed to start (exit code 1)" in str(info.value)
    assert "No module named 'torch'" in str(info.value)


def test_protocol_mismatch(process, start_fake):
    client = start_fake("bad-protocol")
    try:
        with pytest.raises(process.EngineStartError, match="speaks protocol 99"):
            client.wait_hello(timeout=30)
    finally:
        client.stop()


def test_ping_and_polite_shutdown(process, start_fake):
    client = start_fake()
    hello = client.wait_hello(timeout=30)
    assert hello["protocol"] == 1 and hello["pid"] == client.pid
    assert client.request({"type": "ping"}, "pong")["type"] == "pong"
    client.stop()
    assert client.returncode == 0 and not client.alive()


KILLED_ENGINE = r"""
import json, os, signal, sys, time
print(json.dumps({"type": "hello", "protocol": 1, "engine_version": "x", "backend": None, "weights": None,
                  "pid": os.getpid()}), flush=True)
sys.stderr.write("instmatt: INFO: job r1: frame 1004: 30 people\n")
sys.stderr.flush()
time.sleep(0.3)
os.kill(os.getpid(), signal.SIG%s)
"""


@pytest.mark.parametrize("name, hint", [("KILL", "perhaps out of memory"), ("SEGV", "a crash in native code")])
def test_an_engine_killed_by_a_signal_is_reported_by_that_signal(process, tmp_path, name, hint):
    import sys

    log = tmp_path / "logs" / "engine.log"
    client = process.EngineClient([sys.executable, "-c", KILLED_ENGINE % name], log_path=str(log)).start()
    client.wait_hello(timeout=30)
    while client.next_event(timeout=30)["type"] != process.EXIT_EVENT:
        pass
    message = client.death_message()
    assert message.startswith(f"The engine was killed (SIG{name}), {hint}"), message
    assert "INFO" not in message and str(log) in message
    text = log.read_text()
    assert "frame 1004: 30 people" in text and text.startswith("=== ")
