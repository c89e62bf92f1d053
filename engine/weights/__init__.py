"""Weights shipped with the repository (the offline default for the demo and the tests)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
SHIPPED = WEIGHTS_DIR / "instmatt_tiny.safetensors"


def default_weights_path() -> Path | None:
    """The shipped tiny checkpoint, or None when this build has none (random weights then)."""
    return SHIPPED if SHIPPED.is_file() else None
