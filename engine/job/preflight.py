"""Checks before a job loads the network: nothing it writes may destroy what it did not
write, and the output must be writable. Each failure is one UserError line (exit 2).

- an EXR already at an output name must carry our ``instmatt_manifest`` (else it is
  someone's file: refused unless ``overwrite``);
- no output (EXR or side file) may be an input: a frame, an ID image, a mask;
- the output folder must be creatable and writable (a probe file as long-named as the
  real temporary files), so a read-only folder, a full disk, a name too long or a path
  through a regular file fail now, not after the first frame was computed;
- frames asked for that the input does not have are named (they are failed frames).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from engine.errors import InputFileError, UserError
from engine.io import read_manifest
from engine.io.atomic import probe_writable, remove_stale_temp_files
from engine.io.patterns import absent_frames, format_pattern, frame_ranges

log = logging.getLogger("instmatt")


def _real(path) -> str:
    return os.path.realpath(os.path.abspath(str(path)))


def check_foreign_outputs(pattern: str, frames: list[int], overwrite: bool) -> list[int]:
    """Refuse to overwrite EXRs this engine did not write (no manifest, or not an EXR at all).
    Returns the frames still to compute (all of them with ``overwrite``)."""
    if overwrite:
        return list(frames)
    foreign, todo = [], []
    for frame in frames:
        path = format_pattern(pattern, frame)
        if not os.path.lexists(path):
            todo.append(frame)
            continue
        try:
            ours = os.path.isfile(path) and read_manifest(path) is not None
        except InputFileError:
            ours = False
        if not ours:
            foreign.append(path)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise UserError(f"{foreign[0]}{more}: already there and not written by instmatt (no instmatt_manifest); "
                        f"move it away, choose another output, or pass --overwrite to replace it")
    return todo


def check_no_collision(pattern: str, frames: list[int], files: list[str], what: str, side_kinds: list[str]) -> None:
    """Outputs never land on inputs (``files``: the footage's frames, ID images, mask files)."""
    inputs = {_real(path) for path in files}
    for frame in frames:
        if _real(format_pattern(pattern, frame)) in inputs:
            raise UserError(f"{format_pattern(pattern, frame)}: the output would overwrite {what}; "
                            f"choose another folder or name")
    folder = Path(_real(os.path.dirname(pattern) or "."))
    for kind in side_kinds:  # side files go to OUT/<kind>/<person>/...: no input may live there
        side = folder / kind
        for path in sorted(inputs):
            if Path(path).is_relative_to(side):
                raise UserError(f"{path}: the --{kind} side files in {side} would overwrite {what}; "
                                f"choose another output")


def prepare_output_folder(pattern: str, frames: list[int], side_kinds: list[str]) -> None:
    """Create and probe the output folder; remove temporary files of killed runs there.
    ``frames``: those that will be written (none: a finished shot, maybe on a read-only share)."""
    if not frames:
        return
    probe_writable(format_pattern(pattern, frames[0]))
    folder = Path(os.path.dirname(pattern) or ".")
    removed = remove_stale_temp_files(folder)
    for kind in side_kinds:
        removed += remove_stale_temp_files(folder / kind, recursive=True)
    if removed:
        log.warning("removed %d temporary file(s) left by killed runs in %s", len(removed), folder)


def absent_report(source, spec) -> list[tuple[str, int]]:
    """(message, frame count) for each kind of frame asked for that the input lacks."""
    gaps, outside = absent_frames(source.frames, spec)
    report = []
    if gaps:
        report.append((f"{source.path}: frames {frame_ranges(gaps)} are missing from the sequence (no file)",
                       len(gaps)))
    if outside:
        have = f"{min(source.frames)}-{max(source.frames)}"
        shown = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in outside)
        report.append((f"{source.path}: frames {shown} do not exist (the input has frames {have})",
                       sum(b - a + 1 for a, b in outside)))
    return report
