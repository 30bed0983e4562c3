"""z_where -> box maths on chosen values, and the structuring network's heads."""

import math

import pytest
import torch

from gnm.models.structure import StructureNet, box_to_pixels, cell_offsets, where_to_box


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_cells_are_row_major():
    off = cell_offsets(4)
    assert off[0].tolist() == [0, 0]
    assert off[1].tolist() == [1, 0]  # next column, same row
    assert off[4].tolist() == [0, 1]  # next row
    assert off[15].tolist() == [3, 3]


def test_where_to_box_neutral_values():
    # scale 0 -> s = 0.5, ratio 0 -> r = 1, shift 0 -> cell centre.
    box = where_to_box(torch.zeros(1, 16, 4), grid=4)
    assert box[0, 0].tolist() == pytest.approx([0.5, 0.5, -0.75, -0.75])  # cell (row 0, col 0)
    assert box[0, 6].tolist() == pytest.approx([0.5, 0.5, 0.25, -0.25])  # row 1, col 2
    px = box_to_pixels(box, 128, 128)
    # 0.5·128 = 64 px wide, centred on the cell centre (16, 16).
    assert px[0, 0].tolist() == pytest.approx([-16.0, -16.0, 48.0, 48.0])


def test_where_to_box_scale_ratio_shift():
    where = torch.zeros(1, 16, 4)
    k = 5  # row 1, col 1
    where[0, k] = torch.tensor([logit(0.2), math.log(4.0), math.atanh(0.5), math.atanh(-0.25)])
    sx, sy, cx, cy = where_to_box(where, grid=4)[0, k].tolist()
    # s = 0.2, r = 4: sx = s/√r = 0.1, sy = s·√r = 0.4
    assert (sx, sy) == pytest.approx((0.1, 0.4))
    # c = (2/G)(cell + 0.5 + tanh(shift)) − 1
    assert cx == pytest.approx(0.5 * (1 + 0.5 + 0.5) - 1)  # = 0.0
    assert cy == pytest.approx(0.5 * (1 + 0.5 - 0.25) - 1)  # = -0.375
    x0, y0, x1, y1 = box_to_pixels(torch.tensor([sx, sy, cx, cy]), 100, 200).tolist()
    assert (x1 - x0, y1 - y0) == pytest.approx((0.1 * 200, 0.4 * 100))  # width = sx·W
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((100.0, 0.3125 * 100))


def test_shift_moves_at_most_one_cell():
    where = torch.zeros(1, 4, 4)
    where[..., 2] = 50.0  # tanh -> 1
    box = where_to_box(where, grid=2)
    # cell (col 0): centre (2/2)(0 + 0.5 + 1) − 1 = 0.5 = the next cell's centre.
    assert box[0, 0, 2].item() == pytest.approx(0.5)


def test_structure_heads_ranges_and_formulas():
    torch.manual_seed(0)
    net = StructureNet(8, (6, 6), z_what_dim=3, pres_logit_scale=8.8, std_floor=1e-4)
    d = net(torch.randn(2, 8, 4, 4) * 100)
    assert d.pres_logit.shape == (2, 16)
    assert d.where_mu.shape == d.where_sd.shape == (2, 16, 4)
    assert d.depth_mu.shape == (2, 16, 1)
    assert d.what_mu.shape == (2, 16, 3)
    assert d.pres_logit.abs().max() <= 8.8
    for sd in (d.where_sd, d.depth_sd, d.what_sd):
        assert (sd > 0).all()
    # With zero weights the heads return functions of their biases only.
    with torch.no_grad():
        for head in (net.pres_head, net.what_head):
            head.weight.zero_()
        net.pres_head.bias.fill_(0.3)
        net.what_head.bias[:3] = torch.tensor([1.0, 2.0, 3.0])
        net.what_head.bias[3:] = torch.tensor([-1.0, 0.0, 2.0])
    d = net(torch.randn(2, 8, 4, 4))
    assert torch.allclose(d.pres_logit, torch.full((2, 16), 8.8 * math.tanh(0.3)))
    assert d.what_mu[1, 7].tolist() == pytest.approx([1.0, 2.0, 3.0])
    want_sd = [math.log1p(math.exp(v)) + 1e-4 for v in (-1.0, 0.0, 2.0)]
    assert d.what_sd[0, 3].tolist() == pytest.approx(want_sd, rel=1e-5)


def test_structure_batched_equals_separate():
    # GNM runs q (on f_x) and p (on f) through the one shared network in one call.
    torch.manual_seed(1)
    net = StructureNet(8, (6,), z_what_dim=2)
    a, b = torch.randn(3, 8, 4, 4), torch.randn(3, 8, 4, 4)
    qa, pb = net(torch.cat([a, b])).split([3, 3])
    torch.testing.assert_close(qa.what_mu, net(a).what_mu)
    torch.testing.assert_close(pb.pres_logit, net(b).pres_logit)


def test_where_head_starts_at_the_given_prior():
    torch.manual_seed(0)
    mean, std = (-1.6, 0.0, 0.0, 0.0), (0.1, 0.3, 1.0, 1.0)
    net = StructureNet(8, (6,), z_what_dim=2, init_where=(mean, std))
    d = net(torch.randn(4, 8, 4, 4))
    assert d.where_mu.mean((0, 1)).tolist() == pytest.approx(mean, abs=0.05)
    assert d.where_sd.mean((0, 1)).tolist() == pytest.approx(std, rel=0.1)
