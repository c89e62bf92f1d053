"""Shared by the command tests: ``instmatt matte`` on the random tiny network, one thread, quiet."""

from __future__ import annotations

import pytest

from engine.commands import main


@pytest.fixture
def matte(tiny_weights, capsys):
    def run(*args):
        status = main(["matte", *map(str, args), "--weights", str(tiny_weights), "--backend", "pytorch",
                       "--threads", "1", "-q"])
        return status, capsys.readouterr().err

    return run
