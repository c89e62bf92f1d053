"""Reduced precision for the PyTorch backend: bf16 on the CPU, fp16 on CUDA.

The convolutions run under ``torch.autocast``; what must stay exact stays in fp32:

- normalisation: every BatchNorm that directly follows a convolution is folded into it
  (in fp32, before any rounding); the few that follow a ReLU (the encoder's shortcut
  branches) run in fp32 on an fp32 input;
- reductions: the ASPP's global average, and the refiner's sums and means over people;
- the heads: each tri-matte head's last convolution returns fp32, so the bilinear
  upsampling of the logits and the tanh run in fp32.

The network is a private copy (hooks and folded weights never touch the caller's model).
On CUDA the copy is also put in channels_last memory format. Measured in
docs/performance.md (quality and speed); the CUDA path is written but unmeasured here.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

DTYPES = {"cpu": torch.bfloat16, "cuda": torch.float16}


def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX); Linux only, else False."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool({"avx512_bf16", "amx_bf16"} & flags)
    except OSError:
        pass
    return False


def _fold(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(.)) in place (float64 arithmetic); works for Conv2d and ConvTranspose2d."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    weight = conv.weight.double()
    out_dim = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
    shape = [1] * weight.dim()
    shape[out_dim] = -1
    conv.weight.data = (weight * scale.view(shape)).to(conv.weight.dtype)
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
    conv.bias = nn.Parameter((bias * scale + shift).to(conv.weight.dtype), requires_grad=False)


def _fold_pairs(module: nn.Module) -> None:
    """Fold every BatchNorm that directly follows a convolution (named pairs and Sequentials)."""
    for child in list(module.children()):
        _fold_pairs(child)
    names = dict(module.named_children())
    for name, bn in names.items():
        if isinstance(bn, nn.BatchNorm2d) and name.startswith("bn"):
            conv = names.get("conv" + name[2:])
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                _fold(conv, bn)
                setattr(module, name, nn.Identity())
    if isinstance(module, nn.Sequential):
        for index in range(1, len(module)):
            if isinstance(module[index], nn.BatchNorm2d) and isinstance(module[index - 1], (nn.Conv2d, nn.ConvTranspose2d)):
                _fold(module[index - 1], module[index])
                module[index] = nn.Identity()


def _to_fp32_input(_module, inputs):
    return tuple(x.float() for x in inputs)


def _to_fp32_output(_module, _inputs, output):
    return output.float()


def reduced_copy(model: nn.Module, device: torch.device) -> nn.Module:
    """A private copy of ``model`` prepared for autocast (see the module doc)."""
    clone = copy.deepcopy(model).eval()
    _fold_pairs(clone.encoder)
    _fold_pairs(clone.decoder)
    for module in clone.modules():
        if isinstance(module, nn.BatchNorm2d):  # not folded: follows a ReLU
            module.register_forward_pre_hook(_to_fp32_input)
    clone.aspp.register_forward_pre_hook(_to_fp32_input)
    for head in (clone.decoder.refine_OS1, clone.decoder.refine_OS4, clone.decoder.refine_OS8):
        head[-1].register_forward_hook(_to_fp32_output)
    # the refiner: separated features leave in fp32, so the sums over people and the concat
    # with the image run in fp32; the head's logits too, so the tanh does
    clone.refiner.split.register_forward_hook(_to_fp32_output)
    clone.refiner.head.register_forward_hook(_to_fp32_output)
    if device.type == "cuda":
        clone = clone.to(memory_format=torch.channels_last)
    return clone


def matting(model: nn.Module, image: torch.Tensor, trimask: torch.Tensor, device: torch.device) -> dict:
    if device.type == "cuda":
        image = image.contiguous(memory_format=torch.channels_last)
        trimask = trimask.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=DTYPES[device.type]):
        outputs = model.matting(image, trimask)
    return {key: value.float() for key, value in outputs.items()}


def refiner(model: nn.Module, image: torch.Tensor, trimatte: torch.Tensor, feature: torch.Tensor,
            device: torch.device) -> torch.Tensor:
    """The refiner's convolutions in reduced precision; its sums over people and tanh in fp32 (hooks)."""
    with torch.autocast(device.type, dtype=DTYPES[device.type]):
        return model.refiner(image.float(), trimatte.float(), feature.float()).float()
