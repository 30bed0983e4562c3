"""The VAE baseline (paper App. D.2, Table 10): one Gaussian latent for the whole scene.

::

    f_x   = Encoder(x)                                  [B, C_f, G, G]  (GNM's Table 6 encoder)
    µ, σ  = Conv_{G×G}(CELU(LN(Conv_3×3(f_x))))        [B, D]  (the 2-layer CNN [128, 2D],
                                                                kernels 3 and G, 'valid' last)
    q(z|x) = N(µ, σ²),  p(z) = N(0, I),  σ = softplus(·) + floor
    x̂     = sigmoid(Dec(z))                             Table 10 sub-pixel decoder from 1×1
    elbo  = log N(x; x̂, σ_px² I) − KL(q‖p),  loss = −(log N(x; x̂, σ_px² I) − β·KL)

The paper's Table 10 decoder is 12 sub-pixel convs (LN + ReLU between them) whose upscales
multiply to the image side (4·2⁵ = 128); the CPU preset drops one ×2 stage for 64 px.
Sampling decodes z ~ N(0, T²I). There are no objects: no ``decompose``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gnm.models.base import check_images
from gnm.models.gnm import check_encoder, check_temperature, need, traverse_latent
from gnm.models.losses import beta_elbo, kl_normal, noise, normal_log_prob, pixel_log_lik
from gnm.models.registry import register_model
from gnm.nn import ConvStack, SubPixelDecoder, conv_norm
from gnm.nn.blocks import CELU, Conv2d

TABLE6 = {"enc_filters": (16, 16, 32, 32, 64, 64, 128, 128, 128),
          "enc_kernels": (4, 3, 4, 3, 4, 3, 4, 3, 4), "enc_strides": (2, 1, 2, 1, 2, 1, 2, 1, 2)}


@dataclass
class VAEConfig:
    """The VAE baseline's config (defaults: the paper's MNIST model at 128 px, 1.42M
    parameters; the paper's Table 5 says 1.5M)."""

    name: str = "vae"  # registry name
    grid: int = 4  # side of the encoder's output map
    enc_filters: tuple[int, ...] = TABLE6["enc_filters"]  # Table 6 image encoder
    enc_kernels: tuple[int, ...] = TABLE6["enc_kernels"]
    enc_strides: tuple[int, ...] = TABLE6["enc_strides"]
    latent_hidden: int = 128  # channels of the 3×3 conv between the encoding and (µ, σ)
    z_dim: int = 64  # latent dimensions
    dec_filters: tuple[int, ...] = (128, 128, 64, 64, 32, 32, 16, 16, 16, 16, 8)  # Table 10
    dec_kernels: tuple[int, ...] = (1, 3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3)  # incl. the output layer
    dec_upscales: tuple[int, ...] = (4, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1)  # product = data.size
    sigma: float = 0.2  # std of the Gaussian pixel likelihood
    beta: float = 1.0  # weight of the KL in the loss (the paper also tries 10)
    std_floor: float = 1e-4  # added to every softplus std


LIMITS = {**dict.fromkeys(("grid", "enc_filters", "enc_kernels", "enc_strides", "latent_hidden",
                           "z_dim", "dec_filters", "dec_kernels", "dec_upscales"), ">= 1"),
          "sigma": "> 0", "beta": ">= 0", "std_floor": ">= 0"}


def check_decoder(cfg, size: int, start: int) -> None:
    """``dec_kernels``/``dec_upscales`` have one entry per layer (``dec_filters`` plus the
    output layer) and the upscales take a ``start``-px map to ``size`` px; else a GNMError."""
    n = len(cfg.dec_filters) + 1
    for name in ("dec_kernels", "dec_upscales"):
        need(len(getattr(cfg, name)) == n,
             f"{name} needs {n} entries (one per hidden layer in dec_filters plus the output "
             f"layer), got {len(getattr(cfg, name))}.")
    side = start
    for r in cfg.dec_upscales:
        side *= r
    need(side == size, f"dec_upscales take the {start}×{start} input to {side} px, not "
         f"data.size {size}; adjust model.dec_upscales.")


def pixel_decoder(cfg, in_ch: int, channels: int) -> SubPixelDecoder:
    """The baselines' image decoder (Tables 10, 11): ``dec_*`` sub-pixel convs, LN + ReLU."""
    return SubPixelDecoder(in_ch, [*cfg.dec_filters, channels], cfg.dec_kernels,
                           cfg.dec_upscales, activation="relu")


def gaussian(params: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``[..., 2D]`` (or ``[B, 2D, ...]`` along dim 1) into µ and softplus(·) + floor."""
    mu, raw = params.chunk(2, dim=1)
    return mu, nn.functional.softplus(raw) + floor


@register_model("vae", VAEConfig)
class VAE(nn.Module):
    """The VAE baseline; see the module docstring. Built as ``VAE(cfg, size=S, channels=C)``."""

    elbo_kls = ("kl_z",)

    def __init__(self, config: VAEConfig, size: int = 128, channels: int = 1):
        super().__init__()
        cfg = self.config = config
        self.img_size, self.channels = size, channels
        check_encoder(cfg, size)
        check_decoder(cfg, size, 1)
        self.encoder = ConvStack(channels, cfg.enc_filters, cfg.enc_kernels, cfg.enc_strides,
                                 norm_act_final=True)
        self.to_latent = nn.Sequential(
            Conv2d(cfg.enc_filters[-1], cfg.latent_hidden, 3, padding=1),
            conv_norm(cfg.latent_hidden), CELU(inplace=True),
            nn.Conv2d(cfg.latent_hidden, 2 * cfg.z_dim, cfg.grid), nn.Flatten(1))
        self.decoder = pixel_decoder(cfg, cfg.z_dim, channels)

    def _posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        check_images(self, x)
        return gaussian(self.to_latent(self.encoder(x)), self.config.std_floor)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z[:, :, None, None]).float())

    def forward(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """Loss and diagnostics for ``x [B, C, H, W]`` in [0, 1] (per-image means, nats)."""
        mu, sd = self._posterior(x)
        z = mu + sd * torch.randn_like(mu)
        recon = self._decode(z)
        kl = kl_normal(mu.float(), sd.float(), 0.0, 1.0).sum(1)
        rll = pixel_log_lik(x, recon, self.config.sigma)
        return beta_elbo(rll, {"kl_z": kl}, self.config.beta, recon)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` images ``[n, C, H, W]`` in [0, 1] from z ~ N(0, T²I)."""
        check_temperature(temperature)
        ref = self.decoder[0].conv.weight
        z = noise("normal", (n, self.config.z_dim), ref, generator) * temperature
        return self._decode(z)

    @torch.no_grad()
    def encode_global(self, x: torch.Tensor, use_mean: bool = True) -> torch.Tensor:
        """The latent's posterior mean (or one draw), ``[B, z_dim]``."""
        mu, sd = self._posterior(x)
        return mu if use_mean else mu + sd * torch.randn_like(mu)

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` decoded from given latents ``z [B, z_dim]``."""
        return self._decode(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[B, C, H, W]`` from the posterior mean."""
        return self._decode(self.encode_global(x))

    @torch.no_grad()
    def traverse_global(self, z: torch.Tensor, dim: int, values: torch.Tensor) -> torch.Tensor:
        """Set ``z[:, dim]`` to each of ``values [V]`` and decode: ``[V, B, C, H, W]``."""
        return traverse_latent(self.generate, z, dim, values)

    @torch.no_grad()
    def log_importance_weight(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x|z) + log p(z) − log q(z|x)`` for one z ~ q(z|x), ``[B]`` nats."""
        mu, sd = self._posterior(x)
        mu, sd = mu.float(), sd.float()
        z = mu + sd * torch.randn_like(mu)
        log_pz = normal_log_prob(z, torch.zeros_like(z), 1.0).sum(1)
        log_px = pixel_log_lik(x, self._decode(z), self.config.sigma)
        return log_px + log_pz - normal_log_prob(z, mu, sd).sum(1)
