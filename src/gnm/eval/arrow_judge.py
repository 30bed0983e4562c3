"""The Arrow Room's S-Acc judge: read each object with :class:`~gnm.eval.arrow_net.ArrowNet`,
then check the rule of :func:`gnm.data.arrow_room.rule_verdict`.

Per image (resized to 64 px): object *anchors* are the local maxima of the net's anchor heat
map above :data:`PEAK` (3×3 non-maximum suppression); every object pixel (P(floor) < 0.5) is
given to its nearest anchor within :data:`RADIUS` px (an anchor with fewer than
:data:`MIN_PIXELS` such pixels reads the 5×5 pixels around it instead). Each object's shape
is read by the crop classifier (:mod:`gnm.eval.arrow_crops`) on a window around its anchor
(:func:`read_shapes`;
:func:`read_objects` alone gives the U-Net's pixel-averaged shape, used by the tests); its
material and colour are the pixel-averaged probabilities of its pixels, its depth their mean
depth, and an arrow's heading the mean of its direction vectors. The verdict is the first
failed check, in this order:

``wrong_count``        not four objects
``unrecognised``       an object's most likely shape has probability < :data:`SURE`
``arrows``             not exactly one arrow
``arrow_not_nearest``  another object is nearer the camera than the arrow
``no_pair``            the other three shapes are all different
``three_alike``        the other three share one shape
``wrong_target``       the arrow points (smallest angle between its heading and the anchor
                       differences) at an object whose shape is not the unique one
``mixed_materials``    the objects' most likely materials differ
``ok``                 everything holds

Colours are read and reported but the rule does not constrain them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from gnm.data.arrow_room import COLOURS, MATERIALS, pointed_at, rule_verdict
from gnm.data.raycast import SHAPES
from gnm.errors import GNMError
from gnm.eval import arrow_net as an
from gnm.eval.judges import register_judge
from gnm.eval.stats import wilson_interval

#: thresholds (chosen on val-split scenes; benchmarks/judge_validation.py --dataset arrow)
PEAK, RADIUS, MIN_PIXELS, SURE = 0.3, 9.0, 6, 0.5
#: heat-map maxima are local over NMS × NMS px; arrows found within ARROW_MERGE px of each
#: other are one arrow (an arrow is 12-16 px long at 64 px, and its heat map can peak twice)
NMS, ARROW_MERGE = 3, 9.0
#: the judge's version, recorded in every result; bumped whenever weights, thresholds or rules
#: change
JUDGE_VERSION = 1
DEFAULT_WEIGHTS = "judge_arrow.safetensors"
REASONS = ("ok", "wrong_count", "unrecognised", "arrows", "arrow_not_nearest", "no_pair",
           "three_alike", "wrong_target", "mixed_materials")
MIN_SIDE = 48


@dataclass
class ArrowVerdict:
    """The judge's decision on one image; per object (in anchor order) its anchor ``[col,
    row]`` px at 64 px, shape, material, colour names, shape probability and depth."""

    ok: bool
    reason: str
    n_objects: int
    anchors: list[list[float]] = field(default_factory=list)
    shapes: list[str] = field(default_factory=list)
    materials: list[str] = field(default_factory=list)
    colours: list[str] = field(default_factory=list)
    shape_p: list[float] = field(default_factory=list)
    depth: list[float] = field(default_factory=list)
    target: int = -1
    strict_ok: bool = False  # ok, and every object's shape probability >= 0.9


def read_objects(out: torch.Tensor) -> list[dict[str, Any]]:
    """Objects of one image from the net's output ``out [19, 64, 64]`` (module docstring)."""
    heat = torch.sigmoid(out[an.ANCHOR])
    peaks = (heat == F.max_pool2d(heat[None, None], NMS, 1, NMS // 2)[0, 0]) & (heat > PEAK)
    rows, cols = torch.nonzero(peaks, as_tuple=True)
    if len(rows) == 0:
        return []
    centres = torch.stack([cols, rows], 1).float() + 0.5  # [M, 2] col, row
    shape_p = out[an.SHAPE].softmax(0)
    fg = shape_p[0] < 0.5
    side = out.shape[-1]
    c = torch.arange(side, dtype=torch.float32) + 0.5
    grid = torch.stack(torch.meshgrid(c, c, indexing="xy"), -1)  # [S, S, 2] (col, row)
    dist = (grid[None] - centres[:, None, None]).norm(dim=-1)  # [M, S, S]
    owner = dist.argmin(0)
    near = dist.amin(0) <= RADIUS
    objects = []
    for m in range(len(centres)):
        mine = fg & near & (owner == m)
        n = int(mine.sum())
        if n < MIN_PIXELS:  # a faint segmentation: read the 5x5 pixels around the anchor
            mine = (grid - centres[m]).abs().amax(-1) <= 2.5
            n = int(mine.sum())
        shapes = shape_p[1:, mine].mean(1)
        shapes = shapes / shapes.sum()
        direction = out[an.DIRECTION][:, mine].mean(1)
        objects.append({
            "anchor": centres[m].tolist(), "pixels": n,
            "shape_probs": shapes.tolist(),
            "material_probs": out[an.MATERIAL][:, mine].softmax(0).mean(1).tolist(),
            "colour_probs": out[an.COLOUR][:, mine].softmax(0).mean(1).tolist(),
            "depth": float(out[an.DEPTH][mine].mean()) * an.DEPTH_SCALE,
            "heading": math.atan2(float(direction[1]), float(direction[0]))})
    return objects


def read_shapes(net: an.ArrowNet, images: torch.Tensor, found: list[list[dict[str, Any]]]
                ) -> None:
    """Replace each object's ``shape_probs`` (``found[b]``: the objects of ``images[b]``,
    ``[B, 3, 64, 64]``) by the crop classifier's, read on the window around its anchor."""
    from gnm.eval.arrow_crops import windows

    objs = [(b, o) for b, objects in enumerate(found) for o in objects]
    if not objs:
        return
    centres = torch.tensor([o["anchor"] for _, o in objs])
    image_of = torch.tensor([b for b, _ in objs])
    probs = net.crop(windows(images, centres, image_of)).softmax(1)
    for (_, o), p in zip(objs, probs, strict=True):
        o["shape_probs"] = p.tolist()


def merge_arrows(objects: list[dict[str, Any]], within: float | None = None
                 ) -> list[dict[str, Any]]:
    """``objects`` with arrows (top shape) whose anchors lie within ``within`` px
    (default :data:`ARROW_MERGE`; 0: none) merged into one: probabilities, anchor and
    depth averaged with pixel-count weights, headings by their weighted unit vectors."""
    within = ARROW_MERGE if within is None else within
    arrow = SHAPES.index("arrow")
    out = [dict(o) for o in objects]
    merged = True
    while merged and within > 0:
        merged = False
        arrows = [i for i, o in enumerate(out) if int(np.argmax(o["shape_probs"])) == arrow]
        for i, j in ((i, j) for i in arrows for j in arrows if i < j):
            if math.dist(out[i]["anchor"], out[j]["anchor"]) <= within:
                out[i] = _merge(out[i], out[j])
                del out[j]
                merged = True
                break
    return out


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    wa, wb = a["pixels"], b["pixels"]

    def mean(key: str) -> list[float]:
        return [(wa * x + wb * y) / (wa + wb) for x, y in zip(a[key], b[key], strict=True)]

    vx = wa * math.cos(a["heading"]) + wb * math.cos(b["heading"])
    vy = wa * math.sin(a["heading"]) + wb * math.sin(b["heading"])
    return {**{k: mean(k) for k in ("anchor", "shape_probs", "material_probs",
                                     "colour_probs")},
            "pixels": wa + wb, "depth": (wa * a["depth"] + wb * b["depth"]) / (wa + wb),
            "heading": math.atan2(vy, vx)}


def decide(objects: list[dict[str, Any]]) -> ArrowVerdict:
    """The verdict on one image's objects (from :func:`read_objects`)."""
    shapes = [SHAPES[int(np.argmax(o["shape_probs"]))] for o in objects]
    sure = [float(max(o["shape_probs"])) for o in objects]
    materials = [MATERIALS[int(np.argmax(o["material_probs"]))] for o in objects]
    colours = [list(COLOURS)[int(np.argmax(o["colour_probs"]))] for o in objects]
    depth = [o["depth"] for o in objects]
    anchors = [o["anchor"] for o in objects]
    target = -1
    if len(objects) != 4:
        reason = "wrong_count"
    elif min(sure) < SURE:
        reason = "unrecognised"
    else:
        pos = np.array(anchors)
        heading = np.array([o["heading"] for o in objects])
        target = pointed_at(pos, heading, [SHAPES.index(s) for s in shapes])
        reason = rule_verdict(shapes, target, depth, materials)
    ok = reason == "ok"
    return ArrowVerdict(ok, reason, len(objects), anchors, shapes, materials, colours,
                        [round(s, 4) for s in sure], [round(d, 3) for d in depth], target,
                        ok and min(sure) >= 0.9)


def _as_float_images(images: Any) -> torch.Tensor:
    """Images uint8 ``[N, H, W, 3]`` or float ``[N, 3, H, W]`` in [0, 1] as float
    ``[N, 3, H, W]``; a GNMError for any other layout."""
    x = torch.as_tensor(np.asarray(images))
    if x.ndim == 4 and x.shape[-1] == 3 and x.shape[1] != 3:
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] != 3 or x.shape[2] != x.shape[3]:
        raise GNMError(f"the Arrow Room judge needs square RGB images [N, H, W, 3] or "
                       f"[N, 3, H, W], not shape {tuple(x.shape)}.")
    if x.shape[-1] < MIN_SIDE:
        raise GNMError(f"images of {x.shape[-1]} px are too small for the Arrow Room judge; "
                       f"it needs at least {MIN_SIDE} px.")
    if x.dtype == torch.uint8:
        return x.float() / 255
    x = x.float()
    if not torch.isfinite(x).all():
        raise GNMError("some images contain NaN or infinite pixels; drop or fix them before "
                       "judging.")
    return x.clamp(0, 1)


_DEFAULT: list[an.ArrowNet] = []


def load_arrow_net(path: str | Path | None = None) -> an.ArrowNet:
    """The judge's net (default: the weights shipped in the package), eval mode."""
    from safetensors.torch import load_file

    if path is None and _DEFAULT:
        return _DEFAULT[0]
    where = Path(str(resources.files("gnm") / "assets" / DEFAULT_WEIGHTS)) if path is None \
        else Path(path)
    if not where.is_file():
        raise GNMError(f"Arrow Room judge weights {where} are missing; reinstall gnm or make "
                       "them with `python -m gnm.eval.arrow_net --out <path>`.")
    try:
        net = an.ArrowNet()
        net.load_state_dict({k: v.float() for k, v in load_file(str(where)).items()})
    except Exception as exc:  # noqa: BLE001 - any load failure is the same user error
        raise GNMError(f"Arrow Room judge weights {where} cannot be loaded ({exc}); make them "
                       "again with `python -m gnm.eval.arrow_net --out <path>`.") from exc
    net.eval()
    if path is None:
        _DEFAULT.append(net)
    return net


@torch.no_grad()
def judge_arrow(images: Any, dataset: str = "arrow", progress: bool = False,
                net: an.ArrowNet | None = None, batch_size: int = 64,
                min_images: int = 1, **_: Any) -> dict[str, Any]:
    """S-Acc of Arrow Room images (uint8 ``[N, H, W, 3]`` or float ``[N, 3, H, W]`` in
    [0, 1], H = W ≥ 48): the judges' result dict (:mod:`gnm.eval.judges`) with per-image
    :class:`ArrowVerdict` s."""
    x = _as_float_images(images)
    n = x.shape[0]
    if n < min_images:
        raise GNMError(f"{n} images given; the judge needs at least {min_images}.")
    net = net or load_arrow_net()
    verdicts = []
    for i in tqdm(range(0, n, batch_size), desc="judging", disable=not progress):
        small = an.to_side(x[i:i + batch_size])
        found = [read_objects(o) for o in net(small)]
        read_shapes(net, small, found)
        verdicts += [decide(merge_arrows(objs)) for objs in found]
    k = sum(v.ok for v in verdicts)
    counts = {r: 0 for r in REASONS}
    for v in verdicts:
        counts[v.reason] += 1
    return {"dataset": "arrow", "judge_version": JUDGE_VERSION, "sacc": k / n,
            "ci95": list(wilson_interval(k, n)),
            "sacc_strict": sum(v.strict_ok for v in verdicts) / n, "n": n, "reasons": counts,
            "verdicts": [asdict(v) for v in verdicts]}


register_judge("arrow", judge_arrow, lambda path: {"net": load_arrow_net(path)})
