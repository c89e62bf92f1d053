"""Spectral-normalised convolutions stored the way the authors' checkpoint stores them.

A wrapped conv keeps ``module.weight_bar`` (the raw weight) and the power-iteration
vectors ``module.weight_u`` / ``module.weight_v``. The effective weight is
``weight_bar / sigma`` with ``sigma = u . (W_bar reshaped to [rows, -1]) . v``.
Training runs one power iteration per forward pass (as the reference does); eval mode
uses u and v as stored. For inference and export :func:`fold_spectral_norm` replaces
every wrapper by a plain conv holding the effective weight, so ONNX/TensorRT never see
the normalisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _l2_normalise(vector: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return vector / (vector.norm() + eps)


class SpectralNorm(nn.Module):
    """Wraps a Conv2d or ConvTranspose2d (kept as ``self.module`` for the key names)."""

    def __init__(self, conv: nn.Conv2d | nn.ConvTranspose2d):
        super().__init__()
        weight = conv.weight.detach()
        rows = weight.shape[0]
        cols = weight[0].numel()
        del conv._parameters["weight"]
        conv.register_parameter("weight_bar", nn.Parameter(weight.clone()))
        conv.register_buffer("weight_u", _l2_normalise(weight.new_empty(rows).normal_()))
        conv.register_buffer("weight_v", _l2_normalise(weight.new_empty(cols).normal_()))
        self.module = conv

    @torch.no_grad()
    def power_iterate(self, steps: int) -> None:
        """Move u and v towards the top singular vectors (after a re-initialisation)."""
        matrix = self.module.weight_bar.reshape(self.module.weight_bar.shape[0], -1)
        for _ in range(steps):
            v = _l2_normalise(matrix.t().mv(self.module.weight_u))
            self.module.weight_u.copy_(_l2_normalise(matrix.mv(v)))
            self.module.weight_v.copy_(v)

    def effective_weight(self) -> torch.Tensor:
        conv = self.module
        w_bar = conv.weight_bar
        matrix = w_bar.reshape(w_bar.shape[0], -1)
        if self.training:
            self.power_iterate(1)
        sigma = conv.weight_u.dot(matrix.mv(conv.weight_v))
        return w_bar / sigma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.module
        weight = self.effective_weight()
        if isinstance(conv, nn.ConvTranspose2d):
            return F.conv_transpose2d(x, weight, conv.bias, conv.stride, conv.padding,
                                      conv.output_padding, conv.groups, conv.dilation)
        return F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)

    def folded(self) -> nn.Module:
        """A plain conv with the eval-mode effective weight."""
        conv = self.module
        with torch.no_grad():
            was_training = self.training
            self.eval()
            weight = self.effective_weight().clone()
            self.train(was_training)
        if isinstance(conv, nn.ConvTranspose2d):
            plain = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, conv.kernel_size,
                                       conv.stride, conv.padding, conv.output_padding,
                                       conv.groups, conv.bias is not None, conv.dilation)
        else:
            plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                              conv.padding, conv.dilation, conv.groups, conv.bias is not None)
        plain = plain.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            plain.weight.copy_(weight)
            if conv.bias is not None:
                plain.bias.copy_(conv.bias)
        return plain


def sn_conv(in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int | None = None) -> SpectralNorm:
    padding = kernel // 2 if padding is None else padding
    return SpectralNorm(nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=padding, bias=False))


def sn_up_conv(channels: int) -> SpectralNorm:
    """The decoder's x2 upsampling: transposed conv, kernel 4, stride 2."""
    return SpectralNorm(nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=False))


def fold_spectral_norm(model: nn.Module) -> nn.Module:
    """Replace every SpectralNorm wrapper in ``model`` (in place) by its folded conv."""
    for name, child in list(model.named_children()):
        if isinstance(child, SpectralNorm):
            setattr(model, name, child.folded())
        else:
            fold_spectral_norm(child)
    return model
