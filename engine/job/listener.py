"""What a job reports while it runs, and what it returns at the end."""

from __future__ import annotations

from dataclasses import dataclass, field


class Listener:
    """What a job reports. The CLI prints, the server sends JSON lines."""

    def progress(self, done: int, total: int, frame: int, fps: float | None, eta_s: float | None) -> None: ...

    def frame(self, frame: int, path: str, people: list[str], skipped: bool) -> None: ...

    def error(self, message: str, file: str | None, fatal: bool) -> None: ...

    def download(self, model: str, done: int, total: int | None) -> None:
        """Bytes of a model fetched on first use (``engine.registry``)."""

    def message(self, text: str) -> None:
        """A note for the user (e.g. which model is being fetched, or that the weights are a toy)."""


@dataclass
class JobResult:
    frames: int = 0  # frames in place at the end (written or already there)
    written: int = 0
    skipped: int = 0
    failed: int = 0
    elsewhere: int = 0  # frames another process claimed and had not finished when this job ended
    people: list[str] = field(default_factory=list)
    cancelled: bool = False
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)

    def add_people(self, ids: list[str]) -> None:
        for pid in ids:
            if pid not in self.people:
                self.people.append(pid)
