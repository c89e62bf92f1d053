"""The bpy-free half's tests: ``blender_instmatt/client`` loaded on its own (no add-on registered)."""

from __future__ import annotations

import sys

import pytest
from blender_helpers import FAKE_ENGINE, load_client


@pytest.fixture
def start_fake(bpy):  # needs the bpy environment only because this folder runs there
    """A function that starts the protocol stand-in as an EngineClient."""
    process = load_client("process")

    def start(mode: str = "normal", delay: float = 0.0):
        return process.EngineClient([sys.executable, FAKE_ENGINE, "--mode", mode, "--delay", str(delay)]).start()

    return start
