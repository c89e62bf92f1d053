"""Reading the protocol's request lines safely: at most MAX_LINE bytes held, and every
kind of bad line (not UTF-8, not JSON, NaN, a number too long, nesting too deep) turned
into one ValueError with a short reason, so ``instmatt serve`` answers it and lives on."""

from __future__ import annotations

import json

MAX_LINE = 1 << 20  # bytes: a longer request line is refused (and skipped), never held in memory


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def parse_request(raw: bytes):
    """One request line -> its JSON value; ValueError with a short reason for anything else
    (not UTF-8, not JSON, NaN/Infinity, numbers too long for Python, nesting too deep)."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and int() refusing thousands of digits
        raise ValueError(str(exc).splitlines()[0][:200]) from None


def read_line(stream, limit: int = MAX_LINE) -> tuple[bytes, bool]:
    """(line, too_long) with at most ``limit`` bytes held; the rest of a longer line is read and dropped."""
    line = stream.readline(limit + 1)
    if len(line) <= limit or line.endswith(b"\n"):
        return line, False
    while True:
        rest = stream.readline(limit)
        if not rest or rest.endswith(b"\n"):
            return line[:64], True
