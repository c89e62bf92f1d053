"""Mask guidance inside the running job: which frames to rasterise, and the rasterising
itself as a state machine stepped from the modal operator's timer (no bpy here).

With propagation only the Mask's keyframes are rasterised (into a keyframe folder the
engine propagates from, docs/protocol.md); without it every frame of the shot is.  A
Blender timer tick calls :meth:`Rasterising.step`, which rasterises at least one frame and
goes on until its time budget is spent, so a 1000-frame shot never freezes the UI.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass

from .job import format_seconds

Frame = tuple[int, "int | None"]  # (scene frame, source frame; None for a still image)
_FRAME_FOLDER = re.compile(r"^\d{4,}$")


@dataclass
class MaskPlan:
    frames: list[Frame]  # the frames to rasterise, in order
    propagate: bool  # True: ``frames`` are the keyframes, the engine propagates from them
    keyframes: list[int]  # the Mask's keyframes inside the shot (scene frames), as found

    def describe(self) -> str:
        """What propagates, for the artist ("keyframes 1, 13, 40"); empty without propagation."""
        if not self.propagate:
            return ""
        shown = ", ".join(str(f) for f, _ in self.frames[:8]) + (", ..." if len(self.frames) > 8 else "")
        return f"keyframe{'s' * (len(self.frames) != 1)} {shown}"


def plan_frames(shot: list[Frame], keyframes, propagate: bool) -> MaskPlan:
    """The frames to rasterise for a shot of ``(scene frame, source frame)`` pairs.

    With ``propagate`` the keyframes (scene frames) inside the shot are rasterised; without
    any there, the shot's first frame is the one keyframe (the Mask as it is there).
    Propagation is pointless, so off, when every frame of the shot is a keyframe, and for a
    still image.
    """
    inside = sorted({int(k) for k in keyframes} & {scene for scene, _ in shot})
    if not propagate or len(shot) < 2 or len(inside) >= len(shot):
        return MaskPlan(list(shot), False, inside)
    keys = set(inside) or {shot[0][0]}
    return MaskPlan([pair for pair in shot if pair[0] in keys], True, inside)


def remove_stale_keyframes(folder: str, keep: set[int]) -> list[int]:
    """Remove the frame folders of ``folder`` that are no keyframe any more (the engine
    propagates from every folder there); returns their frame numbers."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    gone = []
    for name in names:
        path = os.path.join(folder, name)
        if _FRAME_FOLDER.match(name) and int(name) not in keep and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
            gone.append(int(name))
    return sorted(gone)


def put_file(path: str, data: bytes) -> bool:
    """Write ``data`` to ``path`` unless the file holds exactly these bytes already (an
    unchanged keyframe keeps its file, and so its hash); atomic. True when written."""
    try:
        with open(path, "rb") as fh:
            if fh.read() == data:
                return False
    except OSError:
        pass
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return True


class Rasterising:
    """Rasterise ``frames`` one by one through ``write(scene_frame, source_frame)``.

    ``step(budget_s)`` rasterises at least one frame, then more while the budget lasts, and
    returns True once over; ``state`` is then DONE, CANCELLED or FAILED (``error`` says why).
    ``close()`` runs once at the end whatever happened (it puts the scene's frame back).
    """

    RUNNING = "RUNNING"
    DONE = "DONE"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"
    FINAL = (DONE, CANCELLED, FAILED)

    def __init__(self, frames: list[Frame], write, close=None, label: str = "masks", clock=time.monotonic):
        self.frames = list(frames)
        self.label = label  # "masks", "keyframe masks": what the status line says
        self.write = write
        self.close = close
        self.clock = clock
        self.done = 0
        self.state = self.RUNNING if self.frames else self.DONE
        self.error = ""
        self.started_at = clock()
        self.busy_s = 0.0  # time spent rasterising (for the time left)
        if not self.frames:
            self._end(self.DONE)

    @property
    def finished(self) -> bool:
        return self.state in self.FINAL

    @property
    def total(self) -> int:
        return len(self.frames)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    def step(self, budget_s: float = 0.0) -> bool:
        start = self.clock()
        while not self.finished:
            scene_frame, source_frame = self.frames[self.done]
            try:
                self.write(scene_frame, source_frame)
            except Exception as exc:  # one line for the artist, never a traceback
                label = source_frame if source_frame is not None else scene_frame
                self.error = f"rasterising the masks of frame {label} failed: {exc}"
                self._end(self.FAILED)
                break
            self.done += 1
            if self.done == self.total:
                self._end(self.DONE)
            elif self.clock() - start >= budget_s:
                break
        self.busy_s += self.clock() - start
        return self.finished

    def run(self, on_progress=None) -> str:
        """Rasterise everything (scripts, ``blender -b``); ``on_progress(self)`` after each frame."""
        while not self.step():
            if on_progress is not None:
                on_progress(self)
        return self.state

    def cancel(self) -> None:
        if not self.finished:
            self._end(self.CANCELLED)

    def status_text(self) -> str:
        text = f"InstMatt: rasterising {self.label} {self.done}/{self.total}"
        if 0 < self.done < self.total:
            text += f", {format_seconds(self.busy_s / self.done * (self.total - self.done))} left"
        return text + "  (Esc to cancel)"

    def _end(self, state: str) -> None:
        self.state = state
        close, self.close = self.close, None
        if close is not None:
            try:
                close()
            except Exception:  # best effort (e.g. the scene was undone away): never into Blender's loop
                pass
