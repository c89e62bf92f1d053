"""A loopback HTTP server for the registry's tests: files with Range support, a connection
that drops mid-file on request, a stand-in for Google Drive's confirm page, and a log of
every request, so a test can prove what was (not) downloaded.

Weights come from the session fixtures of the parent conftests: ``authors_checkpoint``
(random tensors in the authors' layout) and ``random_detector_weights`` (a randomly
initialised torchvision Mask R-CNN state dict).
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import shutil
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

CHUNK = 1 << 20


@dataclass
class Hit:
    path: str
    query: dict
    range: str | None
    status: int
    sent: int = 0


@dataclass
class Loopback:
    url: str
    files: dict = field(default_factory=dict)       # url path -> Path or bytes
    drops: dict = field(default_factory=dict)       # url path -> [bytes before dropping, times left]
    lie_length: dict = field(default_factory=dict)  # url path -> Content-Length to announce instead
    ignore_range: bool = False
    slow: dict = field(default_factory=dict)        # url path -> seconds to wait before each chunk
    drive_files: dict = field(default_factory=dict)  # Drive id -> Path or bytes
    drive_error: str | None = None
    hits: list = field(default_factory=list)

    def add(self, path: str, content) -> str:
        self.files[path] = content
        return self.url + path

    def file_hits(self) -> list:
        """Requests for anything but models.json."""
        return [hit for hit in self.hits if not hit.path.endswith("models.json")]


def _content(item) -> bytes | Path:
    return item if isinstance(item, bytes) else Path(item)


def _length(item) -> int:
    return len(item) if isinstance(item, bytes) else Path(item).stat().st_size


def _make_handler(state: Loopback):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest's output clean
            pass

        def _hit(self, status: int) -> Hit:
            parsed = urllib.parse.urlparse(self.path)
            hit = Hit(parsed.path, dict(urllib.parse.parse_qsl(parsed.query)), self.headers.get("Range"), status)
            state.hits.append(hit)
            return hit

        def do_GET(self):
            parsed = urllib.parse.urlparse(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            if parsed.path == "/drive/uc":
                return self._drive_confirm(query)
            if parsed.path == "/drive/download":
                item = state.drive_files.get(query.get("id"))
                if item is None or query.get("confirm") != "t" or query.get("uuid") != "u-123":
                    return self._drive_confirm(query)
                return self._send_file(parsed.path, item, {"Content-Disposition": 'attachment; filename="best_model.pth"'})
            item = state.files.get(parsed.path)
            if item is None:
                self._hit(404)
                self.send_error(404, "Not Found")
                return
            self._send_file(parsed.path, item)

        def _drive_confirm(self, query):
            self._hit(200)
            if state.drive_error:
                body = (f'<html><body><p class="uc-error-caption">Sorry</p>'
                        f'<p class="uc-error-subcaption">{html.escape(state.drive_error)}</p></body></html>')
            else:
                action = state.url + "/drive/download"
                file_id = html.escape(query.get("id", ""))
                # one line, as Drive serves it (gdown reads the page line by line)
                body = ('<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>'
                        '<p class="uc-warning-caption">Google Drive can\'t scan this file for viruses.</p>'
                        f'<form id="download-form" action="{action}" method="get">'
                        '<input type="submit" id="uc-download-link" value="Download anyway"/>'
                        f'<input type="hidden" name="id" value="{file_id}">'
                        '<input type="hidden" name="export" value="download">'
                        '<input type="hidden" name="confirm" value="t">'
                        '<input type="hidden" name="uuid" value="u-123"></form></body></html>')
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_file(self, path: str, item, extra: dict | None = None):
            total = _length(item)
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
            if match and not state.ignore_range:
                start = int(match[1])
                if start >= total:
                    self._hit(416)
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{total}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            status = 206 if start else 200
            hit = self._hit(status)
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(state.lie_length.get(path, total - start)))
            if start:
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            self.send_header("Accept-Ranges", "bytes")
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            drop = state.drops.get(path)
            limit = None
            if drop and drop[1] > 0:
                drop[1] -= 1
                limit = drop[0]
            content = _content(item)
            with (open(content, "rb") if isinstance(content, Path) else _BytesReader(content)) as handle:
                handle.seek(start)
                while True:
                    want = CHUNK if limit is None else min(CHUNK, limit - hit.sent)
                    block = handle.read(want) if want > 0 else b""
                    if path in state.slow:
                        time.sleep(state.slow[path])
                    if not block:
                        break
                    try:
                        self.wfile.write(block)
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    hit.sent += len(block)
            if limit is not None:
                self.close_connection = True  # the rest never comes: a dropped connection

    return Handler


class _BytesReader:
    def __init__(self, data: bytes):
        import io

        self.stream = io.BytesIO(data)

    def __enter__(self):
        return self.stream

    def __exit__(self, *exc):
        self.stream.close()


@pytest.fixture
def loopback():
    state = Loopback(url="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="session")
def weights_digests(authors_checkpoint, random_detector_weights):
    """sha256 of the two generated weight files (hashed once per session)."""
    return {"instmatt": sha256_file(authors_checkpoint), "detector": sha256_file(random_detector_weights)}


DETECTOR_FILE = "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"


@pytest.fixture
def make_mirror(authors_checkpoint, random_detector_weights, weights_digests):
    """``make_mirror(loopback=None, folder=None, wrong_sha=())`` -> the mirror's URL or folder:
    both generated weights and a models.json (with a bad sha256 for the names in ``wrong_sha``)."""

    def make(loopback: Loopback | None = None, folder: Path | None = None, wrong_sha=(), names=("instmatt", "detector")):
        files = {"instmatt": ("best_model.pth", authors_checkpoint), "detector": (DETECTOR_FILE, random_detector_weights)}
        models = {}
        for name in names:
            file, path = files[name]
            sha = weights_digests[name]
            if name in wrong_sha:
                sha = hashlib.sha256(b"not this file").hexdigest()
            models[name] = {"file": file, "sha256": sha, "size": path.stat().st_size}
        index = json.dumps({"models": models}).encode("utf-8")
        if loopback is not None:
            loopback.add("/mirror/models.json", index)
            for name in names:
                loopback.add(f"/mirror/{files[name][0]}", files[name][1])
            return loopback.url + "/mirror/"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "models.json").write_bytes(index)
        for name in names:
            shutil.copyfile(files[name][1], folder / files[name][0])
        return str(folder)

    return make


@pytest.fixture
def no_torch_hub(isolated_torch_hub):
    """torchvision's cache is empty, so only the registry's cache counts."""
    return isolated_torch_hub


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """These tests use the network, the loopback interface only: the suite's offline
    switch is lifted for them, and a name other than 127.0.0.1/localhost fails to
    resolve, so a slip towards a real host fails the test instead of downloading."""
    import socket

    monkeypatch.delenv("INSTMATT_OFFLINE", raising=False)
    monkeypatch.delenv("INSTMATT_MODELS_MIRROR", raising=False)
    real = socket.getaddrinfo

    def loopback_getaddrinfo(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: the registry tests stay on the loopback interface")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_getaddrinfo)
