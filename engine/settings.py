"""Every default, choice and check of the engine, once.

The command line (``instmatt matte``, ``instmatt serve``), the serve protocol's options
and the Blender add-on's preference defaults all come from here; a test keeps the
add-on's copy (it cannot import the engine) in step with these values.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from engine.errors import UserError

# The paper's inference: longest side capped at 1280.
MAX_SIDE = 1280
MIN_MAX_SIDE = 64
REFINE_MODES = ("windowed", "dense", "none")
REFINE = "windowed"
# Each person's network pass runs on their guidance box plus this many pixels of context
# (working resolution); exact=True runs the whole frame for everyone, as the authors do.
CROP_MARGIN = 64
EXACT = False
BACKENDS = ("auto", "pytorch", "onnxruntime", "tensorrt")
BACKEND = "auto"
# The paper's detector: persons with score >= 0.7 and a mask of at least 2 % of the frame.
SCORE = 0.7
MIN_AREA = 0.02
DETECTOR_SIZE = 800  # shorter side the detector sees (torchvision's default)
MIN_DETECTOR_SIZE = 64
GUIDANCE_KINDS = ("detector", "masks", "index")
# The matte EXRs: compression, bit depth of the person passes, the union/background passes.
COMPRESSIONS = ("zip", "piz", "dwaa")
COMPRESSION = "zip"
DEPTHS = ("half", "float")
DEPTH = "half"
UNION_PASS = True  # an "all_people.A" pass
BACKGROUND_PASS = True  # a "background.A" pass (1 - union)
LABEL_KEY = re.compile(r"^person_\d+$")
MAX_LABEL = 63
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")  # what the backends accept for ``device``
# Roto assistance: guidance on keyframes only, carried to every other frame by optical flow.
PROPAGATE = False
DETECT_EVERY = 12  # the detector as keyframe source: detect every N frames (0: first frame only), and when lost
TEMPORAL = 0.0  # chatter control in the uncertain band: 0 = off .. 1 = strongest


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_exr(compression, depth) -> None:
    """The matte EXRs' compression and depth, checked once for the settings and the writer."""
    if compression not in COMPRESSIONS:
        raise UserError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    if depth not in DEPTHS:
        raise UserError(f"depth must be one of {', '.join(DEPTHS)}, got {depth!r}")


def check_labels(labels) -> None:
    """The artist's names for people: {"person_01": "Anna", ...} (IDs stay the channel names)."""
    if labels is None:
        return
    if not isinstance(labels, dict):
        raise UserError(f"labels must map person IDs to names, e.g. {{\"person_01\": \"Anna\"}}, got {labels!r}")
    for key, name in labels.items():
        if not isinstance(key, str) or not LABEL_KEY.match(key):
            raise UserError(f"labels: {key!r} is not a person ID such as person_01")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_LABEL:
            raise UserError(f"labels: the name of {key} must be 1-{MAX_LABEL} characters, got {name!r}")


def check_detector(score, min_area, size) -> None:
    """The detector's settings, checked once for the CLI, the server and the detector itself."""
    if not _is_number(score) or not 0.0 <= float(score) <= 1.0:
        raise UserError(f"score must be within [0, 1], got {score!r}")
    if not _is_number(min_area) or not 0.0 <= float(min_area) < 1.0:
        raise UserError(f"min_area must be a fraction of the frame within [0, 1), got {min_area!r}")
    if not _is_int(size) or size < MIN_DETECTOR_SIZE:
        raise UserError(f"detector_size must be an integer of at least {MIN_DETECTOR_SIZE}, got {size!r}")


@dataclass
class MatteSettings:
    """How a matte job runs; the same fields as ``instmatt matte``'s options and the protocol's."""

    max_side: int = MAX_SIDE
    refine: str = REFINE
    score: float = SCORE
    min_area: float = MIN_AREA
    write_png: bool = False
    write_rgba: bool = False
    backend: str = BACKEND
    weights: str | None = None
    detector_weights: str | None = None
    detector_size: int = DETECTOR_SIZE
    overwrite: bool = False
    device: str | None = None
    threads: int | None = None
    compression: str = COMPRESSION
    depth: str = DEPTH
    union_pass: bool = UNION_PASS
    background_pass: bool = BACKGROUND_PASS
    labels: dict[str, str] | None = None
    exact: bool = EXACT
    propagate: bool = PROPAGATE
    detect_every: int = DETECT_EVERY
    temporal: float = TEMPORAL

    def check(self) -> None:
        if self.refine not in REFINE_MODES:
            raise UserError(f"refine must be one of {', '.join(REFINE_MODES)}, got {self.refine!r}")
        if not _is_int(self.max_side) or self.max_side < MIN_MAX_SIDE:
            raise UserError(f"max_side must be an integer of at least {MIN_MAX_SIDE}, got {self.max_side!r}")
        if self.backend not in BACKENDS:
            raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.threads is not None and (not _is_int(self.threads) or self.threads < 1):
            raise UserError(f"threads must be a positive integer, got {self.threads!r}")
        check_exr(self.compression, self.depth)
        check_labels(self.labels)
        if self.device is not None and not (isinstance(self.device, str) and DEVICE.fullmatch(self.device)):
            raise UserError(f"device must be cpu, cuda or cuda:N, got {self.device!r}")
        if not isinstance(self.exact, bool):
            raise UserError(f"exact must be true or false, got {self.exact!r}")
        check_detector(self.score, self.min_area, self.detector_size)
        if not isinstance(self.propagate, bool):
            raise UserError(f"propagate must be true or false, got {self.propagate!r}")
        if not _is_int(self.detect_every) or self.detect_every < 0:
            raise UserError(f"detect_every must be a whole number of frames (0 = the first frame and when lost), got {self.detect_every!r}")
        if not _is_number(self.temporal) or not 0.0 <= float(self.temporal) <= 1.0:
            raise UserError(f"temporal must be within [0, 1] (0 = off), got {self.temporal!r}")

    def manifest(self) -> dict:
        return {"max_side": self.max_side, "refine": self.refine, "score": self.score, "min_area": self.min_area,
                "exact": self.exact, "propagate": self.propagate, "detect_every": self.detect_every,
                "temporal": self.temporal}

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    def as_dict(self) -> dict:
        return asdict(self)
