"""GECO (Rezende & Viola 2018, "Taming VAEs"): the reconstruction as a constraint.

The β-ELBO weighs the KL against the reconstruction with a fixed β. GECO instead minimises the
KL subject to a reconstruction target, with a Lagrange multiplier λ ≥ 0 that it adapts. With
``P`` pixels per image and a goal ``g`` for the log-likelihood per pixel (nats), the
constraint of an image is ``C = g·P − log p(x|z)`` (nats; met when ≤ 0) and

    loss = KL + λ·C                              (per image; λ is a constant for the gradient)

so λ = 1 is the ELBO and λ = 1/β the β-ELBO up to a constant factor. After each training step
the batch's constraint per pixel, ``c = g − mean(log p(x|z)) / P``, is smoothed,
``ĉ_t = α·ĉ_{t−1} + (1 − α)·c_t`` (``ĉ_0 = c_0``), and

    λ ← clamp(λ · exp(η · ĉ_t), λ_min, λ_max)

grows while the reconstruction misses the goal and shrinks once it is met. λ, ĉ and the step
count are buffers: they travel with checkpoints, so a resumed run continues exactly.

GENESIS's authors train it this way (official code: a per-pixel reconstruction goal, α 0.99);
the GNM paper trained its GENESIS baseline with the β-ELBO (β = 10), so results with GECO are
labelled as such.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Geco(nn.Module):
    """The multiplier λ and its update (see the module docstring). ``goal``: g, nats per
    pixel; ``speed``: η, per nat per pixel; ``alpha``: α; ``init``: λ at step 0."""

    def __init__(self, goal: float, speed: float = 0.01, alpha: float = 0.99,
                 init: float = 1.0, bounds: tuple[float, float] = (1e-6, 1e6)) -> None:
        super().__init__()
        self.goal, self.speed, self.alpha, self.bounds = float(goal), speed, alpha, bounds
        self.register_buffer("lam", torch.tensor(float(init)))
        self.register_buffer("c_ema", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0, dtype=torch.long))

    def constraint(self, recon_ll: torch.Tensor, pixels: int) -> torch.Tensor:
        """``[B]`` C = g·P − log p(x|z) (nats per image) of ``recon_ll [B]``."""
        return self.goal * pixels - recon_ll

    def loss(self, recon_ll: torch.Tensor, kl: torch.Tensor, pixels: int) -> torch.Tensor:
        """``[B]`` KL + λ·C with the current λ; in training mode λ is then updated from this
        batch (call it once per training step)."""
        c = self.constraint(recon_ll, pixels)
        out = kl + float(self.lam) * c  # a number: the update below must not reach the graph
        if self.training:
            self.update(float(c.detach().mean()) / pixels)
        return out

    @torch.no_grad()
    def update(self, c: float) -> None:
        """One step of the multiplier from a batch's constraint ``c`` (nats per pixel)."""
        first = int(self.steps) == 0
        self.c_ema.fill_(c if first else self.alpha * float(self.c_ema) + (1 - self.alpha) * c)
        lam = float(self.lam) * math.exp(self.speed * float(self.c_ema))
        self.lam.fill_(min(max(lam, self.bounds[0]), self.bounds[1]))
        self.steps += 1
