"""The SPACE baseline (Lin et al., ICLR 2020) as the GNM paper uses it (App. D.2, Table 4):
GNM's latent structure map with fixed, independent priors and no global latent.

::

    f_x = Encoder(x),  q(z_s|x) = StructureNet(f_x)       (GNM's encoder and structuring net)
    p(z_s) = Π_k Ber(z_pres,k; ρ(step)) · [N(z_where,k; µ_w, σ_w) N(z_depth,k; 0, 1)
                                             N(z_what,k; 0, I)]^{z_pres,k}
    x̂ = render(z_s, z_b)                                 (GNM's glimpse decoder and compositing)
    elbo = log N(x; x̂, σ² I) − KL_pres − Σ_k z_pres,k (KL_where + KL_depth + KL_what)_k − KL_b
    loss = −elbo, with the where term weighted by ``aux_where_weight(step)``

The where/depth/what terms count present cells only: an absent cell's latents do not enter the
likelihood, so its posterior may equal the prior (its KL is zero); z_pres is relaxed with
temperature τ(step) in training and hard in :meth:`SPACE.log_importance_weight`, whose prior
pres probability is ρ at the end of its schedule. With a background, p(z_b) = N(0, I).

SPACE has no density over scene structure: its independent prior puts objects anywhere, so it
is not a generator of structured scenes (``sample`` is declared lacking, as in the paper, which
uses it for the representation table only: AP, AP@0.5 and the z_what probe). It reuses GNM's
object-map code (render, decompose, traverse_object, reconstruct) by inheriting from
:class:`gnm.models.gnm.GNM`; everything that needs StructDRAW is declared lacking.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from gnm.errors import GNMError
from gnm.models.config import LIMITS as _GNM_LIMITS
from gnm.models.config import ObjectMapConfig
from gnm.models.gnm import GNM, _gauss, validate_object_map
from gnm.models.losses import bernoulli_log_prob, kl_normal, normal_log_prob, pixel_log_lik
from gnm.models.registry import register_model
from gnm.models.render import clamp_pres
from gnm.models.structure import box_to_pixels, where_to_box


@dataclass
class SPACEConfig(ObjectMapConfig):
    """SPACE's config: GNM's object-map fields (:class:`gnm.models.config.ObjectMapConfig`;
    defaults the paper's MNIST model at 128 px) and no global latent."""

    name: str = "space"  # registry name


LIMITS = {k: v for k, v in _GNM_LIMITS.items()
          if k in {f for f in SPACEConfig.__dataclass_fields__}}

_NO_GLOBAL = "SPACE has no global latent: its prior is fixed and independent per cell"


@register_model("space", SPACEConfig)
class SPACE(GNM):
    """SPACE; see the module docstring. ``SPACE(cfg, size=S, channels=C)``."""

    elbo_kls = ("kl_struct", "kl_bg")
    lacks = ("sample", "resample_structure", "traverse_global", "sample_components")
    lacks_why = dict.fromkeys(lacks, _NO_GLOBAL + " (the GNM paper uses SPACE for the "
                              "representation table only)")

    def __init__(self, config: SPACEConfig, size: int = 128, channels: int = 1):
        nn.Module.__init__(self)
        validate_object_map(config, size)
        self._build(config, size, channels, with_global=False)

    def _infer(self, x: torch.Tensor, use_mean: bool = False):
        """(None, q(z_s|x), None, q(z_b|x) or None, None): GNM's tuple without z_g parts."""
        self._check_input(x)
        f_x = self.encoder(x)
        q = self.structure(f_x)
        q_bg = _gauss(self.bg_encoder(f_x.flatten(1)), self.config.std_floor) \
            if self.config.background else None
        return None, q, None, q_bg, None

    def forward(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """Loss and diagnostics for ``x [B, C, H, W]`` in [0, 1] (per-image means, nats)."""
        cfg = self.config
        _, q, _, q_bg, _ = self._infer(x)
        z = clamp_pres(self._sample_cells(q, cfg.tau(step)), cfg.alpha_force(step))
        z_bg = None if q_bg is None else q_bg[0] + q_bg[1] * torch.randn_like(q_bg[0])
        comp = self.render(z, z_bg, cfg.alpha_force(step))
        f32 = torch.float32
        recon_ll = pixel_log_lik(x, comp.image, cfg.sigma)
        weight = z.pres.to(f32).clamp(min=1e-5)
        kl_pres, kl_where, kl_depth, kl_what = self._fixed_prior_kls(q, weight, cfg.rho(step))
        kl_struct = kl_pres + kl_where + kl_depth + kl_what
        kl_bg = (kl_normal(q_bg[0].to(f32), q_bg[1].to(f32), 0.0, 1.0).sum(1)
                 if q_bg is not None else torch.zeros_like(recon_ll))
        w_where = cfg.aux_where_weight(step)
        elbo = recon_ll - kl_struct - kl_bg
        loss = -elbo + (w_where - 1.0) * kl_where
        out = {"loss": loss, "elbo": elbo, "recon_ll": recon_ll, "kl_struct": kl_struct,
               "kl_bg": kl_bg, "kl_pres": kl_pres, "kl_where": kl_where, "kl_depth": kl_depth,
               "kl_what": kl_what, "num_objects": (z.pres > 0.5).to(f32).sum(1)}
        out = {k: v.mean() for k, v in out.items()}
        for name, value in (("tau", cfg.tau(step)), ("rho", cfg.rho(step)),
                            ("aux_where_weight", w_where)):
            out[name] = torch.tensor(float(value), device=loss.device)
        out["recon"] = comp.image
        out["z_pres"] = z.pres.detach()
        out["boxes"] = box_to_pixels(where_to_box(z.where.detach(), cfg.grid), self.img_size,
                                     self.img_size)
        return out

    @torch.no_grad()
    def log_importance_weight(self, x: torch.Tensor) -> torch.Tensor:
        """One importance sample ``log p(x, z) − log q(z|x)`` per image ``[B]`` (nats): z ~ q
        with hard Bernoulli z_pres, the pres prior Ber(ρ) at the end of its schedule, and the
        where/depth/what densities of present cells only (see the module docstring)."""
        cfg = self.config
        _, q, _, q_bg, _ = self._infer(x)
        z = self._sample_cells(q, None)
        z_bg = None if q_bg is None else q_bg[0] + q_bg[1] * torch.randn_like(q_bg[0])
        lw = pixel_log_lik(x, self.render(z, z_bg).image, cfg.sigma)
        rho = cfg.rho(max(cfg.rho.start_step, cfg.rho.end_step) + 1)
        prior_logit = torch.logit(torch.tensor(rho, dtype=torch.float64)).item()
        lw = lw + (bernoulli_log_prob(z.pres, torch.full_like(q.pres_logit, prior_logit))
                   - bernoulli_log_prob(z.pres, q.pres_logit)).sum(1)
        for value, (pm, ps), (qm, qs) in (
                (z.where, (self.where_prior_mean, self.where_prior_std),
                 (q.where_mu, q.where_sd)),
                (z.depth, (torch.zeros_like(z.depth), 1.0), (q.depth_mu, q.depth_sd)),
                (z.what, (torch.zeros_like(z.what), 1.0), (q.what_mu, q.what_sd))):
            per_cell = (normal_log_prob(value, pm.expand_as(value) if torch.is_tensor(pm)
                                        else pm, ps) - normal_log_prob(value, qm, qs)).sum(-1)
            lw = lw + (per_cell * z.pres).sum(1)
        if z_bg is not None:
            lw = lw + (normal_log_prob(z_bg, torch.zeros_like(z_bg), 1.0)
                       - normal_log_prob(z_bg, *q_bg)).sum(1)
        return lw

    def _no_global(self, *args, **kwargs):
        raise GNMError(f"{_NO_GLOBAL}, so it cannot draw scenes from a prior or decode a global "
                       "latent; use a GNM model for that.")

    sample = sample_global = encode_global = generate = _no_global
    resample_structure = traverse_global = sample_components = _no_global
