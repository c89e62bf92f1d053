"""Studio mirrors: a folder or an http(s) URL holding ``models.json`` and the files.

    {"models": {"instmatt": {"file": "best_model.pth", "sha256": "<64 hex>", "size": 123},
                "detector": {"file": "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth", "sha256": "...", "size": 456}}}

The mirror's sha256 is authoritative: a file that does not hash to it is refused. A TD
fills a mirror from one online machine with ``instmatt models mirror DIR``
(:func:`write_mirror`), then points render nodes at it with ``--mirror`` or
``INSTMATT_MODELS_MIRROR``.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InputFileError, UserError
from engine.io.atomic import atomic_path, write_bytes_atomic

from . import download
from .catalog import MODELS

MIRROR_ENV = "INSTMATT_MODELS_MIRROR"
INDEX_NAME = "models.json"
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class MirrorEntry:
    name: str
    file: str
    sha256: str
    size: int | None


def is_url(location: str) -> bool:
    return urllib.parse.urlparse(str(location)).scheme in ("http", "https")


def parse_index(text: str, where: str) -> dict[str, MirrorEntry]:
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise InputFileError(where, f"not valid JSON ({exc})") from None
    models = payload.get("models") if isinstance(payload, dict) else None
    if not isinstance(models, dict):
        raise InputFileError(where, "expected {\"models\": {NAME: {\"file\", \"sha256\", \"size\"}}}")
    entries = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise InputFileError(where, f"entry {name!r} is not an object")
        file, sha, size = entry.get("file"), entry.get("sha256"), entry.get("size")
        if not isinstance(file, str) or not file or "/" in file or "\\" in file or file.startswith("."):
            raise InputFileError(where, f"entry {name!r}: 'file' must be a plain file name, got {file!r}")
        if not isinstance(sha, str) or not SHA256.fullmatch(sha):
            raise InputFileError(where, f"entry {name!r}: 'sha256' must be 64 hex digits, got {sha!r}")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise InputFileError(where, f"entry {name!r}: 'size' must be a byte count, got {size!r}")
        entries[name] = MirrorEntry(name, file, sha.lower(), size)
    return entries


class Mirror:
    """An opened mirror: its entries, and a way to bring one file into a ``.part``."""

    def __init__(self, location: str):
        location = str(location)
        if location.rstrip("/").endswith("/" + INDEX_NAME) or location == INDEX_NAME:
            location = location.rstrip("/")[: -len(INDEX_NAME)] or "."  # the index's own address works too
        self.location = location
        self.remote = is_url(self.location)
        if self.remote:
            self.base = self.location if self.location.endswith("/") else self.location + "/"
            self.session = download.new_session()
            self.entries = parse_index(self._fetch_index(), self.base + INDEX_NAME)
        else:
            self.folder = Path(self.location).expanduser()
            index = self.folder / INDEX_NAME
            if not index.is_file():
                raise InputFileError(index, "no models.json: not a model mirror (write one with instmatt models mirror DIR)")
            self.entries = parse_index(index.read_text(encoding="utf-8"), str(index))

    def _fetch_index(self) -> str:
        url = self.base + INDEX_NAME
        response = download._get(self.session, url)
        with response:
            if response.status_code >= 400:
                raise download._http_error(url, response)
            return response.text

    def entry(self, name: str) -> MirrorEntry:
        if name not in self.entries:
            listed = ", ".join(self.entries) or "nothing"
            raise UserError(f"mirror {self.location} has no '{name}' in its models.json (it lists {listed}); "
                            f"name the models to fetch, e.g. instmatt models fetch {' '.join(self.entries) or 'NAME'}")
        return self.entries[name]

    def describe(self, name: str) -> str:
        entry = self.entries[name]
        return self.base + urllib.parse.quote(entry.file) if self.remote else str(self.folder / entry.file)

    def to_part(self, name: str, part: Path, progress=None, cancel: threading.Event | None = None) -> int:
        entry = self.entry(name)
        if self.remote:
            return download.http_to_part(self.describe(name), part, progress, cancel, self.session, entry.size)
        return download.file_to_part(self.folder / entry.file, part, progress, cancel)


def write_mirror(states, destination: str | Path, report=print) -> Path:
    """Copy the verified models in ``states`` (``ModelState`` rows) into ``destination``
    with a ``models.json`` of their sha256 and sizes. Existing identical files are kept."""
    destination = Path(destination).expanduser()
    if is_url(str(destination)):
        raise UserError(f"{destination}: instmatt models mirror writes a folder; serve it over HTTP yourself")
    index_path = destination / INDEX_NAME
    existing = {}
    if index_path.is_file():
        existing = parse_index(index_path.read_text(encoding="utf-8"), str(index_path))
    models = {name: {"file": e.file, "sha256": e.sha256, "size": e.size} for name, e in existing.items()}
    written = 0
    for state in states:
        if state.status != "verified":
            report(f"skipped {state.name}: {state.status} (run instmatt models fetch {state.name} first)")
            continue
        spec = MODELS[state.name]
        target = destination / spec.file
        old = existing.get(state.name)
        if not (old and old.sha256 == state.sha256 and target.is_file() and target.stat().st_size == state.size):
            with atomic_path(target) as tmp:
                shutil.copyfile(state.path, tmp)
            report(f"wrote {target} ({state.size / 1e6:.1f} MB)")
        else:
            report(f"kept {target} (already in the mirror)")
        models[state.name] = {"file": spec.file, "sha256": state.sha256, "size": state.size}
        written += 1
    if not written:
        raise UserError("no verified model in the cache to put in a mirror: run instmatt models fetch first")
    write_bytes_atomic(index_path, (json.dumps({"models": models}, indent=2) + "\n").encode("utf-8"))
    return index_path
