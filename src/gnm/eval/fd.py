"""Fréchet distance (FD) between two sets of feature vectors.

``FD = ||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^{1/2})``, the squared 2-Wasserstein distance
between the Gaussians fitted to the two sets (means ``mu``, covariances ``S``).

**This is not Inception FID.** The project reports ``fd`` computed *in the feature space of the
S-Acc judge's digit classifier* (its penultimate layer, passed in as ``feature_fn``); values are
comparable only between runs that use the same feature function, never with published FIDs.

The matrix square root needs no scipy: for symmetric PSD ``S1, S2``,
``tr((S1 S2)^{1/2}) = tr((A S2 A)^{1/2})`` with ``A = S1^{1/2}``, and ``A S2 A`` is symmetric
PSD, so both roots come from symmetric eigen-decompositions (``numpy.linalg.eigh``), with
round-off negative eigenvalues clamped to 0. All maths is in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from gnm.errors import GNMError


def _as_2d_float64(features, name: str) -> np.ndarray:
    if isinstance(features, torch.Tensor):
        features = features.detach().to("cpu", torch.float64).numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2:
        raise GNMError(f"{name} must be a 2-D array [N, D] of feature vectors, got shape "
                       f"{tuple(arr.shape)}.")
    if arr.shape[0] < 2:
        raise GNMError(f"{name} has {arr.shape[0]} feature vector(s); the Fréchet distance "
                       "needs at least 2 per set (use many more for a stable estimate).")
    if not np.all(np.isfinite(arr)):
        raise GNMError(f"{name} contains NaN or infinite features; check the feature function.")
    return arr


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (float64) of features ``[N, D]``."""
    arr = _as_2d_float64(features, "features")
    return arr.mean(axis=0), np.atleast_2d(np.cov(arr, rowvar=False))


def _sqrt_psd(mat: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via ``eigh`` (negative round-off -> 0)."""
    sym = 0.5 * (mat + mat.T)
    vals, vecs = np.linalg.eigh(sym)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def trace_sqrt_product(cov1: np.ndarray, cov2: np.ndarray) -> float:
    """``tr((cov1 cov2)^{1/2})`` for symmetric PSD ``cov1, cov2`` without scipy."""
    root1 = _sqrt_psd(cov1)
    inner = root1 @ cov2 @ root1
    vals = np.linalg.eigvalsh(0.5 * (inner + inner.T))
    return float(np.sqrt(np.clip(vals, 0.0, None)).sum())


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """FD between ``N(mu1, cov1)`` and ``N(mu2, cov2)`` (float; 0 for identical statistics)."""
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    cov1 = np.atleast_2d(np.asarray(cov1, np.float64))
    cov2 = np.atleast_2d(np.asarray(cov2, np.float64))
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise GNMError(f"feature statistics disagree in dimension: mu1 {mu1.shape}, mu2 "
                       f"{mu2.shape}, cov1 {cov1.shape}, cov2 {cov2.shape}.")
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt_product(cov1, cov2)
    return float(max(value, 0.0))


def frechet_distance(features1, features2) -> float:
    """FD between the Gaussians fitted to features ``[N, D]`` and ``[M, D]``.

    With fewer vectors than dimensions the covariances are singular; the value is still defined
    but biased upwards, so use ``N, M >> D`` when comparing models.
    """
    f1 = _as_2d_float64(features1, "features1")
    f2 = _as_2d_float64(features2, "features2")
    if f1.shape[1] != f2.shape[1]:
        raise GNMError(f"the two feature sets have different dimensions ({f1.shape[1]} and "
                       f"{f2.shape[1]}); compute both with the same feature function.")
    return frechet_distance_from_stats(*feature_stats(f1), *feature_stats(f2))


@torch.no_grad()
def extract_features(images: torch.Tensor, feature_fn: Callable[[torch.Tensor], torch.Tensor],
                     batch_size: int = 256, device: str | torch.device | None = None,
                     progress: bool = True, desc: str = "features") -> torch.Tensor:
    """Apply ``feature_fn`` to ``images [N, C, H, W]`` in batches; float64 CPU ``[N, D]``."""
    if images.ndim != 4:
        raise GNMError(f"images must be a 4-D tensor [N, C, H, W], got shape "
                       f"{tuple(images.shape)}.")
    out = []
    for start in tqdm(range(0, images.shape[0], batch_size), desc=desc, disable=not progress,
                      leave=False):
        batch = images[start:start + batch_size]
        if device is not None:
            batch = batch.to(device)
        feats = feature_fn(batch)
        out.append(feats.detach().flatten(1).to("cpu", torch.float64))
    return torch.cat(out)


def frechet_distance_images(real: torch.Tensor, fake: torch.Tensor,
                            feature_fn: Callable[[torch.Tensor], torch.Tensor],
                            batch_size: int = 256, device: str | torch.device | None = None,
                            progress: bool = True) -> dict:
    """FD between real and generated images in the feature space of ``feature_fn``.

    Args:
        real, fake: image tensors ``[N, C, H, W]`` / ``[M, C, H, W]`` in [0, 1].
        feature_fn: maps an image batch to features ``[B, D]`` (for the project's ``fd`` key: the
            S-Acc judge classifier's penultimate layer). Called under ``torch.no_grad()``.
        batch_size: images per ``feature_fn`` call.
        device: where batches are moved before ``feature_fn`` (``None``: left where they are).

    Returns:
        ``{"fd": float, "n_real": N, "n_fake": M, "dim": D}``.
    """
    if real.shape[1:] != fake.shape[1:]:
        raise GNMError(f"real images {tuple(real.shape[1:])} and generated images "
                       f"{tuple(fake.shape[1:])} differ in shape; compare images of one size.")
    f_real = extract_features(real, feature_fn, batch_size, device, progress, "FD real")
    f_fake = extract_features(fake, feature_fn, batch_size, device, progress, "FD fake")
    return {"fd": frechet_distance(f_real, f_fake), "n_real": int(f_real.shape[0]),
            "n_fake": int(f_fake.shape[0]), "dim": int(f_real.shape[1])}
