"""A frame's files besides its EXR: PNG alphas and premultiplied RGBA cut-outs, and the
all-zero layers that give every EXR of a shot a layer for every person."""

from __future__ import annotations

import logging
import os

import numpy as np

from engine.errors import InputFileError
from engine.io import (
    alpha_to_png,
    person_number,
    read_manifest,
    read_person_exr,
    write_person_exr,
    write_png,
    write_rgba_exr,
)
from engine.io.patterns import extra_pattern, format_pattern

log = logging.getLogger("instmatt")


class SideFiles:
    """The optional per-person side files of ``--png`` and ``--rgba``."""

    def __init__(self, output_pattern: str, png: bool, rgba: bool):
        self.output_pattern = output_pattern
        self.kinds = [kind for kind, on in (("png", png), ("rgba", rgba)) if on]

    def paths(self, frame: int, pid: str, linear: bool) -> dict[str, str]:
        paths = {}
        if "png" in self.kinds:
            paths["png"] = format_pattern(extra_pattern(self.output_pattern, "png", pid), frame)
        if "rgba" in self.kinds:
            suffix = ".exr" if linear else ".png"
            paths["rgba"] = format_pattern(extra_pattern(self.output_pattern, "rgba", pid, suffix), frame)
        return paths

    def write(self, frame: int, image, alphas, ids: list[str], only_missing: bool) -> None:
        """Write them. ``image`` may be a callable that reads the frame (only when a file is missing)."""
        for pid, alpha in zip(ids, alphas):
            for kind in self.kinds:
                if only_missing and any(os.path.exists(self.paths(frame, pid, linear)[kind])
                                        for linear in (False, True)):
                    continue
                if callable(image):
                    image = image()
                self._write_one(kind, self.paths(frame, pid, image.linear)[kind], image, alpha)

    @staticmethod
    def _write_one(kind: str, path: str, image, alpha: np.ndarray) -> None:
        pixels = image.pixels
        bits = 8 if pixels.dtype == np.uint8 else 16
        if kind == "png":
            write_png(path, alpha_to_png(alpha, bits))
        elif image.linear:  # linear float input: premultiplied half-float EXR
            rgba = np.concatenate([pixels.astype(np.float32) * alpha[..., None], alpha[..., None]], axis=-1)
            write_rgba_exr(path, rgba)
        else:  # 8/16-bit input: premultiplied PNG of the same depth
            dtype = np.uint8 if bits == 8 else np.uint16
            rgb = np.round(pixels.astype(np.float32) * alpha[..., None]).astype(dtype)
            write_png(path, np.concatenate([rgb, alpha_to_png(alpha, bits)[..., None]], axis=-1))


def with_absent_people(ids: list[str], alphas, shot_people: list[str]):
    """Layers for every person of the shot, ordered by number: zeros for those not in view."""
    everyone = sorted(set(ids) | set(shot_people), key=lambda pid: (person_number(pid) or 0, pid))
    planes = dict(zip(ids, alphas))
    layers = np.zeros((len(everyone),) + tuple(alphas.shape[1:]), np.float32)
    for index, pid in enumerate(everyone):
        if pid in planes:
            layers[index] = planes[pid]
    return everyone, layers


def add_absent_layers(paths: list[str], shot_people: list[str]) -> None:
    """Give every EXR of the job a layer for every person of the shot.

    Blender's Image node takes its sockets from the frame it loads; on a frame that lacks
    a person's layer, that socket shows another person's alpha. So a person who enters
    late gets an all-zero layer in the frames before, rewritten atomically at the end.
    """
    for path in paths:
        if not os.path.isfile(path):
            continue
        try:
            manifest = read_manifest(path)
            if manifest is None or set(shot_people) <= set(manifest.get("people", [])):
                continue
            ids, alphas, manifest = read_person_exr(path)
        except InputFileError as exc:
            log.warning("%s; left as it is", exc)
            continue
        layer_ids, layer_alphas = with_absent_people(ids, alphas, shot_people)
        manifest = dict(manifest, people=layer_ids)
        manifest.setdefault("visible", ids)
        write_person_exr(path, layer_alphas, layer_ids, manifest, shape=alphas.shape[1:])
