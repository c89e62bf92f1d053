"""Weights shipped with the repository (the offline default for the demo and the tests)."""

from __future__ import annotations

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
SHIPPED = WEIGHTS_DIR / "instmatt_tiny.safetensors"


def default_weights_path() -> Path:
    """The shipped tiny checkpoint (always part of the package)."""
    return SHIPPED
