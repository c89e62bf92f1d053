"""One frame -> K alphas, no files: preprocess, tri-masks, the network, progressive merge,
multi-instance refinement (windowed or dense)."""

from .pipeline import matte, matte_tensors

__all__ = ["matte", "matte_tensors"]
