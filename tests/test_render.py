"""The renderer composes the expected image from hand-made glimpses."""

import math

import pytest
import torch
import torch.nn.functional as F

from gnm.models.render import (
    BackgroundDecoder,
    GlimpseDecoder,
    _window_sums,
    compose,
    compose_present,
    object_weights,
    place_glimpses,
)
from gnm.models.structure import where_to_box

# A 16×16 image; a box with half-extent 0.5 centred at −0.5 covers exactly pixels 0..7, so an
# 8×8 glimpse lands 1:1 on the pixel grid (bilinear sampling is then an exact copy).
TL = [0.5, 0.5, -0.5, -0.5]  # top-left quadrant
TR = [0.5, 0.5, 0.5, -0.5]
OVER = [0.5, 0.5, -0.25, -0.5]  # shifted 2 px right of TL: overlaps it in columns 2..7


def test_placement_is_exact_on_pixel_aligned_box():
    g = torch.rand(1, 2, 8, 8)
    out = place_glimpses(g, torch.tensor([TL]), 16, 16)
    torch.testing.assert_close(out[0, :, :8, :8], g[0])
    assert out[0, :, 8:, :].abs().max() == 0 and out[0, :, :, 8:].abs().max() == 0
    shifted = place_glimpses(g, torch.tensor([OVER]), 16, 16)
    torch.testing.assert_close(shifted[0, :, :8, 2:10], g[0])


def test_separable_placement_equals_affine_grid_sample():
    torch.manual_seed(0)
    n = 40
    g = torch.rand(n, 3, 8, 6)
    box = torch.stack([torch.rand(n) * 0.9 + 0.05, torch.rand(n) * 0.9 + 0.05,
                       torch.rand(n) * 3 - 1.5, torch.rand(n) * 3 - 1.5], dim=-1)
    sx, sy, cx, cy = box.unbind(-1)
    z = torch.zeros(n)
    theta = torch.stack([torch.stack([1 / sx, z, -cx / sx], -1),
                         torch.stack([z, 1 / sy, -cy / sy], -1)], dim=1)
    grid = F.affine_grid(theta, [n, 3, 20, 24], align_corners=False)
    want = F.grid_sample(g, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(place_glimpses(g, box, 20, 24), want, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(place_glimpses(g, box, 20, 24, "grid_sample"), want)


def _scene(values, boxes, pres, depth, bg_value=0.0, masks=None):
    k = len(values)
    app = torch.stack([torch.full((1, 8, 8), v) for v in values]).unsqueeze(0)  # [1,K,1,8,8]
    mask = None if masks is None else torch.stack(
        [torch.full((1, 8, 8), m) for m in masks]).unsqueeze(0)
    return compose(app, mask, torch.tensor([boxes]), torch.tensor([pres]),
                   torch.tensor([depth]).view(1, k, 1), torch.full((1, 1, 16, 16), bg_value))


def test_single_object_is_alpha_composited_over_background():
    out = _scene([0.8], [TL], [1.0], [0.0], bg_value=0.3)
    assert torch.allclose(out.image[0, 0, :8, :8], torch.tensor(0.8))
    assert torch.allclose(out.image[0, 0, 8:, :], torch.tensor(0.3))
    # half present: x = pres·o + (1 − pres)·bg
    out = _scene([0.8], [TL], [0.5], [0.0], bg_value=0.3)
    assert torch.allclose(out.image[0, 0, :8, :8], torch.tensor(0.5 * 0.8 + 0.5 * 0.3))
    assert torch.allclose(out.alpha[0, 0, :8, :8], torch.tensor(0.5))
    # a decoded mask m scales the alpha: x = m·o + (1 − m)·bg
    out = _scene([0.8], [TL], [1.0], [0.0], bg_value=0.3, masks=[0.25])
    assert torch.allclose(out.image[0, 0, :8, :8], torch.tensor(0.25 * 0.8 + 0.75 * 0.3))


def test_absent_object_shows_background():
    out = _scene([0.8], [TL], [0.0], [0.0], bg_value=0.3)
    assert torch.allclose(out.image, torch.tensor(0.3))


def test_depth_orders_overlapping_objects():
    # Object A (0.9) at TL, object B (0.2) shifted right; overlap in columns 2..7.
    front_a = _scene([0.9, 0.2], [TL, OVER], [1.0, 1.0], [-20.0, 20.0])
    front_b = _scene([0.9, 0.2], [TL, OVER], [1.0, 1.0], [20.0, -20.0])
    overlap = (0, 0, slice(0, 8), slice(2, 8))
    assert torch.allclose(front_a.image[overlap], torch.tensor(0.9), atol=1e-6)
    assert torch.allclose(front_b.image[overlap], torch.tensor(0.2), atol=1e-6)
    # Outside the overlap each object shows alone.
    assert torch.allclose(front_b.image[0, 0, :8, :2], torch.tensor(0.9))
    assert torch.allclose(front_a.image[0, 0, :8, 8:10], torch.tensor(0.2))
    # Equal depth: responsibilities split evenly.
    even = _scene([0.9, 0.2], [TL, OVER], [1.0, 1.0], [0.0, 0.0])
    assert torch.allclose(even.image[overlap], torch.tensor(0.55))


def test_mask_is_clamped_at_one():
    out = _scene([0.9, 0.2], [TL, OVER], [1.0, 1.0], [0.0, 0.0], bg_value=0.5)
    assert torch.allclose(out.alpha[0, 0, :8, 2:8], torch.tensor(1.0))  # 1 + 1 clamped
    assert torch.allclose(out.alpha[0, 0, :8, :2], torch.tensor(1.0))
    assert torch.allclose(out.alpha[0, 0, 8:], torch.tensor(0.0))
    # with 0.6 + 0.6 = 1.2 -> 1: no background leaks into the overlap
    out = _scene([0.9, 0.2], [TL, OVER], [0.6, 0.6], [0.0, 0.0], bg_value=0.5)
    assert torch.allclose(out.alpha[0, 0, :8, 2:8], torch.tensor(1.0))
    # x_fg = Σ γ·pres·o = 0.5·0.6·0.9 + 0.5·0.6·0.2 = 0.33; (1 − M)·bg = 0
    assert torch.allclose(out.image[0, 0, :8, 2:8], torch.tensor(0.33))
    # where one object is alone: 0.6·0.9 + 0.4·0.5
    assert torch.allclose(out.image[0, 0, :8, :2], torch.tensor(0.6 * 0.9 + 0.4 * 0.5))


def test_clamp_passes_gradient_straight_through():
    pres = torch.tensor([[1.0, 1.0]], requires_grad=True)
    app = torch.full((1, 2, 1, 8, 8), 0.5)
    out = compose(app, None, torch.tensor([[TL, OVER]]), pres, torch.zeros(1, 2, 1),
                  torch.full((1, 1, 16, 16), 0.5))
    out.alpha.sum().backward()
    assert torch.allclose(pres.grad, torch.tensor([[64.0, 64.0]]))  # d Σ/d pres = box area


def test_decoders_shapes_and_ranges():
    dec = GlimpseDecoder(20, 3, (16, 8), (1, 3, 3), (4, 2, 1), with_mask=True)
    app, mask = dec(torch.randn(2, 16, 20))
    assert app.shape == (2, 16, 3, 8, 8) and mask.shape == (2, 16, 1, 8, 8)
    assert 0 <= app.min() and app.max() <= 1
    app, mask = GlimpseDecoder(20, 1, (16,), (1, 3), (4, 1), with_mask=False)(
        torch.randn(2, 16, 20))
    assert app.shape == (2, 16, 1, 4, 4) and mask is None
    bg = BackgroundDecoder(10, 3, (16, 8), (1, 1, 3), (4, 2, 1))(torch.randn(2, 10))
    assert bg.shape == (2, 3, 8, 8) and 0 <= bg.min() and bg.max() <= 1


def test_per_pixel_normalisation_keeps_exact_gradients():
    # The renderer rescales weights per pixel before normalising; values and gradients must
    # equal the plain formula γ_k = s_k·M_k / Σ_j s_j·M_j (float64, moderate depths).
    torch.manual_seed(0)
    app = torch.rand(1, 2, 1, 8, 8, dtype=torch.float64, requires_grad=True)
    pres = torch.tensor([[0.7, 0.4]], dtype=torch.float64, requires_grad=True)
    depth = torch.tensor([[[0.3], [-0.5]]], dtype=torch.float64, requires_grad=True)
    box = torch.tensor([[[0.45, 0.5, -0.5, -0.45], [0.5, 0.4, -0.2, -0.5]]], dtype=torch.float64)
    bg = torch.full((1, 1, 16, 16), 0.2, dtype=torch.float64)
    out = compose(app, None, box, pres, depth, bg).image

    placed = place_glimpses(torch.cat([torch.ones_like(app), app], 2).flatten(0, 1),
                            box.flatten(0, 1), 16, 16).view(1, 2, 2, 16, 16)
    m_k, a_k = placed[:, :, :1], placed[:, :, 1:]
    s = (pres * torch.sigmoid(-depth[..., 0])).view(1, 2, 1, 1, 1)
    w = s * m_k
    fg = (w * pres.view(1, 2, 1, 1, 1) * a_k).sum(1) / (w.sum(1) + 1e-300)
    alpha_sum = (pres.view(1, 2, 1, 1, 1) * m_k).sum(1)
    alpha = alpha_sum - (alpha_sum - 1).clamp(min=0).detach()  # straight-through min(Σ, 1)
    want = fg + (1 - alpha) * bg
    torch.testing.assert_close(out, want)
    probe = torch.rand_like(out)
    g_out = torch.autograd.grad((out * probe).sum(), (app, pres, depth))
    g_want = torch.autograd.grad((want * probe).sum(), (app, pres, depth))
    for a, b in zip(g_out, g_want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("spread", [0.3, 3.0], ids=["small-boxes", "large-boxes"])
def test_all_compose_methods_agree_in_value_and_gradient(spread):
    # 'window' renders into windows around the boxes (falling back to dense for large boxes);
    # 'separable' and 'grid_sample' render every glimpse onto the full image.
    torch.manual_seed(0)
    f64 = dict(dtype=torch.float64)
    app = torch.rand(3, 16, 3, 8, 8, **f64, requires_grad=True)
    mask = torch.rand(3, 16, 1, 8, 8, **f64, requires_grad=True)
    where = (torch.randn(3, 16, 4, **f64) * spread
             + torch.tensor([-1.6, 0.0, 0.0, 0.0], **f64)).requires_grad_()
    pres = torch.rand(3, 16, **f64, requires_grad=True)
    depth = torch.randn(3, 16, 1, **f64, requires_grad=True)
    bg = torch.rand(3, 3, 20, 24, **f64)
    box = where_to_box(where, 4)
    s = pres * torch.sigmoid(-depth[..., 0])
    src = torch.cat([mask, mask * app], 2).flatten(0, 1)
    windowed = _window_sums(src, box.flatten(0, 1), s, pres, 20, 24) is not None
    assert windowed == (spread < 1)
    probe = torch.rand(3, 3, 20, 24, **f64)
    results = {}
    for method in ("window", "separable", "grid_sample"):
        img = compose(app, mask, where_to_box(where, 4), pres, depth, bg, method).image
        grads = torch.autograd.grad((img * probe).sum(), (app, mask, where, pres, depth))
        results[method] = (img, grads)
    for method in ("separable", "grid_sample"):
        torch.testing.assert_close(results[method][0], results["window"][0])
        for a, b in zip(results[method][1], results["window"][1], strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("with_mask", [True, False], ids=["mask", "no-mask"])
def test_compose_present_equals_compose_over_every_cell(with_mask):
    # Binary z_pres: only the present objects are given; image 1 has none (background only).
    torch.manual_seed(1)
    f64 = dict(dtype=torch.float64)
    b, k = 3, 16
    app = torch.rand(b, k, 3, 8, 8, **f64)
    mask = torch.rand(b, k, 1, 8, 8, **f64) if with_mask else None
    where = torch.randn(b, k, 4, **f64) * 0.5 + torch.tensor([-1.2, 0.0, 0.0, 0.0], **f64)
    box = where_to_box(where, 4)
    pres = (torch.rand(b, k) < 0.4).to(torch.float64)
    pres[1] = 0
    depth = torch.randn(b, k, **f64)
    bg = torch.rand(b, 3, 20, 24, **f64)
    full = compose(app, mask, box, pres, depth, bg, "separable")
    s = pres * torch.sigmoid(-depth)
    s = s / s.amax(1, keepdim=True).clamp_min(1e-30)
    on = pres.reshape(-1) > 0
    part = compose_present(app.reshape(b * k, 3, 8, 8)[on],
                           None if mask is None else mask.reshape(b * k, 1, 8, 8)[on],
                           box.reshape(b * k, 4)[on], s.reshape(-1)[on],
                           torch.arange(b * k)[on] // k, bg)
    for name in ("image", "foreground", "alpha"):
        torch.testing.assert_close(getattr(part, name), getattr(full, name), rtol=1e-12,
                                   atol=1e-12)
    torch.testing.assert_close(part.image[1], bg[1], rtol=0, atol=0)  # no object: background
    empty = compose_present(app[0, :0], None, box[0, :0], s[0, :0],
                            torch.zeros(0, dtype=torch.long), bg)
    torch.testing.assert_close(empty.image, bg, rtol=0, atol=0)


def test_object_weights_by_hand():
    # s = pres·σ(−depth), divided by each image's largest; an image with no object stays 0.
    pres = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    depth = torch.tensor([[0.0, math.log(3.0), -5.0], [1.0, 2.0, 3.0]], dtype=torch.float64)
    # σ(0) = 1/2 and σ(−ln 3) = 1/4, so the weights are 1 and 1/2 after dividing by 1/2.
    expected = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(object_weights(pres, depth), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(object_weights(pres, depth[..., None]), expected, rtol=0,
                               atol=1e-15)


def test_glimpse_decoder_chunking_does_not_change_results():
    torch.manual_seed(0)
    dec = GlimpseDecoder(6, 1, (8, 4), (1, 1, 3), (4, 2, 1), with_mask=False)
    z = torch.randn(3, 16, 6)
    whole, _ = dec(z)
    dec.cpu_chunk = 5  # 48 glimpses in chunks of 5
    chunked, _ = dec(z)
    torch.testing.assert_close(chunked, whole)
