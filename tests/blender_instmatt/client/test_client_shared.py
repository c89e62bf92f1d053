"""client/shared.py: the one warm engine of a Blender session."""

from __future__ import annotations

import sys

import pytest
from blender_helpers import FAKE_ENGINE, load_client


@pytest.fixture(scope="module")
def shared(bpy):  # needs the bpy environment only because this folder runs there
    return load_client("shared")


def test_shared_engine_restarts_when_dead_or_changed(shared):
    argv = [sys.executable, FAKE_ENGINE]
    try:
        first = shared.shared_engine(argv, None, None)
        assert shared.shared_engine(argv, None, None) is first
        first.kill()
        second = shared.shared_engine(argv, None, None)
        assert second is not first and second.alive()
        third = shared.shared_engine(argv + ["--delay", "0"], None, None)
        assert third is not second and not second.alive()
    finally:
        shared.stop_shared_engine()
    assert shared.current_engine() is None
