"""Where structure failures come from: S-Acc along each route from latents to images.

A GNM sample is ``z_g ~ p(z_g)`` (StructDRAW prior), then ``z_s`` from ``p(z_s|z_g)`` (the
modes for :meth:`GNM.sample`), then rendering. When prior samples break the dataset's rule, the
fault lies in one of these links. :func:`structure_sources` judges the images of six routes
that swap one link at a time, on the same real test scenes:

========================  =========================================================
route                     images
========================  =========================================================
``real``                  the test scenes themselves (the judge's ceiling)
``reconstruction``        ``model.reconstruct(x)``: posterior modes of z_s
``posterior_mode``        z_g = ``encode_global(x)`` (q(z_g|x) means), modes of p(z_s|z_g)
``posterior_sampled``     the same z_g, one draw z_s ~ p(z_s|z_g)
``prior_mode``            z_g ~ p(z_g), modes of p(z_s|z_g) (what :meth:`GNM.sample` does)
``prior_sampled``         z_g ~ p(z_g), one draw z_s ~ p(z_s|z_g)
========================  =========================================================

``posterior_mode`` high but ``prior_mode`` low means p(z_g) puts mass where q(z_g|x) does not
(the prior/posterior mismatch of the global latent); ``posterior_mode`` low means p(z_s|z_g)
itself does not keep the rule.
"""

from __future__ import annotations

from typing import Any

import torch

from gnm.errors import GNMError
from gnm.models.base import require

ROUTES = ("real", "reconstruction", "posterior_mode", "posterior_sampled", "prior_mode",
          "prior_sampled")
_NEEDS = ("reconstruct", "resample_structure")  # capabilities (gnm/models/base.py)


@torch.no_grad()
def route_images(model: Any, x: torch.Tensor, seed: int = 0,
                 batch_size: int = 100) -> dict[str, torch.Tensor]:
    """The images of every route in :data:`ROUTES` for real scenes ``x [N, C, H, W]`` in [0, 1].

    Returns ``{route: [N, C, H, W]}`` floats in [0, 1]; the prior routes draw ``N`` scenes with
    one generator seeded by ``seed`` (``prior_mode`` and ``prior_sampled`` share their z_g).
    """
    for capability in _NEEDS:
        require(model, capability, "computing the structure-source routes")
    if x.dim() != 4 or len(x) == 0:
        raise GNMError(f"expected real scenes [N, C, H, W] with N >= 1, got {tuple(x.shape)}.")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, list[torch.Tensor]] = {r: [] for r in ROUTES}
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        zq = model.encode_global(xb)
        zp = model.sample_global(len(xb), generator=gen)
        out["real"].append(xb)
        out["reconstruction"].append(model.reconstruct(xb))
        out["posterior_mode"].append(model.generate(zq))
        out["posterior_sampled"].append(model.resample_structure(zq, 1, generator=gen)[:, 0])
        out["prior_mode"].append(model.generate(zp))
        out["prior_sampled"].append(model.resample_structure(zp, 1, generator=gen)[:, 0])
    return {r: torch.cat(v).clamp(0, 1) for r, v in out.items()}


def structure_sources(model: Any, x: torch.Tensor, dataset: str, seed: int = 0,
                      batch_size: int = 100, **judge_kwargs: Any) -> dict[str, Any]:
    """Judge each route of :func:`route_images` against ``dataset``'s rule with the dataset's
    S-Acc judge (:mod:`gnm.eval.judges`; ``judge_kwargs`` go to it, e.g. ``classifier`` for the
    MNIST judge).

    Returns ``{"dataset", "n", "routes": {route: {"sacc", "ci95", "reasons"}}}`` where
    ``reasons`` keeps only the verdict kinds that occurred.
    """
    from gnm.eval.judges import require_judge

    judge = require_judge(dataset, "the structure sources")  # before any image is made
    images = route_images(model, x, seed, batch_size)
    routes = {}
    for name in ROUTES:
        r = judge(images[name], dataset, progress=False, **judge_kwargs)
        routes[name] = {"sacc": r["sacc"], "ci95": r["ci95"],
                        "reasons": {k: v for k, v in r["reasons"].items() if v}}
    return {"dataset": dataset, "n": len(x), "routes": routes}


def sources_table(result: dict[str, Any]) -> str:
    """A Markdown table of a :func:`structure_sources` result."""
    lines = ["| route | S-Acc | 95% CI | verdicts |", "|---|---|---|---|"]
    for name, r in result["routes"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in r["reasons"].items())
        lines.append(f"| {name} | {r['sacc']:.3f} | {r['ci95'][0]:.3f}-{r['ci95'][1]:.3f} | "
                     f"{reasons} |")
    return "\n".join(lines)
