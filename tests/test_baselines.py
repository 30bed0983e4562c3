"""The VAE, ConvDRAW (-MLP) and SPACE baselines: shapes, the assembled objective against
torch.distributions on the same latent draws, log_importance_weight in closed-form cases,
gradients, sampling, the paper presets' parameter counts, an overfit smoke test and the one
sentence for bad input."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from gnm.errors import GNMError
from gnm.models.base import supports
from gnm.models.registry import build_model
from gnm.nn import count_parameters
from tests.test_gnm import TINY

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

ENC = dict(enc_filters=(8, 8, 16), enc_kernels=(4, 4, 4), enc_strides=(2, 2, 2))
SMALL = {
    "vae": dict(ENC, latent_hidden=16, z_dim=4, dec_filters=(16, 8), dec_kernels=(1, 3, 1),
                dec_upscales=(4, 4, 2)),
    "convdraw": dict(ENC, draw_steps=2, z_step_dim=2, draw_hidden=8, draw_input=8,
                     nomlp_hidden=16, dec_filters=(16, 8), dec_kernels=(3, 1, 3),
                     dec_upscales=(2, 2, 2)),
    "convdraw_mlp": dict(ENC, interaction_mlp=True, draw_steps=2, z_step_dim=4, draw_hidden=8,
                         draw_input=8, interaction_hidden=(32,), gdec_hidden=(32,),
                         dec_filters=(16, 8), dec_kernels=(3, 1, 3), dec_upscales=(2, 2, 2)),
    "space": {k: v for k, v in TINY.items() if k not in (
        "draw_steps", "z_step_dim", "draw_hidden", "draw_input", "interaction_hidden",
        "gdec_hidden", "nomlp_hidden", "bg_prior_hidden")},
}
NAMES = list(SMALL)


def small(key: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    name = "convdraw" if key.startswith("convdraw") else key
    return build_model({"name": name, **SMALL[key], **kw}, size=32)


def images(b: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def log_px(x: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    return Normal(mean, sigma).log_prob(x).flatten(1).sum(1)


# ---------------------------------------------------------------------------- shapes, grads
@pytest.mark.parametrize("key", NAMES)
def test_forward_shapes_and_every_parameter_gets_a_gradient(key):
    model = small(key)
    x = images()
    out = model(x, 10)
    assert out["recon"].shape == x.shape and torch.isfinite(out["loss"])
    out["loss"].backward()
    dead = [n for n, p in model.named_parameters()
            if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not dead, dead


@pytest.mark.parametrize("key", ["vae", "convdraw", "convdraw_mlp"])
def test_samples_are_images_and_follow_the_generator(key):
    model = small(key).eval()
    a = model.sample(4, generator=torch.Generator().manual_seed(1))
    b = model.sample(4, generator=torch.Generator().manual_seed(1))
    c = model.sample(4, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 1, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    # temperature 0 draws the prior's means: the same image for every generator
    assert torch.allclose(model.sample(2, generator=torch.Generator().manual_seed(1),
                                       temperature=0.0),
                          model.sample(2, generator=torch.Generator().manual_seed(5),
                                       temperature=0.0))


# ---------------------------------------------------------------------------- the objective
def test_vae_objective_against_torch_distributions():
    model = small("vae", beta=3.0)
    x = images()
    torch.manual_seed(7)
    out = model(x, 0)
    torch.manual_seed(7)  # the same draw of z
    mu, sd = model._posterior(x)
    z = mu + sd * torch.randn_like(mu)
    mean = model.generate(z)
    q, p = Normal(mu, sd), Normal(torch.zeros_like(mu), torch.ones_like(sd))
    kl = kl_divergence(q, p).sum(1)
    rll = log_px(x, mean, model.config.sigma)
    torch.testing.assert_close(out["kl_z"], kl.mean())
    torch.testing.assert_close(out["recon_ll"], rll.mean())
    torch.testing.assert_close(out["elbo"], (rll - kl).mean())
    torch.testing.assert_close(out["loss"], -(rll - 3.0 * kl).mean())


@pytest.mark.parametrize("key", ["convdraw", "convdraw_mlp"])
def test_convdraw_objective_against_torch_distributions(key):
    model = small(key, beta=10.0)
    x = images()
    torch.manual_seed(3)
    out = model(x, 0)
    torch.manual_seed(3)
    d = model._infer(x)  # the same z_1..z_L
    kl = kl_divergence(Normal(d.post_mu, d.post_sd), Normal(d.prior_mu, d.prior_sd))
    kl = kl.flatten(1).sum(1)
    rll = log_px(x, torch.sigmoid(model.decoder(d.feature)), model.config.sigma)
    torch.testing.assert_close(out["kl_z"], kl.mean())
    torch.testing.assert_close(out["elbo"], (rll - kl).mean())
    torch.testing.assert_close(out["loss"], -(rll - 10.0 * kl).mean())
    steps, dz = model.config.draw_steps, model.config.z_global_dim // model.config.draw_steps
    assert d.z.shape == (3, steps, dz)


def test_convdraw_beta_warmup_scales_only_the_loss_kl():
    from gnm.schedule import Schedule

    model = small("convdraw", beta=10.0, beta_warmup=Schedule(100, 300, 0.0, 1.0))
    x = images()
    for step, w in ((0, 0.0), (200, 0.5), (1000, 1.0)):
        torch.manual_seed(3)
        out = model(x, step)
        torch.testing.assert_close(out["loss"], -(out["recon_ll"] - 10.0 * w * out["kl_z"]))
        torch.testing.assert_close(out["elbo"], out["recon_ll"] - out["kl_z"])  # unweighted


def test_space_objective_against_torch_distributions():
    model = small("space")
    x = images()
    step = 500
    torch.manual_seed(5)
    out = model(x, step)
    torch.manual_seed(5)
    _, q, _, _, _ = model._infer(x)
    z = model._sample_cells(q, model.config.tau(step))
    rll = log_px(x, model.render(z).image, model.config.sigma)
    rho = model.config.rho(step)
    qp = torch.distributions.Bernoulli(logits=q.pres_logit)
    kl_pres = kl_divergence(qp, torch.distributions.Bernoulli(probs=torch.full_like(
        q.pres_logit, rho))).sum(1)
    w = z.pres.clamp(min=1e-5)
    prior_where = Normal(model.where_prior_mean, model.where_prior_std)
    kl_where = (kl_divergence(Normal(q.where_mu, q.where_sd), prior_where).sum(-1) * w).sum(1)
    std = Normal(0.0, 1.0)
    kl_depth = (kl_divergence(Normal(q.depth_mu, q.depth_sd), std).sum(-1) * w).sum(1)
    kl_what = (kl_divergence(Normal(q.what_mu, q.what_sd), std).sum(-1) * w).sum(1)
    kl = kl_pres + kl_where + kl_depth + kl_what
    torch.testing.assert_close(out["kl_pres"], kl_pres.mean())
    torch.testing.assert_close(out["kl_struct"], kl.mean())
    torch.testing.assert_close(out["elbo"], (rll - kl).mean())
    torch.testing.assert_close(out["loss"], -(rll - kl).mean())


# ---------------------------------------------------------------------------- log-likelihood
def _constant_decoder(decoder: torch.nn.Sequential, value: float) -> torch.Tensor:
    """Make the last sub-pixel conv output ``value`` everywhere; return sigmoid(value)."""
    last = decoder[-1].conv
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)
    return torch.sigmoid(torch.tensor(value))


def _softplus_inv(y: float) -> float:
    return math.log(math.expm1(y))


def test_vae_importance_weight_is_exact_when_q_is_the_prior_and_x_ignores_z():
    # decoder output constant c, q(z|x) = N(0, I) = p(z): log w = log N(x; c, σ²) for every z
    model = small("vae").eval()
    c = _constant_decoder(model.decoder, 0.3)
    head = model.to_latent[-2]
    with torch.no_grad():
        head.weight.zero_()
        head.bias[: model.config.z_dim] = 0.0
        head.bias[model.config.z_dim:] = _softplus_inv(1.0 - model.config.std_floor)
    x = images()
    want = log_px(x, torch.full_like(x, float(c)), model.config.sigma)
    torch.testing.assert_close(model.log_importance_weight(x), want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("key", ["convdraw", "convdraw_mlp"])
def test_convdraw_importance_weight_is_exact_when_q_equals_p_and_x_ignores_z(key):
    model = small(key).eval()
    c = _constant_decoder(model.decoder, -0.4)
    with torch.no_grad():  # both heads output the same constants, so q(z_ℓ|·) = p(z_ℓ|·)
        for head in (model.draw.post_head, model.draw.prior_head):
            last = [m for m in head.modules() if isinstance(m, (torch.nn.Linear,
                                                                torch.nn.Conv2d))][-1]
            last.weight.zero_()
            last.bias.fill_(0.25)
    x = images()
    want = log_px(x, torch.full_like(x, float(c)), model.config.sigma)
    torch.testing.assert_close(model.log_importance_weight(x), want, rtol=1e-5, atol=1e-3)


def test_space_importance_weight_in_a_closed_form_case():
    # q(z_s|x) = p(z_s) cell by cell and the glimpses black: log w = log N(x; 0, σ²) whatever z
    model = small("space").eval()
    cfg, s = model.config, model.structure
    rho_end = cfg.rho.end
    with torch.no_grad():
        for head in (s.pres_head, s.where_head, s.depth_head, s.what_head):
            head.weight.zero_()
        s.pres_head.bias.fill_(math.atanh(math.log(rho_end / (1 - rho_end))
                                          / cfg.pres_logit_scale))
        floor = cfg.std_floor
        s.where_head.bias.copy_(torch.tensor(
            [*cfg.where_prior_mean, *(_softplus_inv(v - floor) for v in cfg.where_prior_std)]))
        s.depth_head.bias.copy_(torch.tensor([0.0, _softplus_inv(1 - floor)]))
        s.what_head.bias[: cfg.z_what_dim] = 0.0
        s.what_head.bias[cfg.z_what_dim:] = _softplus_inv(1 - floor)
    _constant_decoder(model.glimpse_decoder.net, -40.0)
    x = images()
    _, q, _, _, _ = model._infer(x)
    assert torch.allclose(torch.sigmoid(q.pres_logit), torch.full_like(q.pres_logit, rho_end))
    want = log_px(x, torch.zeros_like(x), cfg.sigma)
    torch.testing.assert_close(model.log_importance_weight(x), want, rtol=1e-5, atol=1e-2)


# ---------------------------------------------------------------------------- presets, training
@pytest.mark.parametrize("preset, paper", [("vae", 1.5e6), ("convdraw", 1.5e6)])
def test_paper_presets_have_the_papers_parameter_count(preset, paper):
    n = count_parameters(build_model(preset))
    assert abs(n - paper) / paper <= 0.10, n


@pytest.mark.parametrize("preset", ["vae-cpu", "convdraw-cpu", "convdraw-mlp-cpu", "space-cpu"])
def test_cpu_presets_build_at_64_px(preset):
    model = build_model(preset)
    assert model.img_size == 64
    out = model(torch.rand(2, 1, 64, 64), 0)
    assert out["recon"].shape == (2, 1, 64, 64)


@pytest.mark.parametrize("key", NAMES)
def test_a_few_steps_fit_one_batch(key):
    model = small(key)
    x = torch.zeros(4, 1, 32, 32)  # two white squares per image, at different places
    for i in range(4):
        x[i, 0, 2 + 3 * i:10 + 3 * i, 3:11] = 1.0
        x[i, 0, 20:28, 4 + 4 * i:12 + 4 * i] = 1.0
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        torch.manual_seed(step)
        loss = model(x, 2000)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses


def test_capabilities_and_bad_input():
    assert not supports(small("vae"), "decompose") and supports(small("vae"), "sample")
    space = small("space")
    assert supports(space, "decompose") and not supports(space, "sample")
    with pytest.raises(GNMError, match="SPACE has no global latent"):
        space.sample(2)
    with pytest.raises(GNMError, match=r"VAE expects images \[B, 1, 32, 32\], got \[2, 1, 16, "
                                       r"16\]"):
        small("vae")(torch.rand(2, 1, 16, 16))
    with pytest.raises(GNMError, match="dec_upscales take the 1×1 input to 32 px, not data.size "
                                       "64"):
        build_model({"name": "vae", **SMALL["vae"], "enc_strides": (2, 2, 4)}, size=64)


def _vae_weights(tmp_path, weights_of: torch.nn.Module | None = None):
    """A small VAE's config stored with ``weights_of``'s weights (default: the VAE's own)."""
    import json

    from safetensors.torch import save_file

    from gnm.config import Config, DataConfig, to_dict
    from gnm.models.vae import VAEConfig

    vae = small("vae")
    cfg = Config(data=DataConfig(size=32), model=VAEConfig(**SMALL["vae"]))
    path = tmp_path / "w.safetensors"
    save_file((weights_of or vae).state_dict(), str(path),
              metadata={"gnm_config": json.dumps(to_dict(cfg))})
    return path


def test_gnm_weights_read_as_a_vae_is_one_sentence(tmp_path):
    from gnm.train.checkpoint import load_model

    path = _vae_weights(tmp_path, weights_of=small("space"))
    with pytest.raises(GNMError, match=r"do not fit the 'vae' model their config builds \(\d+ "
                                       r"missing, \d+ unexpected keys, e.g. '.*'\); they come "
                                       r"from another model or another version of it: check "
                                       r"model.name in the config stored with them\.$"):
        load_model(path)


def test_eval_of_a_metric_the_baseline_cannot_do_is_one_sentence(tmp_path, capsys):
    from gnm import cli

    path = _vae_weights(tmp_path)
    out = tmp_path / "ev"
    assert cli.main(["eval", str(path), "--metrics", "ap50", "--n", "20", "--quiet",
                     "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        "gnm: error: gnm eval --metrics ap50 needs a model that can decompose scenes into "
        "objects, but it has no decompose method (model VAE).\n")
    assert not out.exists() or not any(out.iterdir())
