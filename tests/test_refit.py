"""gnm refit-prior: only StructDRAW's prior head moves, and it moves towards the posterior."""

from __future__ import annotations

import json

import pytest
import torch

import gnm
from gnm import cli
from gnm.train.checkpoint import list_checkpoints
from gnm.train.refit import global_kl, mean_global_kl, refit_prior
from tests.test_bad_inputs_train import train_argv

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, fake_mnist):
    run = tmp_path_factory.mktemp("refit") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
        assert cli.main(train_argv(run, "train.steps=20", "train.ckpt_every=20")) == 0
    return run


@pytest.fixture(autouse=True)
def _fake_digits(fake_mnist, monkeypatch):
    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)


def test_the_refit_objective_is_the_elbos_global_kl(trained):
    model = gnm.load_model(trained)
    x = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.manual_seed(5)
        ours = global_kl(model, x).mean()
        torch.manual_seed(5)
        elbo_term = model(x, 0)["kl_global"]
    torch.testing.assert_close(ours, elbo_term)


def test_refit_moves_only_the_prior_head_and_lowers_the_kl(trained, tmp_path, capsys):
    out = tmp_path / "refit"
    assert cli.main(["refit-prior", str(trained), "--out", str(out), "--steps", "40", "--lr",
                     "3e-3", "--batch-size", "8", "--quiet"]) == 0
    assert "refit the prior for 40 steps" in capsys.readouterr().out
    r = json.loads((out / "refit.json").read_text())
    assert r["val_kl_after"] < r["val_kl_before"]
    before, after = gnm.load_model(trained), gnm.load_model(out)
    a, b = before.state_dict(), after.state_dict()
    moved = sorted(k for k in a if not torch.equal(a[k], b[k]))
    assert moved and all(k.startswith("structdraw.prior_head.") for k in moved)
    z = torch.randn(2, before.config.z_global_dim)  # a given z_g still makes the same scene
    torch.testing.assert_close(before.generate(z), after.generate(z))
    [ckpt] = list_checkpoints(out)
    assert ckpt.name == "step_00000020.pt"  # the source's step
    assert mean_global_kl(after, torch.rand(4, 1, 32, 32)) >= 0


def test_refit_refuses_what_it_cannot_refit(trained, tmp_path):
    from gnm.errors import GNMError

    with pytest.raises(GNMError, match="already holds a checkpoint"):
        refit_prior(trained, trained, steps=1)
    gauss = tmp_path / "gauss"
    assert cli.main(train_argv(gauss, "train.steps=1", "model.global_prior=gaussian")) == 0
    with pytest.raises(GNMError, match="needs a GNM with a learned StructDRAW prior; .* with "
                                       "global_prior='gaussian'"):
        refit_prior(gauss, tmp_path / "x", steps=1)
    with pytest.raises(GNMError, match="--steps >= 1"):
        refit_prior(trained, tmp_path / "y", steps=0)
