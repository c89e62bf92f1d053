"""The model registry: which weights the engine knows, fetching them (with resume and
mirrors), verifying them, and the cache they live in (see docs/models.md)."""

from .catalog import MODELS, ModelSpec
from .store import (
    ModelState,
    ModelStore,
    default_cache_dir,
    fetch_hint,
    offline_from_env,
)

__all__ = ["MODELS", "ModelSpec", "ModelState", "ModelStore", "default_cache_dir", "fetch_hint", "offline_from_env"]
