"""The renderer p(x | z_s, z_b) (paper Algorithm 2, SPACE-style compositing).

Per cell ``k`` the glimpse decoder turns ``z_what`` into an appearance ``o_k`` and a mask ``m_k``
(``m_k = 1`` when the model decodes no mask, as the MNIST reference does). An inverse spatial
transformer places each glimpse in the image at its box. With ``s_k = pres_k·σ(−depth_k)``::

    M_k  = STN⁻¹(m_k),   A_k = STN⁻¹(m_k · o_k)
    γ_k  = s_k·M_k / Σ_j s_j·M_j                       (responsibilities, normalised over cells)
    x_fg = Σ_k γ_k · pres_k · A_k
    M    = min(Σ_k pres_k · M_k, 1)
    x    = x_fg + (1 − M) · x_b

For a lone object this is alpha compositing, ``x = pres·m·o + (1 − pres·m)·x_b``. Note the
``pres_k`` inside ``x_fg``: the appearance is premultiplied by its alpha ``pres_k·m_k`` (as in the
reference implementation and SPACE). Algorithm 2 read literally (``x_fg = Σ γ_k STN⁻¹(o_k)``)
would paint an object at full strength whatever its presence on a black background.

``M``'s clamp is straight-through: the forward value is ``min(Σ, 1)``, the gradient that of ``Σ``
(reference behaviour; it keeps a learning signal in overlaps).

All ``B·K`` glimpses are placed in one batched operation. The default ``method='separable'``
uses that every box is axis-aligned: bilinear sampling then factorises into a row and a column
interpolation matrix, ``STN⁻¹(g) = W_y · g · W_xᵀ``, two batched matmuls that give exactly what
``affine_grid`` + ``grid_sample`` (bilinear, zero padding, ``align_corners=False``) give, without
the ``[B·K, H, W, 2]`` sampling grid and with a cheap backward pass. ``method='grid_sample'`` is
the textbook path (kept for reference and tested equal).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gnm.nn import SubPixelDecoder

_TINY = 1e-30  # guards 0/0 where no object reaches a pixel


def _interp_matrix(centre: torch.Tensor, half: torch.Tensor, out_size: int,
                   in_size: int) -> torch.Tensor:
    """Bilinear weights ``[N, out_size, in_size]`` that place a 1-D glimpse of ``in_size`` pixels
    on the image interval ``centre ± half`` (normalised coords) of an ``out_size``-pixel axis."""
    pix = (2 * torch.arange(out_size, device=centre.device, dtype=centre.dtype) + 1) / out_size - 1
    u = (pix[None, :] - centre[:, None]) / half[:, None]  # glimpse coords of each image pixel
    src = ((u + 1) * in_size - 1) * 0.5  # continuous glimpse pixel index
    taps = torch.arange(in_size, device=centre.device, dtype=centre.dtype)
    return torch.relu(1 - (src[..., None] - taps).abs())


def place_glimpses(glimpses: torch.Tensor, box: torch.Tensor, height: int, width: int,
                   method: str = "separable") -> torch.Tensor:
    """Inverse STN: glimpses ``[N, C, h, w]`` into boxes ``[N, 4]`` = (sx, sy, cx, cy)
    -> ``[N, C, height, width]`` (zero outside the box)."""
    sx, sy, cx, cy = box.unbind(-1)
    if method == "separable":
        w_y = _interp_matrix(cy, sy, height, glimpses.shape[-2])  # [N, H, h]
        w_x = _interp_matrix(cx, sx, width, glimpses.shape[-1])  # [N, W, w]
        cols = torch.matmul(glimpses, w_x.transpose(1, 2).unsqueeze(1))  # [N, C, h, W]
        return torch.matmul(w_y.unsqueeze(1), cols)  # [N, C, H, W]
    if method == "grid_sample":
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([1 / sx, zero, -cx / sx], -1),
                             torch.stack([zero, 1 / sy, -cy / sy], -1)], dim=-2)  # [N, 2, 3]
        n, c = glimpses.shape[:2]
        grid = F.affine_grid(theta, [n, c, height, width], align_corners=False)
        return F.grid_sample(glimpses, grid.to(glimpses.dtype), mode="bilinear",
                             padding_mode="zeros", align_corners=False)
    raise ValueError(f"place_glimpses: unknown method {method!r} (separable | grid_sample).")


@dataclass
class Composite:
    """A rendered scene and its parts."""

    image: torch.Tensor  # [B, C, H, W] x = x_fg + (1 − M)·x_b
    foreground: torch.Tensor  # [B, C, H, W] x_fg
    alpha: torch.Tensor  # [B, 1, H, W] M = min(Σ pres·M_k, 1)
    background: torch.Tensor  # [B, C, H, W] x_b


def compose(appearance: torch.Tensor, mask: torch.Tensor | None, box: torch.Tensor,
            pres: torch.Tensor, depth: torch.Tensor, background: torch.Tensor,
            method: str = "separable") -> Composite:
    """Composite glimpses into scenes (the equations in the module docstring).

    appearance ``[B, K, C, h, w]`` and mask ``[B, K, 1, h, w]`` (None: m = 1) in [0, 1];
    box ``[B, K, 4]`` (sx, sy, cx, cy); pres ``[B, K]``; depth ``[B, K]`` or ``[B, K, 1]``;
    background ``[B, C, H, W]`` (broadcastable, e.g. zeros for black).
    """
    b, k, c, h, w = appearance.shape
    height, width = background.shape[-2:]
    if mask is None:
        mask = appearance.new_ones(b, k, 1, h, w)
    src = torch.cat([mask, mask * appearance], dim=2).reshape(b * k, c + 1, h, w)
    placed = place_glimpses(src, box.reshape(b * k, 4), height, width, method)
    placed = placed.view(b, k, c + 1, height, width)
    mask_full, app_full = placed[:, :, :1], placed[:, :, 1:]

    pres5 = pres.reshape(b, k, 1, 1, 1)
    weight = (pres5 * torch.sigmoid(-depth.reshape(b, k, 1, 1, 1))) * mask_full  # s_k·M_k
    # γ is invariant to rescaling all weights at a pixel, so divide by their per-pixel max
    # (detached: exact, the derivative through a common factor is zero). The denominator is then
    # >= 1 wherever an object is, and tiny weights (a lone object far behind) keep full strength.
    weight = weight / weight.detach().amax(1, keepdim=True).clamp_min(_TINY)
    numer = (weight * pres5 * app_full).sum(1)  # [B, C, H, W]
    denom = weight.sum(1)  # [B, 1, H, W]
    foreground = numer / denom.clamp_min(_TINY)
    alpha_sum = (pres5 * mask_full).sum(1)
    alpha = alpha_sum - (alpha_sum - 1).clamp(min=0).detach()  # straight-through min(Σ, 1)
    image = foreground + (1 - alpha) * background
    return Composite(image, foreground, alpha, background.expand_as(image))


class GlimpseDecoder(nn.Module):
    """``z_what [B, K, D]`` -> appearance ``[B, K, C, g, g]`` and mask ``[B, K, 1, g, g]`` (or None)
    by the sub-pixel decoder of Table 7, sigmoid outputs."""

    def __init__(self, z_what_dim: int, channels: int, filters: tuple[int, ...],
                 kernels: tuple[int, ...], upscales: tuple[int, ...], with_mask: bool):
        super().__init__()
        self.channels = channels
        self.with_mask = with_mask
        out = channels + (1 if with_mask else 0)
        self.net = SubPixelDecoder(z_what_dim, [*filters, out], kernels, upscales)
        self.size = self.net.upscale

    def forward(self, z_what: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        b, k, d = z_what.shape
        out = torch.sigmoid(self.net(z_what.reshape(b * k, d, 1, 1)))
        out = out.view(b, k, -1, self.size, self.size)
        if self.with_mask:
            return out[:, :, :self.channels], out[:, :, self.channels:]
        return out, None


class BackgroundDecoder(nn.Module):
    """``z_b [B, D]`` -> background ``[B, C, H, W]`` by the sub-pixel decoder of Table 8."""

    def __init__(self, z_bg_dim: int, channels: int, filters: tuple[int, ...],
                 kernels: tuple[int, ...], upscales: tuple[int, ...]):
        super().__init__()
        self.net = SubPixelDecoder(z_bg_dim, [*filters, channels], kernels, upscales)
        self.size = self.net.upscale

    def forward(self, z_bg: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z_bg[:, :, None, None]))
