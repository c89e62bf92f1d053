"""The one chunked runner: K people through a network pass in groups of ``chunk``.

Peak memory then grows with the chunk, not with K; the results are identical to one
batch. Every backend's ``matting`` goes through here.
"""

from __future__ import annotations

from typing import Callable

import torch


def run_in_chunks(run: Callable[..., dict[str, torch.Tensor]], chunk: int,
                  *tensors: torch.Tensor) -> dict[str, torch.Tensor]:
    """``run(*slices)`` over the first axis of ``tensors`` in groups of ``chunk``; outputs concatenated."""
    count = tensors[0].shape[0]
    chunk = max(int(chunk), 1)
    parts = [run(*(tensor[start:start + chunk] for tensor in tensors)) for start in range(0, count, chunk)]
    if len(parts) == 1:
        return parts[0]
    return {name: torch.cat([part[name] for part in parts]) for name in parts[0]}
