"""Video files through FFmpeg (PyAV); frames are numbered from 1 in presentation order.

A frame is either its own picture or an InputFileError, never a neighbour's picture. A
damaged file makes decoders drop pictures (every later picture would then shift by one)
or paper over them with the previous picture ("error concealment"). So the reader never
counts decoded pictures: it lists the stream's packets once when the file opens (their
timestamps number the frames), then names every decoded picture by its timestamp, and
refuses a picture the decoder flags as corrupt.

Reading in order decodes each packet once; a frame far ahead or behind seeks to the
keyframe before it. Pictures decoded ahead of the one asked for (B-frame reordering) wait
in a small cache.
"""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from engine.errors import InputFileError

from .images import Frame

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mxf", ".gif")
SEEK_AHEAD = 48  # frames: further than this, seeking beats decoding every frame in between


def _quiet_ffmpeg(av) -> None:
    """FFmpeg's own log lines ("ac-tex damaged at 1 0") would duplicate our one-line errors."""
    try:
        av.logging.set_level(av.logging.FATAL)
    except AttributeError:
        pass


class VideoReader:
    def __init__(self, path: str | Path):
        import av

        _quiet_ffmpeg(av)
        self._av = av
        self.path = Path(path)
        if not self.path.is_file():
            raise InputFileError(self.path, "video file not found")
        if self.path.stat().st_size == 0:
            raise InputFileError(self.path, "empty file (0 bytes)")
        self._container = None
        self._packets = None  # the demux/decode iterator of the open container
        self._open()
        stream = self._container.streams.video[0]
        self.fps = float(stream.average_rate or 0.0)
        self._stamps = self._list_stamps()  # frame n (1-based) has timestamp _stamps[n - 1]
        if not self._stamps:
            raise InputFileError(self.path, "video has no readable frames")
        self.frame_count = len(self._stamps)
        self._ahead: dict[int, object] = {}  # decoded pictures not asked for yet, by frame number
        self._broken: dict[int, str] = {}  # frame number -> why it cannot be read
        self._last = 0  # the highest frame number the decoder has reached
        self._open()

    def _open(self) -> None:
        av = self._av
        if self._container is not None:
            self._container.close()
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, UnicodeDecodeError) as exc:
            raise InputFileError(self.path, f"cannot be opened as a video (damaged file or unsupported codec): "
                                            f"{exc}") from None
        if not self._container.streams.video:
            raise InputFileError(self.path, "holds no video stream")
        stream = self._container.streams.video[0]
        self._packets = None
        self._last = 0

    def _list_stamps(self) -> list[int]:
        """Every picture's timestamp in presentation order, from the packets (no decoding)."""
        stream = self._container.streams.video[0]
        stamps = []
        try:
            for count, packet in enumerate(self._container.demux(stream)):
                if packet.size == 0:
                    continue  # the flush packet at the end
                stamp = packet.pts if packet.pts is not None else packet.dts
                stamps.append(count if stamp is None else stamp)
        except self._av.error.FFmpegError:
            pass  # the container is damaged past this point: the frames before it are still there
        return sorted(set(stamps))

    def _number(self, stamp) -> int | None:
        index = bisect.bisect_left(self._stamps, stamp)
        if index < len(self._stamps) and self._stamps[index] == stamp:
            return index + 1
        return None

    # -- decoding ---------------------------------------------------------------------------
    def _decoded(self):
        """(frame number or None, picture or the reason it failed), in decoding order."""
        av = self._av
        stream = self._container.streams.video[0]
        for packet in self._container.demux(stream):
            stamp = packet.pts
            try:
                pictures = packet.decode()
            except av.error.FFmpegError as exc:
                number = self._number(stamp) if stamp is not None else None
                yield number, f"cannot be decoded (damaged video?): {exc.strerror or exc}"
                continue
            for picture in pictures:
                number = self._number(picture.pts) if picture.pts is not None else None
                if picture.is_corrupt:
                    yield number, "is damaged (the decoder could only guess its picture)"
                else:
                    yield number, picture

    def _decode_until(self, frame: int) -> None:
        if self._packets is None:
            self._packets = self._decoded()
        try:
            while frame not in self._ahead and frame not in self._broken and self._last < frame:
                number, picture = next(self._packets)
                if number is None or number < frame:
                    continue  # before the frame asked for (after a seek) or not a frame of the list
                self._last = max(self._last, number)
                if isinstance(picture, str):
                    self._broken[number] = picture
                else:
                    self._ahead[number] = picture
        except StopIteration:
            self._last = self.frame_count
        except self._av.error.FFmpegError as exc:  # the demuxer gave up: nothing after this is readable
            self._broken.setdefault(frame, f"cannot be read (damaged video?): {exc}")
            self._last = self.frame_count

    def _seek(self, frame: int) -> None:
        """Restart decoding at the keyframe at or before ``frame``."""
        self._ahead.clear()
        self._open()
        if frame > 1:
            stream = self._container.streams.video[0]
            try:
                self._container.seek(self._stamps[frame - 1], stream=stream, backward=True, any_frame=False)
            except self._av.error.FFmpegError:
                self._open()  # cannot seek: decode from the start

    def read(self, frame: int) -> Frame:
        """Frame ``frame`` (1-based) as an RGB Frame; InputFileError when it cannot be its own picture."""
        if frame < 1 or frame > self.frame_count:
            raise InputFileError(self.path, f"has no frame {frame} (frames 1-{self.frame_count})")
        if frame not in self._ahead and frame not in self._broken:
            if frame <= self._last or frame > self._last + SEEK_AHEAD:
                self._seek(frame)
            self._decode_until(frame)
        for number in [n for n in self._ahead if n < frame]:
            del self._ahead[number]  # passed over: a later request for them seeks back
        if frame in self._broken:
            raise InputFileError(f"{self.path}#{frame}", f"frame {frame} {self._broken[frame]}")
        picture = self._ahead.pop(frame, None)
        if picture is None:
            raise InputFileError(f"{self.path}#{frame}", f"frame {frame} cannot be decoded (damaged or truncated video?)")
        rgb = np.ascontiguousarray(picture.to_ndarray(format="rgb24"))
        return Frame(rgb8=rgb, pixels=rgb, path=f"{self.path}#{frame}")

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._packets = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
