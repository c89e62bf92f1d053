"""Frame patterns (``plate.####.exr``, ``%04d``), frame ranges (``1001-1100``) and output names.

Outputs: a folder (files ``OUT/<input stem>.####.exr``) or a pattern with ``#`` / ``%0Nd``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from engine.errors import UserError

_HASHES = re.compile(r"#+")
_PRINTF = re.compile(r"%0?(\d*)d")


def is_pattern(text: str) -> bool:
    name = os.path.basename(str(text))
    return bool(_HASHES.search(name) or _PRINTF.search(name))


def _split_pattern(pattern: str) -> tuple[str, int, str]:
    """'dir/plate.####.exr' -> ('dir/plate.', 4, '.exr'); the last run of # (or %0Nd) in the name."""
    folder, name = os.path.split(str(pattern))
    matches = list(_HASHES.finditer(name))
    if matches:
        m = matches[-1]
        pad = len(m.group(0))
    else:
        found = list(_PRINTF.finditer(name))
        if not found:
            raise UserError(f"{pattern}: not a frame pattern (use # for each digit, e.g. plate.####.exr)")
        m = found[-1]
        pad = int(m.group(1) or 1)
    return os.path.join(folder, name[:m.start()]), pad, name[m.end():]


def format_pattern(pattern: str, frame: int) -> str:
    """The file of ``frame``; a name without a frame number (a still's output) is itself."""
    if not is_pattern(pattern):
        return str(pattern)
    head, pad, tail = _split_pattern(pattern)
    sign = "-" if frame < 0 else ""
    return f"{head}{sign}{abs(frame):0{pad}d}{tail}"


def match_pattern(pattern: str) -> dict[int, Path]:
    """Existing files that fit the pattern: {frame number: path}."""
    head, pad, tail = _split_pattern(pattern)
    folder = Path(os.path.dirname(head) or ".")
    prefix = os.path.basename(head)
    regex = re.compile(re.escape(prefix) + r"(-?\d{%d,})" % pad + re.escape(tail) + "$")
    found: dict[int, Path] = {}
    if not folder.is_dir():
        return found
    for entry in folder.iterdir():
        m = regex.match(entry.name)
        if m and entry.is_file():
            found.setdefault(int(m.group(1)), entry)
    return found


def pattern_stem(pattern: str) -> str:
    head, _, _ = _split_pattern(pattern)
    return os.path.basename(head).rstrip("._-") or "frame"


def parse_frames(spec) -> list[tuple[int, int]] | None:
    """"1001-1100", "1001", "1-10,20-30", [first, last] or None -> list of inclusive ranges."""
    if spec is None or spec == "" or spec == []:
        return None
    if isinstance(spec, (list, tuple)):
        if len(spec) == 2 and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in spec):
            first, last = int(spec[0]), int(spec[1])
        else:
            raise UserError(f"frames must be [first, last] integers, got {spec!r}")
        ranges = [(first, last)]
    elif isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        ranges = [(int(spec), int(spec))]
    elif isinstance(spec, str):
        ranges = []
        for part in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(-?\d+)(?:(?:-|:|\.\.)(-?\d+))?", part)
            if not m:
                raise UserError(f"frames: cannot read {spec!r} (use FIRST-LAST, e.g. 1001-1100)")
            first = int(m.group(1))
            last = int(m.group(2)) if m.group(2) is not None else first
            ranges.append((first, last))
    else:
        raise UserError(f"frames: cannot read {spec!r} (use FIRST-LAST, e.g. 1001-1100)")
    for first, last in ranges:
        if last < first:
            raise UserError(f"frames: {first}-{last} ends before it starts")
    return ranges


def select_frames(available: list[int], spec, where: str) -> list[int]:
    ranges = parse_frames(spec)
    if ranges is None:
        return list(available)
    chosen = [f for f in available if any(a <= f <= b for a, b in ranges)]
    if not chosen:
        have = f"{available[0]}-{available[-1]}" if available else "none"
        wanted = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)
        raise UserError(f"{where}: no frames in {wanted} (the input has frames {have})")
    return chosen


def absent_frames(available: list[int], spec) -> tuple[list[int], list[tuple[int, int]]]:
    """Frames asked for (or implied by a numbered sequence) that the input does not have:
    (the gaps inside the input's first-last range, the ranges asked for outside it).
    Without ``spec`` only the gaps of the sequence."""
    if not available:
        return [], []
    have, first, last = set(available), min(available), max(available)
    ranges = parse_frames(spec) or [(first, last)]
    gaps, outside = set(), []
    for a, b in ranges:
        gaps.update(f for f in range(max(a, first), min(b, last) + 1) if f not in have)
        if a < first:
            outside.append((a, min(b, first - 1)))
        if b > last:
            outside.append((max(a, last + 1), b))
    return sorted(gaps), outside


def frame_ranges(frames: list[int]) -> str:
    """[1003, 1007, 1008, 1009] -> "1003, 1007-1009"."""
    parts, frames = [], sorted(frames)
    start = previous = None
    for f in frames + [None]:
        if start is not None and (f is None or f != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if f is not None and start is None:
            start = f
        previous = f
    return ", ".join(parts)


def output_pattern(out: str | os.PathLike, stem: str, still: bool = False) -> str:
    """The EXR frame pattern for OUT: itself when it is a pattern, else OUT/<stem>.####.exr.

    A still is not numbered: OUT/<stem>.exr, or OUT itself when it names an .exr file.
    """
    text = str(out)
    if is_pattern(text):
        if not text.lower().endswith(".exr"):
            raise UserError(f"{text}: the output pattern must end in .exr (e.g. out/shot.####.exr)")
        return text
    if still:
        return text if text.lower().endswith(".exr") else os.path.join(text, f"{stem}.exr")
    if text.lower().endswith(".exr"):
        raise UserError(f"{text}: an output file needs a frame number: use a pattern such as "
                        f"{text[:-4]}.####.exr, or give a folder")
    return os.path.join(text, f"{stem}.####.exr")


def extra_pattern(exr_pattern: str, what: str, pid: str, suffix: str = ".png") -> str:
    """Side outputs next to the EXRs: <dir>/<what>/<person>/<name>.####<suffix> (a still's: <name><suffix>)."""
    if not is_pattern(exr_pattern):
        folder, name = os.path.split(os.path.splitext(str(exr_pattern))[0])
        return os.path.join(folder, what, pid, name + suffix)
    head, pad, _ = _split_pattern(exr_pattern)
    folder, name = os.path.split(head)
    return os.path.join(folder, what, pid, name + "#" * pad + suffix)
