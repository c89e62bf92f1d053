"""Bytes from a source into a ``.part`` file that resumes: HTTP(S) with Range, Google
Drive, or a mirror folder.

Only the transfer lives here; which file, where it ends up and whether it is right is
:mod:`engine.registry.store`'s business. Every transfer appends to ``part`` from its
current length, so an interrupted download (dropped connection, Ctrl-C, Blender's
cancel) continues where it stopped: ``Range: bytes=N-`` over HTTP, a seek for a folder.
A server that ignores the Range header answers 200 and the part restarts from zero.

HTTP goes through ``requests`` (kept, and already what gdown is built on); Google Drive's
"cannot scan this file for viruses" confirm page is read by gdown's own parser
(:func:`gdown.download.get_url_from_gdrive_confirmation`), so when Google changes the
page, upgrading gdown fixes it. gdown's ``download()`` itself is not used: it recognises
Drive only by its host name and names its partial files at random, so it could neither
be tested against a loopback stand-in nor resume into our ``.part``.
``INSTMATT_DRIVE_URL`` replaces Drive's ``https://drive.google.com/uc`` (tests point it
at a loopback stand-in).
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
import urllib.parse
from pathlib import Path
from typing import Callable

from engine.errors import UserError

CHUNK = 1 << 20
TIMEOUT = (15.0, 60.0)  # (connect, between bytes) seconds
DRIVE_URL_ENV = "INSTMATT_DRIVE_URL"
DRIVE_URL = "https://drive.google.com/uc"
USER_AGENT = "blender-instmatt model registry"

Progress = Callable[[int, "int | None"], None]  # (bytes so far, total bytes or None)


class DownloadCancelled(UserError):
    """The user cancelled; the part file stays for the next run to resume."""


class TransferInterrupted(UserError):
    """The connection failed mid-way; the bytes received so far are kept for resume."""


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _check_space(part: Path, remaining: int | None) -> None:
    if not remaining:
        return
    free = shutil.disk_usage(part.parent).free
    if free < remaining:
        raise UserError(f"disk full: {part.parent} has {_megabytes(free)} free, "
                        f"{part.name[:-len('.part')]} needs {_megabytes(remaining)} more")


def _write_chunks(chunks, part: Path, mode: str, done: int, total: int | None,
                  progress: Progress | None, cancel: threading.Event | None) -> int:
    """Append ``chunks`` to ``part``; returns the bytes in the part afterwards."""
    try:
        with open(part, mode) as handle:
            for chunk in chunks:
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled(f"download cancelled: {_megabytes(done)} kept in {part} for the next run to resume")
                handle.write(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise UserError(f"disk full while writing {part} ({_megabytes(done)} written)") from None
        raise
    return done


# --- HTTP(S) -------------------------------------------------------------------------------

def new_session():
    import requests

    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers["Accept-Encoding"] = "identity"  # byte offsets must be the file's bytes
    return session


def _content_range(response) -> tuple[int, int | None] | None:
    match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", "").strip())
    if match is None:
        return None
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _http_error(url: str, response) -> UserError:
    return UserError(f"{url}: HTTP {response.status_code} {response.reason or ''}".rstrip())


def _get(session, url: str, headers: dict | None = None):
    import requests

    try:
        return session.get(url, headers=headers or {}, stream=True, timeout=TIMEOUT)
    except requests.exceptions.RequestException as exc:
        raise TransferInterrupted(f"cannot download {url}: {_reason(exc)}") from None


def _reason(exc) -> str:
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "Connection reset",
                   "Connection aborted", "IncompleteRead", "Temporary failure in name resolution"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def http_to_part(url: str, part: Path, progress: Progress | None = None, cancel: threading.Event | None = None,
                 session=None, expected_size: int | None = None) -> int:
    """Download ``url`` into ``part``, resuming from the bytes already there. Returns the size."""
    import requests

    session = session or new_session()
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is not None and offset == expected_size and offset > 0:
        return offset  # a previous run received every byte; the store verifies it
    response = _get(session, url, {"Range": f"bytes={offset}-"} if offset else None)
    with response:
        if response.status_code == 416 and offset:
            if response.headers.get("Content-Range", "").rpartition("/")[2] == str(offset):
                return offset  # the part already holds the whole file
            part.unlink()  # the part is longer than the file or from another file: start over
            return http_to_part(url, part, progress, cancel, session, expected_size)
        if response.status_code >= 400:
            raise _http_error(url, response)
        if response.headers.get("Content-Type", "").startswith("text/html"):
            raise UserError(f"{url}: the server answered with a web page instead of the file")
        mode, done, total = "wb", 0, None
        if response.status_code == 206 and offset:
            start, total = _content_range(response) or (None, None)
            if start != offset:
                raise UserError(f"{url}: the server resumed at byte {start}, not {offset}")
            mode, done = "ab", offset
        else:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
        total = total or expected_size
        _check_space(part, None if total is None else total - done)
        if progress is not None:
            progress(done, total)
        try:
            done = _write_chunks(response.iter_content(CHUNK), part, mode, done, total, progress, cancel)
        except requests.exceptions.RequestException as exc:
            kept = part.stat().st_size if part.is_file() else 0
            raise TransferInterrupted(f"download of {url} broke off ({_reason(exc)}); "
                                      f"{_megabytes(kept)} kept in {part} for resume") from None
    if total is not None and done < total:
        raise TransferInterrupted(f"download of {url} broke off at {_megabytes(done)} of {_megabytes(total)}; "
                                  f"kept in {part} for resume")
    return done


# --- Google Drive --------------------------------------------------------------------------

def drive_base() -> str:
    return os.environ.get(DRIVE_URL_ENV) or DRIVE_URL


def resolve_drive_url(file_id: str, session) -> str:
    """The URL that serves the file's bytes: Drive's own, or the one its confirm page names."""
    url = f"{drive_base()}?{urllib.parse.urlencode({'export': 'download', 'id': file_id})}"
    response = _get(session, url)
    with response:
        if response.status_code >= 400:
            raise _http_error(url, response)
        is_page = (response.headers.get("Content-Type", "").startswith("text/html")
                   and "Content-Disposition" not in response.headers)
        if not is_page:
            return url  # small files come straight away
        page = response.text
    from gdown.download import get_url_from_gdrive_confirmation
    from gdown.exceptions import FileURLRetrievalError

    try:
        return get_url_from_gdrive_confirmation(page)
    except FileURLRetrievalError as exc:
        reason = " ".join(str(exc).split())
        raise UserError(f"Google Drive will not hand out file {file_id}: {reason}") from None


def drive_to_part(file_id: str, part: Path, progress: Progress | None = None, cancel: threading.Event | None = None,
                  expected_size: int | None = None) -> int:
    session = new_session()
    url = resolve_drive_url(file_id, session)
    return http_to_part(url, part, progress, cancel, session, expected_size)


# --- a mirror folder -----------------------------------------------------------------------

def file_to_part(source: Path, part: Path, progress: Progress | None = None, cancel: threading.Event | None = None) -> int:
    if not source.is_file():
        raise UserError(f"{source}: not found in the mirror folder")
    total = source.stat().st_size
    part.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    if offset > total:
        part.unlink()
        offset = 0
    _check_space(part, total - offset)

    def chunks():
        with open(source, "rb") as handle:
            handle.seek(offset)
            yield from iter(lambda: handle.read(CHUNK), b"")

    if progress is not None:
        progress(offset, total)
    return _write_chunks(chunks(), part, "ab", offset, total, progress, cancel)
