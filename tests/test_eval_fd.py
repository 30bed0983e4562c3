"""Fréchet distance against closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gnm.errors import GNMError
from gnm.eval.fd import (
    frechet_distance,
    frechet_distance_from_stats,
    frechet_distance_images,
    trace_sqrt_product,
)


def test_diagonal_gaussians_match_the_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([2.0, 1.0, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(
        expected, rel=1e-12)


def test_full_covariances_are_rotation_invariant_and_zero_for_equal_stats():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    cov1, cov2 = a @ a.T, b @ b.T + 0.1 * np.eye(5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    fd = frechet_distance_from_stats(mu1, cov1, mu2, cov2)
    fd_rot = frechet_distance_from_stats(q @ mu1, q @ cov1 @ q.T, q @ mu2, q @ cov2 @ q.T)
    assert fd == pytest.approx(fd_rot, rel=1e-9)
    assert frechet_distance_from_stats(mu1, cov1, mu1, cov1) == pytest.approx(0.0, abs=1e-9)
    # tr((S1 S2)^1/2) equals the sum of square roots of the eigenvalues of S1 S2.
    eig = np.linalg.eigvals(cov1 @ cov2).real
    assert trace_sqrt_product(cov1, cov2) == pytest.approx(np.sqrt(eig).sum(), rel=1e-9)


def test_one_dimensional_case():
    # FD = (m1 - m2)^2 + (sd1 - sd2)^2 in one dimension.
    assert frechet_distance_from_stats([1.0], [[9.0]], [3.0], [[1.0]]) == pytest.approx(8.0)


def test_samples_estimate_the_population_value():
    g = torch.Generator().manual_seed(0)
    n = 20000
    x = torch.randn(n, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5])
    y = torch.randn(n, 3, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0, 0.0])
    expected = 1.0 + (1 - 1) ** 2 + (2 - 1) ** 2 + (0.5 - 1) ** 2
    assert frechet_distance(x, y) == pytest.approx(expected, abs=0.05)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_images_with_a_feature_function():
    g = torch.Generator().manual_seed(1)
    real = torch.rand(300, 1, 4, 4, generator=g)
    fake = (real + 0.5).clamp(max=2.0)
    calls = []

    def feature_fn(batch):
        calls.append(batch.shape[0])
        return batch.mean(dim=(1, 2, 3), keepdim=False)[:, None].repeat(1, 2)

    out = frechet_distance_images(real, fake, feature_fn, batch_size=128, progress=False)
    assert set(out) == {"fd", "n_real", "n_fake", "dim"}
    assert out["n_real"] == 300 and out["dim"] == 2 and calls[:3] == [128, 128, 44]
    # Both feature columns are the per-image mean, shifted by exactly 0.5 (no clamping occurs).
    assert out["fd"] == pytest.approx(2 * 0.25, rel=1e-6)


def test_errors():
    with pytest.raises(GNMError, match="different dimensions"):
        frechet_distance(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(GNMError, match="at least 2"):
        frechet_distance(np.zeros((1, 2)), np.zeros((5, 2)))
    with pytest.raises(GNMError, match="NaN"):
        frechet_distance(np.full((3, 2), math.nan), np.zeros((5, 2)))
