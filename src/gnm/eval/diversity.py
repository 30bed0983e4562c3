"""Diversity and memorisation of a sampler, beside its S-Acc.

A sampler that copies training scenes can follow every rule and still be useless, so samplers
beyond the paper's prior are reported with:

* **layout entropy**: the entropy (nats) of the histogram of class layouts among the samples
  the judge accepts, a layout being the set of (quadrant, digit) pairs of a scene (MNIST-4: the
  start digit d; MNIST-10: which class set sits in which quadrant and where); compared with the
  same entropy over real test scenes.
* **near-copy rate**: the share of samples whose nearest scene among the scenes the sampler was
  fitted on is at most ``tau`` away in per-pixel RMSE (intensities in [0, 1]); ``tau`` is the
  median distance between the model's own reconstructions of those scenes and the scenes
  (how close a copy of a training scene comes out of this decoder). The same rate for held-out
  real scenes is the reference.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import torch

_HALF = 64.0  # centroids are at 128 px


def layout_key(verdict: dict[str, Any]) -> tuple[tuple[int, int], ...] | None:
    """The class layout of an accepted verdict (``judge_images``' per-image dict): sorted
    (quadrant, label) pairs, quadrants 0-3 clockwise from the top left; None if rejected."""
    if not verdict["ok"]:
        return None
    pairs = []
    for (x, y), label in zip(verdict["centroids"], verdict["labels"], strict=True):
        right, bottom = x >= _HALF, y >= _HALF
        quadrant = (1 if not bottom else 2) if right else (0 if not bottom else 3)
        pairs.append((quadrant, int(label)))
    return tuple(sorted(pairs))


def layout_entropy(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"entropy" (nats), "layouts" (distinct), "n" (accepted)}`` over accepted verdicts."""
    counts = Counter(k for k in map(layout_key, verdicts) if k is not None)
    n = sum(counts.values())
    h = -sum(c / n * math.log(c / n) for c in counts.values()) if n else 0.0
    return {"entropy": h, "layouts": len(counts), "n": n}


def nearest_rmse(a: torch.Tensor, b: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Per-pixel RMSE ``[N]`` from each image of ``a [N, ...]`` to its nearest image of
    ``b [M, ...]`` (same shape per image)."""
    a2, b2 = a.flatten(1).double(), b.flatten(1).double()
    d, bb = a2.shape[1], (b2 * b2).sum(1)
    out = []
    for i in range(0, len(a2), chunk):
        x = a2[i:i + chunk]
        sq = (x * x).sum(1, keepdim=True) - 2 * x @ b2.T + bb
        out.append(sq.clamp_min(0).min(1).values.div(d).sqrt())
    return torch.cat(out).float()


def near_copy_rate(samples: torch.Tensor, fitted: torch.Tensor, tau: float) -> float:
    """Share of ``samples`` within ``tau`` (per-pixel RMSE) of some scene of ``fitted``."""
    return float((nearest_rmse(samples, fitted) <= tau).float().mean())


@torch.no_grad()
def copy_threshold(model: Any, scenes: torch.Tensor, batch_size: int = 100) -> float:
    """``tau`` of the near-copy rate: the median per-pixel RMSE between ``scenes [N, C, H, W]``
    and the model's reconstructions of them (how close a copy comes out of this decoder)."""
    device = next(model.parameters()).device
    recon = torch.cat([model.reconstruct(scenes[i:i + batch_size].to(device)).float().cpu()
                       for i in range(0, len(scenes), batch_size)])
    return float((recon - scenes).pow(2).flatten(1).mean(1).sqrt().median())
