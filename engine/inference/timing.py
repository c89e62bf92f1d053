"""Per-stage wall-clock times of the pipeline, recorded only when someone asks.

    with recording() as times:
        matte(backend, image, masks)
    times   # {"prepare": s, "network": s, "merge": s, "refine": s, "output": s}

Outside ``recording()`` a stage costs one global lookup. Stages do not nest.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager

_times: dict[str, float] | None = None


@contextmanager
def stage(name: str):
    if _times is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        _times[name] += time.perf_counter() - start


@contextmanager
def recording():
    global _times
    previous, _times = _times, defaultdict(float)
    try:
        yield _times
    finally:
        _times = previous
