"""Training configuration: a YAML file mapped onto dataclasses, with defaults and checks.

Relative paths in the file are resolved against the directory ``instmatt train`` runs
from (the project root in ``scripts/train_tiny.sh``). Unknown keys are errors, so a typo
does not silently train with a default.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import UserError


@dataclass
class DataConfig:
    figures: int = 300                 # generated figures in the training pool
    figure_size: int = 256
    people: str | None = None          # folder of real person layers (images/ + alphas/), optional
    backgrounds: str | None = None     # folder of background photos, optional
    holdout_people: list[str] = field(default_factory=list)   # real people kept for validation only
    real_share: float = 0.5            # chance that a drawn person is a real layer (when any)
    generated_bg_prob: float = 0.3
    max_side: int = 640                # real layers/backgrounds are downscaled to this first
    crop: int = 160                    # training canvas (multiple of 32)
    people_per_image: list[int] = field(default_factory=lambda: [2, 4])
    scale: list[float] = field(default_factory=lambda: [0.45, 1.05])   # person height / canvas height
    mask_strength: float = 1.0
    trimask_channels: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])   # ablations zero some


@dataclass
class ValConfig:
    every: int = 500                   # steps between validations (0 = only at the end of a stage)
    images: int = 24
    size: int = 256
    seed: int = 1_000_003
    figures: int = 40                  # fresh generated figures, never in the training pool
    people_per_image: list[int] = field(default_factory=lambda: [2, 4])
    mask_strength: float = 1.0
    refine: str = "auto"               # auto: none in stage 1, windowed in stage 2


@dataclass
class StageConfig:
    steps: int = 0
    batch: int = 8                     # person instances per step (stage 1) / people per composite cap (stage 2)
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup: int = 0
    gt_band_steps: int = 0             # stage 1: weight OS4/OS1 by the ground truth's band at first
    band_os4: int = 30                 # random dilation up to this many pixels for the OS4 weight
    band_os1: int = 15
    window: int = 128                  # stage 2: refiner window
    iterations: list[int] = field(default_factory=lambda: [1, 3])   # stage 2: random refiner passes
    clip_grad: float = 2.0             # clip at this multiple of the running gradient norm (0 = off)


@dataclass
class TrainConfig:
    seed: int = 0
    width: float = 1.0
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    amp: bool = True                   # mixed precision, CUDA only
    threads: int = 0                   # torch CPU threads (0 = torch's default)
    out: str = "runs/instmatt"
    init: str | None = None            # start from these weights (any file load_model accepts)
    checkpoint_every: int = 250
    log_every: int = 20
    export: str | None = None          # also write the final weights here (.safetensors or .pth)
    export_half: bool = True
    data: DataConfig = field(default_factory=DataConfig)
    val: ValConfig = field(default_factory=ValConfig)
    stage1: StageConfig = field(default_factory=lambda: StageConfig(steps=1000, lr=1e-4, min_lr=1e-5))
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=0, lr=1e-4, min_lr=1e-5))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, values: dict, where: str):
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"config: '{where}' must be a mapping, got {type(values).__name__}")
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise UserError(f"config: unknown key(s) in '{where}': {', '.join(unknown)} "
                        f"(known: {', '.join(names)})")
    kwargs = {}
    for name, value in values.items():
        sub = {"data": DataConfig, "val": ValConfig, "stage1": StageConfig, "stage2": StageConfig}
        if cls is TrainConfig and name in sub:
            base = dataclasses.asdict(getattr(TrainConfig(), name))
            base.update(value or {})
            kwargs[name] = _build(sub[name], base, f"{where}.{name}" if where else name)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(values: dict) -> TrainConfig:
    config = _build(TrainConfig, values or {}, "")
    check(config)
    return config


def load_config(path: str | Path) -> TrainConfig:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"config file {path} is not valid YAML: {exc}") from None
    return config_from_dict(values)


def check(config: TrainConfig) -> None:
    problems = []
    if config.data.crop % 32 or config.data.crop < 64:
        problems.append(f"data.crop must be a multiple of 32 and at least 64, got {config.data.crop}")
    low, high = config.data.people_per_image
    if not 1 <= low <= high:
        problems.append(f"data.people_per_image must be [low, high] with 1 <= low <= high, got {[low, high]}")
    if len(config.data.trimask_channels) != 3:
        problems.append("data.trimask_channels must list three factors (T, R, B)")
    if config.width <= 0:
        problems.append(f"width must be positive, got {config.width}")
    for name in ("stage1", "stage2"):
        stage = getattr(config, name)
        if stage.steps < 0 or stage.batch < 1 or stage.lr <= 0 or stage.min_lr < 0:
            problems.append(f"{name}: steps >= 0, batch >= 1, lr > 0 and min_lr >= 0 are required")
        if len(stage.iterations) != 2 or not 1 <= stage.iterations[0] <= stage.iterations[1]:
            problems.append(f"{name}.iterations must be [low, high] with 1 <= low <= high")
    if config.val.refine not in ("auto", "none", "windowed", "dense"):
        problems.append(f"val.refine must be auto, none, windowed or dense, got {config.val.refine!r}")
    if problems:
        raise UserError("config: " + "; ".join(problems))
