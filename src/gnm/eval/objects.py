"""Find digit-like objects in a scene image: connected components, fragment merging, splitting.

Works at the reference scale of 128 px (callers resize first, :func:`to_reference_scale`), where
an MNIST digit's ink is at most 20×20 px. Steps, with the tolerances as module constants:

1. ink = pixels >= :data:`INK`; 8-connected components (``scipy.ndimage.label``);
   components below :data:`SPECK_AREA` pixels are dropped as specks.
2. **split**: a component wider or taller than :data:`SPLIT_EXTENT` px holds touching digits;
   it is split by 2-means on its pixel coordinates (farthest-point initialisation), recursively.
3. **merge**: fragments of one digit (broken strokes) are merged while two objects are within
   :data:`MERGE_GAP` px of each other and their union still fits a digit
   (:data:`MERGE_EXTENT` px in both directions), closest pairs first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

REFERENCE_SIZE = 128
INK = 0.3
SPECK_AREA = 4
SPLIT_EXTENT = 25
MERGE_GAP = 5
MERGE_EXTENT = 22
_EIGHT = np.ones((3, 3), bool)


@dataclass
class Found:
    """One object: pixel coordinates ``ys, xs`` of its ink (128-px frame) and their weights."""

    ys: np.ndarray
    xs: np.ndarray
    w: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in pixels, exclusive ends."""
        xs, ys = self.xs, self.ys
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    @property
    def centroid(self) -> tuple[float, float]:
        """Intensity-weighted centre ``(x, y)`` in pixel-centre coordinates (pixel i = i + 0.5)."""
        total = self.w.sum()
        cx = float((self.w * self.xs).sum() / total) + 0.5
        return cx, float((self.w * self.ys).sum() / total) + 0.5

    @property
    def area(self) -> int:
        return len(self.xs)


def to_reference_scale(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Images ``[N, H, W]``, ``[N, 1, H, W]`` or ``[N, H, W, 1]`` (uint8 or floats in [0, 1])
    -> float32 ``[N, 128, 128]`` in [0, 1] (bilinear resize when ``H != 128``)."""
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    x = x.float()
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.mean(1)
    elif x.ndim == 4:
        x = x.mean(-1)
    if x.ndim != 3 or x.shape[1] != x.shape[2]:
        raise ValueError(f"expected square images [N, H, W(, C)], got shape {tuple(x.shape)}")
    if x.shape[-1] != REFERENCE_SIZE:
        x = F.interpolate(x[:, None], size=(REFERENCE_SIZE, REFERENCE_SIZE), mode="bilinear",
                          align_corners=False, antialias=x.shape[-1] > REFERENCE_SIZE)[:, 0]
    return x.clamp(0, 1).numpy()


def _extent(o: Found) -> tuple[int, int]:
    x0, y0, x1, y1 = o.box
    return x1 - x0, y1 - y0


def _split(o: Found, depth: int = 0) -> list[Found]:
    w, h = _extent(o)
    if (w <= SPLIT_EXTENT and h <= SPLIT_EXTENT) or depth >= 3 or o.area < 2 * SPECK_AREA:
        return [o]
    pts = np.stack([o.xs, o.ys], 1).astype(np.float64)
    a = pts[np.argmax(((pts - pts.mean(0)) ** 2).sum(1))]
    b = pts[np.argmax(((pts - a) ** 2).sum(1))]
    centres = np.stack([a, b])
    for _ in range(20):
        d = ((pts[:, None, :] - centres[None]) ** 2).sum(-1)
        assign = d.argmin(1)
        if (assign == 0).all() or (assign == 1).all():
            return [o]
        new = np.stack([np.average(pts[assign == k], 0, o.w[assign == k]) for k in (0, 1)])
        if np.allclose(new, centres):
            break
        centres = new
    parts = [Found(o.ys[assign == k], o.xs[assign == k], o.w[assign == k]) for k in (0, 1)]
    return [q for p in parts for q in _split(p, depth + 1)]


def _gap(a: Found, b: Found) -> float:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    gx = max(0, max(ax0, bx0) - min(ax1, bx1))
    gy = max(0, max(ay0, by0) - min(ay1, by1))
    return float(max(gx, gy))


def _union(a: Found, b: Found) -> Found:
    return Found(np.concatenate([a.ys, b.ys]), np.concatenate([a.xs, b.xs]),
                 np.concatenate([a.w, b.w]))


def _merge(objs: list[Found]) -> list[Found]:
    while len(objs) > 1:
        best = None
        for i in range(len(objs)):
            for j in range(i + 1, len(objs)):
                g = _gap(objs[i], objs[j])
                if g > MERGE_GAP:
                    continue
                u = _union(objs[i], objs[j])
                w, h = _extent(u)
                if w <= MERGE_EXTENT and h <= MERGE_EXTENT and (best is None or g < best[0]):
                    best = (g, i, j, u)
        if best is None:
            break
        _, i, j, u = best
        objs = [o for k, o in enumerate(objs) if k not in (i, j)] + [u]
    return objs


def find_objects(image: np.ndarray) -> list[Found]:
    """Objects in one float ``[128, 128]`` image in [0, 1], sorted top-to-bottom, left-to-right."""
    labels, n = ndimage.label(image >= INK, structure=_EIGHT)
    objs = []
    if n:
        ys, xs = np.nonzero(labels)
        lab = labels[ys, xs]
        order = np.argsort(lab, kind="stable")
        ys, xs, lab = ys[order], xs[order], lab[order]
        bounds = np.searchsorted(lab, np.arange(1, n + 2))
        for k in range(n):
            sl = slice(bounds[k], bounds[k + 1])
            if bounds[k + 1] - bounds[k] >= SPECK_AREA:
                objs.extend(_split(Found(ys[sl], xs[sl], image[ys[sl], xs[sl]])))
    objs = _merge(objs)
    objs.sort(key=lambda o: (o.box[1] // 8, o.box[0]))
    return objs


def crop_object(image: np.ndarray, obj: Found, size: int = 28) -> np.ndarray:
    """The object's ink alone (other objects masked out) in a ``size``² window centred on its
    centroid, as float32 ``[size, size]`` — the framing of an MNIST field (mass-centred)."""
    canvas = np.zeros_like(image)
    canvas[obj.ys, obj.xs] = image[obj.ys, obj.xs]
    # Keep faint anti-aliased pixels next to the object's ink (below the INK threshold).
    near = ndimage.binary_dilation(canvas > 0, structure=_EIGHT, iterations=1)
    faint = near & (image < INK)
    canvas[faint] = image[faint]
    cx, cy = obj.centroid
    x0, y0 = int(round(cx - size / 2)), int(round(cy - size / 2))
    out = np.zeros((size, size), np.float32)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, image.shape[1]), min(y0 + size, image.shape[0])
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = canvas[sy0:sy1, sx0:sx1]
    return out
