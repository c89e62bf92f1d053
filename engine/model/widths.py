"""Channel counts of the network, scaled by one ``width`` factor (1.0 = the authors')."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Widths:
    width: float = 1.0

    def __call__(self, channels: int) -> int:
        if self.width == 1.0:
            return channels
        # never below 8 channels: thinner layers stop learning anything useful
        return max(8, int(round(channels * self.width)))
