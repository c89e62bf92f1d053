"""Footage -> EXR: the matte job (skip, compute, write), its listener and its builder."""

from .build import build_job
from .listener import JobResult, Listener
from .matte_job import MatteJob

__all__ = ["JobResult", "Listener", "MatteJob", "build_job"]
