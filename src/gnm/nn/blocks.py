"""Feed-forward building blocks: conv stacks, sub-pixel decoders and MLPs.

Every hidden layer is ``linear map -> layer norm -> CELU`` (paper App. D, Table 9); output
layers are plain linear maps unless ``norm_act_final=True``.

Layer norm on conv maps is ``GroupNorm(1, C)``: it normalises each sample over all of
``(C, H, W)`` and has a per-channel gain and bias. That is the layer normalisation of Ba et al.
applied to a whole feature map, it has no dependence on the batch, and it is a single fused
kernel on every backend. (A per-pixel "channel LayerNorm" would also be defensible; on the
4×4 cell maps the two differ only in whether statistics are pooled over cells.)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` computed in channels-last memory format.

    Input and weight are viewed as NHWC for the convolution (a no-op when already so; the weight
    copy is tiny), which oneDNN runs about twice as fast for the narrow, high-resolution layers
    of the encoder and the glimpse decoder. Parameters stay in the default (contiguous) format, so
    state dicts and safetensors exports are unaffected; outputs are channels-last tensors.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cl = torch.channels_last
        return self._conv_forward(x.contiguous(memory_format=cl),
                                  self.weight.contiguous(memory_format=cl), self.bias)


class _CELUFromOutput(torch.autograd.Function):
    """CELU(α=1) = ELU: ``y = max(x, expm1(min(x, 0)))``; ``dy/dx = min(y, 0) + 1``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = x.clamp(max=0)
        y.expm1_()
        torch.maximum(y, x, out=y)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return y.clamp(max=0).add_(1).mul_(grad)


class CELU(nn.Module):
    """``nn.CELU()`` (α = 1, the paper's activation), computed so that its backward needs only
    the output: ``y = max(x, expm1(min(x, 0)))`` and ``dy/dx = min(y, 0) + 1``.

    Same values as ``torch.nn.functional.celu`` (tested); the backward reuses the saved output
    instead of evaluating ``exp`` again. On this machine (AVX2, 2 threads) that makes the paper
    MNIST-4 and ``mnist4-cpu`` training steps about 6% faster; small tensors (MLPs, 4×4 cell
    maps) take the plain ``F.celu`` path. Any shape and memory format; the output keeps both.
    """

    #: Below this many elements the autograd-function overhead outweighs the saving: use
    #: ``torch.nn.functional.celu`` (same values).
    MIN_ELEMENTS = 1 << 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() < self.MIN_ELEMENTS:
            return F.celu(x)
        return _CELUFromOutput.apply(x)


def conv_norm(channels: int) -> nn.Module:
    """The layer norm used after every hidden conv: ``GroupNorm(1, channels)``."""
    return nn.GroupNorm(1, channels)


class ConvStack(nn.Sequential):
    """``len(filters)`` convolutions with 'same-style' padding ``(k - 1) // 2``.

    Shapes: ``[B, in_ch, H, W] -> [B, filters[-1], H / prod(strides), W / prod(strides)]`` for
    even kernels with stride 2 (k=4, s=2, p=1 halves a side exactly) and odd kernels with stride 1.
    """

    def __init__(self, in_ch: int, filters: Sequence[int], kernels: Sequence[int],
                 strides: Sequence[int] | None = None, norm_act_final: bool = False):
        strides = [1] * len(filters) if strides is None else list(strides)
        if not len(filters) == len(kernels) == len(strides):
            raise ValueError(f"ConvStack: filters {list(filters)}, kernels {list(kernels)} and "
                             f"strides {strides} must have the same length.")
        layers: list[nn.Module] = []
        for i, (out_ch, k, s) in enumerate(zip(filters, kernels, strides, strict=True)):
            layers.append(Conv2d(in_ch, out_ch, k, s, padding=(k - 1) // 2))
            if i < len(filters) - 1 or norm_act_final:
                layers += [conv_norm(out_ch), CELU()]
            in_ch = out_ch
        super().__init__(*layers)
        self.out_channels = in_ch


class SubPixelConv(nn.Module):
    """Sub-pixel convolution (Shi et al. 2016): conv to ``out_ch * r²`` channels, then
    ``PixelShuffle(r)``. ``[B, in_ch, H, W] -> [B, out_ch, H·r, W·r]``."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, upscale: int):
        super().__init__()
        self.conv = Conv2d(in_ch, out_ch * upscale * upscale, kernel, padding=kernel // 2)
        self.shuffle = nn.PixelShuffle(upscale) if upscale > 1 else nn.Identity()
        self.upscale = upscale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        r = self.upscale
        if r > 1 and y.shape[-2:] == (1, 1):
            # From one pixel, channel c·r² + i·r + j goes to (c, i, j): the shuffle is a reshape
            # (no permuting copy; a [B, C·r², 1, 1] tensor is laid out the same in either format).
            return y.reshape(y.shape[0], y.shape[1] // (r * r), r, r)
        return self.shuffle(y)


class SubPixelDecoder(nn.Sequential):
    """A stack of :class:`SubPixelConv` layers (paper Tables 7, 8): each hidden layer is followed
    by layer norm and CELU, the last is linear (apply the output nonlinearity outside).

    ``[B, in_ch, h, w] -> [B, filters[-1], h·Πr, w·Πr]``; with a 1×1 input the output side is
    ``prod(upscales)`` (see :attr:`upscale`).
    """

    def __init__(self, in_ch: int, filters: Sequence[int], kernels: Sequence[int],
                 upscales: Sequence[int]):
        if not len(filters) == len(kernels) == len(upscales):
            raise ValueError(f"SubPixelDecoder: filters {list(filters)}, kernels {list(kernels)} "
                             f"and upscales {list(upscales)} must have the same length.")
        layers: list[nn.Module] = []
        for i, (out_ch, k, r) in enumerate(zip(filters, kernels, upscales, strict=True)):
            layers.append(SubPixelConv(in_ch, out_ch, k, r))
            if i < len(filters) - 1:
                layers += [conv_norm(out_ch), CELU()]
            in_ch = out_ch
        super().__init__(*layers)
        self.upscale = 1
        for r in upscales:
            self.upscale *= r


class MLP(nn.Sequential):
    """Fully connected layers ``in_dim -> sizes[0] -> ... -> sizes[-1]`` with LayerNorm + CELU
    after each hidden layer (and after the last one when ``norm_act_final``)."""

    def __init__(self, in_dim: int, sizes: Sequence[int], norm_act_final: bool = False):
        layers: list[nn.Module] = []
        for i, out_dim in enumerate(sizes):
            layers.append(nn.Linear(in_dim, out_dim))
            if i < len(sizes) - 1 or norm_act_final:
                layers += [nn.LayerNorm(out_dim), CELU()]
            in_dim = out_dim
        super().__init__(*layers)
        self.out_dim = in_dim


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
