"""Convolutional LSTM cell with a learned initial state (StructDRAW's recurrent core)."""

from __future__ import annotations

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    """ConvLSTM (Shi et al. 2015) on a fixed ``grid × grid`` map.

    One convolution over ``cat[input, h]`` gives the four gates (input ``i``, forget ``f``,
    output ``o``, candidate ``g``, in that channel order)::

        c' = σ(f) · c + σ(i) · tanh(g)
        h' = σ(o) · tanh(c')

    The initial ``(h_0, c_0)`` are learned ``[1, hidden, grid, grid]`` parameters (reference
    implementation), expanded over the batch by :meth:`initial_state`. The forget-gate bias starts
    at 1 so the cell remembers by default.
    """

    def __init__(self, in_ch: int, hidden: int, kernel: int, grid: int):
        super().__init__()
        self.hidden = hidden
        self.conv = nn.Conv2d(in_ch + hidden, 4 * hidden, kernel, padding=kernel // 2)
        with torch.no_grad():
            self.conv.bias.zero_()
            self.conv.bias[hidden:2 * hidden].fill_(1.0)
        self.h0 = nn.Parameter(torch.zeros(1, hidden, grid, grid))
        self.c0 = nn.Parameter(torch.zeros(1, hidden, grid, grid))

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Learned ``(h_0, c_0)``, each ``[batch, hidden, grid, grid]``."""
        return self.h0.expand(batch, -1, -1, -1), self.c0.expand(batch, -1, -1, -1)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step: ``x [B, in_ch, G, G]``, ``state = (h, c)`` -> new ``(h, c)``."""
        h, c = state
        i, f, o, g = self.conv(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c
