"""Image grids saved as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gnm.io import atomic_write


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images ``[N, C, H, W]`` floats in [0, 1] (tensor or array) -> uint8 ``[N, H, W, C]``.

    uint8 arrays ``[N, H, W, C]`` or ``[N, H, W]`` pass through (the latter gains C=1).
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images[..., None] if images.ndim == 3 else images
    return (np.clip(images, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)


def make_grid(images: torch.Tensor | np.ndarray, nrow: int | None = None, pad: int = 2,
              pad_value: int = 128) -> np.ndarray:
    """Tile ``N`` images into one uint8 ``[H', W', C]`` picture, ``nrow`` images per row.

    ``images``: ``[N, C, H, W]`` floats in [0, 1], or uint8 ``[N, H, W(, C)]``. ``pad`` pixels of
    ``pad_value`` separate the tiles. ``nrow`` defaults to ``ceil(sqrt(N))``.
    """
    imgs = to_uint8(images)
    n, h, w, c = imgs.shape
    if n == 0:
        raise ValueError("make_grid needs at least one image")
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), pad_value, np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + q * (w + pad)
        grid[y:y + h, x:x + w] = imgs[i]
    return grid


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write a uint8 ``[H, W, C]`` (C = 1 or 3) or ``[H, W]`` picture as PNG, atomically."""
    arr = image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image
    atomic_write(path, lambda p: Image.fromarray(arr).save(p, format="PNG"))
