"""The Arrow Room (the paper's Sec. 4 3D dataset): scene rule, layout sampling, shading.

Rule: four objects on a grey matte floor. One is an **arrow**, the object nearest to the
camera; of the other three (spheres, cubes or cylinders) exactly two share a shape and the
remaining one, whose shape is unique, is the arrow's **target**: the arrow lies flat and points
at it. Colours are drawn independently from CLEVR's eight; one material (rubber or metal) per
image. ``data.colours`` / ``data.shapes`` (``gnm data make arrow --colours ... --shapes ...``)
narrow the palette to named colours and non-arrow shapes (:func:`choose_palette`). The
palette, camera and placement live in :mod:`gnm.data.arrow_layout` (re-exported here); this
module shades, renders, checks and annotates.

Geometry (world units; :mod:`gnm.data.raycast` has the frame and the primitives): every object
has size ``r = 0.6`` (a 1.2-unit footprint, 20-27 px at 128 px). The camera looks at the floor
point ``(0, 0.4, 0)`` from 8.6 units away at 28° elevation (±1° jitter, ±0.15 units of
target jitter), horizontal field of view 49°. The three objects stand in the far half
(``y ∈ [0.6, 3.2]``, ``|x| ≤ 2.6``) at least ``2.6 r`` apart; the arrow in the near half
(``y ∈ [−2.4, −1.2]``, ``|x| ≤ 1.6``). A layout is drawn again (a new stream of the same scene
index) until the checks of :mod:`gnm.data.arrow_checks` pass (re-exported here): every object
is seen (no object mostly hidden behind another), all lie inside the frame, the arrow is the
nearest to the camera, and its pointing is unambiguous in the picture. Scenes are versioned
(``SCENE_VERSION``, recorded in every export's manifest): version 1 had the pixel count only
(objects down to about a third visible) and no pointing margin.

Shading: one key light (direction toward it ``KEY``) with soft shadows (``shadow_samples``
jittered directions averaged), ambient light, Lambert diffuse for every surface; rubber adds a
faint broad highlight, metal a sharp Blinn-Phong highlight and a reflection of a simple
environment (floor grey below the horizon, a sky gradient above).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from gnm.data.arrow_checks import (  # noqa: F401  (the check names are this module's too)
    MIN_POINTING_GAP,
    MIN_VISIBLE,
    MIN_VISIBLE_FRACTION,
    check_layouts,
    check_scenes,
    floor_hits,
    pointing_gap,
    probe,
    seen,
    visible_inside,
)
from gnm.data.arrow_layout import (  # noqa: F401  (the layout names are this module's too)
    COLOURS,
    DISTANCE,
    ELEVATION,
    FOV,
    LOOK_AT,
    MATERIALS,
    SIZE,
    Layout,
    choose_palette,
    sample_camera,
    sample_layout,
    stack_layouts,
)
from gnm.data.raycast import ARROW, SHAPES, camera_rays, cast
from gnm.errors import GNMError

KEY = (-0.45, -0.55, 0.70)  # toward the key light (normalised below)
FLOOR_RGB = (0.50, 0.50, 0.50)
#: version of the scenes a (seed, split, index) makes; bumped whenever they change
SCENE_VERSION = 2


def _environment(r: torch.Tensor) -> torch.Tensor:
    """Colour ``[..., 3]`` a metal surface reflects along unit directions ``r [..., 3]``."""
    up = r[..., 2:3].clamp(-1, 1)
    sky = 0.55 + 0.35 * up.clamp_min(0)
    return torch.where(up > 0, sky.expand(*up.shape[:-1], 3),
                       torch.tensor(FLOOR_RGB, dtype=r.dtype) * 0.8)


def render(layout: Layout, size: int = 128, shadow_samples: int = 4,
           supersample: int = 1) -> dict[str, torch.Tensor]:
    """Render a batch: ``image [B, 3, S, S]`` float in [0, 1], the hit buffer ``ids [B, S, S]``
    (object index 0-3, −1 floor or sky) and ``depth [B, S, S]`` (ray distance, world units;
    inf for sky). With ``supersample = k`` the picture is rendered at ``k·S`` and averaged down
    (the hit buffer is the central sub-pixel's). :func:`probe` gives the hit buffer alone,
    cheaply, with what :func:`check_scenes` needs."""
    full = size * supersample
    f32 = torch.float32
    eye = torch.from_numpy(layout.eye).to(f32)
    o, v = camera_rays(eye, torch.from_numpy(layout.look_at).to(f32), FOV, full)
    kind = torch.from_numpy(layout.shape).long()
    pos, yaw = torch.from_numpy(layout.pos).to(f32), torch.from_numpy(layout.yaw).to(f32)
    r = torch.full(kind.shape, SIZE, dtype=f32)
    t_obj, ids, n_obj = cast(o, v, kind, pos, yaw, r)
    t_floor = floor_hits(o, v)
    on_obj = t_obj < t_floor
    t = torch.where(on_obj, t_obj, t_floor)
    ids = torch.where(on_obj, ids, -1)
    sky = ~torch.isfinite(t)
    normal = torch.where(on_obj[..., None], n_obj, torch.tensor([0.0, 0.0, 1.0]))
    p = o + torch.where(sky, 0.0, t)[..., None] * v
    palette = torch.tensor(list(COLOURS.values()), dtype=f32) / 255.0
    colours = palette[torch.from_numpy(layout.colour).long()]  # [B, 4, 3]
    albedo = torch.where(on_obj[..., None], colours.gather(1, ids.clamp_min(0)[..., None]
                                                           .expand(-1, -1, 3)),
                         torch.tensor(FLOOR_RGB))
    key = torch.nn.functional.normalize(torch.tensor(KEY), dim=0)
    lit = torch.zeros_like(t)
    gen = torch.Generator().manual_seed(0)  # fixed jitter: the same soft shadow every call
    start = p + 1e-3 * normal
    for _ in range(shadow_samples):
        jitter = key + 0.06 * torch.randn(3, generator=gen) if shadow_samples > 1 else key
        d = torch.nn.functional.normalize(jitter, dim=0).expand_as(v).contiguous()
        t_sh, _, _ = cast(start, d, kind, pos, yaw, r, any_hit=True)
        lit += torch.isinf(t_sh).to(f32)
    lit /= shadow_samples
    diffuse = (normal * key).sum(-1).clamp_min(0) * lit
    metal_of = torch.from_numpy(np.asarray(layout.material) == 1)
    if metal_of.ndim == 2:  # one material per object (a corrupted scene)
        metal = metal_of.gather(1, ids.clamp_min(0)) & on_obj
    else:
        metal = metal_of[:, None] & on_obj
    half = torch.nn.functional.normalize(key - v, dim=-1)
    nh = (normal * half).sum(-1).clamp_min(0)
    reflect = v - 2 * (v * normal).sum(-1, keepdim=True) * normal
    rubber_rgb = albedo * (0.32 + 0.75 * diffuse[..., None]) + (0.06 * nh ** 8 * lit)[..., None]
    metal_rgb = (albedo * (0.15 + 0.35 * diffuse[..., None]) + 0.55 * albedo * _environment(reflect)
                 + (0.9 * nh ** 80 * lit)[..., None])
    rgb = torch.where(metal[..., None], metal_rgb, rubber_rgb)
    rgb = torch.where(sky[..., None], torch.tensor([0.55, 0.55, 0.58]), rgb).clamp(0, 1)
    b = kind.shape[0]
    image = rgb.view(b, full, full, 3).permute(0, 3, 1, 2)
    ids, depth = ids.view(b, full, full), t.view(b, full, full)
    if supersample > 1:
        image = torch.nn.functional.avg_pool2d(image, supersample)
        c = supersample // 2
        ids, depth = ids[:, c::supersample, c::supersample], depth[:, c::supersample,
                                                                  c::supersample]
    return {"image": image.contiguous(), "ids": ids.contiguous(), "depth": depth.contiguous()}


def shape_names(layout: Layout) -> list[list[str]]:
    """Readable shape names ``[B][4]`` of a layout."""
    return [[SHAPES[s] for s in row] for row in layout.shape]


def _boxes(ids: torch.Tensor, k: int) -> torch.Tensor:
    """Pixel boxes ``[B, 4]`` (x0, y0, x1, y1; x1, y1 exclusive) of object ``k`` in hit
    buffers ``ids [B, S, S]``; zeros where it has no pixel."""
    m = ids == k
    rows, cols = m.any(2), m.any(1)
    s = ids.shape[-1]
    ar = torch.arange(s)
    y0 = torch.where(rows, ar, s).amin(1)
    y1 = torch.where(rows, ar + 1, 0).amax(1)
    x0 = torch.where(cols, ar, s).amin(1)
    x1 = torch.where(cols, ar + 1, 0).amax(1)
    box = torch.stack([x0, y0, x1, y1], 1)
    return torch.where(m.any((1, 2))[:, None], box, 0)


SPLITS: tuple[str, ...] = ("train", "val", "test")
_STREAM = 7  # keeps the Arrow Room's random streams apart from the MNIST datasets' codes
MAX_ATTEMPTS = 64
#: smallest image side (px) at which the objects stay about 10 px wide
MIN_PX = 48


class ArrowRoomGenerator:
    """Arrow Room scenes of one split/size/seed; ``generator.batch(indices)`` renders them.

    Scene ``i`` is a pure function of ``(seed, split, i)``: its layout comes from the numpy
    stream ``[seed, 7, split, i, attempt]``, ``attempt`` counting the layouts rejected by
    :func:`check_scenes` before it. Rendering is at ``size`` px with ``supersample``-fold
    anti-aliasing (default 2 below 128 px, else 1) and ``shadow_samples`` shadow rays.
    ``colours`` and ``shapes`` (names; empty: all) narrow what scenes draw from.
    """

    def __init__(self, split: str = "train", size: int = 128, seed: int = 0,
                 supersample: int | None = None, shadow_samples: int = 4,
                 colours: Sequence[str] = (), shapes: Sequence[str] = ()) -> None:
        from gnm.data.scenes import check_size, check_split

        self.split = check_split(split)
        self.size = check_size(size)
        if size < MIN_PX:
            raise GNMError(f"--size {size} is too small for the Arrow Room: its objects would be "
                           f"under 10 px; use --size {MIN_PX} or more (e.g. 64 or 128).")
        self.seed = int(seed)
        self.supersample = supersample or (2 if size < 128 else 1)
        self.shadow_samples = int(shadow_samples)
        self.palette = choose_palette(colours, shapes)

    def layout(self, index: int, attempt: int = 0) -> Layout:
        """The candidate layout of scene ``index`` at ``attempt``."""
        key = [self.seed, _STREAM, SPLITS.index(self.split), int(index), int(attempt)]
        return sample_layout(np.random.default_rng(key), self.palette)

    def render(self, layout: Layout) -> dict[str, torch.Tensor]:
        """:func:`render` at this generator's size and quality."""
        return render(layout, self.size, self.shadow_samples, self.supersample)

    def batch(self, indices) -> tuple[np.ndarray, list[dict]]:
        """Scenes ``indices``: images uint8 ``[B, S, S, 3]`` and their annotations."""
        indices = [int(i) for i in indices]
        if any(i < 0 for i in indices):
            raise ValueError("scene indices start at 0")
        attempt = [0] * len(indices)
        done: dict[int, tuple[Layout, dict[str, torch.Tensor]]] = {}
        todo = list(range(len(indices)))
        while todo:  # reject on the layout, then on a hit buffer, then shade the kept ones
            lay = stack_layouts([self.layout(indices[j], attempt[j]) for j in todo])
            ok = check_layouts(lay)
            rays = np.flatnonzero(ok)
            if len(rays):
                picked = stack_layouts([_row(lay, row) for row in rays])
                ok[rays] = check_scenes(picked, probe(picked, self.size, self.supersample))
            keep, left = [], []
            for row, j in enumerate(todo):
                if ok[row] or attempt[j] + 1 >= MAX_ATTEMPTS:
                    keep.append(row)
                else:
                    attempt[j] += 1
                    left.append(j)
            if keep:
                kept = stack_layouts([_row(lay, row) for row in keep])
                out = self.render(kept)
                for n, row in enumerate(keep):
                    done[todo[row]] = (_row(kept, n), {k: v[n:n + 1] for k, v in out.items()})
            todo = left
        images, notes = [], []
        for j, i in enumerate(indices):
            lay, out = done[j]
            images.append((out["image"][0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8))
            notes.append(annotate(i, self.split, lay, out, attempt[j]))
        return np.stack(images), notes

    def __getitem__(self, index: int):
        images, notes = self.batch([index])
        return images[0], notes[0]


def _row(layout: Layout, row: int) -> Layout:
    return Layout(*(getattr(layout, f)[row:row + 1] for f in Layout.__dataclass_fields__))


def pointed_at(pos: np.ndarray, yaw: np.ndarray, shapes: list[int]) -> int:
    """Index of the object the first arrow points at: the one whose floor direction from the
    arrow ``pos [K, 2]`` makes the smallest angle with the arrow's yaw; −1 without an arrow."""
    arrows = [k for k, s in enumerate(shapes) if s == ARROW]
    if not arrows:
        return -1
    a = arrows[0]
    best, best_angle = -1, math.inf
    for k in range(len(shapes)):
        if k != a:
            dx, dy = pos[k] - pos[a]
            angle = abs(math.remainder(math.atan2(dy, dx) - yaw[a], 2 * math.pi))
            if angle < best_angle:
                best, best_angle = k, angle
    return best


def rule_verdict(shapes: list, target: int, depth: list[float], materials: list[str]) -> str:
    """The Arrow Room rule on a scene's objects: ``"ok"`` or the first failure, one of
    ``wrong_count`` (not four objects), ``arrows`` (not exactly one arrow), ``arrow_not_nearest``,
    ``no_pair`` (the other three have no shape in common), ``three_alike``, ``wrong_target``
    (the arrow points at an object whose shape is not the unique one), ``mixed_materials``.
    ``shapes``: per object a shape index or name; ``target``: the object the arrow points at;
    ``depth``: per object its distance to the camera."""
    names = [s if isinstance(s, str) else SHAPES[s] for s in shapes]
    if len(names) != 4:
        return "wrong_count"
    arrows = [k for k, s in enumerate(names) if s == "arrow"]
    if len(arrows) != 1:
        return "arrows"
    a = arrows[0]
    if int(np.argmin(depth)) != a:
        return "arrow_not_nearest"
    others = [s for k, s in enumerate(names) if k != a]
    kinds = len(set(others))
    if kinds == 3:
        return "no_pair"
    if kinds == 1:
        return "three_alike"
    if target < 0 or names.count(names[target]) != 1:
        return "wrong_target"
    if len(set(materials)) != 1:
        return "mixed_materials"
    return "ok"


def annotate(index: int, split: str, layout: Layout, out: dict[str, torch.Tensor],
             attempts: int = 0) -> dict:
    """Ground truth of a one-scene batch from its layout and hit buffer: per object its box
    (px), visible pixel count, shape, colour, centre distance to the camera (world units),
    and the scene's material, target and whether the rule holds."""
    keep = [k for k, v in enumerate(layout.shape[0].tolist()) if v >= 0]  # −1: no object
    boxes = [_boxes(out["ids"], k)[0].tolist() for k in keep]
    pixels = [int((out["ids"][0] == k).sum()) for k in keep]
    centre = np.concatenate([layout.pos[0, keep], np.full((len(keep), 1), SIZE)], -1)
    depth = np.linalg.norm(centre - layout.eye[0], axis=-1)
    shapes = [int(layout.shape[0, k]) for k in keep]
    mat = np.asarray(layout.material[0]).reshape(-1)
    materials = [MATERIALS[int(m)] for m in (mat[keep] if mat.size > 1
                                             else np.repeat(mat, len(keep)))]
    verdict = rule_verdict(shapes, pointed_at(layout.pos[0, keep], layout.yaw[0, keep], shapes),
                           depth.tolist(), materials)
    colour_names = list(COLOURS)
    return {"index": int(index), "dataset": "arrow", "split": split, "rule": "arrow",
            "boxes": boxes, "classes": shapes, "quadrants": [-1] * len(keep), "pixels": pixels,
            "shapes": [SHAPES[s] for s in shapes],
            "colours": [colour_names[int(layout.colour[0, k])] for k in keep],
            "material": materials[0] if len(set(materials)) == 1 else "mixed",
            "materials": materials, "target": int(layout.target[0]),
            "depth": [round(float(d), 4) for d in depth], "yaw": layout.yaw[0, keep].tolist(),
            "positions": layout.pos[0, keep].tolist(), "rule_holds": verdict == "ok",
            "verdict": verdict,
            "attempts": int(attempts)}


def scene_record(note: dict) -> dict:
    """One scene of the interface contract's ``annotations.json`` (shared/DESIGN.md) from an
    :func:`annotate` dict: ``{"objects": [{"shape", "colour", "material", "depth", "box",
    "pixels", "position", "yaw"}, ...], "target": index into the non-arrow objects in their
    listed order (−1: none), "index", "split", "material", "rule_holds", "verdict"}``."""
    keys = ("shapes", "colours", "materials", "depth", "boxes", "pixels", "positions", "yaw")
    names = ("shape", "colour", "material", "depth", "box", "pixels", "position", "yaw")
    objects = [dict(zip(names, values, strict=True))
               for values in zip(*(note[k] for k in keys), strict=True)]
    others = [k for k, s in enumerate(note["shapes"]) if s != "arrow"]
    target = others.index(note["target"]) if note["target"] in others else -1
    return {"objects": objects, "target": target,
            **{k: note[k] for k in ("index", "split", "material", "rule_holds", "verdict")}}


class ArrowRoomDataset(torch.utils.data.Dataset):
    """On-the-fly Arrow Room scenes (map-style; any index is valid, ``length`` bounds a
    sampler). Items: ``image`` float32 ``[3, S, S]`` in [0, 1] plus the padded targets of
    :func:`gnm.data.scenes.target_tensors` (classes: shape indices). Rendering one scene per
    item is slow; :meth:`batch_items` renders many at once."""

    def __init__(self, split: str = "train", size: int = 128, seed: int = 0,
                 length: int = 1_000_000, colours: Sequence[str] = (),
                 shapes: Sequence[str] = ()) -> None:
        self.generator = ArrowRoomGenerator(split, size, seed, colours=colours, shapes=shapes)
        self.length = int(length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.batch_items([index])[0]

    def batch_items(self, indices) -> list[dict[str, torch.Tensor]]:
        from gnm.data.scenes import target_tensors

        images, notes = self.generator.batch(indices)
        return [{"image": torch.from_numpy(im).permute(2, 0, 1).float().div_(255.0),
                 **target_tensors(a)} for im, a in zip(images, notes, strict=True)]


def _build(data, split: str, seed: int, mnist=None) -> ArrowRoomDataset:
    """The registry's builder of ``arrow`` (``mnist`` is unused)."""
    return ArrowRoomDataset(split, data.size, seed, colours=data.colours, shapes=data.shapes)


def _register() -> None:
    from gnm.data.registry import register_dataset

    register_dataset("arrow", _build, channels=3, options=("colours", "shapes"),
                     version=SCENE_VERSION)


_register()
