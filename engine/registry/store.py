"""The model cache: where files live, what state they are in, fetching and verifying.

- Folder: ``INSTMATT_CACHE``, else the platform's user cache folder (platformdirs)
  ``.../blender-instmatt/models``.
- States: ``missing``; ``fetched`` (the file is there but not verified by this cache, e.g.
  torchvision's own copy, or a file whose index entry no longer matches); ``verified``
  (hash and strict loading passed; ``registry.json`` records sha256, size and mtime, so
  the table needs no re-hashing).
- A download lands in ``<file>.part`` (resumable) and gets its final name only after it
  verified, through the one atomic writer; a file that fails verification is deleted.
  When a source fails verification nothing from that run is published (a mirror whose
  models.json is wrong is refused as a whole); an interruption keeps what verified.
- ``--offline`` / ``INSTMATT_OFFLINE=1`` forbids every network access (a mirror folder
  still works).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.errors import UserError
from engine.io.atomic import atomic_path, write_bytes_atomic

from . import catalog, checks, download
from .catalog import ModelSpec
from .mirror import MIRROR_ENV, Mirror, is_url

CACHE_ENV = "INSTMATT_CACHE"
OFFLINE_ENV = "INSTMATT_OFFLINE"
INDEX_NAME = "registry.json"
RETRIES = 2  # automatic resumes after a dropped connection, per file

Report = Callable[[str], None]
FetchProgress = Callable[[str, int, "int | None"], None]  # (model name, bytes so far, total)


def default_cache_dir() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("blender-instmatt", appauthor=False)) / "models"


def offline_from_env() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def mirror_from_env() -> str | None:
    return os.environ.get(MIRROR_ENV) or None


def fetch_hint(names) -> str:
    return f"instmatt models fetch {' '.join(names)}".rstrip()


@dataclass
class ModelState:
    name: str
    status: str                 # missing / fetched / verified
    path: Path | None = None
    size: int | None = None
    sha256: str | None = None   # recorded at verification
    where: str = ""             # "cache" or "torch hub cache"

    def as_dict(self) -> dict:
        spec = catalog.MODELS[self.name]
        return {"name": self.name, "what": spec.what, "status": self.status, "size": self.size,
                "approx_size": spec.approx_size, "path": None if self.path is None else str(self.path),
                "sha256": self.sha256, "where": self.where}


def _torch_hub_dir() -> Path:
    """``torch.hub.get_dir()``; without importing torch (seconds) when nothing has yet, as
    then nothing can have called ``torch.hub.set_dir`` and torch's own rule applies."""
    if "torch" in sys.modules:
        import torch

        return Path(torch.hub.get_dir())
    if os.environ.get("TORCH_HOME"):
        return Path(os.path.expanduser(os.environ["TORCH_HOME"])) / "hub"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
    return Path(os.path.expanduser(cache)) / "torch" / "hub"


def _torch_hub_file(spec: ModelSpec) -> Path | None:
    return _torch_hub_dir() / "checkpoints" / spec.file if spec.in_torch_hub else None


class ModelStore:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()

    # --- where and what -------------------------------------------------------------------

    def cache_path(self, name: str) -> Path:
        return self.root / catalog.get(name).file

    def part_path(self, name: str) -> Path:
        return self.root / (catalog.get(name).file + ".part")

    def _index(self) -> dict:
        try:
            payload = json.loads((self.root / INDEX_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return payload if isinstance(payload, dict) else {}

    def _record(self, name: str, path: Path, digest: str, source: str) -> None:
        index = self._index()
        stat = path.stat()
        index[name] = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest,
                       "source": source, "verified": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_bytes_atomic(self.root / INDEX_NAME, (json.dumps(index, indent=2) + "\n").encode("utf-8"))

    def _forget(self, name: str) -> None:
        index = self._index()
        if index.pop(name, None) is not None:
            write_bytes_atomic(self.root / INDEX_NAME, (json.dumps(index, indent=2) + "\n").encode("utf-8"))

    def torch_hub_folder(self, name: str) -> Path | None:
        """Where torchvision's own copy of ``name`` would count, if it can."""
        path = _torch_hub_file(catalog.get(name))
        return None if path is None else path.parent

    def locate(self, name: str) -> Path | None:
        """The file to use for ``name``: the cache's, else torchvision's cache; None if absent."""
        state = self.state(name)
        return state.path if state.status != "missing" else None

    def state(self, name: str) -> ModelState:
        spec = catalog.get(name)
        record = self._index().get(name) or {}
        for path, where in ((self.cache_path(name), "cache"), (_torch_hub_file(spec), "torch hub cache")):
            if path is None or not path.is_file() or path.stat().st_size == 0:
                continue
            stat = path.stat()
            same = (record.get("path") == str(path) and record.get("size") == stat.st_size
                    and record.get("mtime_ns") == stat.st_mtime_ns)
            return ModelState(name, "verified" if same else "fetched", path, stat.st_size,
                              record.get("sha256") if same else None, where)
        return ModelState(name, "missing")

    def states(self) -> list[ModelState]:
        return [self.state(name) for name in catalog.names()]

    # --- verification ---------------------------------------------------------------------

    def verify(self, name: str, expected_sha256: str | None = None) -> ModelState:
        """Re-hash and strictly load the file; a failing file of this cache is deleted."""
        state = self.state(name)
        if state.status == "missing":
            raise UserError(f"'{name}' is not cached: {fetch_hint([name])}")
        spec = catalog.get(name)
        authority = "the mirror's models.json"
        record = self._index().get(name) or {}
        if expected_sha256 is None and record.get("path") == str(state.path) and record.get("sha256"):
            expected_sha256, authority = record["sha256"], "the hash recorded when it was fetched"
        try:
            digest = self._check(spec, state.path, expected_sha256, authority=authority)
        except UserError as exc:
            self._forget(name)
            if state.where != "cache":
                raise UserError(f"{exc} (torchvision's copy is left alone; {fetch_hint([name])} "
                                f"puts a good one in {self.root})") from None
            state.path.unlink(missing_ok=True)
            raise UserError(f"{exc}; the file was deleted") from None
        self._record(name, state.path, digest, state.where)
        return self.state(name)

    @staticmethod
    def _check(spec: ModelSpec, path: Path, expected_sha256: str | None = None, expected_size: int | None = None,
               authority: str = "the mirror's models.json") -> str:
        """sha256 (the mirror's, else the name's prefix), size, strict loading; returns the sha256."""
        if expected_size is not None and path.stat().st_size != expected_size:
            raise UserError(f"{path}: {path.stat().st_size} bytes, the mirror's models.json says {expected_size}")
        digest = checks.sha256_of(path)
        checks.check_hash(spec, path, digest, expected_sha256, authority)
        checks.check_structure(spec, path)
        return digest

    # --- fetching -------------------------------------------------------------------------

    def fetch(self, names=None, mirror: str | None = None, offline: bool | None = None,
              progress: FetchProgress | None = None, cancel: threading.Event | None = None,
              report: Report | None = None, retries: int = RETRIES) -> list[ModelState]:
        """Bring ``names`` (default: all) into the cache, verified. A no-op, without any
        network access, for models already verified."""
        names = list(names or catalog.names())
        specs = [catalog.get(name) for name in names]
        offline = offline_from_env() if offline is None else offline
        mirror = mirror if mirror is not None else mirror_from_env()
        report = report or (lambda message: None)
        todo = []
        for spec in specs:
            state = self.state(spec.name)
            if state.status == "fetched":
                try:
                    state = self.verify(spec.name)
                    report(f"{spec.name}: verified {state.path}")
                except UserError as exc:
                    report(f"{spec.name}: {exc}")
            if state.status != "verified":
                todo.append(spec)
        if not todo:
            return [self.state(name) for name in names]
        if offline and (mirror is None or is_url(mirror)):
            missing = [spec.name for spec in todo]
            raise UserError(f"{', '.join(missing)} not cached in {self.root} and network use is off (offline): "
                            f"run {fetch_hint(missing)} where the network is allowed, or give a mirror folder "
                            f"with --mirror DIR")
        self.root.mkdir(parents=True, exist_ok=True)
        opened = Mirror(mirror) if mirror else None
        if opened is not None:
            for spec in todo:
                opened.entry(spec.name)  # every requested model listed, before any byte moves
        from filelock import FileLock, Timeout

        try:
            with FileLock(str(self._lock_path()), timeout=0):
                self._fetch_locked(todo, opened, progress, cancel, report, retries)
        except Timeout:
            raise UserError(f"another instmatt process is fetching models into {self.root}; wait for it to finish") from None
        return [self.state(name) for name in names]

    def _lock_path(self) -> Path:
        """Outside the cache, so a refused fetch leaves the cache exactly as it was."""
        import hashlib
        import tempfile

        key = hashlib.sha1(str(self.root.resolve()).encode("utf-8")).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"instmatt-fetch-{key}.lock"

    def _fetch_locked(self, todo, opened, progress, cancel, report, retries) -> None:
        staged = []
        try:
            for spec in todo:
                part = self.part_path(spec.name)
                source = opened.describe(spec.name) if opened else spec.source
                report(f"{spec.name}: downloading from {source}" + (" (resuming)" if part.is_file() else ""))
                self._transfer(spec, part, opened, progress, cancel, retries)
                expected = opened.entry(spec.name) if opened else None
                try:
                    digest = self._check(spec, part, expected and expected.sha256, expected and expected.size)
                except UserError as exc:
                    part.unlink(missing_ok=True)
                    for _, other, _, _ in staged:  # the source is not to be trusted: keep nothing of it
                        other.unlink(missing_ok=True)
                    staged.clear()
                    message = str(exc)
                    if message.startswith(str(part)):  # name what the user gave, not our temporary file
                        message = source + message[len(str(part)):]
                    raise UserError(f"{message}; nothing of it was kept") from None
                staged.append((spec, part, digest, source))
        finally:
            for spec, part, digest, source in staged:
                final = self.cache_path(spec.name)
                with atomic_path(final) as tmp:
                    os.replace(part, tmp)
                self._record(spec.name, final, digest, source)
                report(f"{spec.name}: verified, sha256 {digest}, {final}")

    def _transfer(self, spec: ModelSpec, part: Path, opened, progress, cancel, retries: int) -> None:
        def step(done, total):
            if progress is not None:
                progress(spec.name, done, total)

        for attempt in range(retries + 1):
            try:
                if opened is not None:
                    opened.to_part(spec.name, part, step, cancel)
                elif spec.drive_id:
                    download.drive_to_part(spec.drive_id, part, step, cancel)
                else:
                    download.http_to_part(spec.url, part, step, cancel)
                return
            except download.TransferInterrupted:
                if attempt == retries:
                    raise
