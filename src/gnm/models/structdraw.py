"""StructDRAW: the global latent z_g and the structure feature map f (paper Algorithm 1).

State: decoder ConvLSTM ``h_dec`` on the G×G grid and a canvas ``f_0 = 0`` that lives in the
space of the image encoding ``f_x``. Step ℓ = 1..L::

    prior      µ_p, σ_p = MLP_prior(flatten(h_dec))                 (the interaction layer)
    posterior  h_enc    = ConvLSTM_enc(h_enc, cat[f_x, f_x − f_{ℓ−1}, h_dec])
               µ_q, σ_q = MLP_post(flatten(h_enc));  z_ℓ ~ q       (in inference)
               z_ℓ ~ p                                              (in generation)
    decoder    d_ℓ      = MLP_gdec(z_ℓ) reshaped to [draw_input, G, G]
               h_dec    = ConvLSTM_dec(h_dec, cat[d_ℓ, f_{ℓ−1}])
               f_ℓ      = f_{ℓ−1} + Conv3×3(h_dec)

Output ``f = f_L`` and ``z_g = cat(z_1..z_L)``. σ = softplus(·) + floor.

Variants: ``global_prior='gaussian'`` replaces p(z_ℓ | h_dec) by N(0, I) (GNM-Gaussian; the
decoder is unchanged and deterministic given z_g). ``interaction_mlp=False`` (GNM-NoMLP) replaces
the interaction MLPs by a per-cell 2-layer 3×3 CNN, like the ConvDRAW baseline: z_ℓ is then a
``[z_step_dim, G, G]`` map (flattened channel-major) and MLP_gdec becomes a 1×1 conv stack, so no
layer mixes all cells at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from gnm.models.config import ModelConfig
from gnm.models.losses import noise
from gnm.nn import MLP, ConvLSTMCell, ConvStack


@dataclass
class DrawOutput:
    """What one StructDRAW pass returns (``Dz`` = dims of one z_ℓ)."""

    z: torch.Tensor  # [B, L, Dz] the sampled (or given) z_ℓ
    feature: torch.Tensor  # [B, C_f, G, G] f = f_L
    prior_mu: torch.Tensor  # [B, L, Dz]
    prior_sd: torch.Tensor  # [B, L, Dz]
    post_mu: torch.Tensor | None  # [B, L, Dz] (None in generation)
    post_sd: torch.Tensor | None

    @property
    def z_global(self) -> torch.Tensor:
        """``[B, L·Dz]`` z_g = cat(z_1..z_L)."""
        return self.z.flatten(1)


class _LatentHead(nn.Module):
    """State ``[B, hidden, G, G]`` -> (µ, σ) ``[B, Dz]``: the interaction MLP over all cells, or a
    per-cell CNN (NoMLP)."""

    def __init__(self, cfg: ModelConfig, hidden: int):
        super().__init__()
        self.floor = cfg.std_floor
        if cfg.interaction_mlp:
            self.net = nn.Sequential(
                nn.Flatten(1),
                MLP(hidden * cfg.num_cells, [*cfg.interaction_hidden, 2 * cfg.z_step_dim]))
        else:
            self.net = ConvStack(hidden, [cfg.nomlp_hidden, 2 * cfg.z_step_dim], [3, 3])
        self.per_cell = not cfg.interaction_mlp

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(h)
        mu, sd = out.chunk(2, dim=1)
        if self.per_cell:
            mu, sd = mu.flatten(1), sd.flatten(1)
        return mu, F.softplus(sd) + self.floor


class StructDRAW(nn.Module):
    """The StructDRAW prior p(z_g) and posterior q(z_g | f_x); see the module docstring."""

    def __init__(self, cfg: ModelConfig, feat_ch: int):
        super().__init__()
        self.grid, self.steps, self.draw_input = cfg.grid, cfg.draw_steps, cfg.draw_input
        self.z_dim = cfg.z_global_dim // cfg.draw_steps  # dims of one z_ℓ
        hid, k, g = cfg.draw_hidden, cfg.draw_kernel, cfg.grid
        self.enc_rnn = ConvLSTMCell(2 * feat_ch + hid, hid, k, g)
        self.dec_rnn = ConvLSTMCell(cfg.draw_input + feat_ch, hid, k, g)
        self.post_head = _LatentHead(cfg, hid)
        self.prior_head = _LatentHead(cfg, hid) if cfg.global_prior == "structdraw" else None
        if cfg.interaction_mlp:
            self.z_decoder: nn.Module = MLP(cfg.z_step_dim,
                                            [*cfg.gdec_hidden, cfg.draw_input * cfg.num_cells],
                                            norm_act_final=True)
        else:
            self.z_decoder = ConvStack(cfg.z_step_dim, [cfg.nomlp_hidden, cfg.draw_input],
                                       [1, 1], norm_act_final=True)
        self.per_cell = not cfg.interaction_mlp
        self.canvas_out = nn.Conv2d(hid, feat_ch, 3, padding=1)
        self.feat_ch = feat_ch

    def _prior(self, h_dec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.prior_head is None:
            zeros = h_dec.new_zeros(h_dec.shape[0], self.z_dim)
            return zeros, torch.ones_like(zeros)
        return self.prior_head(h_dec)

    def _decode_step(self, z: torch.Tensor, canvas: torch.Tensor,
                     state: tuple[torch.Tensor, torch.Tensor]):
        b, g = z.shape[0], self.grid
        if self.per_cell:
            d = self.z_decoder(z.view(b, -1, g, g))
        else:
            d = self.z_decoder(z).view(b, self.draw_input, g, g)
        state = self.dec_rnn(torch.cat([d, canvas], dim=1), state)
        return canvas + self.canvas_out(state[0]), state

    def forward(self, f_x: torch.Tensor | None = None, *, n: int | None = None,
                z: torch.Tensor | None = None, generator: torch.Generator | None = None,
                use_mean: bool = False, temperature: float = 1.0) -> DrawOutput:
        """Inference when ``f_x [B, C_f, G, G]`` is given (z_ℓ ~ q); otherwise generation of ``n``
        scenes (z_ℓ ~ p, using ``generator`` for the noise). ``z [B, L, Dz]`` (or ``[B, L·Dz]``)
        fixes the latents instead of sampling (generation only), e.g. for traversals.
        ``use_mean`` takes each z_ℓ as the mean of its q (or p) instead of sampling.
        ``temperature`` (generation only) scales the prior's standard deviations at every step,
        z_ℓ = μ_p + T·σ_p·ε: 1 is the model's prior, 0 the same as ``use_mean``."""
        ref = self.canvas_out.weight
        if f_x is not None:
            b, device, dtype = f_x.shape[0], f_x.device, f_x.dtype
        elif z is not None:
            b, device, dtype = z.shape[0], z.device, z.dtype
            z = z.reshape(b, self.steps, self.z_dim)
        elif n is not None:
            b, device, dtype = n, ref.device, ref.dtype
        else:
            raise ValueError("StructDRAW needs f_x (inference), z or n (generation).")
        g = self.grid
        canvas = torch.zeros(b, self.feat_ch, g, g, device=device, dtype=dtype)
        dec_state = self.dec_rnn.initial_state(b)
        enc_state = self.enc_rnn.initial_state(b) if f_x is not None else None
        zs, p_mu, p_sd, q_mu, q_sd = [], [], [], [], []
        for step in range(self.steps):
            mu_p, sd_p = self._prior(dec_state[0])
            if f_x is not None:
                enc_in = torch.cat([f_x, f_x - canvas, dec_state[0]], dim=1)
                enc_state = self.enc_rnn(enc_in, enc_state)
                mu_q, sd_q = self.post_head(enc_state[0])
                z_l = mu_q if use_mean else mu_q + sd_q * torch.randn_like(mu_q)
                q_mu.append(mu_q)
                q_sd.append(sd_q)
            elif z is not None:
                z_l = z[:, step]
            elif use_mean:
                z_l = mu_p
            else:
                z_l = mu_p + temperature * sd_p * noise("normal", mu_p.shape, mu_p, generator)
            canvas, dec_state = self._decode_step(z_l, canvas, dec_state)
            zs.append(z_l)
            p_mu.append(mu_p)
            p_sd.append(sd_p)

        def stack(t: list[torch.Tensor]) -> torch.Tensor | None:
            return torch.stack(t, dim=1) if t else None

        return DrawOutput(stack(zs), canvas, stack(p_mu), stack(p_sd), stack(q_mu), stack(q_sd))
