"""engine.backends.reduced: bf16 (CPU) / fp16 (CUDA) with normalisation, reductions and tanh in fp32."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.backends import create_backend
from engine.backends.reduced import cpu_has_bf16, reduced_copy

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(random_tiny_model):
    return random_tiny_model


def inputs(seed: int = 0, people: int = 2, height: int = 96, width: int = 128):
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(people, 3, height, width, generator=generator),
            torch.rand(people, 3, height, width, generator=generator))


def test_folding_batchnorm_changes_nothing_in_fp32(model):
    copy = reduced_copy(model, torch.device("cpu"))
    folded = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) - sum(
        isinstance(m, nn.BatchNorm2d) for m in copy.modules())
    assert folded > 20  # every BatchNorm right after a conv; the ones after a ReLU stay
    image, trimask = inputs()
    with torch.inference_mode():
        expected, got = model.matting(image, trimask), copy.matting(image, trimask)
    for name in expected:
        assert (expected[name] - got[name]).abs().max() < 1e-4, name


def test_heads_reductions_and_remaining_batchnorms_run_in_fp32(model):
    copy = reduced_copy(model, torch.device("cpu"))
    seen = {}

    def record(name):
        def hook(_module, args, output):
            seen[name] = (args[0].dtype, output.dtype)
        return hook

    copy.decoder.refine_OS1[-1].register_forward_hook(record("head"))
    copy.aspp.register_forward_hook(record("aspp"))
    remaining = next(m for m in copy.modules() if isinstance(m, nn.BatchNorm2d))
    remaining.register_forward_hook(record("batchnorm"))
    image, trimask = inputs()
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = copy.matting(image, trimask)
    assert seen["head"][1] == torch.float32  # logits leave the head in fp32: upsampling and tanh in fp32
    assert seen["aspp"][0] == torch.float32  # its global average over the image in fp32
    assert seen["batchnorm"] == (torch.float32, torch.float32)
    assert outputs["alpha_os1"].dtype == torch.float32
    assert not model.decoder.refine_OS1[-1]._forward_hooks  # the caller's network is untouched


def test_bf16_backend_stays_close_to_fp32_and_can_be_switched_off(model):
    backend = create_backend("pytorch", weights=model, device="cpu", bf16=True)
    assert backend.precision == "bf16"
    image, trimask = inputs(1)
    low = backend.matting(image, trimask)
    refined_low = backend.refiner(image, low["alpha_os1"], low["feature"])
    backend.bf16 = False
    assert backend.precision == "fp32"
    full = backend.matting(image, trimask)
    refined = backend.refiner(image, low["alpha_os1"], low["feature"])
    for name in full:
        assert low[name].dtype == torch.float32
        # bf16 keeps 8 bits of mantissa; the measured quality cost is in docs/performance.md
        assert (low[name] - full[name]).abs().max() < 0.1, name
    assert (refined_low - refined).abs().max() < 0.05


def test_cpu_bf16_detection_answers():
    assert isinstance(cpu_has_bf16(), bool)
