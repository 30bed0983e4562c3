"""Building blocks against hand computations."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gnm.nn import MLP, ConvLSTMCell, ConvStack, SubPixelConv, SubPixelDecoder, count_parameters
from gnm.nn.blocks import CELU


def test_conv_stack_paper_encoder_maps_128_to_4x4():
    enc = ConvStack(1, [16, 16, 32, 32, 64, 64, 64, 64, 64], [4, 3, 4, 3, 4, 3, 4, 3, 4],
                    [2, 1, 2, 1, 2, 1, 2, 1, 2], norm_act_final=True)
    assert enc(torch.rand(2, 1, 128, 128)).shape == (2, 64, 4, 4)
    kinds = [type(m).__name__ for m in enc]
    assert kinds[:3] == ["Conv2d", "GroupNorm", "CELU"] and kinds[-1] == "CELU"


def test_conv_stack_output_layer_is_linear_by_default():
    stack = ConvStack(3, [8, 5], [1, 1])
    assert isinstance(stack[-1], nn.Conv2d)


def test_conv_layer_norm_normalises_each_sample_over_chw():
    norm = ConvStack(2, [6, 4], [3, 1])[1]  # the GroupNorm after the first conv
    x = torch.randn(3, 6, 5, 5) * 4 + 2
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(norm(x), (x - mean) / torch.sqrt(var + norm.eps))


def test_subpixel_conv_is_conv_then_pixel_shuffle():
    torch.manual_seed(0)
    layer = SubPixelConv(3, 2, 3, 2)
    x = torch.randn(1, 3, 4, 4)
    conv = F.conv2d(x, layer.conv.weight, layer.conv.bias, padding=1)  # [1, 8, 4, 4]
    out = layer(x)
    assert out.shape == (1, 2, 8, 8)
    # PixelShuffle: out[c, y*r + i, x*r + j] = conv[c*r*r + i*r + j, y, x]
    for c in range(2):
        for i in range(2):
            for j in range(2):
                torch.testing.assert_close(out[0, c, i::2, j::2], conv[0, c * 4 + i * 2 + j])


def test_subpixel_conv_from_one_pixel_is_the_pixel_shuffle():
    torch.manual_seed(0)
    layer = SubPixelConv(5, 3, 1, 4)
    x = torch.randn(6, 5, 1, 1)
    expected = F.pixel_shuffle(F.conv2d(x, layer.conv.weight, layer.conv.bias), 4)
    out = layer(x)
    assert out.shape == (6, 3, 4, 4)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    assert layer(torch.randn(0, 5, 1, 1)).shape == (0, 3, 4, 4)  # no glimpse to decode


def _inplace_celu(x: torch.Tensor) -> torch.Tensor:
    return CELU(inplace=True)(x * 1)  # a non-leaf copy, as a norm layer's output is


@pytest.mark.parametrize("act", [_inplace_celu, CELU()], ids=["inplace", "module"])
def test_celu_matches_torch_celu_values_and_gradients(act):
    x = torch.cat([torch.linspace(-30, 30, 601, dtype=torch.float64),
                   torch.tensor([0.0, -0.0, float("inf"), -float("inf")], dtype=torch.float64)])
    x.requires_grad_(True)
    y, ref = act(x), F.celu(x)
    torch.testing.assert_close(y, ref, rtol=1e-15, atol=1e-15)
    # hand values: ELU(1) = 1, ELU(-1) = e^-1 - 1, ELU(-inf) = -1, ELU(inf) = inf
    hand = act(torch.tensor([1.0, -1.0, -float("inf"), float("inf")], dtype=torch.float64))
    assert hand.tolist() == [1.0, math.expm1(-1.0), -1.0, float("inf")]
    g = torch.randn_like(x)
    (gy,) = torch.autograd.grad(y, x, g)
    # hand gradient: 1 for x > 0, exp(x) for x <= 0
    hand_grad = torch.where(x > 0, 1.0, torch.exp(x.detach())) * g
    finite = torch.isfinite(x)
    torch.testing.assert_close(gy[finite], hand_grad[finite], rtol=1e-12, atol=1e-15)
    assert torch.autograd.gradcheck(act, (torch.randn(4, 3, 5, 5, dtype=torch.float64,
                                                      requires_grad=True),))


def test_inplace_celu_overwrites_its_input_and_backpropagates_from_the_output():
    x = torch.randn(2, 16, 8, 8, requires_grad=True)
    h = x * 1
    y = CELU(inplace=True)(h)
    assert y.data_ptr() == h.data_ptr()  # no new tensor
    assert type(y.grad_fn).__name__ == "EluBackward1"  # ELU's result-based backward
    plain = torch.randn(5)
    kept = plain.clone()
    CELU()(plain)
    assert torch.equal(plain, kept)  # the default leaves its input alone


def test_blocks_with_inplace_celu_give_the_gradients_of_plain_celu():
    torch.manual_seed(0)
    blocks = [ConvStack(1, [4, 6], [3, 3], [2, 1], norm_act_final=True),
              SubPixelDecoder(5, [6, 2], [1, 3], [2, 1]), MLP(7, [9, 3], norm_act_final=True)]
    inputs = [torch.randn(3, 1, 8, 8), torch.randn(3, 5, 2, 2), torch.randn(3, 7)]
    for block, x in zip(blocks, inputs, strict=True):
        block, x = block.double(), x.double()  # float64: y + 1 and exp(x) agree to ~1e-16
        acts = [m for m in block.modules() if isinstance(m, CELU)]
        assert acts and all(a.inplace for a in acts)
        x = x.requires_grad_(True)
        out = block(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *block.parameters()])
        for a in acts:
            a.inplace = False
        ref = block(x)
        ref_grads = torch.autograd.grad(ref.square().sum(), [x, *block.parameters()])
        torch.testing.assert_close(out, ref, rtol=0, atol=0)
        for g, r in zip(grads, ref_grads, strict=True):
            torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-14)


def test_celu_keeps_shape_and_memory_format():
    x = torch.randn(4, 16, 32, 32).contiguous(memory_format=torch.channels_last)
    for act in (CELU(), CELU(inplace=True)):
        y = act(x.clone(memory_format=torch.channels_last))
        assert y.shape == x.shape and y.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(y, F.celu(x), rtol=0, atol=0)


def test_subpixel_decoders_reach_paper_sizes():
    glimpse = SubPixelDecoder(20, [64, 64, 32, 16, 8, 1], [1, 1, 1, 1, 3, 3], [4, 2, 2, 2, 1, 1])
    assert glimpse(torch.randn(5, 20, 1, 1)).shape == (5, 1, 32, 32)
    background = SubPixelDecoder(10, [128, 64, 32, 16, 8, 3], [1, 1, 1, 1, 1, 3],
                                 [4, 2, 4, 2, 2, 1])
    assert background.upscale == 128
    assert background(torch.randn(2, 10, 1, 1)).shape == (2, 3, 128, 128)


def test_mlp_layers_and_parameter_count():
    mlp = MLP(10, [7, 3])
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "LayerNorm", "CELU", "Linear"]
    # 10*7+7 + LN(2*7) + 7*3+3
    assert count_parameters(mlp) == 77 + 14 + 24
    assert type(MLP(4, [3], norm_act_final=True)[-1]).__name__ == "CELU"


def test_convlstm_kernel1_matches_lstm_equations_per_cell():
    torch.manual_seed(0)
    cell = ConvLSTMCell(in_ch=3, hidden=2, kernel=1, grid=2)
    with torch.no_grad():
        cell.h0.normal_()
        cell.c0.normal_()
    x = torch.randn(4, 3, 2, 2)
    h, c = cell.initial_state(4)
    h1, c1 = cell(x, (h, c))
    w = cell.conv.weight[:, :, 0, 0]  # [8, 5]
    b = cell.conv.bias
    for r in range(2):
        for q in range(2):
            inp = torch.cat([x[:, :, r, q], h[:, :, r, q]], dim=1)  # [4, 5]
            gates = inp @ w.T + b
            i, f, o, g = gates.split(2, dim=1)
            c_ref = torch.sigmoid(f) * c[:, :, r, q] + torch.sigmoid(i) * torch.tanh(g)
            h_ref = torch.sigmoid(o) * torch.tanh(c_ref)
            torch.testing.assert_close(c1[:, :, r, q], c_ref)
            torch.testing.assert_close(h1[:, :, r, q], h_ref)


def test_convlstm_initial_state_is_learned():
    cell = ConvLSTMCell(in_ch=1, hidden=2, kernel=1, grid=3)
    h, c = cell(torch.randn(2, 1, 3, 3), cell.initial_state(2))
    (h.sum() + c.sum()).backward()
    assert cell.h0.grad is not None and cell.h0.grad.abs().sum() > 0
    assert cell.c0.grad is not None and cell.c0.grad.abs().sum() > 0
    assert torch.all(cell.conv.bias[2:4] == 1.0)  # forget gate starts open
