"""What a matte job and a model fetch share: one request to the engine, a state machine
fed by the engine's events, polled from a timer (modal UI) or in a loop (``execute``)."""

from __future__ import annotations


class EngineRequest:
    """Subclasses set ``FINAL`` and ``state`` and define ``_handle(event)`` and ``_check_timeouts()``."""

    FINAL: tuple[str, ...] = ()
    state = ""

    @property
    def finished(self) -> bool:
        return self.state in self.FINAL

    def poll(self, timeout: float = 0.0) -> bool:
        """Handle all queued events (waiting up to ``timeout`` for the first one); True once over."""
        wait = timeout
        while not self.finished:
            event = self.client.next_event(timeout=wait)
            wait = 0.0
            if event is None:
                break
            self._handle(event)
        self._check_timeouts()
        return self.finished

    def run(self, on_progress=None, poll_interval: float = 0.25) -> str:
        """Block until the request is over; returns the final state."""
        while not self.poll(poll_interval):
            if on_progress is not None:
                on_progress(self)
        return self.state

    def _handle(self, event: dict) -> None:
        raise NotImplementedError

    def _check_timeouts(self) -> None:
        raise NotImplementedError
