"""The InstMatt network and its weights (see docs/model.md)."""

from .checkpoint import build_model, load_model, read_checkpoint, save_checkpoint
from .instmatt import InstMatt

__all__ = ["InstMatt", "build_model", "load_model", "read_checkpoint", "save_checkpoint"]
