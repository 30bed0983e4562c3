"""The latent structure map z_s: the structuring network, its distributions, z_where maths.

One :class:`StructureNet` serves both q(z_s|x) (applied to the image encoding f_x) and
p(z_s|z_g) (applied to StructDRAW's feature map f): the parameters are shared (paper App. D).

Cells are numbered row-major: cell ``k`` sits at row ``k // G``, column ``k % G``.
Raw ``z_where`` per cell is ``(scale, ratio, shift_x, shift_y)``; :func:`where_to_box` turns it
into a box: ``s = σ(scale)``, ``r = exp(ratio)``, half-extents ``sx = s/√r``, ``sy = s·√r`` and
centre ``c = (2/G)(cell + 0.5 + tanh(shift)) − 1``, all in normalised image coordinates [-1, 1]
(``align_corners=False``: −1 is the left edge of the first pixel). The box is ``sx·W`` pixels
wide, centred on ``c``; a box may move up to one cell away from its own cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gnm.nn import ConvStack


@dataclass
class CellDists:
    """Parameters of the per-cell distributions, each ``[B, K, dim]`` (K = G²)."""

    pres_logit: torch.Tensor  # [B, K] Bernoulli logit of z_pres
    where_mu: torch.Tensor  # [B, K, 4] raw z_where mean (scale, ratio, shift x, shift y)
    where_sd: torch.Tensor  # [B, K, 4]
    depth_mu: torch.Tensor  # [B, K, 1]
    depth_sd: torch.Tensor  # [B, K, 1]
    what_mu: torch.Tensor  # [B, K, z_what_dim]
    what_sd: torch.Tensor  # [B, K, z_what_dim]

    def split(self, sizes: list[int]) -> list[CellDists]:
        """Split along the batch (used to run q and p through the network in one call)."""
        parts = [t.split(sizes, dim=0) for t in self._tensors()]
        return [CellDists(*(p[i] for p in parts)) for i in range(len(sizes))]

    def _tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.pres_logit, self.where_mu, self.where_sd, self.depth_mu, self.depth_sd,
                self.what_mu, self.what_sd)


@dataclass
class CellLatents:
    """A value of z_s (without z_b), each ``[B, K, dim]``."""

    pres: torch.Tensor  # [B, K] in [0, 1] (relaxed in training, {0, 1} for modes)
    where: torch.Tensor  # [B, K, 4] raw z_where
    depth: torch.Tensor  # [B, K, 1]
    what: torch.Tensor  # [B, K, z_what_dim]


class StructureNet(nn.Module):
    """Feature map ``[B, C, G, G]`` -> :class:`CellDists`: 1×1 conv stack (+ LN + CELU), then
    1×1 heads for pres (logit = scale·tanh), where, depth and what (mean, softplus std)."""

    def __init__(self, in_ch: int, hidden: tuple[int, ...], z_what_dim: int,
                 pres_logit_scale: float = 8.8, std_floor: float = 1e-4,
                 init_where: tuple[tuple[float, ...], tuple[float, ...]] | None = None):
        super().__init__()
        self.body = ConvStack(in_ch, hidden, [1] * len(hidden), norm_act_final=True)
        width = hidden[-1] if hidden else in_ch
        self.z_what_dim = z_what_dim
        self.pres_logit_scale = pres_logit_scale
        self.std_floor = std_floor
        self.pres_head = nn.Conv2d(width, 1, 1)
        self.where_head = nn.Conv2d(width, 8, 1)
        self.depth_head = nn.Conv2d(width, 2, 1)
        self.what_head = nn.Conv2d(width, 2 * z_what_dim, 1)
        # z_where starts near a given (mean, std) for every cell: GNM passes the aux where
        # prior, so boxes start at the prior's size near their cell centres and present objects
        # pay no large aux KL from step 0. (Default: the reference's scale bias of −1.)
        mean, std = init_where or ((-1.0, 0.0, 0.0, 0.0), None)
        with torch.no_grad():
            self.where_head.weight.uniform_(-0.01, 0.01)
            self.where_head.bias.zero_()
            self.where_head.bias[:4] = torch.tensor(mean)
            if std is not None:  # softplus⁻¹(std − floor)
                target = torch.tensor(std) - std_floor
                self.where_head.bias[4:] = target + torch.log(-torch.expm1(-target))

    def forward(self, feat: torch.Tensor) -> CellDists:
        h = self.body(feat)

        def cells(t: torch.Tensor) -> torch.Tensor:  # [B, D, G, G] -> [B, K, D]
            return t.flatten(2).transpose(1, 2)

        def gauss(head: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
            mu, sd = cells(head(h)).chunk(2, dim=-1)
            return mu, F.softplus(sd) + self.std_floor

        pres = self.pres_logit_scale * torch.tanh(cells(self.pres_head(h))[..., 0])
        where_mu, where_sd = gauss(self.where_head)
        depth_mu, depth_sd = gauss(self.depth_head)
        what_mu, what_sd = gauss(self.what_head)
        return CellDists(pres, where_mu, where_sd, depth_mu, depth_sd, what_mu, what_sd)


def cell_offsets(grid: int, device: torch.device | None = None,
                 dtype: torch.dtype | None = None) -> torch.Tensor:
    """``[K, 2]`` (column, row) index of each cell, row-major."""
    idx = torch.arange(grid * grid, device=device)
    return torch.stack([idx % grid, idx // grid], dim=-1).to(dtype or torch.float32)


def where_to_box(where: torch.Tensor, grid: int) -> torch.Tensor:
    """Raw z_where ``[..., K, 4]`` -> box ``[..., K, 4]`` = (sx, sy, cx, cy) in normalised coords.

    ``sx, sy`` are half-extents (the box spans ``cx ± sx``), i.e. the box is ``sx·W`` pixels wide.
    """
    s = torch.sigmoid(where[..., 0])
    sqrt_r = torch.exp(0.5 * where[..., 1])
    offsets = cell_offsets(grid, where.device, where.dtype)  # [K, 2]
    centre = (2.0 / grid) * (offsets + 0.5 + torch.tanh(where[..., 2:4])) - 1.0
    return torch.stack([s / sqrt_r, s * sqrt_r, centre[..., 0], centre[..., 1]], dim=-1)


def box_to_pixels(box: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised box (sx, sy, cx, cy) ``[..., 4]`` -> pixel box (x0, y0, x1, y1) ``[..., 4]``."""
    sx, sy, cx, cy = box.unbind(-1)
    return torch.stack([(cx - sx + 1) * 0.5 * width, (cy - sy + 1) * 0.5 * height,
                        (cx + sx + 1) * 0.5 * width, (cy + sy + 1) * 0.5 * height], dim=-1)
