"""GNM end to end: KLs against torch.distributions, forward contract for every preset, gradients,
generation/analysis helpers, bf16 autocast, errors, and a tiny model that learns."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal, RelaxedBernoulli, kl_divergence

import gnm
from gnm.config import Config
from gnm.errors import GNMError
from gnm.models.config import ModelConfig
from gnm.models.losses import (
    bernoulli_log_prob,
    kl_bernoulli_const,
    kl_bernoulli_logits,
    kl_normal,
    normal_log_prob,
    relaxed_bernoulli_sample,
)
from gnm.models.registry import build_model
from gnm.models.render import place_glimpses
from gnm.models.structure import box_to_pixels, where_to_box
from gnm.nn import count_parameters
from gnm.presets import get_preset, preset_names

# A very small 32-px model (4×4 grid, 8-px glimpses) for fast end-to-end tests (σ pinned to the
# paper's 0.2, which the likelihood tests below compute by hand).
TINY = dict(enc_filters=(8, 16, 32), enc_kernels=(4, 4, 4), enc_strides=(2, 2, 2),
            draw_steps=2, z_step_dim=8, draw_hidden=16, draw_input=8, interaction_hidden=(64,),
            gdec_hidden=(64,), nomlp_hidden=16, struct_hidden=(32,), z_what_dim=8,
            glimpse_filters=(16, 8), glimpse_kernels=(1, 1, 3), glimpse_upscales=(2, 2, 2),
            bg_enc_hidden=(32,), bg_prior_hidden=(16,), z_bg_dim=4, bg_filters=(16, 8),
            bg_kernels=(1, 1, 3), bg_upscales=(4, 8, 1), sigma=0.2)
# ... with a background and decoded masks (the Arrow configuration in miniature).
TINY_BG = dict(TINY, channels=3, background=True, glimpse_mask=True,
               where_prior_mean=(-1.5, 0.0, 0.0, 0.0))
LATE = 10**7  # a step past every warm-up


def tiny(**kw):
    torch.manual_seed(0)
    return build_model("mnist4-cpu", **{"size": 32, **TINY, **kw})


def images(model, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    c, s = model.channels, model.img_size
    return torch.rand(b, c, s, s, generator=g)


# ---------------------------------------------------------------- divergences vs torch
def test_kl_normal_matches_torch():
    torch.manual_seed(0)
    mq, mp = torch.randn(50), torch.randn(50)
    sq, sp = torch.rand(50) + 0.05, torch.rand(50) + 0.05
    want = kl_divergence(Normal(mq, sq), Normal(mp, sp))
    torch.testing.assert_close(kl_normal(mq, sq, mp, sp), want)
    torch.testing.assert_close(kl_normal(mq, sq, 0.0, 1.0), kl_divergence(Normal(mq, sq),
                                                                          Normal(0.0, 1.0)))


def test_kl_bernoulli_matches_torch():
    lq, lp = torch.randn(50) * 4, torch.randn(50) * 4
    want = kl_divergence(Bernoulli(logits=lq), Bernoulli(logits=lp))
    torch.testing.assert_close(kl_bernoulli_logits(lq, lp), want, rtol=1e-4, atol=1e-5)
    want = kl_divergence(Bernoulli(logits=lq), Bernoulli(probs=torch.full((50,), 0.03)))
    torch.testing.assert_close(kl_bernoulli_const(lq, 0.03), want, rtol=1e-4, atol=1e-5)


def test_relaxed_bernoulli_sample_matches_torch():
    logits = torch.randn(100) * 3
    torch.manual_seed(5)
    want = RelaxedBernoulli(torch.tensor(0.7), logits=logits).rsample()
    torch.manual_seed(5)
    torch.testing.assert_close(relaxed_bernoulli_sample(logits, 0.7), want)


def test_log_probs_match_torch():
    x, mu, sd = torch.randn(20), torch.randn(20), torch.rand(20) + 0.1
    torch.testing.assert_close(normal_log_prob(x, mu, sd), Normal(mu, sd).log_prob(x))
    z, lg = (torch.rand(20) > 0.5).float(), torch.randn(20)
    torch.testing.assert_close(bernoulli_log_prob(z, lg), Bernoulli(logits=lg).log_prob(z))


# ---------------------------------------------------------------- presets
GNM_PRESETS = [p for p in preset_names() if get_preset(p).model.name == "gnm"]  # no baselines


def test_parameter_counts_close_to_paper_table5():
    counts = {name: count_parameters(build_model(name)) for name in GNM_PRESETS}
    assert counts["mnist4"] == pytest.approx(2.9e6, rel=0.03)
    assert counts["mnist10"] == counts["mnist4_10"] == counts["mnist4"]
    assert counts["arrow"] == pytest.approx(8.6e6, rel=0.03)
    # The CPU presets keep the paper's StructDRAW and shrink the image path (64 px): 2.81M.
    assert counts["mnist4-cpu"] == pytest.approx(2.81e6, rel=0.01)
    assert counts["mnist4-cpu"] < counts["mnist4"]
    assert counts["arrow-cpu"] == pytest.approx(3.62e6, rel=0.01)


KEYS = ["loss", "elbo", "recon_ll", "kl_global", "kl_bg", "kl_struct", "kl_pres", "kl_where",
        "kl_depth", "kl_what", "aux_kl_pres", "aux_kl_where", "aux_kl_depth", "aux_kl_what",
        "aux_kl_bg", "num_objects"]


@pytest.mark.parametrize("preset", GNM_PRESETS)
def test_forward_contract_for_every_preset(preset):
    cfg = get_preset(preset)
    model = build_model(cfg)
    assert (model.img_size, model.channels) == (cfg.data.size, cfg.data.channels)
    x = images(model)
    out = model(x, step=0)
    for key in KEYS:
        assert out[key].dim() == 0 and torch.isfinite(out[key]), key
    assert out["recon"].shape == x.shape
    assert out["z_pres"].shape == (2, 16) and out["boxes"].shape == (2, 16, 4)
    assert model.sample(2).shape == x.shape


def test_elbo_and_loss_are_the_documented_combinations():
    model = tiny(**TINY_BG)
    step = 700
    torch.manual_seed(1)
    out = model(images(model), step=step)
    cfg = model.config
    kl_struct = out["kl_pres"] + out["kl_where"] + out["kl_depth"] + out["kl_what"]
    torch.testing.assert_close(out["kl_struct"], kl_struct)
    torch.testing.assert_close(out["elbo"], out["recon_ll"] - out["kl_global"] - out["kl_bg"]
                               - kl_struct)
    beta_g = cfg.beta_g * cfg.beta_g_warmup(step)
    want = (-(out["recon_ll"] - beta_g * out["kl_global"] - out["kl_bg"] - kl_struct)
            + cfg.beta_b(step) * out["aux_kl_bg"] + out["aux_kl_pres"]
            + cfg.aux_where_weight(step) * out["aux_kl_where"] + out["aux_kl_what"]
            + out["aux_kl_depth"])
    torch.testing.assert_close(out["loss"], want)
    assert out["beta_b"].item() == pytest.approx(cfg.beta_b(step))
    assert out["tau"].item() == pytest.approx(cfg.tau(step))


def test_recon_ll_is_the_gaussian_likelihood_of_recon():
    model = tiny()
    x = images(model)
    out = model(x, step=0)
    want = Normal(out["recon"].detach(), 0.2).log_prob(x).flatten(1).sum(1).mean()
    torch.testing.assert_close(out["recon_ll"].detach(), want)


@pytest.mark.parametrize("variant", [{}, TINY_BG, {"global_prior": "gaussian"},
                                     {"interaction_mlp": False}],
                         ids=["mnist", "background+mask", "gaussian", "nomlp"])
def test_gradient_reaches_every_parameter(variant):
    model = tiny(**variant)
    model(images(model), step=LATE)["loss"].backward()
    missing = [n for n, p in model.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing


# ---------------------------------------------------------------- generation and analysis
def test_sample_is_deterministic_given_a_generator_and_in_range():
    model = tiny(**TINY_BG)
    a = model.sample(3, generator=torch.Generator().manual_seed(0))
    b = model.sample(3, generator=torch.Generator().manual_seed(0))
    c = model.sample(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    # sample == generate(z_g ~ prior) with the same noise
    z_g = model.sample_global(3, generator=torch.Generator().manual_seed(0))
    assert z_g.shape == (3, model.config.z_global_dim)
    torch.testing.assert_close(model.generate(z_g), a)


def test_sample_temperature_scales_the_global_draw():
    model = tiny()
    gen = torch.Generator
    z1 = model.sample_global(3, generator=gen().manual_seed(0))
    torch.testing.assert_close(model.sample_global(3, generator=gen().manual_seed(0),
                                                   temperature=1.0), z1)
    z0 = model.sample_global(3, generator=gen().manual_seed(0), temperature=0.0)
    torch.testing.assert_close(z0, model.structdraw(n=3, use_mean=True).z_global)
    zt = model.sample_global(3, generator=gen().manual_seed(0), temperature=0.3)
    torch.testing.assert_close(model.sample(3, generator=gen().manual_seed(0), temperature=0.3),
                               model.generate(zt))
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(GNMError, match="temperature must be a finite number >= 0"):
            model.sample(2, temperature=bad)


def test_decompose_reconstruct_and_traversals():
    model = tiny(**TINY_BG)
    x = images(model, b=2)
    with torch.no_grad():
        model.structure.pres_head.bias.fill_(5.0)  # make objects present
    d = model.decompose(x)
    assert d["components"].shape == (2, 16, 3, 32, 32)
    assert d["masks"].shape == (2, 16, 1, 32, 32)
    assert d["presence"].shape == d["depth"].shape == d["pres_prob"].shape == (2, 16)
    assert set(d["presence"].unique().tolist()) <= {0.0, 1.0}
    z, _ = model.infer_latents(x)
    torch.testing.assert_close(d["boxes"], box_to_pixels(where_to_box(z.where, 4), 32, 32))
    torch.testing.assert_close(d["recon"], model.reconstruct(x))
    assert d["background"].shape == x.shape and d["alpha"].shape == (2, 1, 32, 32)
    torch.testing.assert_close(d["z_what"], z.what)

    cell = int(d["presence"][0].argmax())
    assert d["presence"][0, cell] == 1
    moved = model.traverse_object(x, cell, "where", 2, torch.tensor([-1.0, 1.0]))
    assert moved.shape == (2, 2, 3, 32, 32)
    assert not torch.allclose(moved[0, 0], moved[1, 0])  # the object moved
    what = model.traverse_object(x, cell, "what", 0, torch.tensor([z.what[0, cell, 0].item()]))
    torch.testing.assert_close(what[0, 0], model.reconstruct(x)[0])  # unchanged value = recon

    z_g = model.encode_global(x)
    assert z_g.shape == (2, model.config.z_global_dim)
    trav = model.traverse_global(z_g, 3, torch.tensor([z_g[0, 3].item(), 5.0]))
    assert trav.shape == (2, 2, 3, 32, 32)
    torch.testing.assert_close(trav[0, 0], model.generate(z_g)[0])
    gen = torch.Generator().manual_seed(0)
    res = model.resample_structure(z_g, 4, generator=gen)
    assert res.shape == (2, 4, 3, 32, 32)


def test_log_importance_weight_is_finite():
    model = tiny(**TINY_BG)
    lw = model.log_importance_weight(images(model, b=3))
    assert lw.shape == (3,) and torch.isfinite(lw).all()


def test_bf16_autocast_forward_and_backward():
    model = tiny(**TINY_BG)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(images(model), step=100)
    assert torch.isfinite(out["loss"]) and out["loss"].dtype == torch.float32
    out["loss"].backward()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.sample(2)).all()


def test_forward_is_deterministic_given_the_seed():
    model = tiny()
    x = images(model)
    torch.manual_seed(3)
    a = model(x, step=5)["loss"]
    torch.manual_seed(3)
    b = model(x, step=5)["loss"]
    assert a.item() == b.item()


# ---------------------------------------------------------------- building and errors
def test_build_model_accepts_names_configs_and_overrides():
    assert build_model("MNIST4_CPU").img_size == 64
    assert gnm.build_model("mnist4-cpu", draw_steps=8).config.draw_steps == 8
    cfg = get_preset("mnist4-cpu")
    model = build_model(cfg, z_what_dim=12)
    assert model.config.z_what_dim == 12 and cfg.model.z_what_dim == 20  # input not mutated
    model.config.tau.end = 0.1
    assert cfg.model.tau.end == 0.5  # a deep copy
    assert build_model(cfg.model, size=64).config == cfg.model  # a bare model config: give the size
    assert isinstance(build_model(Config()).config, ModelConfig)
    as_lists = {k: list(v) if isinstance(v, tuple) else v for k, v in TINY.items()}
    from_dict = build_model(as_lists, size=32)  # a dict, e.g. from config.json
    assert from_dict.img_size == 32 and from_dict.config.enc_filters == (8, 16, 32)


def test_errors_name_the_problem():
    model = tiny()
    with pytest.raises(GNMError, match=r"expects images \[B, 1, 32, 32\]"):
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(GNMError, match="unknown preset"):
        build_model("mnist5")
    with pytest.raises(GNMError, match="unknown model field"):
        build_model("mnist4", z_wat_dim=3)
    with pytest.raises(GNMError, match="enc_strides"):
        build_model("mnist4", size=96)
    with pytest.raises(GNMError, match="glimpse_kernels"):
        build_model("mnist4", glimpse_filters=(8,))
    with pytest.raises(GNMError, match="bg_upscales"):
        build_model("mnist4", background=True, size=64,
                    enc_filters=(8, 8, 8, 8), enc_kernels=(4, 4, 4, 4), enc_strides=(2, 2, 2, 2))


# ---------------------------------------------------------------- learning
def _squares(n: int = 4) -> torch.Tensor:
    x = torch.zeros(n, 1, 32, 32)
    corners = [(2, 2), (2, 18), (18, 18), (18, 2)]
    for i in range(n):
        for r, c in corners[: i % 4 + 1]:
            x[i, 0, r + 1:r + 7, c + 1:c + 7] = 0.9
            x[i, 0, r + 3:r + 5, c + 2:c + 6] = 0.2
    return x


def test_tiny_model_overfits_a_handful_of_images():
    # Four images of 1-4 squares. The model must learn to explain them with objects: the
    # reconstruction must beat the "all black, no objects" solution by far, with one present
    # object per square. (Adam + grad-norm clip 1.0, as the reference clips.)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threading costs more than it gives on a busy CPU
    try:
        model = tiny()
        x = _squares()
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        log = []
        for step in range(200):
            out = model(x, step=step)
            opt.zero_grad()
            out["loss"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            log.append((out["loss"].item(), out["recon_ll"].item(), out["num_objects"].item()))
    finally:
        torch.set_num_threads(threads)
    black = Normal(0.0, 0.2).log_prob(x).flatten(1).sum(1).mean().item()  # ≈ −12 nats
    loss, recon_ll, objects = (sum(v) / 10 for v in zip(*log[-10:], strict=True))
    assert loss < log[0][0] - 300
    assert recon_ll > black + 500  # the squares are drawn (perfect: black + ~720)
    assert objects == pytest.approx(2.5, abs=0.3)  # 1, 2, 3 and 4 squares


def test_generation_skips_absent_objects_without_changing_images():
    # Without autograd and with binary z_pres only present objects are decoded.
    model = tiny(**TINY_BG)
    x = images(model, b=3)
    z, z_bg = model.infer_latents(x)
    assert 0 < z.pres.sum() < z.pres.numel()
    with torch.no_grad():
        fast = model.render(z, z_bg).image
    full = model.render(z, z_bg).image  # with autograd: decodes every cell
    torch.testing.assert_close(fast, full.detach())
    with torch.no_grad():  # the alpha curriculum on that path too
        fast = model.render(z, z_bg, alpha_force=0.9).image
    forced = model.render(z, z_bg, alpha_force=0.9)
    torch.testing.assert_close(fast, forced.image.detach())
    # by hand: x = x_fg + (1 − 0.9)·x_b at every pixel, whatever the masks
    plain = model.render(z, z_bg)
    torch.testing.assert_close(forced.image, plain.foreground + 0.1 * plain.background)
    assert (forced.alpha == 0.9).all()


def test_decompose_layers_equal_every_cell_placed_by_grid_sample():
    # decompose() decodes only present objects; absent layers must be exactly zero and present
    # ones equal pres·STN⁻¹(m·o) by the textbook affine_grid/grid_sample transformer.
    model = tiny(**TINY_BG)
    x = images(model, b=3)
    d = model.decompose(x)
    z, _ = model.infer_latents(x)
    assert 0 < z.pres.sum() < z.pres.numel()
    with torch.no_grad():
        app, mask = model.glimpse_decoder(z.what)
        src = torch.cat([mask, mask * app], dim=2).flatten(0, 1)
        placed = place_glimpses(src, where_to_box(z.where, 4).flatten(0, 1), 32, 32,
                                "grid_sample").view(3, 16, 4, 32, 32)
    pres = z.pres.view(3, 16, 1, 1, 1)
    torch.testing.assert_close(d["masks"], pres * placed[:, :, :1])
    torch.testing.assert_close(d["components"], pres * placed[:, :, 1:])
    assert torch.count_nonzero(d["components"][z.pres == 0]) == 0


def test_sampling_with_no_present_object():
    """Hard z_pres with every cell absent decodes no glimpse and renders a black image."""
    model = tiny().eval()
    with torch.no_grad():
        z = model.infer_latents(images(model))[0]
        z.pres.zero_()
        out = model.render(z)
    assert torch.count_nonzero(out.image) == 0


def test_decompose_decodes_the_glimpses_once_and_matches_render():
    model = tiny(**TINY_BG).eval()
    x = images(model, b=3)
    calls = []
    handle = model.glimpse_decoder.register_forward_hook(lambda *a: calls.append(1))
    d = model.decompose(x)
    handle.remove()
    assert len(calls) == 1
    z, z_bg = model.infer_latents(x)
    with torch.no_grad():
        torch.testing.assert_close(d["recon"], model.render(z, z_bg).image.clamp(0, 1))


def test_sample_components_are_the_layers_of_the_prior_samples():
    model = tiny().eval()
    with torch.no_grad():  # every cell present, whatever the random weights say
        model.structure.pres_head.weight.zero_()
        model.structure.pres_head.bias.fill_(1.0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    parts = model.sample_components(4, generator=g1)
    torch.testing.assert_close(parts["images"], model.sample(4, generator=g2))
    k = model.config.num_cells
    assert parts["components"].shape == (4, k, 1, 32, 32)
    # a present cell draws inside its box only; with no cell present, nothing is drawn
    assert (parts["presence"] == 1).all()
    i, j = 1, 5
    x0, y0, x1, y1 = parts["boxes"][i, j].tolist()
    layer = parts["masks"][i, j, 0]
    ys, xs = torch.nonzero(layer > 0, as_tuple=True)
    assert xs.min() >= int(x0) - 1 and xs.max() <= int(x1) + 1
    assert ys.min() >= int(y0) - 1 and ys.max() <= int(y1) + 1
    with torch.no_grad():
        model.structure.pres_head.bias.fill_(-1.0)
    empty = model.sample_components(2, generator=torch.Generator().manual_seed(3))
    assert (empty["components"] == 0).all() and (empty["images"] == 0).all()
