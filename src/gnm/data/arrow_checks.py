"""The Arrow Room's scene checks: which layouts make usable scenes (scene version 2).

A layout of :mod:`gnm.data.arrow_room` is kept only if

* the arrow (object 0) is the nearest object to the camera and its pointing is clear: seen from
  the arrow's floor point, every other object's floor point lies at least
  ``MIN_POINTING_GAP`` degrees off the target's in the image (:func:`pointing_gap`), so a viewer
  or a judge can tell which object it points at (:func:`check_layouts`: no rays needed);
* every object is seen (:func:`seen`): at least ``MIN_VISIBLE`` pixels at 128 px (scaled by
  (size / 128)²) and at least ``MIN_VISIBLE_FRACTION`` of the pixels it would cover alone, so
  no object is mostly hidden behind another, and none touches the border
  (:func:`visible_inside`, on the hit buffer of :func:`probe`, which casts no shadows and
  shades nothing). :func:`check_scenes` is both.

Scene version 1 had only the pixel count (objects down to about a third visible) and no
pointing margin.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gnm.data.arrow_layout import FOV, SIZE, Layout
from gnm.data.raycast import camera_rays, cast, project

#: least visible pixels per object at 128 px (scaled by (size / 128)² at other sizes)
MIN_VISIBLE = 90
#: least share of an object's unoccluded pixels that must be visible (scene version 2)
MIN_VISIBLE_FRACTION = 0.7
#: least angle (degrees, in the image) between the target and any other object, seen from the
#: arrow (scene version 2)
MIN_POINTING_GAP = 15.0


def floor_hits(o: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``[B, R]`` distance along rays ``o, v [B, R, 3]`` to the floor plane z = 0 (inf for rays
    that do not descend)."""
    return torch.where(v[..., 2] < 0, -o[..., 2] / v[..., 2].clamp(max=-1e-9), math.inf)


def _subpixel(t: torch.Tensor, full: int, supersample: int) -> torch.Tensor:
    """The hit buffer's rays ``[B, S², 3]`` (each pixel's central sub-pixel) of rays ``t
    [B, full², 3]``."""
    b, c = t.shape[0], supersample // 2
    return t.view(b, full, full, 3)[:, c::supersample, c::supersample].reshape(b, -1, 3)


def _alone(o: torch.Tensor, v: torch.Tensor, kind: torch.Tensor, pos: torch.Tensor,
           yaw: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``[B, K]`` pixels each object covers when cast alone along rays ``o, v [B, R, 3]``."""
    t_floor = floor_hits(o, v)
    counts = []
    for k in range(kind.shape[1]):
        one = slice(k, k + 1)
        t, _, _ = cast(o, v, kind[:, one], pos[:, one], yaw[:, one], r[:, one], any_hit=True)
        counts.append((t < t_floor).sum(1))
    return torch.stack(counts, 1)


def probe(layout: Layout, size: int = 128, supersample: int = 1) -> dict[str, torch.Tensor]:
    """What :func:`check_scenes` reads, without shading: the hit buffer ``ids [B, S, S]``
    (equal to :func:`render`'s at the same size and supersampling: only its rays are cast, no
    shadows) and ``alone [B, K]``, the hit-buffer pixels each object slot would cover with no
    other object in the scene; so layouts can be rejected before they are rendered."""
    full = size * supersample
    f32 = torch.float32
    o, v = camera_rays(torch.from_numpy(layout.eye).to(f32),
                       torch.from_numpy(layout.look_at).to(f32), FOV, full)
    o, v = _subpixel(o, full, supersample), _subpixel(v, full, supersample)
    kind = torch.from_numpy(layout.shape).long()
    pos, yaw = torch.from_numpy(layout.pos).to(f32), torch.from_numpy(layout.yaw).to(f32)
    r = torch.full(kind.shape, SIZE, dtype=f32)
    t_obj, ids, _ = cast(o, v, kind, pos, yaw, r, any_hit=True)
    t_floor = floor_hits(o, v)
    ids = torch.where(t_obj < t_floor, ids, -1).view(-1, size, size)
    return {"ids": ids, "alone": _alone(o, v, kind, pos, yaw, r)}


def seen(ids: torch.Tensor, alone: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: every present object (``present [B, K]`` bool) of hit buffers ``ids
    [B, S, S]`` shows at least ``MIN_VISIBLE`` pixels (scaled by (S / 128)²) and at least
    ``MIN_VISIBLE_FRACTION`` of the ``alone [B, K]`` pixels it covers unoccluded."""
    s = ids.shape[-1]
    visible = torch.stack([(ids == k).sum((1, 2)) for k in range(alone.shape[1])], 1)
    enough = (visible >= MIN_VISIBLE * (s / 128) ** 2) & (visible >= MIN_VISIBLE_FRACTION * alone)
    return (enough | ~present).all(1)


def visible_inside(layout: Layout, out: dict[str, torch.Tensor]) -> np.ndarray:
    """``[B]`` bool: every object of ``layout`` is :func:`seen` (enough of it visible) and none
    touches the image border, read from ``out``'s ``ids`` and ``alone`` (:func:`probe`)."""
    ids = out["ids"]
    visible = seen(ids, out["alone"], torch.from_numpy(layout.shape >= 0))
    border = torch.cat([ids[:, 0], ids[:, -1], ids[:, :, 0], ids[:, :, -1]], 1)
    return (visible & ~(border >= 0).any(1)).numpy()


def check_scenes(layout: Layout, out: dict[str, torch.Tensor]) -> np.ndarray:
    """Which scenes are usable ``[B]`` bool: :func:`check_layouts` and :func:`visible_inside`
    (``out``: :func:`probe`'s)."""
    return visible_inside(layout, out) & check_layouts(layout)


def check_layouts(layout: Layout) -> np.ndarray:
    """``[B]`` bool, from the layout alone (no rays): the arrow (object 0) is the nearest object
    to the camera and its pointing is clear (:func:`pointing_gap` ≥ ``MIN_POINTING_GAP``)."""
    centre = np.concatenate([layout.pos, np.full(layout.pos.shape[:2] + (1,), SIZE)], -1)
    dist = np.linalg.norm(centre - layout.eye[:, None], axis=-1)
    dist = np.where(layout.shape >= 0, dist, np.inf)
    return (dist.argmin(1) == 0) & (pointing_gap(layout) >= MIN_POINTING_GAP)


def pointing_gap(layout: Layout) -> np.ndarray:
    """``[B]`` degrees: the smallest image angle, at the arrow's (object 0's) floor point,
    between the direction to the target's floor point and the direction to any other
    object's (the floor points projected by the layout's camera, as
    :func:`gnm.data.raycast.project`). 180 where the scene has no other object."""
    f32 = torch.float32
    ground = torch.nn.functional.pad(torch.from_numpy(layout.pos).to(f32), (0, 1))
    px = project(ground, torch.from_numpy(layout.eye).to(f32),
                 torch.from_numpy(layout.look_at).to(f32), FOV, 128).numpy()  # [B, K, 2]
    rel = px[:, 1:] - px[:, :1]
    ang = np.arctan2(rel[..., 1], rel[..., 0])  # [B, K-1]
    target = np.asarray(layout.target).reshape(-1) - 1
    to_target = np.take_along_axis(ang, target[:, None], 1)
    diff = np.degrees(np.abs((ang - to_target + np.pi) % (2 * np.pi) - np.pi))
    present = np.asarray(layout.shape)[:, 1:] >= 0
    others = present & (np.arange(ang.shape[1])[None] != target[:, None])
    return np.where(others, diff, 180.0).min(1)
