"""A matte job from the fields the command line and the protocol share."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from engine.errors import InputFileError, UserError
from engine.settings import MatteSettings

from .listener import Listener
from .matte_job import MatteJob


def build_job(input_path: str, output: str, frames=None, guidance: dict | None = None,
              settings: MatteSettings | None = None, listener: Listener | None = None,
              cancel: threading.Event | None = None, backend=None) -> MatteJob:
    """Open the footage, check outputs and guidance, and defer loading the network to the
    first frame that needs it (a resumed, finished shot never loads it)."""
    from engine.guidance import make_guidance
    from engine.io.patterns import format_pattern, output_pattern, select_frames
    from engine.io.sources import open_source

    settings = settings or MatteSettings()
    settings.check()
    if settings.threads:
        import torch

        torch.set_num_threads(int(settings.threads))  # the detector too, not only the network
    guidance = dict(guidance or {"kind": "detector"})
    if settings.weights is not None and not Path(settings.weights).is_file():
        raise InputFileError(settings.weights, "weights file not found")
    source = open_source(input_path)
    chosen = select_frames(source.frames, frames, source.path)
    pattern = output_pattern(output, source.stem, still=source.still)
    inputs = {os.path.abspath(source.file_for(f)) for f in chosen if source.file_for(f)}
    if any(os.path.abspath(format_pattern(pattern, f)) in inputs for f in chosen):
        raise UserError(f"{output}: the output would overwrite the input frames; choose another folder or name")
    guide = make_guidance(guidance.get("kind", "detector"), guidance.get("path"), settings, listener)
    guide.check(chosen)  # before loading the network: fail fast on missing guidance
    if backend is None:
        def backend():
            from engine.backends import load_backend

            return load_backend(settings.backend, settings.weights, settings.device, settings.threads)
    return MatteJob(source, pattern, guide, backend, settings, chosen, listener, cancel)
