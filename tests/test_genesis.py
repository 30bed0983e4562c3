"""GENESIS baseline: contract, stick-breaking, likelihood and KLs against their definitions."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Categorical, MixtureSameFamily, Normal, kl_divergence

from gnm.errors import GNMError
from gnm.models.base import check_forward, supports
from gnm.models.genesis import (
    Genesis,
    GenesisConfig,
    mask_boxes,
    mixture_log_lik,
    stick_breaking,
)
from gnm.models.registry import build_model
from gnm.nn import count_parameters
from gnm.nn.broadcast import SpatialBroadcastDecoder

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = dict(components=3, z_mask_dim=4, z_comp_dim=3, mask_enc_filters=(8, 8),
             mask_enc_kernel=3, mask_enc_downsample=4, mask_feature=16, mask_lstm_hidden=8,
             mask_dec_channels=8, mask_dec_layers=2, comp_enc_filters=(8, 8), comp_enc_hidden=16,
             comp_dec_channels=8, comp_dec_layers=2, prior_lstm_hidden=8, prior_mlp_hidden=(16,),
             presence_pixels=3)


def make(size: int = 32, channels: int = 1, **kw) -> Genesis:
    torch.manual_seed(0)
    return Genesis(GenesisConfig(**{**SMALL, **kw}), size=size, channels=channels)


def images(b: int = 2, c: int = 1, s: int = 32) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(b, c, s, s)


def test_forward_shapes_and_loss():
    model, x = make(channels=3), images(c=3)
    out = check_forward(model(x, step=0))
    assert out["recon"].shape == x.shape
    for key in ("loss", "elbo", "recon_ll", "kl_mask", "kl_comp"):
        assert out[key].dim() == 0 and torch.isfinite(out[key]), key
    assert model.elbo_kls == ("kl_mask", "kl_comp")
    kl = out["kl_mask"] + out["kl_comp"]
    torch.testing.assert_close(out["elbo"], out["recon_ll"] - kl)
    torch.testing.assert_close(out["loss"], -(out["recon_ll"] - 10.0 * kl))
    assert (out["kl_mask"] >= 0) and (out["kl_comp"] >= 0)
    for cap in ("sample", "decompose", "log_importance_weight", "reconstruct"):
        assert supports(model, cap)
    assert model.reconstruct(x).shape == x.shape


def test_gradients_reach_every_parameter():
    model = make()
    model(images())["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


def test_sample_range_reproducible_and_temperature():
    model = make()
    a = model.sample(3, generator=torch.Generator().manual_seed(5))
    b = model.sample(3, generator=torch.Generator().manual_seed(5))
    c = model.sample(3, generator=torch.Generator().manual_seed(6))
    assert a.shape == (3, 1, 32, 32) and a.min() >= 0 and a.max() <= 1
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)
    # temperature 0: every latent is its prior mean, whatever the noise
    t0 = [model.sample(2, torch.Generator().manual_seed(s), temperature=0.0) for s in (1, 2)]
    torch.testing.assert_close(*t0)
    with pytest.raises(GNMError):
        model.sample(2, temperature=-1.0)


def test_sample_components_compose_the_sample():
    model = make(channels=3)
    parts = model.sample_components(2, torch.Generator().manual_seed(0))
    assert parts["masks"].shape == (2, 3, 1, 32, 32)
    assert parts["components"].shape == parts["means"].shape == (2, 3, 3, 32, 32)
    torch.testing.assert_close(parts["masks"].sum(1), torch.ones(2, 1, 32, 32))
    torch.testing.assert_close(parts["images"], parts["components"].sum(1))
    torch.testing.assert_close(parts["images"],
                               model.sample(2, torch.Generator().manual_seed(0)))


def test_stick_breaking_by_hand():
    a1, a2 = torch.tensor([[0.3, -2.0]]), torch.tensor([[1.5, 0.0]])
    log_m = stick_breaking(torch.stack([a1, a2], dim=1))  # [1, 3, 2]
    s1, s2 = torch.sigmoid(a1), torch.sigmoid(a2)
    want = torch.stack([s1, (1 - s1) * s2, (1 - s1) * (1 - s2)], dim=1)
    torch.testing.assert_close(log_m.exp(), want)
    extreme = stick_breaking(torch.tensor([[[60.0]], [[-60.0]]]).view(1, 2, 1))
    assert torch.isfinite(extreme).all()
    torch.testing.assert_close(extreme.exp().sum(1), torch.ones(1, 1))


def test_model_masks_sum_to_one():
    d = make().decompose(images())
    assert (d["masks"] >= 0).all()
    torch.testing.assert_close(d["masks"].sum(1), torch.ones(2, 1, 32, 32))


def test_mixture_likelihood_against_torch_distributions():
    torch.manual_seed(3)
    b, k, c, s = 2, 4, 3, 5
    x = torch.rand(b, c, s, s)
    log_masks = torch.log_softmax(torch.randn(b, k, 1, s, s), dim=1)
    means = torch.rand(b, k, c, s, s)
    probs = log_masks.exp().expand(b, k, c, s, s).movedim(1, -1)
    mix = MixtureSameFamily(Categorical(probs=probs), Normal(means.movedim(1, -1), 0.7))
    want = mix.log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(mixture_log_lik(x, log_masks, means, 0.7), want)


def _same_draws(model: Genesis, x: torch.Tensor, fn, seed: int = 11):
    torch.manual_seed(seed)
    out = fn(x)
    torch.manual_seed(seed)
    return out, model._infer(x)


def test_elbo_against_torch_distributions_on_the_same_draws():
    model, x = make(channels=3), images(c=3)
    out, r = _same_draws(model, x, model)
    kl_m = kl_divergence(Normal(*r.q_mask), Normal(*r.p_mask)).sum((1, 2))
    kl_c = kl_divergence(Normal(*r.q_comp), Normal(*r.p_comp)).sum((1, 2))
    probs = r.log_masks.exp().expand_as(r.means).movedim(1, -1)
    lik = MixtureSameFamily(Categorical(probs=probs), Normal(r.means.movedim(1, -1), 0.7))
    recon_ll = lik.log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(out["kl_mask"], kl_m.mean())
    torch.testing.assert_close(out["kl_comp"], kl_c.mean())
    torch.testing.assert_close(out["recon_ll"], recon_ll.mean())
    torch.testing.assert_close(out["elbo"], (recon_ll - kl_m - kl_c).mean())
    torch.testing.assert_close(out["recon"], (r.log_masks.exp() * r.means).sum(1))


def test_priors_follow_their_definition():
    model, x = make(), images()
    r = model._infer(x)
    # p(z_m^1) = N(0, I); p(z_m^k | z_m^{<k}) from the prior LSTM run over the drawn z_m
    torch.testing.assert_close(r.p_mask[0][:, 0], torch.zeros(2, 4))
    torch.testing.assert_close(r.p_mask[1][:, 0], torch.ones(2, 4))
    lstm = torch.nn.LSTM(4, 8)
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(lstm, f"{name}_l0").data.copy_(getattr(model.prior_rnn, name))
    hs, _ = lstm(r.z_mask[:, :-1].transpose(0, 1))
    mu, raw = model.prior_head(hs.transpose(0, 1)).chunk(2, dim=-1)
    torch.testing.assert_close(r.p_mask[0][:, 1:], torch.tanh(mu))
    torch.testing.assert_close(r.p_mask[1][:, 1:], torch.sigmoid(raw + 4) + 1e-4)
    mu_c, raw_c = model.comp_prior(r.z_mask).chunk(2, dim=-1)
    torch.testing.assert_close(r.p_comp[0], torch.tanh(mu_c))
    torch.testing.assert_close(r.p_comp[1], torch.sigmoid(raw_c + 4) + 1e-4)


def test_log_importance_weight_against_torch_distributions():
    model, x = make(), images()
    liw, r = _same_draws(model, x, model.log_importance_weight)
    assert liw.shape == (2,)
    log_p = (Normal(*r.p_mask).log_prob(r.z_mask).sum((1, 2))
             + Normal(*r.p_comp).log_prob(r.z_comp).sum((1, 2)))
    log_q = (Normal(*r.q_mask).log_prob(r.z_mask).sum((1, 2))
             + Normal(*r.q_comp).log_prob(r.z_comp).sum((1, 2)))
    recon_ll = mixture_log_lik(x, r.log_masks, r.means, 0.7)
    torch.testing.assert_close(liw, recon_ll + log_p - log_q)


def test_paper_scale_parameter_count():
    for channels in (1, 3):
        n = count_parameters(Genesis(GenesisConfig(), size=128, channels=channels))
        assert abs(n - 13.9e6) <= 0.1 * 13.9e6, n


def test_other_sizes():
    model = make(size=64)
    assert model(images(s=64))["recon"].shape == (2, 1, 64, 64)
    assert model.sample(1).shape == (1, 1, 64, 64)


def test_overfits_one_batch():
    model, x = make(beta=1.0), torch.zeros(4, 1, 32, 32)
    for i in range(4):  # two squares per image
        x[i, :, 4 + 3 * i:12 + 3 * i, 5:13] = 1.0
        x[i, :, 20:28, 6 + 4 * i:14 + 4 * i] = 0.6
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = model(x)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < losses[0] - 50.0, losses


def test_mask_boxes_by_hand():
    masks = torch.zeros(1, 3, 1, 10, 12)
    masks[0, 0, 0, 2:5, 3:8] = 0.9  # rows 2..4, cols 3..7
    masks[0, 0, 0, 6, 6] = 0.4  # below the threshold: ignored
    masks[0, 2, 0, 9, 11] = 1.0  # one pixel: under min_pixels
    boxes, presence = mask_boxes(masks, 0.5, min_pixels=2)
    torch.testing.assert_close(boxes[0, 0], torch.tensor([3.0, 2.0, 8.0, 5.0]))
    torch.testing.assert_close(presence, torch.tensor([[1.0, 0.0, 0.0]]))
    assert not boxes[0, 1:].any()
    boxes, presence = mask_boxes(masks, 0.5, min_pixels=1)
    torch.testing.assert_close(boxes[0, 2], torch.tensor([11.0, 9.0, 12.0, 10.0]))


def test_decompose_keys_and_consistency():
    model, x = make(channels=3), images(c=3)
    d = model.decompose(x)
    assert d["masks"].shape == (2, 3, 1, 32, 32)
    assert d["components"].shape == (2, 3, 3, 32, 32)
    assert d["presence"].shape == d["pres_prob"].shape == (2, 3)
    assert d["boxes"].shape == (2, 3, 4) and d["z_what"].shape == (2, 3, 3)
    torch.testing.assert_close(d["recon"], d["components"].sum(1).clamp(0, 1))
    torch.testing.assert_close(d["recon"], model.reconstruct(x))
    boxes, presence = mask_boxes(d["masks"], 0.5, 3)
    torch.testing.assert_close(d["boxes"], boxes)
    torch.testing.assert_close(d["presence"], presence)
    torch.testing.assert_close(d["z_what"], model._infer(x, use_mean=True).q_comp[0])


def test_wrong_images_raise_one_sentence():
    model = make()
    for bad in (torch.rand(2, 3, 32, 32), torch.rand(2, 1, 16, 16), torch.rand(1, 32, 32)):
        with pytest.raises(GNMError, match="expects images"):
            model(bad)


def test_config_through_the_registry():
    model = build_model({"name": "genesis", **SMALL}, size=32, channels=1)
    assert isinstance(model, Genesis) and model.img_size == 32 and model.channels == 1
    with pytest.raises(GNMError, match="components"):
        build_model({"name": "genesis", **SMALL, "components": 1}, size=32, channels=1)
    with pytest.raises(GNMError, match="mask_enc_downsample"):
        Genesis(GenesisConfig(**{**SMALL, "mask_enc_downsample": 3}), size=32)


def test_broadcast_decoder_matches_tiled_convolution():
    torch.manual_seed(0)
    dec = SpatialBroadcastDecoder(5, 2, 6, 3, 9)
    z = torch.randn(4, 5)
    tiled = dec.tiled_input(z)
    assert tiled.shape == (4, 7, 15, 15)
    out = dec(z)
    assert out.shape == (4, 2, 9, 9)
    torch.testing.assert_close(out, dec.rest(dec.first(tiled)))


def test_component_samples_figure_shows_each_sample_and_its_parts(tmp_path):
    from gnm.viz.figures import component_samples, figure_plan

    model = make().eval()
    assert "component_samples" in figure_plan(model)[0]
    pic = component_samples(model, n=3, seed=0, path=tmp_path / "c.png")
    parts = model.sample_components(3, generator=torch.Generator().manual_seed(0))
    k, s = model.config.components, model.img_size
    assert pic.shape[0] > 3 * s and pic.shape[1] > (1 + k) * s  # 3 rows of 1 + K tiles
    assert (tmp_path / "c.png").is_file()
    # the parts add up to the sample they stand beside
    torch.testing.assert_close(parts["components"].sum(1).clamp(0, 1), parts["images"])


def test_genesis_beta_warmup_scales_only_the_loss_kl():
    from gnm.schedule import Schedule

    torch.manual_seed(0)
    model = build_model({"name": "genesis", **SMALL, "beta": 10.0,
                         "beta_warmup": Schedule(100, 300, 0.0, 1.0)}, size=32, channels=1)
    x = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    for step, w in ((0, 0.0), (200, 0.5), (1000, 1.0)):
        torch.manual_seed(3)
        out = model(x, step)
        kl = out["kl_mask"] + out["kl_comp"]
        torch.testing.assert_close(out["loss"], -(out["recon_ll"] - 10.0 * w * kl))
        torch.testing.assert_close(out["elbo"], out["recon_ll"] - kl)  # unweighted


SUBPIXEL = dict(mask_decoder="subpixel", mask_dec_filters=(8, 4), mask_dec_kernels=(1, 3, 3),
                mask_dec_upscales=(4, 4, 2))


def test_subpixel_mask_decoder_masks_gradients_and_objective():
    model, x = make(**SUBPIXEL), images()
    assert not isinstance(model.mask_decoder, SpatialBroadcastDecoder)
    logits = model.mask_decoder(torch.randn(5, 4))
    assert logits.shape == (5, 1, 32, 32) and logits.std() > 0  # a spatial map per z_m
    d = model.decompose(x)
    torch.testing.assert_close(d["masks"].sum(1), torch.ones(2, 1, 32, 32))
    out = model(x, step=0)
    out["loss"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing
    kl = out["kl_mask"] + out["kl_comp"]
    torch.testing.assert_close(out["loss"], -(out["recon_ll"] - 10.0 * kl))


def test_subpixel_mask_decoder_config_errors():
    with pytest.raises(GNMError, match="multiply to 16, but the images are 32 px"):
        make(**{**SUBPIXEL, "mask_dec_upscales": (4, 2, 2)})
    with pytest.raises(GNMError, match="one more than model.mask_dec_filters"):
        make(**{**SUBPIXEL, "mask_dec_filters": (8,)})
    with pytest.raises(GNMError, match="mask_decoder='deconv' is unknown"):
        make(mask_decoder="deconv")
