"""Which TensorRT engine fits: the optimisation profile, the cache key fields, the paths.

What the runtime needs to find (or refuse) an engine lives here in the engine package;
building one is build_trt's job (``python -m build_trt build``), which the runtime runs as
a child process when asked for TensorRT explicitly. TensorRT is imported lazily, so this
module loads without TensorRT or a GPU.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from engine.backends.cache import cache_key, engine_key_fields, engines_dir, file_sha256

DEFAULT_WORKSPACE_MIB = 4096


class TensorRTUnavailable(RuntimeError):
    """TensorRT (or CUDA) is missing here; the message says which."""


@dataclass(frozen=True)
class Profile:
    """Optimisation profile in (people, height, width) for the padded network input.

    The pipeline caps the longest side at 1280 and pads to a multiple of 32 plus 32 px
    on every side, so 1344 covers every frame it sends; 800x1344 is a padded 1280x720.
    """

    min: tuple[int, int, int] = (1, 64, 64)
    opt: tuple[int, int, int] = (2, 800, 1344)
    max: tuple[int, int, int] = (4, 1344, 1344)

    def __post_init__(self):
        for name in ("min", "opt", "max"):
            value = tuple(int(v) for v in getattr(self, name))
            if len(value) != 3 or min(value) < 1:
                raise ValueError(f"profile {name} must be three positive numbers (people, height, width), got {value}")
            if value[1] % 32 or value[2] % 32:
                raise ValueError(f"profile {name} height and width must be multiples of 32, got {value[1]}x{value[2]}")
            object.__setattr__(self, name, value)
        if not all(a <= b <= c for a, b, c in zip(self.min, self.opt, self.max)):
            raise ValueError(f"profile must satisfy min <= opt <= max in every axis, got {self.min}, {self.opt}, {self.max}")

    def shapes(self, channels: int = 3) -> tuple[tuple, tuple, tuple]:
        return tuple((n, channels, h, w) for n, h, w in (self.min, self.opt, self.max))

    def as_dict(self) -> dict:
        return {key: list(value) for key, value in asdict(self).items()}

    @classmethod
    def parse(cls, min: str | None = None, opt: str | None = None, max: str | None = None) -> "Profile":
        """From strings like ``"1x64x64"`` or ``"1,64,64"`` (people, height, width)."""
        default = cls()

        def one(text, fallback):
            if text is None:
                return fallback
            parts = str(text).replace("x", ",").split(",")
            try:
                return tuple(int(part) for part in parts)
            except ValueError:
                raise ValueError(f"profile shapes are PEOPLExHEIGHTxWIDTH, got {text!r}") from None

        return cls(one(min, default.min), one(opt, default.opt), one(max, default.max))


def tensorrt_version_tuple(version: str) -> tuple[int, ...]:
    numbers = []
    for part in str(version).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers)


def import_tensorrt():
    try:
        import tensorrt
    except ImportError as exc:
        raise TensorRTUnavailable(f"tensorrt is not importable ({exc})") from None
    return tensorrt


def cuda_compute_capability(device=None) -> str:
    try:
        import torch
    except ImportError:
        raise TensorRTUnavailable("torch is not importable, so the GPU cannot be identified") from None
    if not torch.cuda.is_available():
        raise TensorRTUnavailable("CUDA is not available (torch.cuda.is_available() is False)")
    major, minor = torch.cuda.get_device_capability(device)
    return f"{major}.{minor}"


def onnx_precision_of(onnx_path: str | Path) -> str:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    return metadata.get("instmatt.precision", "fp32")


def engine_fields(onnx_path: str | Path, profile: Profile, precision: str, workspace_mib: int,
                  tensorrt_version: str, compute_capability: str) -> dict:
    return engine_key_fields(tensorrt_version, compute_capability, file_sha256(onnx_path), profile.as_dict(),
                             precision, workspace_mib)


def engine_path_for(fields: dict, cache_dir: str | Path | None = None) -> Path:
    return engines_dir(cache_dir) / f"instmatt-{cache_key(fields)}.plan"


def timing_cache_path(tensorrt_version: str, compute_capability: str, cache_dir: str | Path | None = None) -> Path:
    return engines_dir(cache_dir) / f"timing-trt{tensorrt_version}-sm{compute_capability.replace('.', '')}.cache"
