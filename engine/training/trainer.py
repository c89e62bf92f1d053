"""The training loop: stage 1 (matting net) and stage 2 (multi-instance refiner).

Stage 1 follows the authors' recipe: the net sees (image, tri-mask) per person and is
supervised on all three tri-matte channels at OS8 (weight 1 everywhere), OS4 and OS1. For
the first ``gt_band_steps`` steps OS4/OS1 are weighted by the ground truth's transition
band; afterwards training merges the outputs progressively as inference does (OS4 inside
the OS8 prediction's uncertain band dilated by a random width, OS1 inside the merged
prediction's band) and weights each by its band.

Stage 2 freezes encoder, ASPP and decoder (batch norm in eval mode) and trains the
refiner the way the authors do: all people of a composite go through the frozen net and
the progressive merge; one window (the one where the people's mattes disagree most) is
refined 1-3 times in a row, each pass seeing the previous one's result and writing its
inner part (10 px margin) back; every pass is supervised inside the OS1 band.

Adam with betas (0.5, 0.999); linear warm-up then cosine decay to ``min_lr``; gradient
norm clipped at a multiple of its running mean; mixed precision (autocast + GradScaler)
on CUDA. Checkpoints are the project's ``.pth`` with the training state alongside, so
they load with ``engine.model.load_model`` and resume exactly.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.errors import UserError
from engine.inference.progressive import progressive_merge
from engine.inference.refine_windowed import MARGIN, select_windows
from engine.model import build_model, save_checkpoint
from engine.training.losses import band_weight, matting_loss, stride_loss

from .batches import BatchSource
from .config import StageConfig, TrainConfig
from .progress import Progress

LOG_KEYS = ("total", "l1", "lap", "comp", "sum")


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory instead of returning it to the system at once.

    Training frees and re-allocates the same few megabytes every step. By default glibc
    serves blocks over 128 KiB with fresh mmaps and unmaps them on free, so each step
    page-faults its tensors in again; on virtual machines with memory reclaim that costs
    more than the arithmetic (measured here: 1 s vs 0.03 s per batch of data). Same effect
    as MALLOC_MMAP_THRESHOLD_ / MALLOC_TRIM_THRESHOLD_ / MALLOC_TOP_PAD_. No-op elsewhere.
    """
    import ctypes
    import ctypes.util
    import platform

    if platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
        ok = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        ok &= libc.mallopt(m_trim_threshold, 1024 * 1024 * 1024)
        ok &= libc.mallopt(m_top_pad, 64 * 1024 * 1024)
        return bool(ok)
    except (OSError, AttributeError):
        return False


def configure_process(config: TrainConfig) -> None:
    """Process-wide settings for a training run (the CLI and scripts call this, tests do not).

    ``threads``: on a CPU shared with other jobs, one thread per process is much faster
    than two that keep waiting for each other (measured: 1.7 s vs 21 s per step).
    """
    if config.threads and pick_device(config.device).type == "cpu":
        torch.set_num_threads(int(config.threads))
    torch.set_flush_denormal(True)   # saturated tanh heads make denormals, very slow on CPUs
    keep_freed_memory()


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} requested but CUDA is not available")
    return device


def learning_rate(stage: StageConfig, step: int) -> float:
    """Linear warm-up to ``lr``, then a cosine from ``lr`` down to ``min_lr`` at the last step."""
    if stage.warmup and step < stage.warmup:
        return stage.lr * (step + 1) / stage.warmup
    span = max(stage.steps - stage.warmup, 1)
    progress = min(max(step - stage.warmup, 0) / span, 1.0)
    return stage.min_lr + 0.5 * (stage.lr - stage.min_lr) * (1.0 + math.cos(math.pi * progress))


@dataclass
class StageState:
    stage: int
    step: int = 0                       # next step to run
    grad_norm: float = 0.0              # running mean of the gradient norm (clipping)
    history: list = field(default_factory=list)   # validation results


class Trainer:
    def __init__(self, config: TrainConfig, log=None, heldout=None):
        self.config = config
        self.log = log or (lambda text: print(text, file=sys.stderr, flush=True))
        self.device = pick_device(config.device)
        self.amp = bool(config.amp and self.device.type == "cuda")
        self.out = Path(config.out)
        torch.manual_seed(config.seed)
        self.model = build_model(config.init) if config.init else build_model(None, config.width)
        if config.init and abs(self.model.width - config.width) > 1e-9:
            self.log(f"note: {config.init} has width {self.model.width:g}, not {config.width:g}; using the file's")
        self.model.to(self.device)
        self._pool = None
        self._source = None
        self._heldout = heldout
        self.last_losses: dict[str, float] = {}

    # ------------------------------------------------------------ data

    @property
    def source(self) -> BatchSource:
        if self._source is None:
            from engine.data.synth import LayerPool

            data = self.config.data
            self._pool = LayerPool(seed=self.config.seed, figures=data.figures, figure_size=data.figure_size,
                                   people_dir=data.people, backgrounds_dir=data.backgrounds,
                                   exclude_people=data.holdout_people, real_share=data.real_share,
                                   max_side=data.max_side, generated_bg_prob=data.generated_bg_prob)
            if data.people and not self._pool.people:
                self.log(f"note: no real person layers found in {data.people}; training on generated figures only")
            self._source = BatchSource(self._pool, self.config.seed, data.crop, data.people_per_image,
                                       data.scale, data.mask_strength, data.trimask_channels)
        return self._source

    @property
    def heldout(self):
        if self._heldout is None:
            from .validate import make_heldout

            val, data = self.config.val, self.config.data
            self._heldout = make_heldout(val.images, val.size, val.seed, val.figures, data.people,
                                         data.backgrounds, data.holdout_people, val.people_per_image,
                                         val.mask_strength)
        return self._heldout

    # ------------------------------------------------------------ modes and optimiser

    def _backbone(self):
        return [self.model.encoder, self.model.aspp, self.model.decoder]

    def _set_modes(self, stage: int) -> None:
        self.model.train()
        frozen = stage == 2
        for module in self._backbone():
            module.requires_grad_(not frozen)
            if frozen:
                module.eval()   # batch norm statistics and spectral-norm vectors stay fixed
        self.model.refiner.requires_grad_(stage == 2)

    def _parameters(self, stage: int):
        if stage == 1:
            return [p for m in self._backbone() for p in m.parameters()]
        return list(self.model.refiner.parameters())

    def _optimiser(self, stage: int, cfg: StageConfig):
        return torch.optim.Adam(self._parameters(stage), lr=cfg.lr, betas=(0.5, 0.999))

    # ------------------------------------------------------------ steps

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def stage1_loss(self, step: int, cfg: StageConfig) -> dict[str, torch.Tensor]:
        batch, rng = self.source.stage1(step, cfg.batch)
        batch = batch.to(self.device)
        with self._autocast():
            out = self.model(batch.image, batch.trimask)
        out = {k: v.float() for k, v in out.items()}
        n = len(batch)
        weights = {"alpha_os8": None}
        os8, os4, os1 = out["alpha_os8"], out["alpha_os4"], out["alpha_os1"]
        if step < cfg.gt_band_steps:
            gt_band = band_weight(batch.target, rng.integers(1, cfg.band_os1 + 1, n))
            weights["alpha_os4"] = weights["alpha_os1"] = gt_band
        else:
            w4 = band_weight(os8, rng.integers(1, cfg.band_os4 + 1, n))
            os4 = os4 * w4 + os8 * (1.0 - w4)
            w1 = band_weight(os4, rng.integers(1, cfg.band_os1 + 1, n))
            os1 = os1 * w1 + os4 * (1.0 - w1)
            weights["alpha_os4"], weights["alpha_os1"] = w4, w1
        merged = {"alpha_os8": os8, "alpha_os4": os4, "alpha_os1": os1}
        return stride_loss(merged, weights, batch.target, batch.colours, batch.raw)

    def stage2_loss(self, step: int, cfg: StageConfig) -> dict[str, torch.Tensor]:
        batch, rng = self.source.stage2(step, max(cfg.batch, 2))
        batch = batch.to(self.device)
        with torch.no_grad(), self._autocast():
            out = self.model(batch.image, batch.trimask)
        out = {k: v.float() for k, v in out.items()}
        trimatte, band = progressive_merge(out)
        feature = out["feature"]
        height, width = trimatte.shape[-2:]
        size = min(cfg.window, height, width)
        windows = select_windows(trimatte, size)
        x1, y1, x2, y2 = (int(v) for v in windows[0])
        if rng.random() < 0.25:   # sometimes a random window, so calm regions are seen too
            y1, x1 = int(rng.integers(0, height - size + 1)), int(rng.integers(0, width - size + 1))
            y2, x2 = y1 + size, x1 + size
        crop = (slice(None), slice(None), slice(y1, y2), slice(x1, x2))
        image, feat = batch.image[crop], feature[crop]
        current = trimatte[crop]
        target, colours, raw = batch.target[crop], batch.colours[..., y1:y2, x1:x2], batch.raw[crop]
        weight = band[crop].float()
        passes = int(rng.integers(cfg.iterations[0], cfg.iterations[1] + 1))
        inner = (slice(None), slice(None), slice(MARGIN, size - MARGIN), slice(MARGIN, size - MARGIN))
        totals: dict[str, torch.Tensor] = {}
        for _ in range(passes):
            with self._autocast():
                refined = self.model.refiner(image, current, feat).float()
            current = current.clone()
            current[inner] = refined[inner]
            parts = matting_loss(current, target, colours, raw, weight)
            for key, value in parts.items():
                totals[key] = totals.get(key, 0.0) + value / passes
        return totals

    # ------------------------------------------------------------ checkpoints

    def checkpoint_path(self, stage: int, final: bool = False) -> Path:
        return self.out / (f"stage{stage}_final.pth" if final else f"stage{stage}_last.pth")

    def save(self, state: StageState, optimiser, scaler, final: bool = False) -> Path:
        extra = {"training": {
            "stage": state.stage, "step": state.step, "grad_norm": state.grad_norm,
            "history": state.history, "optimizer": optimiser.state_dict(),
            "scaler": scaler.state_dict() if scaler is not None else None,
            "config": self.config.to_dict(),
        }}
        return save_checkpoint(self.model, self.checkpoint_path(state.stage, final), extra=extra)

    def restore(self, path: str | Path) -> dict:
        """Load weights and the training state from a checkpoint written by :meth:`save`."""
        from engine.model import read_checkpoint

        path = Path(path)
        state_dict, width = read_checkpoint(path)
        if abs(width - self.model.width) > 1e-9:
            raise UserError(f"cannot resume from {path}: width {width:g} differs from the config's {self.model.width:g}")
        self.model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state_dict.items()})
        self.model.to(self.device)
        payload = torch.load(str(path), map_location=self.device, weights_only=True) if path.suffix != ".safetensors" else {}
        return payload.get("training") or {}

    # ------------------------------------------------------------ the loop

    def run_stage(self, stage: int, resume: dict | None = None, max_steps: int | None = None) -> StageState:
        """Train one stage from its start or from ``resume`` (a checkpoint's training dict).

        ``max_steps`` stops early after that many steps of this call (tests, benchmarks).
        """
        cfg = self.config.stage1 if stage == 1 else self.config.stage2
        state = StageState(stage)
        self._set_modes(stage)
        optimiser = self._optimiser(stage, cfg)
        scaler = torch.amp.GradScaler("cuda") if self.amp else None
        if resume and resume.get("stage") == stage:
            state.step = int(resume["step"])
            state.grad_norm = float(resume.get("grad_norm", 0.0))
            state.history = list(resume.get("history", []))
            optimiser.load_state_dict(resume["optimizer"])
            if scaler is not None and resume.get("scaler"):
                scaler.load_state_dict(resume["scaler"])
        if state.step >= cfg.steps:
            return state
        label = f"[stage {stage}]"
        progress = Progress(label, cfg.steps, state.step, self.config.log_every)
        params = self._parameters(stage)
        compute = self.stage1_loss if stage == 1 else self.stage2_loss
        end = cfg.steps if max_steps is None else min(cfg.steps, state.step + max_steps)
        running: dict[str, float] = {}
        while state.step < end:
            step = state.step
            lr = learning_rate(cfg, step)
            for group in optimiser.param_groups:
                group["lr"] = lr
            losses = compute(step, cfg)
            loss = losses["total"]
            if not torch.isfinite(loss):
                raise RuntimeError(f"{label} step {step}: loss is {loss.item()} - lower the learning rate")
            optimiser.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimiser)
            else:
                loss.backward()
            if cfg.clip_grad > 0:
                limit = cfg.clip_grad * state.grad_norm if state.grad_norm > 0 else float("inf")
                norm = float(torch.nn.utils.clip_grad_norm_(params, limit))
                if math.isfinite(norm):
                    state.grad_norm = norm if state.grad_norm == 0 else 0.99 * state.grad_norm + 0.01 * min(norm, limit)
            if scaler is not None:
                scaler.step(optimiser)
                scaler.update()
            else:
                optimiser.step()
            state.step += 1
            self.last_losses = {k: float(v.detach()) for k, v in losses.items()}
            for key in LOG_KEYS:
                if key in self.last_losses:
                    running[key] = 0.9 * running.get(key, self.last_losses[key]) + 0.1 * self.last_losses[key]
            progress.update(step, f"loss {running['total']:.4f} lr {lr:.2e}")
            if self.config.checkpoint_every and state.step % self.config.checkpoint_every == 0:
                self.save(state, optimiser, scaler)
            if self.config.val.every and state.step % self.config.val.every == 0 and state.step < cfg.steps:
                self.validate(state, progress)
        if state.step >= cfg.steps:
            self.validate(state, progress)
            self.save(state, optimiser, scaler, final=True)
        self.save(state, optimiser, scaler)
        progress.close()
        return state

    def validate(self, state: StageState, progress: Progress | None = None) -> dict:
        from .validate import evaluate, summary

        if self.config.val.images <= 0:
            return {}
        refine = self.config.val.refine
        if refine == "auto":
            refine = "none" if state.stage == 1 else "windowed"
        started = time.monotonic()
        result = summary(evaluate(self.model, self.heldout, refine, self.config.data.trimask_channels))
        self._set_modes(state.stage)
        result.update(step=state.step, refine=refine)
        state.history.append(result)
        text = (f"[stage {state.stage}] validation at step {state.step}: IMQ_mad {result['IMQ_mad']:.2f} "
                f"IMQ_mse {result['IMQ_mse']:.2f} RQ {result['RQ']:.1f} ({refine}, {time.monotonic() - started:.0f} s)")
        (progress.message if progress else self.log)(text)
        return result

    def train(self, stages=(1, 2), resume: str | Path | None = None) -> dict:
        """Run the configured stages (each with steps > 0); returns the final validation."""
        self.out.mkdir(parents=True, exist_ok=True)
        resume_state = self.restore(resume) if resume else None
        results = {}
        for stage in stages:
            cfg = self.config.stage1 if stage == 1 else self.config.stage2
            if resume_state and resume_state.get("stage", 0) > stage:
                continue   # the checkpoint is already past this stage
            if cfg.steps <= 0:
                continue
            state = self.run_stage(stage, resume_state if resume_state and resume_state.get("stage") == stage else None)
            resume_state = None
            if state.history:
                results[f"stage{stage}"] = state.history[-1]
        if self.config.export:
            path = save_checkpoint(self.model, self.config.export, half=self.config.export_half,
                                   extra={"config": self.config.to_dict(), "validation": results})
            self.log(f"exported {path} ({path.stat().st_size / 1e6:.1f} MB)")
        return results


def resolve_resume(config: TrainConfig, resume: str | None) -> Path | None:
    """``auto``: the latest of the run's stage checkpoints, if any."""
    if resume is None:
        return None
    if resume != "auto":
        if not Path(resume).is_file():
            raise UserError(f"resume checkpoint not found: {resume}")
        return Path(resume)
    out = Path(config.out)
    for name in ("stage2_last.pth", "stage1_final.pth", "stage1_last.pth"):
        if (out / name).is_file():
            return out / name
    return None


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % (2 ** 32))
