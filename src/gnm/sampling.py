"""Batched prior sampling to files: what ``gnm sample`` does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from gnm.errors import GNMError
from gnm.io import atomic_write_npz, check_writable
from gnm.models.base import require
from gnm.viz.grid import make_grid, save_png, to_uint8


@torch.no_grad()
def sample_images(model: torch.nn.Module, n: int, seed: int = 0, batch_size: int = 64,
                  progress: bool = True, temperature: float = 1.0,
                  prior: Any = None) -> np.ndarray:
    """``n`` prior samples as uint8 ``[n, H, W, C]``; batch ``b`` uses seed ``(seed, b)``, so
    the result does not depend on anything but ``seed`` and ``batch_size``. ``temperature``
    scales the global prior's standard deviations (1, the default, is the model's prior; other
    values need a model whose ``sample`` takes ``temperature``, e.g. GNM). ``prior`` (e.g. a
    :class:`gnm.models.aggregate_prior.MixturePrior`) draws z_g from another density and
    decodes it with the model's ``generate`` (beyond the paper; label such samples so)."""
    if n <= 0:
        raise GNMError(f"--n must be a positive number of samples, got {n}.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GNMError(f"--batch-size {batch_size} is out of range: it must be an integer >= 1 "
                       "(images sampled at once; default 64).")
    require(model, "resample_structure" if prior is not None else "sample",
            "sampling from another prior" if prior is not None else "sampling")
    kw = {} if temperature == 1.0 else {"temperature": temperature}
    device = next(model.parameters()).device
    out = []
    for b, start in enumerate(tqdm(range(0, n, batch_size), desc="sampling", disable=not progress)):
        batch_seed, m = seed * 1_000_003 + b, min(batch_size, n - start)
        if prior is None:
            g = torch.Generator(device=device).manual_seed(batch_seed)
            out.append(to_uint8(model.sample(m, generator=g, **kw)))
        else:  # the density's tensors live on the CPU
            z = prior.sample(m, generator=torch.Generator().manual_seed(batch_seed),
                             temperature=temperature)
            out.append(to_uint8(model.generate(z.to(device))))
    return np.concatenate(out)


def sample_to_npz(model_path: str | Path, n: int, out: str | Path, seed: int = 0,
                  batch_size: int = 64, device: str = "cpu", temperature: float = 1.0,
                  prior: str | None = None) -> Path:
    """Load a model, write ``n`` samples to ``out`` (.npz, key ``images``) and a grid PNG
    (``temperature`` as in :func:`sample_images`; ``prior`` names a density fitted with
    ``gnm fit-prior``, e.g. ``gmm``, stored beside the model)."""
    from gnm.train.checkpoint import load_model

    out = Path(out)
    if out.suffix != ".npz":
        raise GNMError(f"--out {out} must end in .npz.")
    check_writable(out.parent)
    density = None
    if prior is not None:
        from gnm.models.aggregate_prior import load_prior

        density = load_prior(model_path, prior)
    model = load_model(model_path, device=device)
    images = sample_images(model, n, seed=seed, batch_size=batch_size,
                           temperature=temperature, prior=density)
    atomic_write_npz(out, compress=True, images=images)
    save_png(make_grid(images[:64], nrow=8), out.with_suffix(".png"))
    return out
