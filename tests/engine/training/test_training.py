"""Training: config, schedule, loss goes down, exact resume, stage 2, checkpoints load."""

from __future__ import annotations

import io
import shutil

import pytest
import torch

from engine.errors import UserError
from engine.model import load_model
from engine.training.config import config_from_dict, load_config
from engine.training.progress import Progress
from engine.training.trainer import Trainer, learning_rate, resolve_resume

TINY = {
    "seed": 0,
    "width": 0.125,
    "device": "cpu",
    "threads": 0,
    "checkpoint_every": 0,
    "log_every": 1000,
    "data": {"figures": 3, "figure_size": 64, "people": None, "backgrounds": None, "crop": 64,
             "people_per_image": [2, 2], "scale": [0.7, 1.0]},
    "val": {"every": 0, "images": 0},
    "stage1": {"steps": 20, "batch": 2, "lr": 2e-3, "min_lr": 1e-3, "warmup": 0, "gt_band_steps": 2},
    "stage2": {"steps": 2, "batch": 2, "lr": 1e-3, "min_lr": 1e-4, "window": 64, "iterations": [1, 2]},
}


def _config(tmp_path, **changes):
    values = {key: (dict(value) if isinstance(value, dict) else value) for key, value in TINY.items()}
    values["out"] = str(tmp_path / "run")
    for key, value in changes.items():
        if isinstance(value, dict):
            values[key].update(value)
        else:
            values[key] = value
    return config_from_dict(values)


def test_yaml_config_and_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("width: 0.5\nstage1:\n  steps: 7\n  lr: 3.0e-4\n")
    config = load_config(path)
    assert config.width == 0.5 and config.stage1.steps == 7 and config.stage1.lr == 3e-4
    assert config.stage1.batch == 8 and config.data.crop == 160   # defaults kept
    path.write_text("stage1:\n  stepz: 7\n")
    with pytest.raises(UserError, match="stepz"):
        load_config(path)
    with pytest.raises(UserError, match="crop"):
        config_from_dict({"data": {"crop": 100}})


def test_learning_rate_warmup_and_cosine(tmp_path):
    stage = _config(tmp_path, stage1={"steps": 100, "lr": 1e-3, "min_lr": 1e-5, "warmup": 10}).stage1
    assert learning_rate(stage, 0) == pytest.approx(1e-4)
    assert learning_rate(stage, 9) == pytest.approx(1e-3)
    assert learning_rate(stage, 10) == pytest.approx(1e-3)
    assert learning_rate(stage, 100) == pytest.approx(1e-5)
    values = [learning_rate(stage, s) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_a_few_steps_lower_the_loss(tmp_path):
    config = _config(tmp_path)
    trainer = Trainer(config)
    source = trainer.source
    fixed = source.stage1(0, config.stage1.batch)
    source.stage1 = lambda step, size: (fixed[0], __import__("numpy").random.default_rng(step))
    trainer._set_modes(1)
    first = trainer.stage1_loss(0, config.stage1)["total"].item()
    trainer.run_stage(1, max_steps=15)
    last = trainer.stage1_loss(15, config.stage1)["total"].item()
    assert last < 0.9 * first


def test_resume_continues_exactly(tmp_path):
    # uninterrupted: 4 steps
    straight = Trainer(_config(tmp_path / "a"))
    straight.out.mkdir(parents=True)
    state = straight.run_stage(1, max_steps=4)
    assert state.step == 4
    expected = straight.last_losses["total"]

    # interrupted after 3 steps, then resumed from the checkpoint for 1 step
    first = Trainer(_config(tmp_path / "b"))
    first.out.mkdir(parents=True)
    first.run_stage(1, max_steps=3)
    checkpoint = first.checkpoint_path(1)
    saved = tmp_path / "saved.pth"
    shutil.copy(checkpoint, saved)
    resumed = Trainer(_config(tmp_path / "b"))
    training = resumed.restore(saved)
    assert training["stage"] == 1 and training["step"] == 3
    optimiser_state = training["optimizer"]["state"]
    assert optimiser_state and all(int(v["step"]) == 3 for v in optimiser_state.values())
    state = resumed.run_stage(1, resume=training, max_steps=1)
    assert state.step == 4
    assert resumed.last_losses["total"] == expected
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_stage2_trains_only_the_refiner_and_checkpoints_load(tmp_path):
    config = _config(tmp_path, stage1={"steps": 1}, stage2={"steps": 2})
    trainer = Trainer(config)
    results = trainer.train(stages=(1, 2))
    assert results == {}   # validation is off in this config
    before = {k: v.clone() for k, v in load_model(trainer.checkpoint_path(1, final=True)).state_dict().items()}
    after = load_model(trainer.checkpoint_path(2, final=True))
    changed = {k for k, v in after.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("refiner.") for k in changed)
    assert resolve_resume(config, "auto") == trainer.checkpoint_path(2)


def test_export_and_validation(tmp_path):
    export = tmp_path / "tiny.safetensors"
    config = _config(tmp_path, stage1={"steps": 1}, stage2={"steps": 0}, export=str(export),
                     val={"images": 1, "size": 64, "figures": 2, "people_per_image": [2, 2]})
    trainer = Trainer(config)
    results = trainer.train(stages=(1, 2))
    assert "IMQ_mad" in results["stage1"] and 0.0 <= results["stage1"]["IMQ_mad"] <= 100.0
    model = load_model(export)
    assert model.width == 0.125
    # the stage checkpoint, validation history included, loads for inference and for resuming
    assert load_model(trainer.checkpoint_path(1, final=True)).width == 0.125
    assert trainer.restore(trainer.checkpoint_path(1, final=True))["history"][-1]["IMQ_mad"] >= 0.0


def test_progress_bar_writes_lines():
    stream = io.StringIO()
    progress = Progress("[stage 1]", total=4, start=0, every=2, stream=stream)
    for step in range(4):
        progress.update(step, "loss 1.0")
    text = stream.getvalue()
    assert "[stage 1] 2/4" in text and "[stage 1] 4/4" in text and "100%" in text and "1/4" not in text
