"""The paper's pictures as PNG files, from any model with GNM's analysis methods.

Each function returns the uint8 picture ``[H, W, C]`` and, given ``path``, also writes it:

* :func:`prior_samples`        Fig. 2: a grid of scenes sampled from the prior
* :func:`reconstructions`      pairs of rows: inputs, then their reconstructions
* :func:`decomposition`        Fig. 3: input with green boxes, reconstruction, then each present
                               component (largest presence first)
* :func:`object_traversal`     Fig. 5 (left): one object's z_where / z_what dimension varied
* :func:`global_traversal`     Fig. 5 (right): one z_g dimension varied
* :func:`structure_resampling` Figs. 10-11: z_g fixed (from the posterior or the prior), z_s
                               and z_b resampled from p(z_s|z_g)

The traversals vary the dimension that carries the most information (:func:`choose_traversals`):
most latent dimensions of a trained VAE collapse to the prior and change nothing when varied.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gnm.errors import GNMError
from gnm.io import check_writable
from gnm.models.base import supports, why_not
from gnm.viz.grid import make_grid, save_png, to_uint8

GREEN = (0, 255, 0)


def _rgb(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Any images -> uint8 ``[N, H, W, 3]``."""
    a = to_uint8(images)
    return np.repeat(a, 3, axis=-1) if a.shape[-1] == 1 else a


def _out(picture: np.ndarray, path: str | Path | None) -> np.ndarray:
    if path is not None:
        save_png(picture, path)
    return picture


def draw_boxes(images: np.ndarray, boxes: np.ndarray, keep: np.ndarray,
               colour: tuple[int, int, int] = GREEN) -> np.ndarray:
    """Draw 1-px rectangles on uint8 ``[N, H, W, 3]``; ``boxes [N, K, 4]`` (x0, y0, x1, y1 px,
    exclusive ends), drawn where ``keep [N, K]`` is true. Returns a copy."""
    out = images.copy()
    n, h, w, _ = out.shape
    for i in range(n):
        for (x0, y0, x1, y1), k in zip(boxes[i], keep[i], strict=True):
            if not k:
                continue
            xa, xb = int(np.clip(round(x0), 0, w - 1)), int(np.clip(round(x1) - 1, 0, w - 1))
            ya, yb = int(np.clip(round(y0), 0, h - 1)), int(np.clip(round(y1) - 1, 0, h - 1))
            out[i, ya, xa:xb + 1] = colour
            out[i, yb, xa:xb + 1] = colour
            out[i, ya:yb + 1, xa] = colour
            out[i, ya:yb + 1, xb] = colour
    return out


@torch.no_grad()
def prior_samples(model, n: int = 64, seed: int = 0, path: str | Path | None = None,
                  nrow: int = 8) -> np.ndarray:
    """Grid of ``n`` prior samples."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    return _out(make_grid(_rgb(model.sample(n, generator=g)), nrow=nrow), path)


@torch.no_grad()
def component_samples(model, n: int = 8, seed: int = 0, path: str | Path | None = None,
                      drop_empty: bool = True) -> np.ndarray:
    """Component-wise generation (the paper's Fig. 3): one row per prior sample, the sample
    followed by each of its ``K`` components (``model.sample_components``). With
    ``drop_empty``, components that stay blank (no pixel above 1/255) in every row are left out
    (GNM's absent cells), keeping their order."""
    g = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
    parts = model.sample_components(n, generator=g)
    comps = parts["components"].clamp(0, 1)
    if drop_empty:
        keep = comps.flatten(2).amax(2).amax(0) > 1 / 255  # [K]
        comps = comps[:, keep] if keep.any() else comps[:, :1]
    rows = [np.concatenate([_rgb(parts["images"][i:i + 1]), _rgb(comps[i])]) for i in range(n)]
    return _out(make_grid(np.concatenate(rows), nrow=1 + comps.shape[1]), path)


@torch.no_grad()
def reconstructions(model, x: torch.Tensor, path: str | Path | None = None,
                    nrow: int = 8) -> np.ndarray:
    """Rows of ``nrow`` inputs followed by a row of their reconstructions."""
    rec = model.reconstruct(x)
    rows = []
    for s in range(0, len(x), nrow):
        rows += [_rgb(x[s:s + nrow]), _rgb(rec[s:s + nrow])]
    return _out(make_grid(np.concatenate(rows), nrow=nrow), path)


@torch.no_grad()
def decomposition(model, x: torch.Tensor, k: int = 6, path: str | Path | None = None
                  ) -> np.ndarray:
    """One row per image: input with green boxes of present objects, reconstruction, and the
    ``k`` present components with the highest presence probability (black if fewer)."""
    d = model.decompose(x)
    present = d["presence"].cpu().numpy() > 0.5
    boxed = draw_boxes(_rgb(x), d["boxes"].cpu().numpy(), present)
    order = torch.argsort(d["pres_prob"] * d["presence"], dim=1, descending=True)[:, :k]
    comps = torch.gather(d["components"], 1,
                         order.view(*order.shape, 1, 1, 1).expand(-1, -1,
                                                                   *d["components"].shape[2:]))
    keep = torch.gather(d["presence"], 1, order).view(*order.shape, 1, 1, 1)
    comps = (comps * keep).clamp(0, 1)
    rows = []
    for i in range(len(x)):
        rows += [boxed[i:i + 1], _rgb(d["recon"][i:i + 1]), _rgb(comps[i])]
    return _out(make_grid(np.concatenate(rows), nrow=2 + k), path)


@torch.no_grad()
def object_traversal(model, x: torch.Tensor, field: str, dim: int, values: torch.Tensor,
                     cell: int | None = None, path: str | Path | None = None) -> np.ndarray:
    """One row per image of ``x``: the chosen object's ``z_<field>[dim]`` set to each value.

    ``cell`` defaults to each image's most confidently present object (first image's choice is
    used for all: pass images that share a layout, or one image at a time)."""
    if cell is None:
        d = model.decompose(x[:1])
        cell = int(torch.argmax(d["pres_prob"][0] * d["presence"][0]))
    imgs = model.traverse_object(x, cell, field, dim, values)  # [V, B, C, H, W]
    return _out(make_grid(_rgb(imgs.transpose(0, 1).flatten(0, 1)), nrow=len(values)), path)


@torch.no_grad()
def global_traversal(model, z_g: torch.Tensor, dim: int, values: torch.Tensor,
                     path: str | Path | None = None) -> np.ndarray:
    """One row per ``z_g``: its dimension ``dim`` set to each value."""
    imgs = model.traverse_global(z_g, dim, values)  # [V, B, C, H, W]
    return _out(make_grid(_rgb(imgs.transpose(0, 1).flatten(0, 1)), nrow=len(values)), path)


@torch.no_grad()
def structure_resampling(model, z_g: torch.Tensor, n: int = 7, seed: int = 0,
                         first: torch.Tensor | None = None,
                         path: str | Path | None = None) -> np.ndarray:
    """One row per ``z_g``: ``first`` (e.g. the input image, optional), then ``n`` scenes with
    z_s, z_b ~ p(·|z_g) resampled."""
    g = torch.Generator(device=z_g.device).manual_seed(seed)
    imgs = model.resample_structure(z_g, n, generator=g)  # [B, n, C, H, W]
    if first is not None:
        imgs = torch.cat([first.unsqueeze(1).to(imgs), imgs], dim=1)
    return _out(make_grid(_rgb(imgs.flatten(0, 1)), nrow=imgs.shape[1]), path)


def informative_dim(latents: torch.Tensor, span: float = 2.0, steps: int = 8
                    ) -> tuple[int, torch.Tensor]:
    """The dimension of ``latents [M, D]`` (posterior means of M objects or scenes) whose values
    spread most across the M rows (largest standard deviation: the dimensions a VAE does not
    use sit at the prior's mean for every input), and ``steps`` values from its mean minus to its
    mean plus ``span`` standard deviations."""
    if latents.dim() != 2 or len(latents) < 2:
        raise GNMError(f"informative_dim needs latents [M >= 2, D], got {tuple(latents.shape)}.")
    std = latents.float().std(0)
    dim = int(std.argmax())
    mu = float(latents[:, dim].float().mean())
    return dim, torch.linspace(mu - span * float(std[dim]), mu + span * float(std[dim]), steps)


@dataclass(frozen=True)
class Traversals:
    """Which dimensions the traversal pictures vary, and over which values."""

    what_dim: int
    what_values: torch.Tensor  # [V]
    global_dim: int
    global_values: torch.Tensor  # [V]


@torch.no_grad()
def choose_traversals(model, x: torch.Tensor, steps: int = 8) -> Traversals:
    """The most informative z_what dimension (over the present objects that ``decompose`` finds
    in ``x [B, C, H, W]``) and z_g dimension (over ``encode_global(x)``), each traversed over
    mean ± 2 standard deviations of its posterior means (see :func:`informative_dim`). A model
    without ``z_what`` or without ``traverse_global`` gets dimension 0 over ±2 for that part."""
    default = (0, torch.linspace(-2.0, 2.0, steps))
    what_dim, what_values = default
    if supports(model, "decompose"):
        d = model.decompose(x)
        if "z_what" in d:
            what = d["z_what"][d["presence"] > 0.5] if "presence" in d else d["z_what"]
            if len(what) < 2:  # too few objects found: use every cell's posterior mean
                what = d["z_what"].flatten(0, -2)
            what_dim, what_values = informative_dim(what, steps=steps)
    global_dim, global_values = default
    if supports(model, "traverse_global"):
        global_dim, global_values = informative_dim(model.encode_global(x), steps=steps)
    return Traversals(what_dim, what_values, global_dim, global_values)


#: every picture of :func:`all_figures` -> the model capabilities it needs
FIGURES: dict[str, tuple[str, ...]] = {
    "prior_samples": ("sample",),
    "reconstructions": ("reconstruct",),
    "decomposition": ("decompose",),
    "object_traversal_where": ("decompose", "traverse_object"),
    "object_traversal_what": ("decompose", "traverse_object"),
    "global_traversal": ("traverse_global",),
    "resample_posterior": ("resample_structure",),
    "resample_prior": ("resample_structure",),
    "component_samples": ("sample_components",),
}


def figure_plan(model) -> tuple[list[str], dict[str, str]]:
    """The pictures ``model`` can draw, and for each other one the line saying why not."""
    can, skipped = [], {}
    for name, needs in FIGURES.items():
        missing = [c for c in needs if not supports(model, c)]
        if missing:
            skipped[name] = why_not(model, missing[0])
        else:
            can.append(name)
    return can, skipped


@torch.no_grad()
def all_figures(model, x: torch.Tensor, out: str | Path, seed: int = 0,
                traversals: Traversals | None = None,
                skipped: dict[str, str] | None = None) -> dict[str, Path]:
    """Write every picture above that the model supports for inputs ``x [B, C, H, W]``
    (B >= 2) into folder ``out``; ``traversals`` defaults to :func:`choose_traversals` on ``x``.
    Returns ``{name: path}`` of the pictures written; each picture the model cannot draw goes
    into ``skipped`` (when given) as ``{name: reason}`` (see :func:`figure_plan`)."""
    out = check_writable(out)
    can, why = figure_plan(model)
    if skipped is not None:
        skipped.update(why)
    paths = {name: out / f"{name}.png" for name in can}
    t = traversals or choose_traversals(model, x)
    shifts = torch.linspace(-1.0, 1.0, 8)
    draw = {
        "prior_samples": lambda p: prior_samples(model, 64, seed, p),
        "component_samples": lambda p: component_samples(model, 8, seed, p),
        "reconstructions": lambda p: reconstructions(model, x[:16], p),
        "decomposition": lambda p: decomposition(model, x[:8], path=p),
        "object_traversal_where": lambda p: object_traversal(model, x[:1], "where", 2, shifts,
                                                             path=p),
        "object_traversal_what": lambda p: object_traversal(model, x[:1], "what", t.what_dim,
                                                            t.what_values, path=p),
        "global_traversal": lambda p: global_traversal(model, model.encode_global(x[:4]),
                                                       t.global_dim, t.global_values, p),
        "resample_posterior": lambda p: structure_resampling(
            model, model.encode_global(x[:4]), 7, seed, first=x[:4], path=p),
        "resample_prior": lambda p: structure_resampling(
            model, model.sample_global(4, generator=torch.Generator(
                device=x.device).manual_seed(seed)), 8, seed, path=p),
    }
    for name, path in paths.items():
        draw[name](path)
    return paths
