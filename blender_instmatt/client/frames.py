"""Frame patterns: ``/out/instmatt.####.exr`` and the files that match one."""

from __future__ import annotations

import os
import re


def frame_path(pattern: str, frame: int) -> str:
    """The file of ``frame``: the run of ``#`` becomes the zero-padded frame number."""
    digits = pattern.count("#")
    return pattern.replace("#" * digits, f"{frame:0{digits}d}")


def frames_on_disk(pattern: str) -> list[int]:
    """Frame numbers of the files that match a ``#`` pattern (any number of digits >= #)."""
    folder, filename = os.path.split(pattern)
    count = filename.count("#")
    head, _, rest = filename.partition("#" * count)
    regex = re.compile("^" + re.escape(head) + r"(\d{%d,})" % count + re.escape(rest) + "$")
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    return sorted(int(m.group(1)) for m in map(regex.match, names) if m)


_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{1,4}$")
_FRAME_NUMBER = re.compile(r"[._\- ]*\d+$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]+")


def shot_folder(name: str, numbered: bool) -> str:
    """The output folder of a source: ``hold_0001.jpg`` (a sequence) -> ``hold``; a still or
    a movie keeps its digits (``hold_02.jpg`` -> ``hold_02``, ``take3.mov`` -> ``take3``)."""
    base = _EXTENSION.sub("", name.strip())
    if numbered:
        base = _FRAME_NUMBER.sub("", base) or base
    return _UNSAFE.sub("_", base).strip("._") or "shot"
