"""The one atomic writer: the final name appears complete or not at all; no temp file survives a failure."""

from __future__ import annotations

import pytest

from engine.io.atomic import TEMP_MARK, atomic_path, write_bytes_atomic


def _temps(folder):
    return [p for p in folder.iterdir() if p.name.startswith(TEMP_MARK)]


def test_a_failed_write_leaves_neither_the_final_name_nor_a_temp_file(tmp_path):
    target = tmp_path / "out.exr"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert not target.exists()
    assert _temps(tmp_path) == []


def test_an_interrupted_write_keeps_the_previous_file(tmp_path):
    target = write_bytes_atomic(tmp_path / "frame.exr", b"complete")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"par")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"complete"
    assert _temps(tmp_path) == []


def test_a_writer_that_writes_nothing_is_an_error(tmp_path):
    with pytest.raises(OSError, match="produced no file"):
        with atomic_path(tmp_path / "x.png"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_temp_names_keep_the_suffix_so_writers_pick_the_format(tmp_path):
    with atomic_path(tmp_path / "a.safetensors") as tmp:
        assert tmp.suffix == ".safetensors" and tmp.parent == tmp_path
        tmp.write_bytes(b"1")
    assert (tmp_path / "a.safetensors").read_bytes() == b"1"
