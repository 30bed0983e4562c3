"""A small batched ray caster for the Arrow Room (issue 25): analytic primitives, torch only.

World frame: the floor is the plane ``z = 0``, ``z`` points up, the camera looks roughly along
``+y``. Every object stands on the floor at ``(x, y)`` with a yaw ``ψ`` about ``z`` and a size
``r`` (half its footprint). In the object's local frame (``p_l = R(−ψ)(p − (x, y, 0))``):

* sphere:    ``|p_l − (0, 0, r)| ≤ r``
* cube:      ``|x_l|, |y_l| ≤ r, 0 ≤ z_l ≤ 2r``
* cylinder:  ``x_l² + y_l² ≤ r², 0 ≤ z_l ≤ 2r``
* arrow:     a flat block arrow pointing along ``+x_l``, height ``0.5r``: the shaft
  ``x_l ∈ [−1.2r, 0.2r], |y_l| ≤ 0.35r`` plus the head, the triangle
  ``(0.2r, ±0.9r), (1.2r, 0)``, both extruded over ``0 ≤ z_l ≤ 0.5r``.

Cube, shaft and head are convex polytopes ``{p : n_i · p ≤ d_i}``; a ray ``o + t·v`` meets one
on ``[max_{n_i·v<0} t_i, min_{n_i·v>0} t_i]`` with ``t_i = (d_i − n_i·o) / (n_i·v)`` (slabs,
Kay & Kajiya), the entry normal being the ``n_i`` of the maximum. A sphere solves
``|o + t v − c|² = r²``; a cylinder intersects the interval of the infinite cylinder with the
slab ``0 ≤ z ≤ 2r``. Rays first meet each object's bounding sphere; only rays that do are cast
exactly (culling), so the cost grows with the pixels an object covers, not the image.

:func:`cast` returns, per ray, the nearest hit distance, the hit's object index (−1: none)
and its world normal; :func:`camera_rays` builds the primary rays of a pinhole camera.
"""

from __future__ import annotations

import math

import torch

#: shape indices (the dataset's class labels)
SHAPES: tuple[str, ...] = ("sphere", "cube", "cylinder", "arrow")
SPHERE, CUBE, CYLINDER, ARROW = range(4)
#: arrow geometry in units of r: shaft x range, shaft half-width, head half-width, tip, height
ARROW_TAIL, ARROW_NECK, ARROW_SHAFT, ARROW_HEAD, ARROW_TIP, ARROW_HEIGHT = (
    -1.2, 0.2, 0.35, 0.9, 1.2, 0.5)
_EPS = 1e-4
_INF = float("inf")


def _camera_frame(eye: torch.Tensor, target: torch.Tensor, fov_deg: float):
    """The pinhole camera's unit forward, right and up vectors ``[B, 3]`` (the world's ``z`` is
    up) and ``tan(fov / 2)``, shared by :func:`camera_rays` and :func:`project`."""
    fwd = torch.nn.functional.normalize(target - eye, dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype).expand_as(fwd)
    right = torch.nn.functional.normalize(torch.cross(fwd, up, dim=-1), dim=-1)
    return fwd, right, torch.cross(right, fwd, dim=-1), math.tan(math.radians(fov_deg) / 2)


def camera_rays(eye: torch.Tensor, target: torch.Tensor, fov_deg: float,
                size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Primary rays of square pinhole cameras: ``eye``, ``target`` ``[B, 3]`` (world units),
    horizontal (= vertical) field of view ``fov_deg`` degrees, ``size`` × ``size`` pixels.
    Returns origins and unit directions ``[B, size·size, 3]`` in row-major pixel order (row 0
    is the top of the image), each through its pixel's centre."""
    fwd, right, cam_up, half = _camera_frame(eye, target, fov_deg)
    c = (torch.arange(size, dtype=eye.dtype) + 0.5) / size * 2 - 1  # pixel centres in [-1, 1]
    v, u = torch.meshgrid(-c, c, indexing="ij")  # v: up is +, row 0 at the top
    d = (fwd[:, None, :] + half * u.reshape(1, -1, 1) * right[:, None, :]
         + half * v.reshape(1, -1, 1) * cam_up[:, None, :])
    d = torch.nn.functional.normalize(d, dim=-1)
    return eye[:, None, :].expand_as(d).contiguous(), d


def project(points: torch.Tensor, eye: torch.Tensor, target: torch.Tensor, fov_deg: float,
            size: int) -> torch.Tensor:
    """Pixel coordinates ``[B, K, 2]`` (column, row; continuous, pixel ``(i, j)`` spans
    ``[i, i + 1)``) of world points ``points [B, K, 3]`` seen by the cameras of
    :func:`camera_rays` (``eye``, ``target`` ``[B, 3]``): the inverse of the ray through a
    pixel. ``u = (p − e)·right / ((p − e)·fwd) / tan(fov/2)`` and ``col = (u + 1)/2 · size``;
    rows count down from the top, ``row = (1 − v)/2 · size``. Points behind the camera are
    not meaningful."""
    fwd, right, cam_up, half = _camera_frame(eye, target, fov_deg)
    rel = points - eye[:, None, :]
    depth = (rel * fwd[:, None, :]).sum(-1)
    u = (rel * right[:, None, :]).sum(-1) / depth / half
    v = (rel * cam_up[:, None, :]).sum(-1) / depth / half
    return torch.stack([(u + 1) / 2 * size, (1 - v) / 2 * size], -1)


def _polytope_planes(kind: int, r: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Convex pieces of a cube or arrow in its local frame: per piece normals ``[N, 6, 3]``
    and offsets ``[N, 6]`` (inside: ``n · p ≤ d``), for sizes ``r [N]``."""
    ex, ey, ez = torch.eye(3, dtype=r.dtype)

    def piece(normals: list[torch.Tensor], offsets: list[torch.Tensor]):
        return (torch.stack(normals).expand(len(r), -1, -1), torch.stack(offsets, dim=1))

    if kind == CUBE:
        return [piece([ex, -ex, ey, -ey, ez, -ez], [r, r, r, r, 2 * r, 0 * r])]
    h = ARROW_HEIGHT * r
    shaft = piece([ex, -ex, ey, -ey, ez, -ez],
                  [ARROW_NECK * r, -ARROW_TAIL * r, ARROW_SHAFT * r, ARROW_SHAFT * r, h, 0 * r])
    # head: x >= neck and the two edges from (neck, ±head) to (tip, 0)
    dx, dy = ARROW_TIP - ARROW_NECK, ARROW_HEAD
    norm = math.hypot(dx, dy)
    e1 = torch.tensor([dy / norm, dx / norm, 0.0], dtype=r.dtype)
    e2 = torch.tensor([dy / norm, -dx / norm, 0.0], dtype=r.dtype)
    off = ARROW_TIP * dy / norm * r  # both edges pass through the tip (tip·r, 0)
    head = piece([-ex, e1, e2, ez, -ez, -ex], [-ARROW_NECK * r, off, off, h, 0 * r,
                                               -ARROW_NECK * r])
    return [shaft, head]


def _hit_polytope(o: torch.Tensor, v: torch.Tensor, normals: torch.Tensor,
                  offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry distance ``[N]`` (inf: miss) and entry normal ``[N, 3]`` of rays ``o, v [N, 3]``
    against convex polytopes ``normals [N, P, 3]``, ``offsets [N, P]``."""
    nv = (normals * v[:, None, :]).sum(-1)
    t = (offsets - (normals * o[:, None, :]).sum(-1)) / torch.where(nv == 0, 1e-12, nv)
    entering = nv < 0
    t_in, which = torch.where(entering, t, -_INF).max(1)
    t_out = torch.where(nv > 0, t, _INF).amin(1)
    outside_parallel = ((nv == 0) & (offsets - (normals * o[:, None, :]).sum(-1) < 0)).any(1)
    hit = (t_in <= t_out) & (t_out > _EPS) & (t_in > _EPS) & ~outside_parallel
    n = normals.gather(1, which[:, None, None].expand(-1, 1, 3))[:, 0]
    return torch.where(hit, t_in, _INF), n


def _hit_sphere(o: torch.Tensor, v: torch.Tensor, r: torch.Tensor):
    c = torch.zeros_like(o)
    c[:, 2] = r
    oc = o - c
    b = (oc * v).sum(-1)
    disc = b * b - ((oc * oc).sum(-1) - r * r)
    t = -b - disc.clamp_min(0).sqrt()
    hit = (disc >= 0) & (t > _EPS)
    n = torch.nn.functional.normalize(oc + t[:, None] * v, dim=-1)
    return torch.where(hit, t, _INF), n


def _hit_cylinder(o: torch.Tensor, v: torch.Tensor, r: torch.Tensor):
    a = v[:, 0] ** 2 + v[:, 1] ** 2
    b = o[:, 0] * v[:, 0] + o[:, 1] * v[:, 1]
    c = o[:, 0] ** 2 + o[:, 1] ** 2 - r * r
    disc = b * b - a * c
    root = disc.clamp_min(0).sqrt()
    a_safe = torch.where(a < 1e-12, 1.0, a)
    side_in, side_out = (-b - root) / a_safe, (-b + root) / a_safe
    vertical = a < 1e-12  # a ray parallel to the axis: inside the disc or never
    side_in = torch.where(vertical, torch.where(c <= 0, -_INF, _INF), side_in)
    side_out = torch.where(vertical, torch.where(c <= 0, _INF, -_INF), side_out)
    vz = torch.where(v[:, 2] == 0, 1e-12, v[:, 2])
    t0, t1 = (0 - o[:, 2]) / vz, (2 * r - o[:, 2]) / vz
    slab_in, slab_out = torch.minimum(t0, t1), torch.maximum(t0, t1)
    t_in, t_out = torch.maximum(side_in, slab_in), torch.minimum(side_out, slab_out)
    hit = (disc >= 0) & (t_in <= t_out) & (t_in > _EPS)
    p = o + t_in[:, None] * v
    radial = torch.nn.functional.normalize(p * torch.tensor([1.0, 1.0, 0.0]), dim=-1)
    cap = torch.zeros_like(p)
    cap[:, 2] = torch.where(v[:, 2] < 0, 1.0, -1.0)
    n = torch.where((slab_in >= side_in)[:, None], cap, radial)
    return torch.where(hit, t_in, _INF), n


def bounding_spheres(kind: torch.Tensor, pos: torch.Tensor, r: torch.Tensor):
    """Centres ``[..., 3]`` and radii ``[...]`` of spheres that contain each object."""
    zc = torch.where(kind == ARROW, ARROW_HEIGHT * r / 2, r)
    rad = torch.where(kind == SPHERE, r, torch.where(kind == ARROW, 1.22 * r, 1.7321 * r))
    return torch.cat([pos, zc[..., None]], -1), rad * 1.001


def hit_local(kind: int, o: torch.Tensor, v: torch.Tensor, r: torch.Tensor):
    """Entry distance ``[N]`` and local normal ``[N, 3]`` of rays in object-local frames."""
    if kind == SPHERE:
        return _hit_sphere(o, v, r)
    if kind == CYLINDER:
        return _hit_cylinder(o, v, r)
    best_t, best_n = torch.full_like(r, _INF), torch.zeros_like(o)
    for normals, offsets in _polytope_planes(kind, r):
        t, n = _hit_polytope(o, v, normals, offsets)
        closer = t < best_t
        best_t, best_n = torch.where(closer, t, best_t), torch.where(closer[:, None], n, best_n)
    return best_t, best_n


def _rotate(p: torch.Tensor, c: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """Points/vectors ``p [N, 3]`` rotated about ``z`` by the angle with cosine ``c`` and
    sine ``s`` ``[N]``."""
    return torch.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], 1)


def cast(o: torch.Tensor, v: torch.Tensor, kind: torch.Tensor, pos: torch.Tensor,
         yaw: torch.Tensor, r: torch.Tensor, any_hit: bool = False):
    """Cast rays ``o, v [B, R, 3]`` (unit ``v``) at the objects of each scene: ``kind [B, K]``
    (shape indices, −1: no object), floor positions ``pos [B, K, 2]``, yaws ``yaw [B, K]``
    (radians) and sizes ``r [B, K]`` (world units).

    Returns the nearest hit distance ``t [B, R]`` (inf: no object), the object index
    ``[B, R]`` (−1: none) and the world normal at the hit ``[B, R, 3]``. ``any_hit=True``
    (shadow rays) may skip the normals, which are then zeros.
    """
    b, rays, _ = o.shape
    best_t = torch.full((b, rays), _INF, dtype=o.dtype)
    best_k = torch.full((b, rays), -1, dtype=torch.long)
    best_n = torch.zeros_like(o)
    centres, radii = bounding_spheres(kind, pos, r)
    for k in range(kind.shape[1]):
        oc = o - centres[:, k, None, :]
        bb = (oc * v).sum(-1)
        disc = bb * bb - ((oc * oc).sum(-1) - radii[:, k, None] ** 2)
        cand = (disc > 0) & (-bb + disc.clamp_min(0).sqrt() > _EPS) & (kind[:, k, None] >= 0)
        bi, ri = cand.nonzero(as_tuple=True)
        if bi.numel() == 0:
            continue
        cy, sy = torch.cos(yaw[bi, k]), torch.sin(yaw[bi, k])
        rel = o[bi, ri] - torch.cat([pos[bi, k], torch.zeros_like(bi[:, None], dtype=o.dtype)], 1)
        dv = v[bi, ri]

        lo, lv = _rotate(rel, cy, -sy), _rotate(dv, cy, -sy)
        t = torch.full((bi.numel(),), _INF, dtype=o.dtype)
        n = torch.zeros(bi.numel(), 3, dtype=o.dtype)
        kinds = kind[bi, k]
        for kv in range(len(SHAPES)):
            sel = (kinds == kv).nonzero(as_tuple=True)[0]
            if sel.numel():
                t[sel], n[sel] = hit_local(kv, lo[sel], lv[sel], r[bi[sel], k])
        closer = t < best_t[bi, ri]
        bi, ri, t, n = bi[closer], ri[closer], t[closer], n[closer]
        best_t[bi, ri], best_k[bi, ri] = t, k
        if not any_hit:
            c, s = cy[closer], sy[closer]
            best_n[bi, ri] = _rotate(n, c, s)
    return best_t, best_k, best_n
