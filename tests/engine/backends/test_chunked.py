"""The one chunked runner: any chunk size gives the batched result; the device picks the chunk."""

from __future__ import annotations

import torch

from engine.backends import PyTorchBackend
from engine.backends.base import CHUNK
from engine.backends.chunked import run_in_chunks
from engine.model import load_model


def _inputs(count: int):
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(count, 3, 64, 96, generator=generator)
    trimask = torch.rand(count, 3, 64, 96, generator=generator)
    return image, trimask


def test_batched_and_chunked_equal_one_at_a_time():
    backend = PyTorchBackend(load_model(None, width=0.25))
    image, trimask = _inputs(5)
    results = {}
    for chunk in (5, 2, 1):
        backend.chunk = chunk
        results[chunk] = backend.matting(image, trimask)
    for key in results[5]:
        assert results[5][key].shape[0] == 5
        assert torch.allclose(results[5][key], results[1][key], atol=1e-5), key
        assert torch.allclose(results[2][key], results[1][key], atol=1e-5), key


def test_runner_calls_once_per_chunk_and_keeps_order():
    calls = []

    def run(x):
        calls.append(x.shape[0])
        return {"x": x * 2}

    out = run_in_chunks(run, 3, torch.arange(7.0))
    assert calls == [3, 3, 1]
    assert torch.equal(out["x"], torch.arange(7.0) * 2)


def test_cpu_runs_one_person_per_pass():
    assert PyTorchBackend(load_model(None, width=0.25)).chunk == CHUNK["cpu"] == 1
