"""build_trt's tests: one intra-op thread, a random tiny network (see tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _single_thread(one_thread):
    yield


@pytest.fixture(scope="module")
def tiny_model(random_tiny_model):
    return random_tiny_model
