"""A toy model outside the library: a tiny VAE registered with its own config dataclass.

It shows the model contract (gnm/models/base.py) from the outside: ``forward``, ``sample``,
``reconstruct`` and ``log_importance_weight``, no ``decompose`` and no traversals. Imported by
tests/test_model_contract.py, and by ``gnm --import tests.toy_vae ...`` in a fresh process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from gnm.models.registry import register_model


@dataclass
class ToyVAEConfig:
    """The toy VAE's whole config (the model section of a run's config.json)."""

    name: str = "toy_vae"
    z_dim: int = 4  # latent dimensions
    hidden: int = 16  # hidden units of the encoder and decoder MLPs
    sigma: float = 0.2  # std of the Gaussian pixel likelihood


LIMITS = {"z_dim": ">= 1", "hidden": ">= 1", "sigma": "> 0"}


@register_model("toy_vae", ToyVAEConfig)
class ToyVAE(nn.Module):
    """q(z|x) = N(mu(x), sd(x)), p(z) = N(0, I), p(x|z) = N(dec(z), sigma) per pixel."""

    def __init__(self, config: ToyVAEConfig, size: int = 32, channels: int = 1):
        super().__init__()
        self.config, self.img_size, self.channels = config, size, channels
        d = channels * size * size
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(d, config.hidden), nn.Tanh(),
                                 nn.Linear(config.hidden, 2 * config.z_dim))
        self.dec = nn.Sequential(nn.Linear(config.z_dim, config.hidden), nn.Tanh(),
                                 nn.Linear(config.hidden, d), nn.Sigmoid())

    def _q(self, x: torch.Tensor) -> torch.distributions.Normal:
        mu, raw = self.enc(x).chunk(2, dim=-1)
        return torch.distributions.Normal(mu, nn.functional.softplus(raw) + 1e-4)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec(z).view(-1, self.channels, self.img_size, self.img_size)

    def _log_px(self, x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        s = self.config.sigma
        return (-0.5 * ((x - mean) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
                ).flatten(1).sum(1)

    def forward(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        q = self._q(x)
        z = q.rsample()
        recon = self._decode(z)
        recon_ll = self._log_px(x, recon)
        prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        kl = torch.distributions.kl_divergence(q, prior).sum(1)
        elbo = recon_ll - kl
        return {"loss": -elbo.mean(), "elbo": elbo.mean(), "recon_ll": recon_ll.mean(),
                "kl_z": kl.mean(), "recon": recon}

    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.z_dim, generator=generator, device=device)
        return self._decode(temperature * z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self._decode(self._q(x).mean)

    def log_importance_weight(self, x: torch.Tensor) -> torch.Tensor:
        q = self._q(x)
        z = q.sample()
        prior = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
        return (self._log_px(x, self._decode(z)) + prior.log_prob(z).sum(1)
                - q.log_prob(z).sum(1))
