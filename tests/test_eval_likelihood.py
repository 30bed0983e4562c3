"""Importance-sampled LL on a linear-Gaussian latent model with a closed-form log p(x)."""

from __future__ import annotations

import math

import pytest
import torch

from gnm.errors import GNMError
from gnm.eval.likelihood import importance_log_likelihood, log_mean_exp

D_Z, D_X, SIGMA = 2, 4, 0.5


def mvn_log_prob(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    return torch.distributions.MultivariateNormal(mean, covariance_matrix=cov).log_prob(x)


class LinearGaussian:
    """z ~ N(0, I), x = W z + b + N(0, SIGMA² I); x is stored as a [1, 2, 2] 'image'."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(D_X, D_Z, generator=g, dtype=torch.float64)
        self.b = torch.randn(D_X, generator=g, dtype=torch.float64)
        # Exact posterior q(z|x) = N(S Wᵀ (x − b) / σ², S) with S = (I + WᵀW / σ²)⁻¹.
        self.post_cov = torch.linalg.inv(torch.eye(D_Z, dtype=torch.float64)
                                         + self.w.T @ self.w / SIGMA**2)

    def sample(self, n: int, seed: int = 1) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        z = torch.randn(n, D_Z, generator=g, dtype=torch.float64)
        x = z @ self.w.T + self.b + SIGMA * torch.randn(n, D_X, generator=g, dtype=torch.float64)
        return x.reshape(n, 1, 2, 2)

    def exact_log_px(self, images: torch.Tensor) -> torch.Tensor:
        cov = self.w @ self.w.T + SIGMA**2 * torch.eye(D_X, dtype=torch.float64)
        return mvn_log_prob(images.reshape(-1, D_X), self.b, cov)

    def log_weight_fn(self, shift: float = 0.0, scale: float = 1.0):
        """log p(x, z) − log q(z|x), q = N(post. mean + shift · post. std, scale² · post. cov)."""

        def fn(images: torch.Tensor, k: int) -> torch.Tensor:
            x = images.reshape(-1, D_X).to(torch.float64)
            mean = ((x - self.b) @ self.w @ self.post_cov / SIGMA**2
                    + shift * self.post_cov.diagonal().sqrt())                  # [B, D_Z]
            q_cov = scale**2 * self.post_cov
            chol = torch.linalg.cholesky(q_cov)
            z = mean[:, None] + torch.randn(x.shape[0], k, D_Z, dtype=torch.float64) @ chol.T
            log_prior = mvn_log_prob(z, torch.zeros(D_Z, dtype=torch.float64),
                                     torch.eye(D_Z, dtype=torch.float64))
            log_lik = torch.distributions.Normal(z @ self.w.T + self.b, SIGMA).log_prob(
                x[:, None]).sum(-1)
            log_q = mvn_log_prob(z, mean[:, None], q_cov)
            return log_prior + log_lik - log_q

        return fn


@pytest.fixture(scope="module")
def model() -> LinearGaussian:
    return LinearGaussian()


def test_log_mean_exp_is_stable():
    w = torch.tensor([[1000.0, 1000.0], [-1000.0, -1000.0 + math.log(3.0)]])
    expected = torch.tensor([1000.0, -1000.0 + math.log(2.0)])
    assert torch.allclose(log_mean_exp(w), expected.double())


@pytest.mark.parametrize("k,batch_size,k_chunk", [(1, 50, None), (100, 7, None), (100, 16, 30)])
def test_exact_posterior_gives_exact_ll_for_any_k(model, k, batch_size, k_chunk):
    x = model.sample(50)
    out = importance_log_likelihood(model.log_weight_fn(), x, k=k, batch_size=batch_size,
                                    k_chunk=k_chunk, progress=False)
    exact = model.exact_log_px(x)
    assert torch.allclose(torch.tensor(out["per_image"], dtype=torch.float64), exact, atol=1e-9)
    assert out["mean"] == pytest.approx(exact.mean().item(), abs=1e-9)
    assert out["std"] == pytest.approx(exact.std().item(), abs=1e-9)
    assert out["sem"] == pytest.approx(out["std"] / math.sqrt(50))
    assert out["n"] == 50 and out["k"] == k
    assert out["ci95"][0] < out["mean"] < out["ci95"][1]


def test_wrong_posterior_converges_from_below_as_k_grows(model):
    x = model.sample(50)
    exact = model.exact_log_px(x).mean().item()
    fn = model.log_weight_fn(shift=1.0, scale=1.5)
    gaps = {k: exact - importance_log_likelihood(fn, x, k=k, batch_size=25, progress=False)["mean"]
            for k in (1, 10, 1000)}
    assert gaps[1] > gaps[10] > gaps[1000] > -0.03          # a lower bound that tightens
    assert gaps[1] > 1.0                                      # the bad q is really bad at K=1
    assert abs(gaps[1000]) < 0.03                             # and nearly exact at K=1000


def test_seed_makes_the_estimate_reproducible_and_restores_rng(model):
    x = model.sample(10)
    fn = model.log_weight_fn(shift=1.0, scale=1.5)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = importance_log_likelihood(fn, x, k=5, seed=4, progress=False)
    after = torch.rand(1)
    b = importance_log_likelihood(fn, x, k=5, seed=4, progress=False)
    assert a == b and torch.equal(before, after)


def test_bad_weights_raise_clear_errors(model):
    x = model.sample(4)
    with pytest.raises(GNMError, match="expected"):
        importance_log_likelihood(lambda xb, k: torch.zeros(xb.shape[0], k + 1), x, k=3,
                                  progress=False)
    with pytest.raises(GNMError, match="NaN or infinite"):
        importance_log_likelihood(lambda xb, k: torch.full((xb.shape[0], k), float("nan")), x,
                                  k=3, progress=False)
    with pytest.raises(GNMError, match="4-D"):
        importance_log_likelihood(model.log_weight_fn(), x[:, 0], k=3, progress=False)
