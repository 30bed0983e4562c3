"""Closed-form divergences and the relaxed-Bernoulli sampler used by GNM's objective.

All functions are elementwise (no reduction) and accept any broadcastable shapes. They are
written out (instead of going through ``torch.distributions``) so they stay cheap, work under
autocast and take logits directly; the tests check each against ``torch.distributions``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def kl_normal(mu_q: torch.Tensor, sd_q: torch.Tensor, mu_p: torch.Tensor | float,
              sd_p: torch.Tensor | float) -> torch.Tensor:
    """KL( N(mu_q, sd_q²) || N(mu_p, sd_p²) ), elementwise, in nats."""
    if not torch.is_tensor(sd_p):
        sd_p = torch.as_tensor(sd_p, dtype=sd_q.dtype, device=sd_q.device)
    var_ratio = (sd_q / sd_p).pow(2)
    mean_term = ((mu_q - mu_p) / sd_p).pow(2)
    return 0.5 * (var_ratio + mean_term - 1.0 - torch.log(var_ratio))


def kl_bernoulli_logits(logit_q: torch.Tensor, logit_p: torch.Tensor) -> torch.Tensor:
    """KL( Ber(σ(logit_q)) || Ber(σ(logit_p)) ), elementwise, computed stably from logits."""
    q = torch.sigmoid(logit_q)
    return (q * (F.logsigmoid(logit_q) - F.logsigmoid(logit_p))
            + (1.0 - q) * (F.logsigmoid(-logit_q) - F.logsigmoid(-logit_p)))


def kl_bernoulli_const(logit_q: torch.Tensor, prob_p: float) -> torch.Tensor:
    """KL( Ber(σ(logit_q)) || Ber(prob_p) ) for a constant prior probability ``prob_p`` in (0,1)."""
    q = torch.sigmoid(logit_q)
    return (q * (F.logsigmoid(logit_q) - math.log(prob_p))
            + (1.0 - q) * (F.logsigmoid(-logit_q) - math.log1p(-prob_p)))


def relaxed_bernoulli_sample(logits: torch.Tensor, tau: float,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """A reparameterised sample of the binary Concrete / relaxed Bernoulli (Maddison et al. 2017):
    ``σ((logits + log u − log(1 − u)) / τ)`` with ``u ~ U(0, 1)``. Same noise recipe as
    ``torch.distributions.RelaxedBernoulli.rsample``."""
    eps = torch.finfo(logits.dtype).eps
    u = noise("uniform", logits.shape, logits, generator).clamp(eps, 1.0 - eps)
    return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)


def noise(kind: str, shape: torch.Size | tuple[int, ...], like: torch.Tensor,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard ``'normal'`` or ``'uniform'`` noise with ``like``'s device and dtype, drawn from
    ``generator`` when given (on the generator's own device, then moved), so results depend only
    on the generator's seed."""
    draw = torch.randn if kind == "normal" else torch.rand
    if generator is None:
        return draw(shape, device=like.device, dtype=like.dtype)
    out = draw(shape, generator=generator, device=generator.device, dtype=torch.float32)
    return out.to(device=like.device, dtype=like.dtype)


def normal_log_prob(x: torch.Tensor, mu: torch.Tensor, sd: torch.Tensor | float) -> torch.Tensor:
    """log N(x; mu, sd²), elementwise, in nats."""
    if not torch.is_tensor(sd):
        sd = torch.as_tensor(sd, dtype=mu.dtype, device=mu.device)
    return -0.5 * ((x - mu) / sd).pow(2) - torch.log(sd) - 0.5 * math.log(2 * math.pi)


def pixel_log_lik(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """log N(x; mean, σ² I) per image ``[B]`` (nats), summed over ``[C, H, W]``, in fp32: the
    Gaussian pixel likelihood of GNM, SPACE, the VAE and ConvDRAW."""
    return normal_log_prob(x.float(), mean.float(), sigma).flatten(1).sum(1)


def bernoulli_log_prob(z: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log Ber(z; σ(logits)) for z in {0, 1}, elementwise."""
    return z * F.logsigmoid(logits) + (1.0 - z) * F.logsigmoid(-logits)


def beta_elbo(recon_ll: torch.Tensor, kls: dict[str, torch.Tensor], beta: float,
              recon: torch.Tensor) -> dict[str, torch.Tensor]:
    """The forward output of a model trained on the β-weighted ELBO (the baselines).

    ``recon_ll [B]`` is log p(x|z) and ``kls`` maps ``kl_<name>`` to per-image KLs ``[B]``, in
    nats. Returns batch means: ``elbo = recon_ll − Σ KL``, ``loss = −(recon_ll − β·Σ KL)``,
    ``recon_ll``, every KL term, and ``recon`` (the reconstruction, unchanged)."""
    kl = sum(kls.values())
    out = {"loss": -(recon_ll - beta * kl), "elbo": recon_ll - kl, "recon_ll": recon_ll, **kls}
    out = {k: v.mean() for k, v in out.items()}
    out["recon"] = recon
    return out
