"""The spatial broadcast decoder (Watters et al. 2019), as GENESIS uses it.

``z [B, D]`` is tiled over a ``(S + 2L) × (S + 2L)`` grid, two coordinate channels (x and y,
each ``linspace(-1, 1)`` over that grid) are appended, and ``L`` 'valid' 3×3 convolutions with
``hidden`` channels and CELU (α = 1, i.e. ELU, GENESIS's activation; no normalisation) shrink it
to ``S × S``; a 1×1 convolution gives ``out_ch`` maps::

    [B, D] -> [B, D + 2, S + 2L, S + 2L] -> L × (conv3×3 valid, CELU) -> conv1×1 -> [B, out, S, S]

The first convolution of a tiled latent is computed without tiling: since ``z`` is constant over
space, ``conv(cat[tile(z), coords]) = conv(coords; W_coords) + (Σ_{kernel} W_z) z + b``, which
is exact and skips ``D`` input channels at every pixel. :attr:`first` holds the ordinary
``Conv2d(D + 2, hidden, 3)`` parameters, so ``rest(first(cat[tile(z), coords]))`` is the
textbook computation (the tests check the two agree).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gnm.nn.blocks import CELU, Conv2d


class SpatialBroadcastDecoder(nn.Module):
    """``[B, in_dim] -> [B, out_ch, size, size]`` (linear output; apply sigmoid outside)."""

    def __init__(self, in_dim: int, out_ch: int, hidden: int, layers: int, size: int):
        super().__init__()
        if layers < 1:
            raise ValueError(f"SpatialBroadcastDecoder: layers must be >= 1, got {layers}.")
        self.in_dim, self.size, self.layers = in_dim, size, layers
        side = size + 2 * layers
        lin = torch.linspace(-1.0, 1.0, side)
        ys, xs = torch.meshgrid(lin, lin, indexing="ij")
        self.register_buffer("coords", torch.stack([xs, ys])[None], persistent=False)
        self.first = nn.Conv2d(in_dim + 2, hidden, 3)
        rest: list[nn.Module] = [CELU(inplace=True)]
        for _ in range(layers - 1):
            rest += [Conv2d(hidden, hidden, 3), CELU(inplace=True)]
        rest.append(Conv2d(hidden, out_ch, 1))
        self.rest = nn.Sequential(*rest)

    def tiled_input(self, z: torch.Tensor) -> torch.Tensor:
        """``[B, D + 2, S + 2L, S + 2L]``: ``z`` tiled over the grid, then the coordinates."""
        b, side = z.shape[0], self.coords.shape[-1]
        return torch.cat([z[:, :, None, None].expand(b, self.in_dim, side, side),
                          self.coords.to(z.dtype).expand(b, -1, -1, -1)], dim=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        w = self.first.weight
        coord_part = F.conv2d(self.coords.to(w.dtype), w[:, self.in_dim:])  # [1, hid, s, s]
        z_part = F.linear(z, w[:, :self.in_dim].sum(dim=(2, 3)), self.first.bias)  # [B, hid]
        return self.rest(coord_part + z_part[:, :, None, None])
