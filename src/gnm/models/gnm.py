"""GNM: Generative Neurosymbolic Machines (Jiang & Ahn, NeurIPS 2020), the model.

Data flow (``B`` images, ``K = G²`` cells)::

    x [B,C,H,W] --encoder--> f_x [B,C_f,G,G] --StructDRAW q--> z_g, f [B,C_f,G,G]
    StructureNet(f_x) = q(z_s|x),  StructureNet(f) = p(z_s|z_g)        (one shared network)
    MLP(f_x) = q(z_b|x),           MLP(z_g) = p(z_b|z_g)                (background models only)
    z_s ~ q, z_b ~ q --glimpse/background decoders + compositing--> x̂ = "recon"

Objective (App. C), per image, in nats::

    elbo = log p(x|z_s,z_b) − KL_g − KL_b − KL_s
    loss = −(log p(x|z_s,z_b) − β_g(step)·KL_g − KL_b − KL_s)
           + β_b(step)·aux_bg + aux_pres + w_where(step)·aux_where + aux_what + aux_depth

``KL_s`` sums pres (analytic Bernoulli), where, depth and what over all cells; the auxiliary KLs
to fixed priors (``aux_*``) on where/what/depth are weighted by z_pres. z_pres is a relaxed
Bernoulli sample with temperature τ(step) in :meth:`GNM.forward`; generation uses modes.
"""

from __future__ import annotations

import torch
from torch import nn

from gnm.errors import GNMError
from gnm.models.base import check_images
from gnm.models.config import GNMConfig, ObjectMapConfig
from gnm.models.losses import (
    bernoulli_log_prob,
    kl_bernoulli_const,
    kl_bernoulli_logits,
    kl_normal,
    noise,
    normal_log_prob,
    pixel_log_lik,
    relaxed_bernoulli_sample,
)
from gnm.models.registry import register_model
from gnm.models.render import (
    BackgroundDecoder,
    Composite,
    GlimpseDecoder,
    clamp_pres,
    compose,
    compose_present,
    force_alpha,
    object_weights,
    place_glimpses,
)
from gnm.models.structdraw import DrawOutput, StructDRAW
from gnm.models.structure import (
    CellDists,
    CellLatents,
    StructureNet,
    box_to_pixels,
    where_to_box,
)
from gnm.nn import MLP, ConvStack


def encoder_side(enc_kernels, enc_strides, size: int) -> int:
    """Side (px) of the map the conv encoder with these kernels and strides (padding
    ``(k − 1) // 2``) makes from a ``size``-px image."""
    side = size
    for k, s in zip(enc_kernels, enc_strides, strict=True):
        side = (side + 2 * ((k - 1) // 2) - k) // s + 1
    return side


def need(ok: bool, msg: str) -> None:
    """Raise ``GNMError("model config: " + msg)`` unless ``ok``."""
    if not ok:
        raise GNMError(f"model config: {msg}")


def check_encoder(cfg, size: int) -> None:
    """The encoder lists (``enc_filters``, ``enc_kernels``, ``enc_strides``) have one entry per
    conv and map ``size`` px to the ``cfg.grid`` × ``cfg.grid`` map; else a GNMError naming
    the config key."""
    for name in ("enc_kernels", "enc_strides"):
        need(len(getattr(cfg, name)) == len(cfg.enc_filters),
             f"{name} has {len(getattr(cfg, name))} entries but enc_filters has "
             f"{len(cfg.enc_filters)}; give one per conv.")
    side = encoder_side(cfg.enc_kernels, cfg.enc_strides, size)
    need(side == cfg.grid, f"the encoder maps {size} px to {side}×{side}, not the "
         f"{cfg.grid}×{cfg.grid} grid; adjust model.enc_strides/enc_kernels or data.size.")


def validate_object_map(cfg: ObjectMapConfig, size: int) -> None:
    """Raise a GNMError naming the config key when the architecture lists of an object-map
    model (GNM, SPACE) do not fit."""
    check_encoder(cfg, size)
    for part in ("glimpse", "bg"):
        n = len(getattr(cfg, f"{part}_filters")) + 1  # hidden layers + the output layer
        for name in (f"{part}_kernels", f"{part}_upscales"):
            need(len(getattr(cfg, name)) == n,
                 f"{name} needs {n} entries (one per hidden layer in {part}_filters plus the "
                 f"output layer), got {len(getattr(cfg, name))}.")
    need(cfg.render in ("window", "separable", "grid_sample"),
         f"render must be 'window', 'separable' or 'grid_sample', not {cfg.render!r}.")


def _validate(cfg: GNMConfig, size: int) -> None:
    validate_object_map(cfg, size)
    need(cfg.global_prior in ("structdraw", "gaussian"),
         f"global_prior must be 'structdraw' or 'gaussian', not {cfg.global_prior!r}.")


def traverse_latent(generate, z: torch.Tensor, dim: int, values: torch.Tensor) -> torch.Tensor:
    """Set ``z[:, dim]`` (``z [B, D]``) to each of ``values [V]`` and decode with
    ``generate`` (``[N, D] -> [N, C, H, W]``): images ``[V, B, C, H, W]``."""
    zz = z.unsqueeze(0).repeat(len(values), 1, 1)
    zz[:, :, dim] = values.to(zz).view(-1, 1)
    img = generate(zz.flatten(0, 1))
    return img.view(len(values), z.shape[0], *img.shape[1:])


def check_temperature(temperature: float) -> None:
    """Raise a GNMError unless ``temperature`` (the factor on p(z_g)'s standard deviations when
    sampling; 1 is the model's prior, values below 1 draw nearer its modes) is finite and >= 0."""
    t = float(temperature)
    if not (t >= 0.0 and t != float("inf")):
        raise GNMError(f"temperature must be a finite number >= 0 (1 samples the model's prior), "
                       f"got {temperature!r}.")


def _gauss(params: torch.Tensor, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    mu, sd = params.chunk(2, dim=-1)
    return mu, nn.functional.softplus(sd) + floor


@register_model("gnm", GNMConfig)
class GNM(nn.Module):
    """The GNM model; see the module docstring. ``model.config`` is its :class:`GNMConfig`;
    ``size`` (image side, px) and ``channels`` come from the run's data section."""

    #: the KL terms the ELBO subtracts (kl_pres, kl_where, kl_depth, kl_what are kl_struct's parts)
    elbo_kls = ("kl_global", "kl_bg", "kl_struct")

    def __init__(self, config: GNMConfig, size: int = 128, channels: int = 1):
        super().__init__()
        _validate(config, size)
        self._build(config, size, channels, with_global=True)

    def _build(self, cfg: ObjectMapConfig, size: int, channels: int, with_global: bool) -> None:
        """Create the modules: the object map (encoder, structuring network, glimpse decoder,
        background) and, ``with_global``, StructDRAW and p(z_b|z_g). The creation order is
        fixed (it sets the initialisation for a seed and the parameter order optimisers
        save); SPACE builds the same without the global parts."""
        self.config = cfg
        self.img_size, self.channels = size, channels
        feat = cfg.enc_filters[-1]
        self.encoder = ConvStack(channels, cfg.enc_filters, cfg.enc_kernels, cfg.enc_strides,
                                 norm_act_final=True)
        if with_global:
            self.structdraw = StructDRAW(cfg, feat)
        self.structure = StructureNet(feat, cfg.struct_hidden, cfg.z_what_dim,
                                      cfg.pres_logit_scale, cfg.std_floor,
                                      init_where=(cfg.where_prior_mean, cfg.where_prior_std))
        self.glimpse_decoder = GlimpseDecoder(cfg.z_what_dim, channels, cfg.glimpse_filters,
                                              cfg.glimpse_kernels, cfg.glimpse_upscales,
                                              cfg.glimpse_mask)
        if cfg.background:
            self.bg_encoder = MLP(feat * cfg.num_cells, [*cfg.bg_enc_hidden, 2 * cfg.z_bg_dim])
            if with_global:
                self.bg_prior = MLP(cfg.z_global_dim, [*cfg.bg_prior_hidden, 2 * cfg.z_bg_dim])
            self.bg_decoder = BackgroundDecoder(cfg.z_bg_dim, channels, cfg.bg_filters,
                                                cfg.bg_kernels, cfg.bg_upscales)
            if self.bg_decoder.size != size:
                raise GNMError(f"model config: bg_upscales multiply to {self.bg_decoder.size}, "
                               f"not data.size {size}; adjust model.bg_upscales.")
        self.register_buffer("where_prior_mean", torch.tensor(cfg.where_prior_mean),
                             persistent=False)
        self.register_buffer("where_prior_std", torch.tensor(cfg.where_prior_std),
                             persistent=False)

    # ----------------------------------------------------------------------------- pieces
    def _check_input(self, x: torch.Tensor) -> None:
        check_images(self, x)

    def _background(self, z_bg: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if z_bg is None:  # no background model: black
            s = self.img_size
            return like.new_zeros(like.shape[0], self.channels, s, s)
        return self.bg_decoder(z_bg)

    def render(self, z: CellLatents, z_bg: torch.Tensor | None = None,
               alpha_force: float = 0.0) -> Composite:
        """Render cell latents (and ``z_bg [B, z_bg_dim]``) into images; ``alpha_force > 0``
        sets the foreground alpha to that constant at every pixel, ``x = x_fg + (1 − a)·x_b``
        (the reference's bg-alpha curriculum: early on the objects must draw the scene).

        Without autograd and with binary z_pres (generation, reconstruction, importance
        sampling) only present objects are decoded and placed: absent ones contribute exactly
        nothing.
        """
        box = where_to_box(z.where, self.config.grid)
        background = self._background(z_bg, z.what)
        if not torch.is_grad_enabled() and bool(((z.pres == 0) | (z.pres == 1)).all()):
            app, mask, present = self._decode_present(z)
            comp = self._compose_present(z, box, background, app, mask, present)
        else:
            appearance, mask = self.glimpse_decoder(z.what)
            comp = compose(appearance, mask, box, z.pres, z.depth, background,
                           self.config.render)
        return force_alpha(comp, alpha_force)

    def _decode_present(self, z: CellLatents
                        ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Glimpses of the present cells only: appearance ``[P, C, h, w]``, mask
        ``[P, 1, h, w]`` (None without a mask channel) and the mask ``present [B·K]``."""
        b, k = z.pres.shape
        present = z.pres.reshape(-1) > 0
        app, mask = self.glimpse_decoder(z.what.reshape(1, b * k, -1)[:, present])
        return app[0], None if mask is None else mask[0], present

    def _compose_present(self, z: CellLatents, box: torch.Tensor, background: torch.Tensor,
                         app: torch.Tensor, mask: torch.Tensor | None,
                         present: torch.Tensor) -> Composite:
        b, k = z.pres.shape
        s = object_weights(z.pres, z.depth)
        image_of = torch.arange(b * k, device=app.device)[present] // k
        return compose_present(app, mask, box.reshape(b * k, 4)[present],
                               s.reshape(-1)[present], image_of, background)

    def _modes(self, d: CellDists) -> CellLatents:
        return CellLatents((d.pres_logit > 0).to(d.where_mu.dtype), d.where_mu, d.depth_mu,
                           d.what_mu)

    def _sample_cells(self, d: CellDists, tau: float | None,
                      generator: torch.Generator | None = None) -> CellLatents:
        """z_s ~ d: relaxed Bernoulli pres with temperature ``tau`` (hard Bernoulli if None)."""
        if tau is None:
            u = noise("uniform", d.pres_logit.shape, d.pres_logit, generator)
            pres = (u < torch.sigmoid(d.pres_logit)).to(d.pres_logit.dtype)
        else:
            pres = relaxed_bernoulli_sample(d.pres_logit, tau, generator)

        def g(mu: torch.Tensor, sd: torch.Tensor) -> torch.Tensor:
            return mu + sd * noise("normal", mu.shape, mu, generator)

        return CellLatents(pres, g(d.where_mu, d.where_sd), g(d.depth_mu, d.depth_sd),
                           g(d.what_mu, d.what_sd))

    def _fixed_prior_kls(self, q: CellDists, weight: torch.Tensor, rho: float):
        """Per-image KLs ``[B]`` (fp32) of q(z_s|x) to the fixed priors: pres to Ber(ρ), and,
        weighted per cell by ``weight [B, K]`` (z_pres), where to the where prior, depth and
        what to N(0, I). GNM's auxiliary terms; SPACE's whole prior."""
        f32 = torch.float32
        kl_pres = kl_bernoulli_const(q.pres_logit.to(f32), rho).sum(1)
        kl_where = (kl_normal(q.where_mu.to(f32), q.where_sd.to(f32),
                              self.where_prior_mean.to(f32), self.where_prior_std.to(f32)
                              ).sum(-1) * weight).sum(1)
        kl_depth = (kl_normal(q.depth_mu.to(f32), q.depth_sd.to(f32), 0.0, 1.0).sum(-1)
                    * weight).sum(1)
        kl_what = (kl_normal(q.what_mu.to(f32), q.what_sd.to(f32), 0.0, 1.0).sum(-1)
                   * weight).sum(1)
        return kl_pres, kl_where, kl_depth, kl_what

    def _bg_prior(self, draw: DrawOutput) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.config.background:
            return None
        return _gauss(self.bg_prior(draw.z_global), self.config.std_floor)

    def _infer(self, x: torch.Tensor, use_mean: bool = False):
        """Posterior pieces: (draw, q(z_s|x), p(z_s|z_g), q(z_b|x) or None, p(z_b|z_g) or None)."""
        self._check_input(x)
        b = x.shape[0]
        f_x = self.encoder(x)
        draw = self.structdraw(f_x, use_mean=use_mean)
        q, p = self.structure(torch.cat([f_x, draw.feature], dim=0)).split([b, b])
        q_bg = _gauss(self.bg_encoder(f_x.flatten(1)), self.config.std_floor) \
            if self.config.background else None
        return draw, q, p, q_bg, self._bg_prior(draw)

    # ----------------------------------------------------------------------------- training
    def forward(self, x: torch.Tensor, step: int = 0) -> dict[str, torch.Tensor]:
        """Loss and diagnostics for images ``x [B, C, H, W]`` in [0, 1] at training ``step``.

        Every scalar is a per-image mean in nats; ``recon`` is the reconstruction ``[B,C,H,W]``.
        """
        cfg = self.config
        draw, q, p, q_bg, p_bg = self._infer(x)
        z = clamp_pres(self._sample_cells(q, cfg.tau(step)), cfg.alpha_force(step))
        z_bg = None if q_bg is None else q_bg[0] + q_bg[1] * torch.randn_like(q_bg[0])
        comp = self.render(z, z_bg, cfg.alpha_force(step))

        f32 = torch.float32
        q32 = CellDists(*(t.to(f32) for t in q._tensors()))
        p32 = CellDists(*(t.to(f32) for t in p._tensors()))
        recon_ll = pixel_log_lik(x, comp.image, cfg.sigma)
        kl_global = kl_normal(draw.post_mu.to(f32), draw.post_sd.to(f32), draw.prior_mu.to(f32),
                              draw.prior_sd.to(f32)).flatten(1).sum(1)
        kl_pres = kl_bernoulli_logits(q32.pres_logit, p32.pres_logit).sum(1)
        kl_where = kl_normal(q32.where_mu, q32.where_sd, p32.where_mu, p32.where_sd).sum((1, 2))
        kl_depth = kl_normal(q32.depth_mu, q32.depth_sd, p32.depth_mu, p32.depth_sd).sum((1, 2))
        kl_what = kl_normal(q32.what_mu, q32.what_sd, p32.what_mu, p32.what_sd).sum((1, 2))
        kl_struct = kl_pres + kl_where + kl_depth + kl_what

        weight = z.pres.to(f32).clamp(min=1e-5)  # aux object KLs count present objects
        aux_pres, aux_where, aux_depth, aux_what = self._fixed_prior_kls(q32, weight,
                                                                         cfg.rho(step))
        if q_bg is not None:
            (qm, qs), (pm, ps) = [(a.to(f32), b.to(f32)) for a, b in (q_bg, p_bg)]
            kl_bg = kl_normal(qm, qs, pm, ps).sum(1)
            aux_bg = kl_normal(qm, qs, 0.0, 1.0).sum(1)
        else:
            kl_bg = aux_bg = torch.zeros_like(recon_ll)

        beta_g = cfg.beta_g * cfg.beta_g_warmup(step)
        beta_b = cfg.beta_b(step) if cfg.background else 0.0
        w_where = cfg.aux_where_weight(step)
        elbo = recon_ll - kl_global - kl_bg - kl_struct
        loss = (-(recon_ll - beta_g * kl_global - kl_bg - kl_struct) + beta_b * aux_bg
                + aux_pres + w_where * aux_where + aux_what + aux_depth)
        out = {
            "loss": loss, "elbo": elbo, "recon_ll": recon_ll, "kl_global": kl_global,
            "kl_bg": kl_bg, "kl_struct": kl_struct, "kl_pres": kl_pres, "kl_where": kl_where,
            "kl_depth": kl_depth, "kl_what": kl_what, "aux_kl_pres": aux_pres,
            "aux_kl_where": aux_where, "aux_kl_depth": aux_depth, "aux_kl_what": aux_what,
            "aux_kl_bg": aux_bg, "num_objects": (z.pres > 0.5).to(f32).sum(1),
        }
        out = {k: v.mean() for k, v in out.items()}
        for name, value in (("tau", cfg.tau(step)), ("rho", cfg.rho(step)), ("beta_g", beta_g),
                            ("beta_b", beta_b), ("aux_where_weight", w_where)):
            out[name] = torch.tensor(float(value), device=loss.device)
        out["recon"] = comp.image
        out["z_pres"] = z.pres.detach()
        out["boxes"] = box_to_pixels(where_to_box(z.where.detach(), cfg.grid), self.img_size,
                                     self.img_size)
        return out

    # ----------------------------------------------------------------------------- generation
    def _decode_global(self, draw: DrawOutput) -> torch.Tensor:
        """Images from a StructDRAW output using the modes of p(z_s|z_g) and p(z_b|z_g)."""
        z = self._modes(self.structure(draw.feature))
        bg = self._bg_prior(draw)
        return self.render(z, None if bg is None else bg[0]).image.clamp(0, 1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> torch.Tensor:
        """``n`` images ``[n, C, H, W]`` in [0, 1]: z_g ~ p(z_g), then modes of z_s and z_b.
        ``temperature`` scales p(z_g)'s standard deviations (1: the model's prior; see
        :func:`check_temperature`)."""
        check_temperature(temperature)
        return self._decode_global(self.structdraw(n=n, generator=generator,
                                                   temperature=temperature))

    @torch.no_grad()
    def sample_global(self, n: int, generator: torch.Generator | None = None,
                      temperature: float = 1.0) -> torch.Tensor:
        """``n`` draws of z_g ~ p(z_g), ``[n, z_global_dim]`` (``temperature`` as in
        :meth:`sample`)."""
        check_temperature(temperature)
        return self.structdraw(n=n, generator=generator, temperature=temperature).z_global

    @torch.no_grad()
    def encode_global(self, x: torch.Tensor, use_mean: bool = True) -> torch.Tensor:
        """z_g from q(z_g|x) (its per-step means by default), ``[B, z_global_dim]``."""
        self._check_input(x)
        return self.structdraw(self.encoder(x), use_mean=use_mean).z_global

    @torch.no_grad()
    def generate(self, z_g: torch.Tensor) -> torch.Tensor:
        """Images ``[B, C, H, W]`` decoded from given ``z_g [B, z_global_dim]`` (modes of z_s)."""
        return self._decode_global(self.structdraw(z=z_g))

    @torch.no_grad()
    def resample_structure(self, z_g: torch.Tensor, n: int,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """Keep each ``z_g [B, D]`` fixed and draw ``n`` samples z_s ~ p(z_s|z_g),
        z_b ~ p(z_b|z_g) (hard Bernoulli z_pres): images ``[B, n, C, H, W]``."""
        draw = self.structdraw(z=z_g.repeat_interleave(n, dim=0))
        z = self._sample_cells(self.structure(draw.feature), None, generator)
        bg = self._bg_prior(draw)
        z_bg = None if bg is None else bg[0] + bg[1] * noise("normal", bg[0].shape, bg[0],
                                                              generator)
        img = self.render(z, z_bg).image.clamp(0, 1)
        return img.view(z_g.shape[0], n, *img.shape[1:])

    @torch.no_grad()
    def traverse_global(self, z_g: torch.Tensor, dim: int, values: torch.Tensor) -> torch.Tensor:
        """Set z_g[:, dim] to each of ``values [V]`` and decode: ``[V, B, C, H, W]``."""
        return traverse_latent(self.generate, z_g, dim, values)

    # ----------------------------------------------------------------------------- analysis
    @torch.no_grad()
    def infer_latents(self, x: torch.Tensor) -> tuple[CellLatents, torch.Tensor | None]:
        """Modes of q(z_s|x) (z_pres = logit > 0) and the mean of q(z_b|x) (None without bg)."""
        _, q, _, q_bg, _ = self._infer(x, use_mean=True)
        return self._modes(q), None if q_bg is None else q_bg[0]

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[B, C, H, W]`` in [0, 1] from the posterior modes."""
        z, z_bg = self.infer_latents(x)
        return self.render(z, z_bg).image.clamp(0, 1)

    @torch.no_grad()
    def traverse_object(self, x: torch.Tensor, cell: int, field: str, dim: int,
                        values: torch.Tensor) -> torch.Tensor:
        """Change one object's latent: set ``z_<field>[:, cell, dim]`` (field 'where' (raw:
        scale, ratio, shift x, shift y), 'what' or 'depth') of the posterior modes to each of
        ``values [V]`` and render: ``[V, B, C, H, W]``."""
        if field not in ("where", "what", "depth"):
            raise GNMError(f"traverse_object: field must be where, what or depth, not {field!r}.")
        z, z_bg = self.infer_latents(x)
        v, b = len(values), x.shape[0]

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.unsqueeze(0).expand(v, *t.shape).reshape(v * b, *t.shape[1:]).clone()

        zs = CellLatents(rep(z.pres), rep(z.where), rep(z.depth), rep(z.what))
        getattr(zs, field).view(v, b, *z.what.shape[1:-1], -1)[:, :, cell, dim] = \
            values.to(z.what).view(-1, 1)
        img = self.render(zs, None if z_bg is None else rep(z_bg)).image.clamp(0, 1)
        return img.view(v, b, *img.shape[1:])

    @torch.no_grad()
    def decompose(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Scene decomposition from the posterior modes: per-object layers and their boxes.

        Returns ``components [B,K,C,H,W]`` (each object's premultiplied layer pres·STN⁻¹(m·o)),
        ``masks [B,K,1,H,W]`` (pres·STN⁻¹(m)), ``presence [B,K]`` (0/1), ``pres_prob [B,K]``,
        ``boxes [B,K,4]`` (x0, y0, x1, y1 in pixels), ``depth [B,K]``, ``background``,
        ``alpha [B,1,H,W]``, ``recon [B,C,H,W]``, ``z_what [B,K,D]`` and raw ``z_where [B,K,4]``.
        """
        _, q, _, q_bg, _ = self._infer(x, use_mean=True)
        z = self._modes(q)
        out = self._layers(z, None if q_bg is None else q_bg[0])
        out.update(pres_prob=torch.sigmoid(q.pres_logit), z_what=z.what, z_where=z.where)
        return out

    def _layers(self, z: CellLatents, z_bg: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Binary-pres cell latents -> the composite and each object's layer (see
        :meth:`decompose` for the keys)."""
        cfg, (b, k) = self.config, z.pres.shape
        box = where_to_box(z.where, cfg.grid)
        # absent objects' layers are zero: decode the present ones, once, for both the
        # composite and the per-object layers
        appearance, mask, present = self._decode_present(z)
        comp = self._compose_present(z, box, self._background(z_bg, z.what), appearance, mask,
                                     present)
        if mask is None:
            mask = torch.ones_like(appearance[:, :1])
        src = torch.cat([mask, mask * appearance], dim=1)
        placed = z.what.new_zeros(b * k, src.shape[1], self.img_size, self.img_size)
        placed[present] = place_glimpses(src, box.reshape(b * k, 4)[present], self.img_size,
                                         self.img_size).to(placed.dtype)
        placed = placed.view(b, k, -1, self.img_size, self.img_size)
        return {
            "components": placed[:, :, 1:], "masks": placed[:, :, :1], "presence": z.pres,
            "boxes": box_to_pixels(box, self.img_size, self.img_size), "depth": z.depth[..., 0],
            "background": comp.background, "alpha": comp.alpha, "recon": comp.image.clamp(0, 1),
        }

    @torch.no_grad()
    def sample_components(self, n: int, generator: torch.Generator | None = None,
                          temperature: float = 1.0) -> dict[str, torch.Tensor]:
        """Component-wise generation (the paper's Fig. 3): ``n`` prior samples as
        :meth:`sample` draws them, with ``images [n, C, H, W]`` and each cell's layer
        ``components [n, K, C, H, W]`` (pres · STN⁻¹(m · o); zero for absent cells, the
        background left out), plus ``presence``, ``boxes``, ``masks`` and ``depth``."""
        check_temperature(temperature)
        draw = self.structdraw(n=n, generator=generator, temperature=temperature)
        bg = self._bg_prior(draw)
        out = self._layers(self._modes(self.structure(draw.feature)),
                           None if bg is None else bg[0])
        out["images"] = out.pop("recon")
        return out

    @torch.no_grad()
    def log_importance_weight(self, x: torch.Tensor) -> torch.Tensor:
        """One importance sample ``log p(x, z) − log q(z|x)`` per image ``[B]`` (nats), z ~ q with
        hard Bernoulli z_pres. Average ``exp`` over many calls (log-mean-exp) for the IS
        log-likelihood (Burda et al.)."""
        draw, q, p, q_bg, p_bg = self._infer(x)
        z = self._sample_cells(q, None)
        z_bg = None if q_bg is None else q_bg[0] + q_bg[1] * torch.randn_like(q_bg[0])
        img = self.render(z, z_bg).image.float()
        lw = pixel_log_lik(x, img, self.config.sigma)
        lw = lw + (normal_log_prob(draw.z, draw.prior_mu, draw.prior_sd)
                   - normal_log_prob(draw.z, draw.post_mu, draw.post_sd)).flatten(1).sum(1)
        lw = lw + (bernoulli_log_prob(z.pres, p.pres_logit)
                   - bernoulli_log_prob(z.pres, q.pres_logit)).sum(1)
        for value, (pm, ps), (qm, qs) in (
                (z.where, (p.where_mu, p.where_sd), (q.where_mu, q.where_sd)),
                (z.depth, (p.depth_mu, p.depth_sd), (q.depth_mu, q.depth_sd)),
                (z.what, (p.what_mu, p.what_sd), (q.what_mu, q.what_sd))):
            lw = lw + (normal_log_prob(value, pm, ps) - normal_log_prob(value, qm, qs)).sum((1, 2))
        if z_bg is not None:
            lw = lw + (normal_log_prob(z_bg, *p_bg) - normal_log_prob(z_bg, *q_bg)).sum(1)
        return lw
