"""Video files through ``cv2.VideoCapture``; frames are numbered from 1.

Reading is sequential: asking for a later frame skips ahead with ``grab`` (no decode to
RGB), asking for an earlier one reopens the file. That is exact for every codec, unlike
seeking by ``CAP_PROP_POS_FRAMES``, and costs nothing when frames are read in order.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.errors import InputFileError

from .images import Frame

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mxf", ".gif")


class VideoReader:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(self.path, "video file not found")
        if self.path.stat().st_size == 0:
            raise InputFileError(self.path, "empty file (0 bytes)")
        self._capture = None
        self._next = 1  # the frame number the next read() returns
        self._open()
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        if count <= 0:  # some containers do not say: count by decoding headers once
            count = 0
            while self._capture.grab():
                count += 1
            self._open()
        if count <= 0:
            raise InputFileError(self.path, "video has no readable frames")
        self.frame_count = count

    def _open(self) -> None:
        if self._capture is not None:
            self._capture.release()
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise InputFileError(self.path, "cannot be opened as a video (damaged file or unsupported codec)")
        self._capture = capture
        self._next = 1

    def read(self, frame: int) -> Frame:
        """Frame ``frame`` (1-based) as an RGB Frame."""
        if frame < 1 or frame > self.frame_count:
            raise InputFileError(self.path, f"has no frame {frame} (frames 1-{self.frame_count})")
        if frame < self._next:
            self._open()
        while self._next < frame:
            if not self._capture.grab():
                raise InputFileError(self.path, f"ends before frame {frame} (truncated video?)")
            self._next += 1
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise InputFileError(self.path, f"frame {frame} cannot be decoded (truncated video?)")
        self._next += 1
        if bgr.ndim == 2:
            bgr = np.repeat(bgr[..., None], 3, axis=-1)
        rgb = np.ascontiguousarray(bgr[..., 2::-1])
        if rgb.dtype != np.uint8:
            from .images import to_rgb8
            return Frame(rgb8=to_rgb8(rgb), pixels=rgb, path=f"{self.path}#{frame}")
        return Frame(rgb8=rgb, pixels=rgb, path=f"{self.path}#{frame}")

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
