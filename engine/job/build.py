"""A matte job from the fields the command line and the protocol share."""

from __future__ import annotations

import threading
from pathlib import Path

from engine.errors import InputFileError
from engine.settings import MatteSettings

from . import preflight
from .listener import Listener
from .matte_job import MatteJob


def build_job(input_path: str, output: str, frames=None, guidance: dict | None = None,
              settings: MatteSettings | None = None, listener: Listener | None = None,
              cancel: threading.Event | None = None, backend=None) -> MatteJob:
    """Open the footage, check outputs and guidance, and defer loading the network to the
    first frame that needs it (a resumed, finished shot never loads it)."""
    from engine.guidance import make_guidance
    from engine.io.patterns import output_pattern, select_frames
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
    side_kinds = [kind for kind, on in (("png", settings.write_png), ("rgba", settings.write_rgba)) if on]
    frame_files = [source.file_for(f) for f in chosen if source.file_for(f)]
    preflight.check_no_collision(pattern, chosen, frame_files, "the input frames", side_kinds)
    guide = make_guidance(guidance.get("kind", "detector"), guidance.get("path"), settings, listener)
    preflight.check_no_collision(pattern, chosen, guide.input_files(chosen),
                                 f"the {guide.kind} guidance {guide.describe().get('path', '')}".rstrip(), side_kinds)
    guide.check(chosen)  # before loading the network: fail fast on missing guidance
    todo = preflight.check_foreign_outputs(pattern, chosen, settings.overwrite)
    preflight.prepare_output_folder(pattern, todo or (chosen if side_kinds else []), side_kinds)
    absent = preflight.absent_report(source, frames)
    if backend is None:
        def backend():
            from engine.backends import load_backend

            return load_backend(settings.backend, settings.weights, settings.device, settings.threads)
    return MatteJob(source, pattern, guide, backend, settings, chosen, listener, cancel, known_failures=absent)
