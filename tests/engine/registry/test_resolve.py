"""Which weights a job gets: the cache first, the shipped toy checkpoint for the matting
net, a fetch on first use of the detector when the network is allowed, else one line."""

from __future__ import annotations

import pytest

from engine.registry import ModelStore
from engine.registry.resolve import ModelMissing, matting_weights, require
from engine.weights import default_weights_path


def test_matting_weights_prefer_the_cache_and_say_toy_otherwise(loopback, make_mirror, tmp_path, no_torch_hub):
    store = ModelStore(tmp_path / "cache")
    toy = matting_weights(store=store)
    assert toy.toy and toy.origin == "shipped" and toy.path == default_weights_path()
    assert "toy weights" in toy.note and "instmatt models fetch instmatt" in toy.note
    store.fetch(["instmatt"], mirror=make_mirror(loopback, names=("instmatt",)))
    real = matting_weights(store=store)
    assert (real.path, real.toy, real.origin, real.note) == (store.cache_path("instmatt"), False, "cache", None)
    given = matting_weights(default_weights_path(), store=store)
    assert given.toy and given.origin == "given"


def test_missing_detector_offline_is_one_line_naming_the_fetch(tmp_path, no_torch_hub, monkeypatch):
    monkeypatch.setenv("INSTMATT_OFFLINE", "1")
    with pytest.raises(ModelMissing) as info:
        require("detector", ModelStore(tmp_path / "cache"), alternatives="; or give --masks DIR")
    message = str(info.value)
    assert info.value.model == "detector" and "\n" not in message
    assert "`instmatt models fetch detector`" in message and message.endswith("or give --masks DIR")


def test_missing_detector_is_fetched_on_first_use_when_online(loopback, make_mirror, tmp_path, no_torch_hub,
                                                             monkeypatch):
    monkeypatch.setenv("INSTMATT_MODELS_MIRROR", make_mirror(loopback, names=("detector",)))
    store = ModelStore(tmp_path / "cache")
    events = []
    path = require("detector", store, offline=False, progress=lambda *event: events.append(event),
                   report=events.append)
    assert path == store.cache_path("detector") and store.state("detector").status == "verified"
    assert events[0].startswith("detector: not cached yet") and any(isinstance(e, tuple) for e in events)
    hits = len(loopback.hits)
    assert require("detector", store, offline=True) == path and len(loopback.hits) == hits
