"""Refit StructDRAW's prior to the posterior of a trained GNM (``gnm refit-prior``).

Prior samples of a trained GNM break the scene rule more often than decoded posteriors do:
p(z_g) puts mass where q(z_g|x) has none. With everything else frozen (encoder, posterior,
StructDRAW's decoder and canvas, structuring network, renderer), only the prior head
``MLP_prior`` (h_dec -> µ_p, σ_p at each step ℓ) is trained to maximise

    E_x E_{z_g ~ q(z_g|x)} [ log p(z_g) ] = −E_x KL(q(z_g|x) || p(z_g)) − H(q)   (H fixed)

on training scenes, i.e. the global KL of the ELBO alone, with weight 1 (training used β_g·KL,
which also pulls q towards p). The decoder of z_g is untouched, so a given z_g makes the same
scene as before; only where the prior puts z_g changes. The model stays a GNM with a StructDRAW
prior (the numbers remain "GNM prior samples").

Data order and noise are functions of ``seed`` and the step, as in training. The result is a
new run directory with one checkpoint (the source's step) and ``refit.json`` (the KL on
held-out val scenes before and after, per logged step).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gnm.config import to_dict
from gnm.data.registry import build_dataset, stack_images
from gnm.errors import GNMError
from gnm.io import atomic_write_json, check_writable
from gnm.models.losses import kl_normal
from gnm.train.checkpoint import (
    latest_checkpoint,
    load_model_and_config,
    save_checkpoint,
    training_facts,
)
from gnm.train.sampler import StepBatchSampler


def global_kl(model: Any, x: torch.Tensor) -> torch.Tensor:
    """KL(q(z_g|x) || p(z_g)) per image ``[B]`` (nats), z_g ~ q (one draw, as in training)."""
    draw = model.structdraw(model.encoder(x))
    return kl_normal(draw.post_mu, draw.post_sd, draw.prior_mu,
                     draw.prior_sd).flatten(1).sum(1)


@torch.no_grad()
def mean_global_kl(model: Any, x: torch.Tensor, seed: int = 0, batch: int = 100) -> float:
    """Mean of :func:`global_kl` over ``x [N, C, H, W]`` with the noise seeded by ``seed``."""
    torch.manual_seed(seed)
    return float(torch.cat([global_kl(model, x[i:i + batch])
                            for i in range(0, len(x), batch)]).mean())


def refit_prior(source: str | Path, out: str | Path, steps: int = 2000, lr: float = 1e-4,
                batch_size: int = 32, seed: int = 0, n_val: int = 500, log_every: int = 250,
                progress: bool = True) -> dict[str, Any]:
    """Refit the prior head of the GNM at ``source`` (run directory, checkpoint or
    .safetensors) for ``steps`` Adam steps of ``batch_size`` training scenes; write run
    directory ``out`` (checkpoint + config.json + refit.json); return refit.json's content:
    ``{"source", "steps", "lr", "batch_size", "seed", "val_kl_before", "val_kl_after",
    "log": [{"step", "train_kl", "val_kl"}], "seconds"}`` (KLs in nats per scene)."""
    if steps < 1 or batch_size < 1:
        raise GNMError(f"refit-prior needs --steps >= 1 and --batch-size >= 1, got {steps} and "
                       f"{batch_size}.")
    if not lr > 0:
        raise GNMError(f"--lr must be a positive number, got {lr}.")
    out = Path(out)
    if latest_checkpoint(out) is not None:
        raise GNMError(f"{out} already holds a checkpoint; choose another --out.")
    check_writable(out)
    model, cfg = load_model_and_config(source)
    if cfg.model.name != "gnm" or cfg.model.global_prior != "structdraw":
        raise GNMError(f"refit-prior needs a GNM with a learned StructDRAW prior; {source} is "
                       f"model {cfg.model.name!r}"
                       + (f" with global_prior={cfg.model.global_prior!r}"
                          if hasattr(cfg.model, "global_prior") else "") + ".")
    step0 = training_facts(source)["steps"] or 0
    head = model.structdraw.prior_head
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)

    val_data = build_dataset(cfg.data, "val")
    x_val = stack_images(val_data, range(n_val))
    before = mean_global_kl(model, x_val, seed)
    train_data = build_dataset(cfg.data, "train")
    sampler = StepBatchSampler(len(train_data), batch_size, seed, 0, steps)
    t0, log, window = time.time(), [], []
    model.eval()  # no dropout/batch-norm in GNM; eval keeps any frozen statistics fixed
    for t, idx in enumerate(tqdm(sampler, total=steps, desc="refit prior",
                                 disable=not progress)):
        torch.manual_seed(seed * 1_000_003 + t)
        x = stack_images(train_data, idx)
        loss = global_kl(model, x).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(float(loss.detach()))
        if (t + 1) % log_every == 0 or t + 1 == steps:
            log.append({"step": t + 1, "train_kl": sum(window) / len(window),
                        "val_kl": mean_global_kl(model, x_val, seed)})
            window = []
    for p in model.parameters():
        p.requires_grad_(True)
    result = {"source": str(source), "steps": steps, "lr": lr, "batch_size": batch_size,
              "seed": seed, "n_val": n_val, "val_kl_before": before,
              "val_kl_after": log[-1]["val_kl"], "log": log, "seconds": time.time() - t0}
    save_checkpoint(out, step0, model, None, cfg)
    atomic_write_json(out / "config.json", to_dict(cfg))
    atomic_write_json(out / "refit.json", result)
    return result

