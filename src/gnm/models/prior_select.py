"""Choosing the aggregate-posterior mixture's K by where its draws land: the cycle rule.

Held-out likelihood, the textbook way to choose a mixture's number of components K, rewards
covering the space *between* posterior means, which is the very mass that breaks the scene rule
(docs/priors.md: on the bundled MNIST-4 model it picks K = 10, S-Acc 0.935, while K = 20 gives
0.99). This module chooses K by a score that sees that hole without the judge or any labels.

**Cycle error** of a draw z ``[D]``: decode it and encode the result again,

    e(z) = ‖E(G(z)) − z‖₂ / ‖s‖₂,

with G the model's ``generate`` (modes of p(z_s|z_g)), E its ``encode_global`` (posterior
means) and s ``[D]`` the per-dimension standard deviations of the fitted posterior means (so
e is relative to the spread of the data's latents; a draw in a hole decodes to a scene whose
posterior lies elsewhere, and e is large). Its **floor** is the median e of the posterior
means of held-out scenes (the val split): what real latents achieve.

**Copy guard**: a draw whose decoded scene lies within ``tau`` (per-pixel RMSE; the median
distance of the model's reconstructions of fitted scenes from those scenes) of a fitted training
scene is a near copy (:mod:`gnm.eval.diversity`); the same rate for the held-out scenes is the
reference.

**Rule** (:func:`choose_k`): drop every K whose near-copy rate exceeds the held-out scenes'
by more than ``copy_slack``; of the rest take the smallest K whose median cycle error is at
most ``factor`` × the floor; if none reaches it, the K with the lowest median error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from gnm.data.registry import build_dataset, stack_images
from gnm.errors import GNMError
from gnm.eval.diversity import copy_threshold, near_copy_rate

CYCLE_FACTOR = 1.5  # at most this many times the held-out posterior means' cycle error
COPY_SLACK = 0.01  # near-copy rate allowed above the held-out scenes' rate


@torch.no_grad()
def _batched(fn: Any, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])


@torch.no_grad()
def cycle_errors(model: Any, z: torch.Tensor, scale: torch.Tensor, batch_size: int = 100
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Cycle error ``[N]`` of each draw of ``z [N, D]`` (see the module docstring; ``scale
    [D]`` is s) and the decoded images ``[N, C, H, W]`` in [0, 1]."""
    device = next(model.parameters()).device
    images = _batched(lambda b: model.generate(b.to(device)).float().cpu(), z, batch_size)
    back = _batched(lambda b: model.encode_global(b.to(device)).float().cpu(), images,
                    batch_size)
    return (back - z).norm(dim=1) / scale.norm(), images


def choose_k(stats: dict[int, dict[str, float]], floor: float, real_copy: float,
             factor: float = CYCLE_FACTOR, copy_slack: float = COPY_SLACK) -> int:
    """The K that the rule of the module docstring picks from ``stats``: ``{K: {"cycle":
    median cycle error, "near_copy": rate}}``; ``floor`` the held-out cycle error,
    ``real_copy`` the held-out near-copy rate."""
    if not stats:
        raise GNMError("no component count to choose from; pass at least one K (--k).")
    ok = {k: s for k, s in stats.items() if s["near_copy"] <= real_copy + copy_slack}
    if not ok:
        raise GNMError(f"every mixture tried (K = {', '.join(map(str, sorted(stats)))}) "
                       "copies training scenes more often than held-out scenes do; try fewer "
                       "components (--k) or encode more training scenes (--n).")
    close = [k for k in sorted(ok) if ok[k]["cycle"] <= factor * floor]
    return close[0] if close else min(ok, key=lambda k: (ok[k]["cycle"], k))


def cycle_statistics(model: Any, cfg: Any, z: torch.Tensor, candidates: dict[int, Any],
                     n_draws: int = 500, seed: int = 0) -> dict[str, Any]:
    """Score each fitted mixture of ``candidates`` (``{K: MixturePrior}``) fitted to the
    posterior means ``z [N, D]`` of the first N training scenes: ``{"floor", "real_copy",
    "tau", "per_k": {K: {"cycle", "near_copy"}}}`` from ``n_draws`` draws of each
    mixture and ``n_draws`` held-out (val) scenes."""
    if n_draws < 10:
        raise GNMError(f"{n_draws} draws are too few to score a mixture; use >= 10.")
    fitted = stack_images(build_dataset(cfg.data, "train"), range(len(z)))
    held = stack_images(build_dataset(cfg.data, "val"), range(n_draws))
    device = next(model.parameters()).device
    scale = z.std(0)
    tau = copy_threshold(model, fitted[:n_draws])
    held_z = _batched(lambda b: model.encode_global(b.to(device)).float().cpu(), held, 100)
    floor = float(cycle_errors(model, held_z, scale)[0].median())
    real_copy = near_copy_rate(held, fitted, tau)
    per_k = {}
    for k, prior in candidates.items():
        draws = prior.sample(n_draws, generator=torch.Generator().manual_seed(seed * 7919 + k))
        err, images = cycle_errors(model, draws, scale)
        per_k[k] = {"cycle": float(err.median()),
                    "near_copy": near_copy_rate(images, fitted, tau)}
    return {"floor": floor, "real_copy": real_copy, "tau": tau, "per_k": per_k}


def fit_gmm_by_cycle(model: Any, cfg: Any, z: torch.Tensor, ks: tuple[int, ...],
                     seed: int = 0, n_draws: int = 500, progress: bool = True) -> Any:
    """A full-covariance mixture for each K of ``ks`` fitted to all of ``z [N, D]``, scored by
    :func:`cycle_statistics` and chosen by :func:`choose_k`; the chosen one is returned with
    every K's score in ``info["cycle"]``."""
    from tqdm import tqdm

    from gnm.models.aggregate_prior import fit_gmm_k

    z_np = np.asarray(z, np.float64)
    candidates = {k: fit_gmm_k(z_np, k, seed)
                  for k in tqdm(ks, desc="fitting mixtures", disable=not progress)}
    stats = cycle_statistics(model, cfg, torch.as_tensor(z, dtype=torch.float32), candidates,
                             n_draws=n_draws, seed=seed)
    best = choose_k(stats["per_k"], stats["floor"], stats["real_copy"])
    prior = candidates[best]
    prior.info.update(select="cycle", factor=CYCLE_FACTOR, copy_slack=COPY_SLACK,
                      n_draws=n_draws, cycle={
                          "floor": stats["floor"], "real_copy": stats["real_copy"],
                          "tau": stats["tau"],
                          "per_k": {str(k): v for k, v in stats["per_k"].items()}})
    return prior
