"""File input and output: frames (8/16-bit, float, EXR), videos, guidance images,
multilayer EXR mattes and PNGs, all written atomically."""

from .atomic import atomic_path, temp_path_for, write_bytes_atomic
from .exr import (
                  BACKGROUND_PASS,
                  COMPRESSIONS,
                  DEPTHS,
                  MANIFEST_KEY,
                  UNION_PASS,
                  ExrOptions,
                  person_id,
                  person_number,
                  read_manifest,
                  read_person_exr,
                  write_person_exr,
                  write_rgba_exr,
)
from .images import (
                  EXR_SUFFIXES,
                  IMAGE_SUFFIXES,
                  Frame,
                  alpha_to_png,
                  frame_from_array,
                  linear_to_srgb,
                  read_exr_channels,
                  read_image,
                  read_index,
                  read_mask,
                  srgb_to_linear,
                  to_rgb8,
                  write_png,
)
from .video import VIDEO_SUFFIXES, VideoReader

__all__ = [
    "BACKGROUND_PASS", "COMPRESSIONS", "DEPTHS", "UNION_PASS", "ExrOptions", "EXR_SUFFIXES", "IMAGE_SUFFIXES", "MANIFEST_KEY", "VIDEO_SUFFIXES", "Frame", "VideoReader", "alpha_to_png",
    "atomic_path", "frame_from_array", "linear_to_srgb", "person_id", "person_number", "read_exr_channels",
    "read_image", "read_index", "read_manifest", "read_mask", "read_person_exr", "srgb_to_linear", "temp_path_for",
    "to_rgb8", "write_bytes_atomic", "write_person_exr", "write_png", "write_rgba_exr",
]
