"""The transfer layer on its own: HTTP Range resume, dropped connections, errors, cancel,
Google Drive's confirm page (a loopback stand-in read by gdown's parser), disk space."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from engine.errors import UserError
from engine.registry import download

DATA = os.urandom(3 * (1 << 20) + 12345)  # a bit over 3 chunks


def test_plain_download_reports_progress(loopback, tmp_path):
    url = loopback.add("/file.bin", DATA)
    seen = []
    part = tmp_path / "file.bin.part"
    size = download.http_to_part(url, part, progress=lambda done, total: seen.append((done, total)))
    assert size == len(DATA) and part.read_bytes() == DATA
    assert seen[-1] == (len(DATA), len(DATA))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert loopback.hits[0].range is None


def test_resume_asks_only_for_the_missing_bytes(loopback, tmp_path):
    url = loopback.add("/file.bin", DATA)
    part = tmp_path / "file.bin.part"
    part.write_bytes(DATA[:1_000_000])
    download.http_to_part(url, part)
    assert part.read_bytes() == DATA
    (hit,) = loopback.hits
    assert hit.range == "bytes=1000000-" and hit.status == 206 and hit.sent == len(DATA) - 1_000_000


def test_dropped_connection_keeps_the_part_and_the_next_run_resumes(loopback, tmp_path):
    url = loopback.add("/file.bin", DATA)
    loopback.drops["/file.bin"] = [1_500_000, 1]
    part = tmp_path / "file.bin.part"
    with pytest.raises(download.TransferInterrupted) as info:
        download.http_to_part(url, part)
    assert "\n" not in str(info.value) and "resume" in str(info.value)
    kept = part.stat().st_size
    assert 0 < kept <= 1_500_000 and part.read_bytes() == DATA[:kept]
    download.http_to_part(url, part)
    assert part.read_bytes() == DATA
    assert loopback.hits[-1].range == f"bytes={kept}-"


def test_server_that_ignores_range_restarts_from_zero(loopback, tmp_path):
    url = loopback.add("/file.bin", DATA)
    loopback.ignore_range = True
    part = tmp_path / "file.bin.part"
    part.write_bytes(b"x" * 1000)  # not even the right bytes: they must not survive
    download.http_to_part(url, part)
    assert part.read_bytes() == DATA


def test_complete_part_is_not_downloaded_again(loopback, tmp_path):
    url = loopback.add("/file.bin", DATA)
    part = tmp_path / "file.bin.part"
    part.write_bytes(DATA)
    assert download.http_to_part(url, part) == len(DATA)
    assert [hit.status for hit in loopback.hits] == [416] and part.read_bytes() == DATA


def test_404_is_one_line(loopback, tmp_path):
    with pytest.raises(UserError, match=r"HTTP 404") as info:
        download.http_to_part(loopback.url + "/nothing.pth", tmp_path / "x.part")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "x.part").exists()


def test_unreachable_host_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(UserError, match="connection refused") as info:
        download.http_to_part(f"http://127.0.0.1:{port}/x.pth", tmp_path / "x.part")
    assert "\n" not in str(info.value)


def test_cancel_stops_and_keeps_the_part(loopback, tmp_path):
    url = loopback.add("/file.bin", DATA)
    cancel = threading.Event()
    part = tmp_path / "file.bin.part"

    def progress(done, total):
        if done >= 1 << 20:
            cancel.set()

    with pytest.raises(download.DownloadCancelled, match="cancelled"):
        download.http_to_part(url, part, progress=progress, cancel=cancel)
    assert 0 < part.stat().st_size < len(DATA)
    download.http_to_part(url, part)
    assert part.read_bytes() == DATA


def test_disk_full_is_refused_before_writing(loopback, tmp_path):
    url = loopback.add("/huge.pth", DATA)
    loopback.lie_length["/huge.pth"] = 1 << 60  # more than any disk
    with pytest.raises(UserError, match=r"^disk full: .* free, huge\.pth needs"):
        download.http_to_part(url, tmp_path / "huge.pth.part")
    assert not (tmp_path / "huge.pth.part").exists()


def test_drive_confirm_page_is_followed(loopback, tmp_path, monkeypatch):
    monkeypatch.setenv(download.DRIVE_URL_ENV, loopback.url + "/drive/uc")
    loopback.drive_files["abc123"] = DATA
    part = tmp_path / "best_model.pth.part"
    assert download.drive_to_part("abc123", part) == len(DATA)
    assert part.read_bytes() == DATA
    first, second = loopback.hits
    assert first.path == "/drive/uc" and first.query == {"export": "download", "id": "abc123"}
    assert second.path == "/drive/download" and second.query["confirm"] == "t" and second.query["uuid"] == "u-123"


def test_drive_resume_goes_through_the_confirm_page(loopback, tmp_path, monkeypatch):
    monkeypatch.setenv(download.DRIVE_URL_ENV, loopback.url + "/drive/uc")
    loopback.drive_files["abc123"] = DATA
    part = tmp_path / "best_model.pth.part"
    part.write_bytes(DATA[:2_000_000])
    download.drive_to_part("abc123", part)
    assert part.read_bytes() == DATA
    assert loopback.hits[-1].path == "/drive/download" and loopback.hits[-1].range == "bytes=2000000-"


def test_drive_error_page_is_one_line(loopback, tmp_path, monkeypatch):
    monkeypatch.setenv(download.DRIVE_URL_ENV, loopback.url + "/drive/uc")
    loopback.drive_error = "Too many users have viewed or downloaded this file recently."
    with pytest.raises(UserError, match="Google Drive will not hand out file abc123: .*Too many users") as info:
        download.drive_to_part("abc123", tmp_path / "best_model.pth.part")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "best_model.pth.part").exists()


def test_the_suite_cannot_reach_a_real_host(tmp_path):
    with pytest.raises(UserError, match="cannot download https://download.pytorch.org/"):
        download.http_to_part("https://download.pytorch.org/models/x.pth", tmp_path / "x.part")
