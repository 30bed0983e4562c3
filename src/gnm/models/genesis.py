"""GENESIS (Engelcke et al., ICLR 2020), the GNM paper's main baseline (App. D.2).

A stick-breaking mask VAE and a component VAE with an autoregressive prior. ``K`` components
``k = 1..K``; ``z_m^k`` the mask latents (``Dm``), ``z_c^k`` the component latents (``Dc``)::

    generation
        z_m^1 ~ N(0, I);   z_m^k ~ N(tanh µ_k, σ_k²),  (µ_k, σ_k) = Lin(LSTM_p(z_m^1..z_m^{k−1}))
        a_k   = BroadcastDec_m(z_m^k)                   [1, H, W] logits, k = 1..K−1
        m_1 = σ(a_1),  m_k = s_{k−1}·σ(a_k),  s_k = s_{k−1}(1 − σ(a_k)),  m_K = s_{K−1}  (s_0 = 1)
        z_c^k ~ p(z_c^k | z_m^k) = N(tanh µ, σ²),  (µ, σ) = MLP(z_m^k)
        µ_k   = sigmoid(BroadcastDec_c(z_c^k))          [C, H, W]
        p(x | z) = Π_{c,h,w} Σ_k m_k N(x; µ_k, σ_x²)      x̂ = Σ_k m_k µ_k
    inference
        h = MLP(Conv(x));  q(z_m^1 | x) = N(Lin(h));  q(z_m^k | x, z_m^{k−1}) = N(Lin(LSTM_q(
            cat[h, z_m^{k−1}])))                       (K−1 recurrent steps)
        q(z_c^k | x, m_k) = N(MLP(Conv(cat[x, log m_k])))
    objective (the plain β-ELBO, as the GNM paper trained it; ``objective="geco"``: GECO,
    as GENESIS's authors train it, gnm.models.geco)
        KL_mask = Σ_k KL(q(z_m^k | ·) ‖ p(z_m^k | z_m^{<k}))
        KL_comp = Σ_k KL(q(z_c^k | ·) ‖ p(z_c^k | z_m^k))
        elbo = log p(x|z) − KL_mask − KL_comp,   loss = −(log p(x|z) − β·w(t)·(KL_mask + KL_comp))

with w(t) = ``beta_warmup(step)`` (1 throughout by default, the paper).

Stds: posterior ``softplus(· + 0.5) + floor``, learned priors ``sigmoid(· + 4) + floor`` (so
they start near 1 and stay ≤ 1 + floor), as in the official code (modules/blocks.py). Each KL
step is analytic given the drawn latents it conditions on (the official code uses the one-sample
Monte Carlo estimate; same expectation, less variance). Stick-breaking runs in log space.

Facts from the official implementation (github.com/applied-ai-lab/genesis, models/genesis_config.py
and modules/): pixel std 0.7 for every component (``pixel_std1 = pixel_std2 = 0.7``), the default
of ``sigma`` here, also for MNIST; the mixture is per pixel *and channel*; ``Dm = 64``, ``Dc = 16``;
q(z_m) LSTM hidden ``2·Dm``; prior LSTM 256 and component prior MLP [256, 256]; component encoder
4 stride-2 3×3 convs [32, 32, 64, 64] + a 256-unit layer; broadcast decoder 32 channels; p(z_m^1)
= N(0, I); the K-th mask latent only conditions p(z_c^K | z_m^K) (m_K is the last scope). The
GNM paper's changes (App. D.2): β-ELBO with β = 10 (MNIST; 15 Arrow), broadcast decoder with 3
layers instead of 4. Unlike the official model, the mask decoder here is a spatial broadcast
decoder too (the official one is a gated deconvolution net) and the encoders use this library's
conv + layer norm + CELU blocks (the official mask encoder uses batch norm). With the defaults the
model has 13.96M parameters at 128 px (paper Table 5: 13.9M).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gnm.models.base import check_images
from gnm.models.geco import Geco
from gnm.models.gnm import check_temperature, need
from gnm.models.losses import beta_elbo, kl_normal, noise, normal_log_prob
from gnm.models.registry import register_model
from gnm.nn import MLP, ConvStack, SubPixelDecoder
from gnm.nn.broadcast import SpatialBroadcastDecoder
from gnm.schedule import Schedule


@dataclass
class GenesisConfig:
    """GENESIS's config (defaults: the GNM paper's MNIST model at 128 px, 13.96M parameters)."""

    name: str = "genesis"  # registry name
    components: int = 5  # K, mask / component slots
    z_mask_dim: int = 64  # Dm, dims of each z_m^k (official attention_latents)
    z_comp_dim: int = 16  # Dc, dims of each z_c^k (official comp_ldim)
    mask_enc_filters: tuple[int, ...] = (32, 32, 64, 64, 64)  # mask encoder convs (5×5)
    mask_enc_kernel: int = 5  # kernel of every mask encoder conv
    mask_enc_downsample: int = 8  # total stride (a power of 2: that many leading stride-2 convs)
    mask_feature: int = 700  # size of the image feature h (the MLP after the mask encoder)
    mask_lstm_hidden: int = 128  # LSTM of q(z_m^k | x, z_m^{k-1}) (official: 2·Dm)
    mask_decoder: str = "broadcast"  # "broadcast" or "subpixel" (see MaskDecoders below)
    mask_dec_channels: int = 32  # hidden channels of the mask broadcast decoder
    mask_dec_layers: int = 3  # its 3×3 convs
    # the "subpixel" mask decoder: z_m as a 1×1 map, sub-pixel convs with these hidden
    # filters (LN + CELU after each), then one to the logit map; kernels and upscales per conv
    mask_dec_filters: tuple[int, ...] = (64, 32, 32, 16)
    mask_dec_kernels: tuple[int, ...] = (1, 3, 3, 3, 3)
    mask_dec_upscales: tuple[int, ...] = (4, 4, 2, 2, 2)
    comp_enc_filters: tuple[int, ...] = (32, 32, 64, 64)  # component encoder (3×3, stride 2)
    comp_enc_hidden: int = 256  # the layer between the component encoding and (µ, σ)
    comp_dec_channels: int = 32  # hidden channels of the component broadcast decoder
    comp_dec_layers: int = 3  # its 3×3 convs (the GNM paper: 3 instead of GENESIS's 4)
    prior_lstm_hidden: int = 256  # LSTM of the autoregressive mask prior
    prior_mlp_hidden: tuple[int, ...] = (256, 256)  # MLP of p(z_c^k | z_m^k)
    beta: float = 10.0  # weight of both KLs in the loss (GNM paper: 10 MNIST, 15 Arrow)
    sigma: float = 0.7  # std of each mixture component's pixel Gaussian (official: 0.7)
    beta_warmup: Schedule = field(default_factory=lambda: Schedule.constant(1.0))  # w(t)
    std_floor: float = 1e-4  # added to every std
    presence_pixels: int = 10  # decompose(): a component is present if m_k > 0.5 on this many px
    objective: str = "elbo"  # "elbo": the β-ELBO (the GNM paper); "geco": GECO (gnm.models.geco)
    geco_goal: float = 1.25  # GECO's goal for log p(x|z) per pixel and channel (nats)
    geco_speed: float = 0.01  # η of λ's update, per nat per pixel
    geco_alpha: float = 0.99  # smoothing of the constraint


LIMITS = {**dict.fromkeys(("z_mask_dim", "z_comp_dim", "mask_enc_filters", "mask_enc_kernel",
                           "mask_enc_downsample", "mask_feature", "mask_lstm_hidden",
                           "mask_dec_channels", "mask_dec_layers", "mask_dec_filters",
                           "mask_dec_kernels", "mask_dec_upscales", "comp_enc_filters",
                           "comp_enc_hidden", "comp_dec_channels", "comp_dec_layers",
                           "prior_lstm_hidden", "prior_mlp_hidden", "presence_pixels"), ">= 1"),
          "components": ">= 2", "beta": ">= 0", "sigma": "> 0", "std_floor": ">= 0",
          "geco_speed": ">= 0", "geco_alpha": ">= 0"}
OBJECTIVES = ("elbo", "geco")
#: mask decoders: "broadcast", a spatial broadcast decoder (gnm.nn.broadcast; every pixel an
#: MLP of its coordinates and z_m); "subpixel", z_m as a 1×1 map upsampled by sub-pixel convs
#: (gnm.nn.SubPixelDecoder, ×Π mask_dec_upscales = the image side), closer to the official
#: model's deconvolution net. At 64 px with 16 channels the broadcast decoder drew no digit
#: shapes: GENESIS stayed at the latent-free "palette" even with reconstruction as its only
#: goal (GECO, λ at its bound; docs/results/genesis-cpu-collapsed).
MASK_DECODERS = ("broadcast", "subpixel")


# ------------------------------------------------------------------------------------ helpers
def stick_breaking(logits: torch.Tensor) -> torch.Tensor:
    """Log masks ``[B, K, ...]`` from ``K−1`` logit maps ``[B, K−1, ...]``, in log space:
    ``log m_k = log s_{k−1} + log σ(a_k)``, ``log s_k = log s_{k−1} + log σ(−a_k)``,
    ``log m_K = log s_{K−1}``, ``log s_0 = 0``. ``Σ_k m_k = 1`` everywhere."""
    log_scope = torch.cumsum(F.logsigmoid(-logits), dim=1)  # log s_1 .. s_{K-1}
    before = torch.cat([torch.zeros_like(log_scope[:, :1]), log_scope[:, :-1]], dim=1)
    return torch.cat([before + F.logsigmoid(logits), log_scope[:, -1:]], dim=1)


def mixture_log_lik(x: torch.Tensor, log_masks: torch.Tensor, means: torch.Tensor,
                    sigma: float) -> torch.Tensor:
    """``[B]`` log p(x|z) = Σ_{c,h,w} log Σ_k m_k N(x_chw; µ_k,chw, σ²) for ``x [B, C, H, W]``,
    ``log_masks [B, K, 1, H, W]`` and ``means [B, K, C, H, W]`` (logsumexp over k)."""
    lp = normal_log_prob(x.float().unsqueeze(1), means.float(), sigma) + log_masks.float()
    return torch.logsumexp(lp, dim=1).flatten(1).sum(1)


def mask_boxes(masks: torch.Tensor, threshold: float = 0.5,
               min_pixels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes and presence of masks ``[B, K, 1, H, W]``: ``boxes [B, K, 4]`` (x0, y0, x1, y1 in
    pixels, x1/y1 exclusive, as the scenes' ground truth) around the pixels with
    ``m > threshold``, and ``presence [B, K]`` (1.0 where at least ``min_pixels`` such pixels,
    else 0.0; absent components' boxes are zeros)."""
    on = masks[:, :, 0] > threshold  # [B, K, H, W]
    h, w = on.shape[-2:]
    cols, rows = on.any(dim=2), on.any(dim=3)  # [B, K, W], [B, K, H]

    def span(a: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = a.to(torch.uint8)
        return a.argmax(-1), n - a.flip(-1).argmax(-1)

    (x0, x1), (y0, y1) = span(cols, w), span(rows, h)
    present = on.flatten(2).sum(-1) >= min_pixels
    boxes = torch.stack([x0, y0, x1, y1], dim=-1).to(masks.dtype)
    return boxes * present[..., None], present.to(masks.dtype)


def _flat_dim(net: nn.Module, channels: int, size: int) -> int:
    with torch.no_grad():
        return int(net(torch.zeros(1, channels, size, size)).shape[1])


@dataclass
class _Pass:
    """One pass of inference: draws and the parameters of q and p (``[B, K, D]`` each)."""

    z_mask: torch.Tensor
    q_mask: tuple[torch.Tensor, torch.Tensor]
    p_mask: tuple[torch.Tensor, torch.Tensor]
    z_comp: torch.Tensor
    q_comp: tuple[torch.Tensor, torch.Tensor]
    p_comp: tuple[torch.Tensor, torch.Tensor]
    log_masks: torch.Tensor  # [B, K, 1, H, W]
    means: torch.Tensor  # [B, K, C, H, W] component means µ_k

    @property
    def recon(self) -> torch.Tensor:
        """``[B, C, H, W]`` x̂ = Σ_k m_k µ_k."""
        return (self.log_masks.exp() * self.means).sum(1)


# -------------------------------------------------------------------------------------- model
@register_model("genesis", GenesisConfig)
class Genesis(nn.Module):
    """GENESIS; see the module docstring. Built as ``Genesis(cfg, size=S, channels=C)``."""

    elbo_kls = ("kl_mask", "kl_comp")

    def __init__(self, config: GenesisConfig, size: int = 128, channels: int = 1):
        super().__init__()
        cfg = self.config = config
        self.img_size, self.channels = size, channels
        n2 = int(round(math.log2(cfg.mask_enc_downsample)))
        need(2 ** n2 == cfg.mask_enc_downsample and n2 <= len(cfg.mask_enc_filters),
             f"mask_enc_downsample={cfg.mask_enc_downsample} must be a power of 2 with at most "
             f"{len(cfg.mask_enc_filters)} halvings (one per entry of mask_enc_filters).")
        need(size % cfg.mask_enc_downsample == 0,
             f"data.size {size} must be a multiple of mask_enc_downsample "
             f"{cfg.mask_enc_downsample}.")
        need(cfg.objective in OBJECTIVES, f"model.objective={cfg.objective!r} is not known; "
             f"choose {' or '.join(OBJECTIVES)}.")
        need(cfg.geco_alpha < 1, f"model.geco_alpha={cfg.geco_alpha} must be below 1 (the "
             "smoothing of GECO's constraint).")
        self.geco = (Geco(cfg.geco_goal, cfg.geco_speed, cfg.geco_alpha)
                     if cfg.objective == "geco" else None)
        dm, dc, nf = cfg.z_mask_dim, cfg.z_comp_dim, len(cfg.mask_enc_filters)
        k = cfg.mask_enc_kernel
        self.mask_encoder = nn.Sequential(
            ConvStack(channels, cfg.mask_enc_filters, [k] * nf, [2] * n2 + [1] * (nf - n2),
                      norm_act_final=True), nn.Flatten(1))
        self.mask_feature = MLP(_flat_dim(self.mask_encoder, channels, size), [cfg.mask_feature],
                                norm_act_final=True)
        self.mask_head_first = nn.Linear(cfg.mask_feature, 2 * dm)
        self.mask_rnn = nn.LSTMCell(cfg.mask_feature + dm, cfg.mask_lstm_hidden)
        self.mask_head = nn.Linear(cfg.mask_lstm_hidden, 2 * dm)
        need(cfg.mask_decoder in MASK_DECODERS, f"model.mask_decoder={cfg.mask_decoder!r} is "
             f"unknown; choose {' or '.join(MASK_DECODERS)}.")
        if cfg.mask_decoder == "subpixel":
            ups = math.prod(cfg.mask_dec_upscales)
            need(len(cfg.mask_dec_filters) + 1 == len(cfg.mask_dec_kernels)
                 == len(cfg.mask_dec_upscales), "model.mask_dec_kernels and mask_dec_upscales "
                 "need one entry per conv: one more than model.mask_dec_filters.")
            need(ups == size, f"model.mask_dec_upscales multiply to {ups}, but the images are "
                 f"{size} px; make their product {size}.")
            self.mask_decoder = nn.Sequential(
                nn.Unflatten(1, (dm, 1, 1)),
                SubPixelDecoder(dm, [*cfg.mask_dec_filters, 1], cfg.mask_dec_kernels,
                                cfg.mask_dec_upscales))
        else:
            self.mask_decoder = SpatialBroadcastDecoder(dm, 1, cfg.mask_dec_channels,
                                                        cfg.mask_dec_layers, size)
        self.prior_rnn = nn.LSTMCell(dm, cfg.prior_lstm_hidden)
        self.prior_head = nn.Linear(cfg.prior_lstm_hidden, 2 * dm)
        nc = len(cfg.comp_enc_filters)
        self.comp_encoder = nn.Sequential(
            ConvStack(channels + 1, cfg.comp_enc_filters, [3] * nc, [2] * nc,
                      norm_act_final=True), nn.Flatten(1))
        self.comp_head = MLP(_flat_dim(self.comp_encoder, channels + 1, size),
                             [cfg.comp_enc_hidden, 2 * dc])
        self.comp_prior = MLP(dm, [*cfg.prior_mlp_hidden, 2 * dc])
        self.comp_decoder = SpatialBroadcastDecoder(dc, channels, cfg.comp_dec_channels,
                                                    cfg.comp_dec_layers, size)

    # ------------------------------------------------------------------------ distributions
    def _posterior(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, s = raw.float().chunk(2, dim=-1)
        return mu, F.softplus(s + 0.5) + self.config.std_floor

    def _prior(self, raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, s = raw.float().chunk(2, dim=-1)
        return torch.tanh(mu), torch.sigmoid(s + 4.0) + self.config.std_floor

    def _mask_prior(self, z_prev: torch.Tensor, state: tuple | None
                    ) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple]:
        """p(z_m^k | z_m^{<k}) from ``z_m^{k−1} [B, Dm]`` and the prior LSTM's state."""
        state = self.prior_rnn(z_prev, state)
        return self._prior(self.prior_head(state[0])), state

    def _masks(self, z_mask: torch.Tensor) -> torch.Tensor:
        """``[B, K, 1, H, W]`` log masks from ``z_mask [B, K, Dm]`` (z_m^K is not decoded)."""
        b, k, s = z_mask.shape[0], z_mask.shape[1], self.img_size
        logits = self.mask_decoder(z_mask[:, :-1].reshape(b * (k - 1), -1)).float()
        return stick_breaking(logits.view(b, k - 1, s, s)).unsqueeze(2)

    def _decode_comp(self, z_comp: torch.Tensor) -> torch.Tensor:
        """``[B, K, C, H, W]`` component means µ_k from ``z_comp [B, K, Dc]``."""
        b, k, s = z_comp.shape[0], z_comp.shape[1], self.img_size
        out = self.comp_decoder(z_comp.reshape(b * k, -1)).float()
        return torch.sigmoid(out).view(b, k, self.channels, s, s)

    def _infer(self, x: torch.Tensor, use_mean: bool = False,
               generator: torch.Generator | None = None) -> _Pass:
        """Inference for ``x [B, C, H, W]``: z ~ q (posterior means if ``use_mean``), with the
        parameters of q and of the priors at the drawn latents."""
        check_images(self, x)
        b, kk = x.shape[0], self.config.components

        def draw(mu: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
            return mu if use_mean else mu + sd * noise("normal", mu.shape, mu, generator)

        h = self.mask_feature(self.mask_encoder(x))
        q = [self._posterior(self.mask_head_first(h))]
        zs = [draw(*q[0])]
        p = [(torch.zeros_like(zs[0]), torch.ones_like(zs[0]))]  # p(z_m^1) = N(0, I)
        q_state = p_state = None
        for _ in range(1, kk):
            q_state = self.mask_rnn(torch.cat([h, zs[-1].to(h.dtype)], dim=1), q_state)
            q.append(self._posterior(self.mask_head(q_state[0])))
            prior, p_state = self._mask_prior(zs[-1].to(h.dtype), p_state)
            p.append(prior)
            zs.append(draw(*q[-1]))
        z_mask = torch.stack(zs, dim=1)
        q_mask = tuple(torch.stack(t, dim=1) for t in zip(*q, strict=True))
        p_mask = tuple(torch.stack(t, dim=1) for t in zip(*p, strict=True))
        log_masks = self._masks(z_mask.to(h.dtype))
        s = self.img_size
        enc_in = torch.cat([x.unsqueeze(1).expand(b, kk, self.channels, s, s),
                            log_masks.to(x.dtype)], dim=2).reshape(b * kk, self.channels + 1, s, s)
        q_comp = self._posterior(self.comp_head(self.comp_encoder(enc_in)).view(b, kk, -1))
        z_comp = draw(*q_comp)
        p_comp = self._prior(self.comp_prior(z_mask.to(h.dtype)))
        return _Pass(z_mask, q_mask, p_mask, z_comp, q_comp, p_comp, log_masks,
                     self._decode_comp(z_comp.to(h.dtype)))

    def _recon_ll(self, x: torch.Tensor, r: _Pass) -> torch.Tensor:
        return mixture_log_lik(x, r.log_masks, r.means, self.config.sigma)

    # ------------------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """Loss and diagnostics for ``x [B, C, H, W]`` in [0, 1]: ``loss``, ``elbo``,
        ``recon_ll``, ``kl_mask``, ``kl_comp`` (batch means, nats per image), ``recon``."""
        r = self._infer(x)
        kls = {"kl_mask": kl_normal(*r.q_mask, *r.p_mask).sum((1, 2)),
               "kl_comp": kl_normal(*r.q_comp, *r.p_comp).sum((1, 2))}
        recon_ll = self._recon_ll(x, r)
        if self.geco is None:
            beta = self.config.beta * self.config.beta_warmup(step)
            return beta_elbo(recon_ll, kls, beta, r.recon)
        lam = self.geco.lam.clone()  # λ of this step, before its update
        out = beta_elbo(recon_ll, kls, 0.0, r.recon)  # elbo, recon_ll, KLs; loss replaced
        out["loss"] = self.geco.loss(recon_ll, sum(kls.values()), x[0].numel()).mean()
        return {**out, "geco_lambda": lam}

    # ---------------------------------------------------------------------------- generation
    @torch.no_grad()
    def sample_components(self, n: int, generator: torch.Generator | None = None,
                          temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """Prior samples with their parts: ``images [n, C, H, W]``, ``masks [n, K, 1, H, W]``,
        ``components [n, K, C, H, W]`` (m_k µ_k), ``means [n, K, C, H, W]`` (µ_k). The priors'
        stds are multiplied by ``temperature``; all noise comes from ``generator``."""
        check_temperature(temperature)
        cfg, ref = self.config, self.prior_head.weight
        eps_m = noise("normal", (cfg.components, n, cfg.z_mask_dim), ref, generator)
        eps_c = noise("normal", (cfg.components, n, cfg.z_comp_dim), ref, generator)
        zs, state = [temperature * eps_m[0]], None
        for k in range(1, cfg.components):
            (mu, sd), state = self._mask_prior(zs[-1], state)
            zs.append(mu + temperature * sd * eps_m[k])
        z_mask = torch.stack(zs, dim=1)
        mu, sd = self._prior(self.comp_prior(z_mask))
        means = self._decode_comp(mu + temperature * sd * eps_c.transpose(0, 1))
        masks = self._masks(z_mask).exp()
        comps = masks * means
        return {"images": comps.sum(1).clamp(0, 1), "masks": masks, "components": comps,
                "means": means}

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` prior samples ``[n, C, H, W]`` in [0, 1] (x̂ = Σ_k m_k µ_k)."""
        return self.sample_components(n, generator, temperature)["images"]

    # ----------------------------------------------------------------------------- inference
    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` reconstruction from the posterior means."""
        return self._infer(x, use_mean=True).recon.clamp(0, 1)

    @torch.no_grad()
    def log_importance_weight(self, x: torch.Tensor) -> torch.Tensor:
        """``[B]`` log p(x|z) + log p(z) − log q(z|x) for one z = (z_m^{1:K}, z_c^{1:K}) ~ q."""
        r = self._infer(x)
        log_p = (normal_log_prob(r.z_mask, *r.p_mask).sum((1, 2))
                 + normal_log_prob(r.z_comp, *r.p_comp).sum((1, 2)))
        log_q = (normal_log_prob(r.z_mask, *r.q_mask).sum((1, 2))
                 + normal_log_prob(r.z_comp, *r.q_comp).sum((1, 2)))
        return self._recon_ll(x, r) + log_p - log_q

    @torch.no_grad()
    def decompose(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Decomposition from the posterior means: ``masks [B, K, 1, H, W]``, ``components
        [B, K, C, H, W]`` (m_k µ_k), ``means`` (µ_k), ``recon [B, C, H, W]``, ``presence [B, K]``
        (m_k > 0.5 on at least ``presence_pixels`` px), ``pres_prob [B, K]`` (mean of m_k over
        those pixels: a score for AP), ``boxes [B, K, 4]`` (x0, y0, x1, y1 px around them),
        ``z_what [B, K, Dc]`` (z_c posterior means) and ``z_mask [B, K, Dm]``."""
        r = self._infer(x, use_mean=True)
        masks = r.log_masks.exp()
        boxes, presence = mask_boxes(masks, 0.5, self.config.presence_pixels)
        on = (masks[:, :, 0] > 0.5).to(masks.dtype)
        score = (masks[:, :, 0] * on).flatten(2).sum(-1) / on.flatten(2).sum(-1).clamp(min=1)
        comps = masks * r.means
        return {"masks": masks, "components": comps, "means": r.means,
                "recon": comps.sum(1).clamp(0, 1), "presence": presence,
                "pres_prob": score * presence, "boxes": boxes, "z_what": r.z_comp,
                "z_mask": r.z_mask}
