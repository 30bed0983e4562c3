"""GECO (gnm/models/geco.py) by hand, and GENESIS trained with it."""

from __future__ import annotations

import math

import pytest
import torch

from gnm.errors import GNMError
from gnm.models.geco import Geco
from tests.test_genesis import SMALL, images, make

pytestmark = pytest.mark.usefixtures("one_thread")


def test_multiplier_update_by_hand():
    g = Geco(goal=1.0, speed=0.5, alpha=0.5, init=2.0)
    recon_ll = torch.tensor([6.0, 10.0])  # P = 4 pixels: C = 4 - ll = [-2, -6] nats
    kl = torch.tensor([1.0, 3.0])
    loss = g.loss(recon_ll, kl, pixels=4)
    torch.testing.assert_close(loss, kl + 2.0 * torch.tensor([-2.0, -6.0]))  # the old λ
    # c = 1 - 8/4 = -1 per pixel; first step: ĉ = c; λ = 2·e^{-0.5}
    assert float(g.c_ema) == pytest.approx(-1.0)
    assert float(g.lam) == pytest.approx(2.0 * math.exp(-0.5))
    g.update(3.0)  # ĉ = 0.5·(-1) + 0.5·3 = 1; λ ·= e^{0.5}
    assert float(g.c_ema) == pytest.approx(1.0)
    assert float(g.lam) == pytest.approx(2.0)
    assert int(g.steps) == 2
    g.eval()
    g.loss(recon_ll, kl, pixels=4)  # no update outside training
    assert int(g.steps) == 2 and float(g.lam) == pytest.approx(2.0)
    big = Geco(goal=0.0, speed=100.0, bounds=(0.5, 4.0))
    big.update(1.0)
    assert float(big.lam) == 4.0  # clamped
    big.update(-1000.0)  # ĉ = 0.99·1 + 0.01·(-1000) = -9.01: λ = 4·e^{-901}, clamped
    assert float(big.c_ema) == pytest.approx(-9.01) and float(big.lam) == 0.5


def test_genesis_with_geco_loss_and_lambda_follow_the_definition():
    model = make(objective="geco", geco_goal=0.5, geco_speed=0.2, geco_alpha=0.9)
    x = images()
    lam0 = float(model.geco.lam)
    torch.manual_seed(3)
    out = model(x, step=0)
    kl = out["kl_mask"] + out["kl_comp"]
    pixels = x[0].numel()
    torch.testing.assert_close(out["loss"], kl + lam0 * (0.5 * pixels - out["recon_ll"]))
    torch.testing.assert_close(out["elbo"], out["recon_ll"] - kl)
    assert float(out["geco_lambda"]) == lam0 == 1.0
    c = 0.5 - float(out["recon_ll"].detach()) / pixels
    assert float(model.geco.lam) == pytest.approx(math.exp(0.2 * c), rel=1e-5)
    out["loss"].backward()  # λ is a constant: gradients flow through recon_ll and the KLs
    assert all(p.grad is not None for p in model.parameters())
    # the multiplier is state: it goes with the weights, so a resumed run continues exactly
    assert {"geco.lam", "geco.c_ema", "geco.steps"} <= set(model.state_dict())
    assert "geco.lam" not in make().state_dict()


def test_geco_config_errors_are_one_sentence():
    with pytest.raises(GNMError, match="model.objective='vae' is not known; choose elbo or geco"):
        make(objective="vae")
    with pytest.raises(GNMError, match="geco_alpha=1.0 must be below 1"):
        make(objective="geco", geco_alpha=1.0)
    assert SMALL["components"] == 3  # the small model the GENESIS tests use
