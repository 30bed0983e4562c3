"""StructDRAW (Algorithm 1): shapes, variants, and the recurrence against its definition."""

import pytest
import torch

from gnm.models.config import ModelConfig
from gnm.models.structdraw import StructDRAW


def small_cfg(**kw) -> ModelConfig:
    base = dict(draw_steps=3, z_step_dim=5, draw_hidden=6, draw_input=4,
                interaction_hidden=(16,), gdec_hidden=(16,), nomlp_hidden=8)
    base.update(kw)
    return ModelConfig(**base)


def make(**kw) -> StructDRAW:
    torch.manual_seed(0)
    return StructDRAW(small_cfg(**kw), feat_ch=7)


def test_inference_and_generation_shapes():
    draw = make()
    out = draw(torch.randn(2, 7, 4, 4))
    assert out.z.shape == out.post_mu.shape == out.prior_sd.shape == (2, 3, 5)
    assert out.z_global.shape == (2, 15)
    assert out.feature.shape == (2, 7, 4, 4)
    gen = draw(n=3)
    assert gen.z.shape == (3, 3, 5) and gen.post_mu is None
    assert (out.post_sd > 0).all() and (out.prior_sd > 0).all()


def test_first_prior_step_comes_from_learned_initial_state():
    out = make()(torch.randn(4, 7, 4, 4))
    # p(z_1) depends only on the learned h_dec,0: the same for every image.
    torch.testing.assert_close(out.prior_mu[:, 0], out.prior_mu[:1, 0].expand(4, -1))
    assert not torch.allclose(out.prior_mu[:, 1], out.prior_mu[:1, 1].expand(4, -1))


def test_canvas_is_sum_of_conv_outputs_of_decoder_states():
    draw = make()
    outputs = []
    hook = draw.canvas_out.register_forward_hook(lambda m, i, o: outputs.append(o))
    out = draw(torch.randn(2, 7, 4, 4))
    hook.remove()
    assert len(outputs) == 3  # f_L = Σ_ℓ Conv3x3(h_dec,ℓ), f_0 = 0
    torch.testing.assert_close(out.feature, sum(outputs))


def test_posterior_and_prior_share_the_decoder():
    # Decoding the posterior's z through the generation path reproduces its feature map and
    # its prior parameters (the decoder update is the same in both passes).
    draw = make()
    post = draw(torch.randn(2, 7, 4, 4))
    again = draw(z=post.z)
    torch.testing.assert_close(again.feature, post.feature)
    torch.testing.assert_close(again.prior_mu, post.prior_mu)
    torch.testing.assert_close(draw(z=post.z_global).feature, post.feature)


def test_posterior_uses_the_image_encoding():
    draw = make()
    a = draw(torch.randn(2, 7, 4, 4), use_mean=True)
    b = draw(torch.randn(2, 7, 4, 4), use_mean=True)
    assert not torch.allclose(a.post_mu, b.post_mu)
    torch.testing.assert_close(a.z, a.post_mu)


def test_generation_is_deterministic_given_a_generator():
    draw = make()
    a = draw(n=2, generator=torch.Generator().manual_seed(3)).feature
    b = draw(n=2, generator=torch.Generator().manual_seed(3)).feature
    c = draw(n=2, generator=torch.Generator().manual_seed(4)).feature
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_gaussian_prior_is_standard_normal():
    draw = make(global_prior="gaussian")
    assert draw.prior_head is None
    out = draw(torch.randn(2, 7, 4, 4))
    assert torch.all(out.prior_mu == 0) and torch.all(out.prior_sd == 1)
    gen = draw(n=2000, generator=torch.Generator().manual_seed(0))
    assert gen.z.mean().abs() < 0.05 and (gen.z.std() - 1).abs() < 0.05


def test_nomlp_has_per_cell_latents_and_no_all_cell_layer():
    draw = make(interaction_mlp=False)
    out = draw(torch.randn(2, 7, 4, 4))
    assert out.z.shape == (2, 3, 5 * 16)
    assert small_cfg(interaction_mlp=False).z_global_dim == 3 * 5 * 16
    assert not any(isinstance(m, torch.nn.Linear) for m in draw.modules())
    assert draw(z=out.z).feature.shape == (2, 7, 4, 4)


def test_unknown_global_prior_and_render_are_rejected_when_gnm_is_built():
    from gnm.errors import GNMError
    from gnm.models.registry import build_model

    with pytest.raises(GNMError, match="global_prior must be 'structdraw' or 'gaussian', not "
                                       "'vamp'"):
        build_model("mnist4", global_prior="vamp")
    with pytest.raises(GNMError, match="render must be 'window', 'separable' or 'grid_sample'"):
        build_model("mnist4", render="fast")


def test_temperature_scales_the_prior_noise_of_every_step():
    draw = make()
    z1 = draw(n=4, generator=torch.Generator().manual_seed(5))
    zt = draw(n=4, generator=torch.Generator().manual_seed(5), temperature=0.5)
    # Same ε: the first step's prior does not depend on earlier draws, so z_1 - μ_1 halves.
    torch.testing.assert_close(zt.z[:, 0] - zt.prior_mu[:, 0],
                               0.5 * (z1.z[:, 0] - z1.prior_mu[:, 0]))
    # Every step is μ_p + T·σ_p·ε with the generator's ε (re-drawn here step by step).
    g = torch.Generator().manual_seed(5)
    eps = [torch.randn(4, 5, generator=g) for _ in range(3)]
    for step in range(3):
        torch.testing.assert_close(zt.z[:, step], zt.prior_mu[:, step]
                                   + 0.5 * zt.prior_sd[:, step] * eps[step])
    t0 = draw(n=4, generator=torch.Generator().manual_seed(5), temperature=0.0)
    torch.testing.assert_close(t0.z, draw(n=4, use_mean=True).z)
    same = draw(n=4, generator=torch.Generator().manual_seed(5), temperature=1.0)
    torch.testing.assert_close(same.z, z1.z)
