"""The ConvDRAW baselines (paper App. D.2, Table 11): a DRAW-style recurrent latent on the image
encoding, decoded to pixels without objects.

::

    f_x   = Encoder(x)                                   [B, C_f, G, G]  (Table 6)
    z_1..z_L, f = StructDRAW(f_x)                         the recurrence of gnm.models.structdraw:
                 prior p(z_ℓ | h_dec), posterior q(z_ℓ | f_x, f_{ℓ−1}, h_dec), canvas f_ℓ in the
                 space of f_x
    x̂     = sigmoid(Dec(f_L))                             Table 11 sub-pixel decoder from G×G
    elbo  = log N(x; x̂, σ_px² I) − Σ_ℓ KL(q(z_ℓ)‖p(z_ℓ)),  loss = −(log N − β·w(t)·Σ_ℓ KL)

with w(t) = ``beta_warmup(step)`` (1 throughout by default).

``convdraw`` (``interaction_mlp=False``): the latent heads are a per-cell 2-layer 3×3 CNN
[128, 2·z_step_dim] (z_ℓ a ``[z_step_dim, G, G]`` map, the paper's "[128, 64], kernel 3"), so
cells interact only through the 3×3 convolutions. ``convdraw-mlp`` (``interaction_mlp=True``)
uses StructDRAW's MLP interaction layer over all cells instead. ``draw_steps`` 4 or 8 and
``beta`` 1 or 10 are the paper's ConvDRAW, ConvDRAW-8 and -β-10 variants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from gnm.models.base import check_images
from gnm.models.gnm import check_encoder, check_temperature, need, traverse_latent
from gnm.models.losses import beta_elbo, kl_normal, normal_log_prob, pixel_log_lik
from gnm.models.registry import register_model
from gnm.models.structdraw import StructDRAW
from gnm.models.vae import TABLE6, check_decoder, pixel_decoder
from gnm.nn import ConvStack
from gnm.schedule import Schedule


@dataclass
class ConvDRAWConfig:
    """The ConvDRAW baseline's config (defaults: the paper's MNIST ConvDRAW at 128 px)."""

    name: str = "convdraw"  # registry name
    grid: int = 4  # side of the encoder's output map (the canvas)
    enc_filters: tuple[int, ...] = TABLE6["enc_filters"]  # Table 6 image encoder
    enc_kernels: tuple[int, ...] = TABLE6["enc_kernels"]
    enc_strides: tuple[int, ...] = TABLE6["enc_strides"]
    interaction_mlp: bool = False  # True: ConvDRAW-MLP (StructDRAW's MLP over all cells)
    draw_steps: int = 4  # L (ConvDRAW 4, ConvDRAW-8 8)
    z_step_dim: int = 32  # z_ℓ dims (per cell when interaction_mlp=False)
    draw_hidden: int = 64  # ConvLSTM state channels
    draw_kernel: int = 1  # ConvLSTM kernel size (1 as GNM: 1.43M parameters, paper 1.5M)
    nomlp_hidden: int = 128  # hidden channels of the per-cell latent CNN (interaction_mlp=False)
    interaction_hidden: tuple[int, ...] = (512, 512)  # MLP heads' hidden sizes (ConvDRAW-MLP)
    gdec_hidden: tuple[int, ...] = (512, 512)  # z_ℓ decoder MLP hidden sizes (ConvDRAW-MLP)
    draw_input: int = 64  # channels of the decoded z_ℓ fed to the decoder ConvLSTM
    dec_filters: tuple[int, ...] = (128, 64, 64, 32, 32, 16, 16, 16, 16, 8)  # Table 11
    dec_kernels: tuple[int, ...] = (3, 1, 3, 1, 3, 1, 3, 1, 3, 1, 3)  # incl. the output layer
    dec_upscales: tuple[int, ...] = (1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1)  # product = size / grid
    sigma: float = 0.2  # std of the Gaussian pixel likelihood
    beta: float = 1.0  # weight of the KL in the loss (the paper's -β-10 variants: 10)
    #: factor on ``beta`` by training step (default 1 throughout, the paper's baselines); the
    #: CPU presets use GNM's CPU z_g warm-up, 0 -> 1 over steps 2k-20k: with β = 1 from the
    #: first step the posterior collapsed by step 200 (KL_z 0.0-0.4 nats to step 42k, S-Acc 0)
    beta_warmup: Schedule = field(default_factory=lambda: Schedule.constant(1.0))
    std_floor: float = 1e-4  # added to every softplus std

    #: StructDRAW always has its learned autoregressive prior here
    global_prior = "structdraw"

    @property
    def num_cells(self) -> int:
        """G²."""
        return self.grid * self.grid

    @property
    def z_global_dim(self) -> int:
        """Dimension of z = cat(z_1..z_L)."""
        per_step = self.z_step_dim if self.interaction_mlp else self.z_step_dim * self.num_cells
        return self.draw_steps * per_step


LIMITS = {**dict.fromkeys(("grid", "enc_filters", "enc_kernels", "enc_strides", "draw_steps",
                           "z_step_dim", "draw_hidden", "draw_kernel", "nomlp_hidden",
                           "interaction_hidden", "gdec_hidden", "draw_input", "dec_filters",
                           "dec_kernels", "dec_upscales"), ">= 1"),
          "sigma": "> 0", "beta": ">= 0", "std_floor": ">= 0"}


@register_model("convdraw", ConvDRAWConfig)
class ConvDRAW(nn.Module):
    """ConvDRAW / ConvDRAW-MLP; see the module docstring. ``ConvDRAW(cfg, size=S, channels=C)``."""

    elbo_kls = ("kl_z",)

    def __init__(self, config: ConvDRAWConfig, size: int = 128, channels: int = 1):
        super().__init__()
        cfg = self.config = config
        self.img_size, self.channels = size, channels
        check_encoder(cfg, size)
        check_decoder(cfg, size, cfg.grid)
        need(cfg.draw_kernel % 2 == 1, f"draw_kernel must be odd, got {cfg.draw_kernel}.")
        self.encoder = ConvStack(channels, cfg.enc_filters, cfg.enc_kernels, cfg.enc_strides,
                                 norm_act_final=True)
        self.draw = StructDRAW(cfg, cfg.enc_filters[-1])
        self.decoder = pixel_decoder(cfg, cfg.enc_filters[-1], channels)

    def _decode(self, canvas: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(canvas).float())

    def _infer(self, x: torch.Tensor, use_mean: bool = False):
        check_images(self, x)
        return self.draw(self.encoder(x), use_mean=use_mean)

    def forward(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """Loss and diagnostics for ``x [B, C, H, W]`` in [0, 1] (per-image means, nats)."""
        d = self._infer(x)
        recon = self._decode(d.feature)
        f32 = torch.float32
        kl = kl_normal(d.post_mu.to(f32), d.post_sd.to(f32), d.prior_mu.to(f32),
                       d.prior_sd.to(f32)).flatten(1).sum(1)
        rll = pixel_log_lik(x, recon, self.config.sigma)
        beta = self.config.beta * self.config.beta_warmup(step)
        return beta_elbo(rll, {"kl_z": kl}, beta, recon)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` images ``[n, C, H, W]`` in [0, 1]: z_ℓ ~ p(z_ℓ | h_dec) with its standard
        deviations times ``temperature``, then the decoder."""
        check_temperature(temperature)
        return self._decode(self.draw(n=n, generator=generator,
                                      temperature=temperature).feature)

    @torch.no_grad()
    def encode_global(self, x: torch.Tensor, use_mean: bool = True) -> torch.Tensor:
        """z = cat(z_1..z_L) from q (per-step means by default), ``[B, z_global_dim]``."""
        return self._infer(x, use_mean=use_mean).z_global

    @torch.no_grad()
    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` decoded from given ``z [B, z_global_dim]``."""
        return self._decode(self.draw(z=z).feature)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[B, C, H, W]`` from the posterior means."""
        return self._decode(self._infer(x, use_mean=True).feature)

    @torch.no_grad()
    def traverse_global(self, z: torch.Tensor, dim: int, values: torch.Tensor) -> torch.Tensor:
        """Set ``z[:, dim]`` to each of ``values [V]`` and decode: ``[V, B, C, H, W]``."""
        return traverse_latent(self.generate, z, dim, values)

    @torch.no_grad()
    def log_importance_weight(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(x|z) + Σ_ℓ log p(z_ℓ|z_<ℓ) − log q(z_ℓ|x, z_<ℓ)`` for one z ~ q, ``[B]``."""
        d = self._infer(x)
        lw = (normal_log_prob(d.z, d.prior_mu, d.prior_sd)
              - normal_log_prob(d.z, d.post_mu, d.post_sd)).flatten(1).sum(1)
        return pixel_log_lik(x, self._decode(d.feature), self.config.sigma) + lw.float()
