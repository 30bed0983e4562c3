"""Importance-sampled log-likelihood (IWAE bound, Burda et al. 2016), the paper's LL metric.

For one image ``x`` and ``K`` samples ``z_k ~ q(z|x)``::

    log p(x) ≈ log (1/K) Σ_k exp(log p(x, z_k) − log q(z_k|x))

a lower bound in expectation that tightens as ``K`` grows and is exact for any ``K`` when ``q`` is
the true posterior. The paper uses ``K = 100``. Values are in nats per image; with continuous
(Gaussian) pixel likelihoods they are log *densities* and may be positive (the paper reports
e.g. 10,964 on MNIST-4).

The model supplies the per-sample log weights; this module does the batching, the log-mean-exp
(in float64) and the summary, so it does not depend on any model class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from gnm.errors import GNMError
from gnm.eval.stats import mean_std, normal_ci


def log_mean_exp(log_weights: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``log(mean(exp(w)))`` along ``dim``, computed stably in float64."""
    w = log_weights.to(torch.float64)
    return torch.logsumexp(w, dim=dim) - math.log(w.shape[dim])


@torch.no_grad()
def importance_log_likelihood(log_weight_fn: Callable[[torch.Tensor, int], torch.Tensor],
                              images: torch.Tensor, k: int = 100, batch_size: int = 32,
                              progress: bool = True, k_chunk: int | None = None,
                              seed: int | None = 0,
                              device: str | torch.device | None = None) -> dict:
    """Importance-sampled ``log p(x)`` per image, summarised over ``images``.

    Args:
        log_weight_fn: ``(x_batch [B, C, H, W], k) -> [B, k]`` tensor of
            ``log p(x, z_k) − log q(z_k | x)`` in nats for ``k`` independent ``z_k ~ q(z|x)``
            (called under ``torch.no_grad()``).
        images: ``[N, C, H, W]`` images in the model's input range.
        k: importance samples per image (paper: 100).
        batch_size: images per ``log_weight_fn`` call.
        progress: show a tqdm bar over batches.
        k_chunk: draw the ``k`` samples in chunks of at most this many per call (to bound memory);
            valid because the samples are independent. ``None``: all ``k`` in one call.
        seed: seeds torch's RNG for the duration of the call (the global RNG state is restored
            afterwards) so the estimate is reproducible; ``None`` leaves the RNG alone.
        device: where image batches are moved before ``log_weight_fn`` (``None``: left as is).

    Returns:
        ``{"mean", "std", "sem", "ci95", "n", "k", "per_image"}``: mean, sample std and standard
        error of the per-image estimates (nats), a normal 95% interval for the mean, the image
        count, ``k``, and the per-image values as a list of floats.
    """
    if images.ndim != 4:
        raise GNMError(f"images must be a 4-D tensor [N, C, H, W], got shape "
                       f"{tuple(images.shape)}.")
    if images.shape[0] == 0:
        raise GNMError("no images were given to the log-likelihood estimate.")
    if k < 1 or batch_size < 1 or (k_chunk is not None and k_chunk < 1):
        raise GNMError(f"k ({k}), batch_size ({batch_size}) and k_chunk ({k_chunk}) must be "
                       "positive.")
    chunk = k if k_chunk is None else min(k, k_chunk)

    def run() -> torch.Tensor:
        per_image = []
        starts = range(0, images.shape[0], batch_size)
        for start in tqdm(starts, desc=f"LL (K={k})", disable=not progress, leave=False):
            x = images[start:start + batch_size]
            if device is not None:
                x = x.to(device)
            parts, done = [], 0
            while done < k:
                n = min(chunk, k - done)
                w = log_weight_fn(x, n)
                if tuple(w.shape) != (x.shape[0], n):
                    raise GNMError(f"log_weight_fn returned shape {tuple(w.shape)}; expected "
                                   f"[batch, k] = [{x.shape[0]}, {n}].")
                parts.append(w.detach().to("cpu", torch.float64))
                done += n
            weights = torch.cat(parts, dim=1)
            bad = (~torch.isfinite(weights)).sum().item()
            if bad:
                raise GNMError(f"{bad} importance weight(s) in images {start}.."
                               f"{start + len(x) - 1} are NaN or infinite; check the model's "
                               "log p(x, z) and log q(z|x).")
            per_image.append(log_mean_exp(weights, dim=1))
        return torch.cat(per_image)

    if seed is None:
        values = run()
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            values = run()

    vals = values.tolist()
    mean, std = mean_std(vals)
    err = std / math.sqrt(len(vals))
    return {"mean": mean, "std": std, "sem": err, "ci95": list(normal_ci(mean, err)),
            "n": len(vals), "k": int(k), "per_image": vals}
