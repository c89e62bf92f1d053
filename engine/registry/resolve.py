"""Which weights a job uses: a path the user gave, else the registry's cache, else (the
matting net only) the shipped toy checkpoint; a needed model that is missing is fetched
when network use is allowed, else the job stops with one line naming the fetch command.

The matting net never needs a download (the toy weights always work, and say so); the
person detector does, since nothing can stand in for it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from engine.errors import UserError

from .store import (
    FetchProgress,
    ModelStore,
    Report,
    fetch_hint,
    mirror_from_env,
    offline_from_env,
)

TOY_NOTE = ("toy weights: the shipped tiny checkpoint (width 0.25, trained on synthetic composites), "
            "not the authors' network; `instmatt models fetch instmatt` gets the real one")


class ModelMissing(UserError):
    """A needed model is not cached and may not be fetched. ``model`` names it, so the
    Blender add-on can say what to press instead of quoting the command line."""

    def __init__(self, model: str, message: str):
        super().__init__(message)
        self.model = model


@dataclass(frozen=True)
class WeightsChoice:
    path: Path | None   # None: random weights (a build without the shipped file)
    toy: bool           # the shipped tiny checkpoint (or random): not the paper's quality
    origin: str         # "given", "cache" or "shipped"

    @property
    def note(self) -> str | None:
        return TOY_NOTE if self.toy else None


def matting_weights(explicit: str | Path | None = None, store: ModelStore | None = None) -> WeightsChoice:
    from engine.weights import default_weights_path

    shipped = default_weights_path()
    if explicit is not None:
        path = Path(explicit)
        return WeightsChoice(path, shipped is not None and path.resolve() == shipped.resolve(), "given")
    cached = (store or ModelStore()).locate("instmatt")
    if cached is not None:
        return WeightsChoice(cached, False, "cache")
    return WeightsChoice(shipped, True, "shipped")


def is_toy(path) -> bool:
    """True for the shipped tiny checkpoint (or no file: random weights)."""
    from engine.weights import default_weights_path

    shipped = default_weights_path()
    return path is None or (shipped is not None and Path(path).resolve() == shipped.resolve())


def require(name: str, store: ModelStore | None = None, offline: bool | None = None,
            progress: FetchProgress | None = None, report: Report | None = None,
            cancel: threading.Event | None = None, alternatives: str = "") -> Path:
    """The cached file for ``name``, fetched first when missing and network use is allowed."""
    store = store or ModelStore()
    found = store.locate(name)
    if found is not None:
        return found
    offline = offline_from_env() if offline is None else offline
    mirror = mirror_from_env()
    from .catalog import get
    from .mirror import is_url

    spec = get(name)
    if offline and (mirror is None or is_url(mirror)):
        hub = store.torch_hub_folder(name)
        where = f"in neither {store.root} nor torchvision's cache {hub}" if hub else f"not in {store.root}"
        raise ModelMissing(name, f"no weights for {spec.used_for}: '{name}' ({spec.file}) is {where}, and network "
                                 f"use is off; run `{fetch_hint([name])}` where the network is allowed "
                                 f"(or with --mirror){alternatives}")
    if report is not None:
        report(f"{name}: not cached yet, fetching it ({spec.source})")
    (state,) = store.fetch([name], mirror=mirror, offline=offline, progress=progress, report=report, cancel=cancel)
    return state.path
