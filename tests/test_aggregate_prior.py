"""The aggregate-posterior sampler (gnm/models/aggregate_prior.py) and the diversity measures
(gnm/eval/diversity.py), against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gnm import cli
from gnm.errors import GNMError
from gnm.eval.diversity import (
    copy_threshold,
    layout_entropy,
    layout_key,
    near_copy_rate,
    nearest_rmse,
)
from gnm.models.aggregate_prior import MixturePrior, fit_gmm, prior_path
from gnm.sampling import sample_images

pytestmark = pytest.mark.usefixtures("one_thread")


def _two_blobs() -> MixturePrior:
    w = torch.tensor([0.25, 0.75])
    mu = torch.tensor([[-3.0, 0.0], [2.0, 1.0]])
    tril = torch.tensor([[[1.0, 0.0], [0.5, 0.5]], [[0.3, 0.0], [0.0, 2.0]]])
    return MixturePrior(w, mu, tril)


def test_mixture_samples_have_the_closed_form_moments():
    p = _two_blobs()
    z = p.sample(200_000, generator=torch.Generator().manual_seed(0)).double()
    w, mu, tril = p.weights.double(), p.means.double(), p.scale_tril.double()
    mean = (w[:, None] * mu).sum(0)
    cov = sum(w[k] * (tril[k] @ tril[k].T + torch.outer(mu[k], mu[k])) for k in range(2)) \
        - torch.outer(mean, mean)
    torch.testing.assert_close(z.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=0.05, rtol=0.01)
    t0 = p.sample(5, generator=torch.Generator().manual_seed(1), temperature=0.0)
    assert all(any(torch.allclose(r, m) for m in p.means) for r in t0)  # T = 0: the means


def test_mixture_log_prob_matches_torch_distributions(tmp_path):
    p = _two_blobs()
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(p.weights),
        torch.distributions.MultivariateNormal(p.means, scale_tril=p.scale_tril))
    z = torch.randn(7, 2) * 3
    torch.testing.assert_close(p.log_prob(z), ref.log_prob(z))
    back = MixturePrior.load(p.save(tmp_path / "p.safetensors"))
    torch.testing.assert_close(back.log_prob(z), ref.log_prob(z))
    (tmp_path / "bad.safetensors").write_bytes(b"not a prior")
    with pytest.raises(GNMError, match="is not a gnm prior file"):
        MixturePrior.load(tmp_path / "bad.safetensors")
    with pytest.raises(GNMError, match="fit it first with gnm fit-prior"):
        MixturePrior.load(tmp_path / "none.safetensors")


def test_fit_gmm_keeps_the_best_held_out_component_count():
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 10, (3, 4))
    z = np.concatenate([c + rng.normal(0, 0.5, (400, 4)) for c in centres])
    p = fit_gmm(z, ks=(1, 3), seed=0)
    assert p.info["k"] == 3 and p.info["held_out_ll"]["3"] > p.info["held_out_ll"]["1"]
    found = sorted(p.means.numpy().tolist())
    np.testing.assert_allclose(found, sorted(centres.tolist()), atol=0.2)
    with pytest.raises(GNMError, match="too few"):
        fit_gmm(z[:10], ks=(10,))


def test_prior_path_sits_beside_the_model(tmp_path):
    assert prior_path(tmp_path) == tmp_path / "priors" / "gmm.safetensors"
    assert prior_path(tmp_path / "m4.safetensors") == tmp_path / "m4.gmm.safetensors"


def test_sampling_from_a_mixture_decodes_its_draws():
    from tests.test_gnm import tiny

    model = tiny().eval()
    d = model.config.z_global_dim
    p = MixturePrior(torch.ones(1), torch.zeros(1, d), torch.eye(d)[None] * 0.5)
    imgs = sample_images(model, 3, seed=4, progress=False, prior=p)
    z = p.sample(3, generator=torch.Generator().manual_seed(4 * 1_000_003))
    want = (model.generate(z).clamp(0, 1).permute(0, 2, 3, 1).numpy() * 255).round()
    np.testing.assert_allclose(imgs.astype(float), want, atol=1)


def test_fit_prior_and_sample_with_it_on_the_command_line(tmp_path, fake_mnist, monkeypatch,
                                                          capsys):
    pytest.importorskip("sklearn")
    from tests.test_bad_inputs_train import train_argv

    monkeypatch.setattr("gnm.data.mnist.load_mnist", lambda *a, **k: fake_mnist)
    run = tmp_path / "run"
    assert cli.main(train_argv(run, "train.steps=2")) == 0
    assert cli.main(["fit-prior", str(run), "--n", "200", "--k", "2,4", "--quiet",
                     "--select", "heldout"]) == 0
    assert "held-out log-likelihood per latent: K=2" in capsys.readouterr().out
    assert MixturePrior.load(run / "priors" / "gmm.safetensors").info["select"] == "heldout"
    assert cli.main(["fit-prior", str(run), "--n", "200", "--k", "2,4", "--quiet"]) == 0
    assert "chosen by the cycle rule: median cycle error K=2" in capsys.readouterr().out
    info = MixturePrior.load(run / "priors" / "gmm.safetensors").info
    assert info["select"] == "cycle" and set(info["cycle"]["per_k"]) == {"2", "4"}
    with pytest.raises(SystemExit) as exc:
        cli.main(["fit-prior", str(run), "--select", "bic"])
    assert exc.value.code == 2 and "invalid choice: 'bic'" in capsys.readouterr().err
    out = tmp_path / "s.npz"
    assert cli.main(["sample", str(run), "--prior", "gmm", "--n", "4", "--out", str(out)]) == 0
    assert np.load(out)["images"].shape == (4, 32, 32, 1)
    assert cli.main(["sample", str(run), "--prior", "flow", "--n", "4", "--out",
                     str(out)]) == 2
    assert "--prior 'flow' is not known; choose gmm" in capsys.readouterr().err
    # the comparison benchmark runs on it: every sampler gets a row, the table shows them
    from tests.conftest import load_benchmark

    bench = load_benchmark("prior_samplers")
    r = bench.run(str(run), 20, [1.0], 20, 0, [3])
    assert [x["sampler"] for x in r["rows"]] == [
        "prior", f"gmm (gnm fit-prior: K={r['gmm']['k']}, cycle rule)",
        f"gmm K=3 (held-out LL {r['rows'][2]['sampler'].split('LL ')[1][:-1]})"]
    assert all(0 <= x["near_copy"] <= 1 and 0 <= x["sacc"] <= 1 for x in r["rows"])
    assert bench.table(r).count("\n") == 2 + len(r["rows"])


def test_layouts_entropy_and_near_copies_by_hand():
    ok = {"ok": True, "centroids": [[90, 30], [30, 30], [30, 90], [90, 90]],
          "labels": [4, 3, 6, 5]}
    assert layout_key(ok) == ((0, 3), (1, 4), (2, 5), (3, 6))
    assert layout_key({**ok, "ok": False}) is None
    other = {**ok, "labels": [1, 0, 3, 2]}
    h = layout_entropy([ok, ok, other, other, {**ok, "ok": False}])
    assert h == {"entropy": pytest.approx(math.log(2)), "layouts": 2, "n": 4}
    a, b = torch.rand(5, 1, 4, 4), torch.rand(9, 1, 4, 4)
    brute = torch.tensor([min(float((x - y).pow(2).mean().sqrt()) for y in b) for x in a])
    torch.testing.assert_close(nearest_rmse(a, b, chunk=2), brute, atol=1e-5, rtol=0)
    assert near_copy_rate(torch.cat([b[:2], a]), b, tau=1e-4) == pytest.approx(2 / 7)


def test_copy_threshold_is_the_median_reconstruction_rmse():
    class Shift(torch.nn.Module):
        """reconstruct(x) = x + c_i for image i: per-pixel RMSE c_i."""

        def __init__(self) -> None:
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.offsets.view(-1, 1, 1, 1)

    m = Shift()
    m.offsets = torch.tensor([0.3, 0.1, 0.5, 0.2, 0.4])  # one batch, so the rows line up
    assert copy_threshold(m, torch.rand(5, 1, 4, 4), batch_size=5) == pytest.approx(0.3)
